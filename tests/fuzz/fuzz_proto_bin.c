/*
 * fuzz_proto_bin.c: libFuzzer target for the binary protocol parser
 * (core/proto_bin.c), fed whole and split (fuzz_split.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "../../core/proto_bin.h"
#include "fuzz_req.h"

static size_t step(void *state, const char *buf, size_t len, size_t *need, struct fz_buf *trace,
                   enum fz_verdict *verdict)
{
    return fz_parse_step(proto_bin_parse, false, state, buf, len, need, trace, verdict);
}

static const struct fz_target target = {fz_parser_create, fz_parser_destroy, step};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_check(&target, data, size);
    return 0;
}
