/*
 * main.c: corecache-bench, the load generator's thin main.
 *
 * Parses the options (opts.c), runs the load (load.c), prints the report
 * (report.c) and decides the exit status:
 *   0  the run completed without errors
 *   1  errors or unexpected replies were counted, or nothing was answered
 *   2  bad options
 *   3  the run could not start (address, connection, memory)
 * Progress lines go to stderr once a second when stderr is a terminal (or
 * with --progress); the report goes to stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"
#include "opts.h"
#include "report.h"
#include "sink.h"

/* A sink over one growing heap buffer. */
struct heap_sink {
    struct sink sink; /* first member: grow() casts back */
    char *data;
    size_t cap;
};

static bool heap_sink_grow(struct sink *sink, size_t need)
{
    struct heap_sink *hs = (struct heap_sink *)sink;
    size_t used = hs->data ? (size_t)(sink->pos - hs->data) : 0;
    size_t cap = hs->cap ? hs->cap : 4096;
    while (cap - used < need)
        cap *= 2;
    char *data = realloc(hs->data, cap);
    if (data == NULL)
        return false;
    hs->data = data;
    hs->cap = cap;
    sink->pos = data + used;
    sink->end = data + cap;
    return true;
}

static void heap_sink_init(struct heap_sink *hs)
{
    memset(hs, 0, sizeof(*hs));
    hs->sink.grow = heap_sink_grow;
}

/* Writes what the sink holds to f and empties it. */
static void heap_sink_drain(struct heap_sink *hs, FILE *f)
{
    if (hs->data == NULL)
        return;
    fwrite(hs->data, 1, (size_t)(hs->sink.pos - hs->data), f);
    fflush(f);
    hs->sink.pos = hs->data;
}

struct progress_ctx {
    struct heap_sink line;
    struct load_progress prev;
};

static void on_progress(void *arg, const struct load_progress *now)
{
    struct progress_ctx *ctx = arg;
    if (strcmp(now->phase, "prefill") == 0 && strcmp(ctx->prev.phase, "prefill") != 0)
        ctx->prev = (struct load_progress){.phase = "prefill"};
    if (strcmp(now->phase, "prefill") != 0 && strcmp(ctx->prev.phase, "prefill") == 0)
        ctx->prev = (struct load_progress){.phase = "run"};
    if (report_progress(&ctx->line.sink, now, &ctx->prev))
        heap_sink_drain(&ctx->line, stderr);
    ctx->prev = *now;
}

int main(int argc, char **argv)
{
    struct opts opts; /* ~2 KiB, mostly the CPU list */
    struct heap_sink out;
    heap_sink_init(&out);
    int status = 1;

    opts_defaults(&opts);
    if (!opts_parse(&opts, argc, argv, &out.sink)) {
        heap_sink_drain(&out, stderr);
        status = 2;
        goto done;
    }
    if (opts.help) {
        if (opts_usage(&out.sink))
            heap_sink_drain(&out, stdout);
        status = 0;
        goto done;
    }

    struct progress_ctx progress = {.prev = {.phase = ""}};
    heap_sink_init(&progress.line);
    bool show = !opts.quiet && (opts.progress || isatty(STDERR_FILENO));
    struct load_result result;
    char msg[256];
    int rc = load_run(&opts, show ? on_progress : NULL, &progress, &result, msg, sizeof(msg));
    free(progress.line.data);
    if (rc != 0) {
        fprintf(stderr, "corecache-bench: %s\n", msg);
        load_result_fini(&result);
        status = 3;
        goto done;
    }
    bool ok = opts.json ? report_json(&out.sink, &opts, &result)
                        : report_text(&out.sink, &opts, &result);
    if (ok)
        heap_sink_drain(&out, stdout);
    status = load_errors(&result.metrics) > 0 ? 1 : 0;
    if (!opts.prefill_only && result.metrics.requests == 0) {
        fprintf(stderr, "corecache-bench: no request was answered in the measured window\n");
        status = 1;
    }
    load_result_fini(&result);
done:
    free(out.data);
    return status;
}
