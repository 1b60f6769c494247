/*
 * fuzz_proto_bin.c: libFuzzer target for the binary protocol parser
 * (core/proto_bin.c), fed whole and split (fuzz_split.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "../../core/proto_bin.h"
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
    size_t used = proto_bin_parse(state, buf, len, &req, need);
    if (used == 0)
        return 0;
    /* Swallowed bytes (a value too large, an unknown command's data) go
     * as they arrive, so their pieces differ split; what follows shows the
     * swallow ended in the same place. A closing request may take whatever
     * was buffered: its length is not compared either. */
    if (req.cmd != PROTO_NONE || req.close)
        fz_req(trace, &req, req.close && req.cmd == PROTO_NONE ? 0 : used);
    if (req.close)
        *verdict = FZ_CLOSED;
    return used;
}

static const struct fz_target target = {create, destroy, step};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_check(&target, data, size);
    return 0;
}
