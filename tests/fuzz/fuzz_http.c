/*
 * fuzz_http.c: libFuzzer target for the metrics endpoint's HTTP parser
 * (core/http.c), fed whole and split (fuzz_split.h). A request that gets an
 * error status ends the stream, as the endpoint closes after answering it.
 */
#include <stddef.h>
#include <stdint.h>

#include "../../core/http.h"
#include "fuzz_split.h"

static void *create(void)
{
    return malloc(1);
}

static void destroy(void *state)
{
    free(state);
}

static size_t step(void *state, const char *buf, size_t len, size_t *need, struct fz_buf *trace,
                   enum fz_verdict *verdict)
{
    (void)state;
    struct http_req req;
    *need = 0;
    size_t used = http_parse(buf, len, "/metrics", &req);
    if (used == 0)
        return 0;
    fz_printf(trace, "used=%zu status=%u method=%d keep=%d", used, req.status, (int)req.method, req.keep_alive);
    if (req.status == 200)
        fz_bytes(trace, "path", req.path, req.npath);
    fz_put(trace, "\n", 1);
    if (req.status != 200)
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
