/*
 * fuzz_proto.c: libFuzzer target for the text and meta protocol parser
 * (core/proto.c), fed whole and split (fuzz_split.h). Besides the
 * sanitizers' checks: both runs parse the same requests, *need is honest,
 * no step consumes more than it was given.
 */
#include <stddef.h>
#include <stdint.h>

#include "../../core/proto.h"
#include "fuzz_req.h"

static void *create(void)
{
    struct proto_parser *parser = malloc(sizeof(*parser));
    if (parser == NULL)
        abort();
    fz_parser_init(parser);
    return parser;
}

static void destroy(void *state)
{
    free(state);
}

static size_t step(void *state, const char *buf, size_t len, size_t *need, struct fz_buf *trace,
                   enum fz_verdict *verdict)
{
    struct proto_req req;
    size_t used = proto_parse(state, buf, len, &req, need);
    if (used == 0)
        return 0;
    /* Swallowed bytes (a value too large, an unknown command's data) go
     * as they arrive, so their pieces differ split; what follows shows the
     * swallow ended in the same place. A closing request may take whatever
     * was buffered: its length is not compared either. */
    if (req.cmd != PROTO_NONE || req.close)
        fz_req(trace, &req, req.close && req.cmd == PROTO_NONE ? 0 : used);
    if (req.close)
        *verdict = req.cmd == PROTO_NONE && req.error == NULL ? FZ_CLOSED_EARLY : FZ_CLOSED;
    return used;
}

static const struct fz_target target = {create, destroy, step};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_check(&target, data, size);
    return 0;
}
