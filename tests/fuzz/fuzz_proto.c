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

static size_t step(void *state, const char *buf, size_t len, size_t *need, struct fz_buf *trace,
                   enum fz_verdict *verdict)
{
    return fz_parse_step(proto_parse, true, state, buf, len, need, trace, verdict);
}

static const struct fz_target target = {fz_parser_create, fz_parser_destroy, step};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_check(&target, data, size);
    return 0;
}
