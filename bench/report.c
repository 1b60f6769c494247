/*
 * report.c: the text, JSON and progress renderings of a run (report.h).
 *
 * Numbers that can be undefined (a hit ratio without gets, a rate over zero
 * seconds) print as "-" in text and null in JSON, never as NaN, so that
 * scripts reading --json always get valid JSON.
 */
#include "report.h"

#include <stdio.h>
#include <string.h>

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static double ops_per_sec(const struct load_result *r)
{
    return r->seconds > 0 ? (double)r->metrics.requests / r->seconds : 0.0;
}

static bool json_string(struct sink *out, const char *s)
{
    if (!sink_puts(out, "\""))
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = c == '"' || c == '\\' ? sink_printf(out, "\\%c", c)
                  : c < 0x20           ? sink_printf(out, "\\u%04x", c)
                                       : sink_put(out, s, 1);
        if (!ok)
            return false;
    }
    return sink_puts(out, "\"");
}

static void describe_loop(const struct opts *o, char *buf, size_t n)
{
    if (o->rate > 0)
        snprintf(buf, n, "open loop at %.0f requests/s (%s arrivals, at most %u in flight per "
                 "connection)", o->rate, o->arrival == OPTS_ARRIVAL_POISSON ? "poisson" : "fixed",
                 o->pipeline);
    else
        snprintf(buf, n, "closed loop, pipeline %u", o->pipeline);
}

bool report_text(struct sink *out, const struct opts *o, const struct load_result *r)
{
    const struct load_metrics *m = &r->metrics;
    char loop[160], values[64], keys[64];
    describe_loop(o, loop, sizeof(loop));
    if (o->value_size.min == o->value_size.max)
        snprintf(values, sizeof(values), "%llu", (unsigned long long)o->value_size.min);
    else
        snprintf(values, sizeof(values), "%llu-%llu", (unsigned long long)o->value_size.min,
                 (unsigned long long)o->value_size.max);
    if (o->key_dist == KEYGEN_ZIPF)
        snprintf(keys, sizeof(keys), "zipf %.3g", o->zipf_skew);
    else
        snprintf(keys, sizeof(keys), "uniform");
    bool ok = sink_printf(out, "server      %s:%u, %s protocol, %u connections on %u threads\n", o->server,
                  o->port, opts_proto_str(o->protocol), o->connections, o->threads) &&
              sink_printf(out, "load        %s\n", loop) &&
              sink_printf(out, "workload    get:set %u:%u, %u keys per get, %llu keys (%s), values %s bytes\n",
                  o->ratio.get, o->ratio.set, o->multiget, (unsigned long long)o->keys, keys, values);
    if (ok && o->prefill)
        ok = sink_printf(out, "prefill     %llu sets in %.2f s\n", (unsigned long long)m->prefill_sets,
                 r->prefill_seconds);
    if (!ok)
        return false;
    if (o->prefill_only)
        return sink_printf(out, "errors      %llu\n", (unsigned long long)load_errors(m)) &&
               (r->first_error[0] == '\0' || sink_printf(out, "first error %s\n", r->first_error));
    ok = sink_printf(out, "throughput  %.0f requests/s (%llu in %.2f s: %llu gets, %llu sets)\n",
             ops_per_sec(r), (unsigned long long)m->requests, r->seconds,
             (unsigned long long)m->gets, (unsigned long long)m->sets);
    if (ok && m->get_keys > 0)
        ok = sink_printf(out, "hit ratio   %.2f%% (%llu of %llu keys)\n",
                 100.0 * (double)m->hits / (double)m->get_keys, (unsigned long long)m->hits,
                 (unsigned long long)m->get_keys);
    else if (ok)
        ok = sink_printf(out, "hit ratio   - (no gets)\n");
    ok = ok && sink_printf(out, "latency us  ");
#define TEXT_PCT(key, pct) ok = ok && sink_printf(out, "%s %.1f  ", key, us(hist_percentile(r->latency, pct)));
    REPORT_PERCENTILES(TEXT_PCT)
#undef TEXT_PCT
    ok = ok && sink_printf(out, "max %.1f  mean %.1f\n", us(hist_max(r->latency)),
                   hist_mean(r->latency) / 1000.0);
    if (o->rate > 0) {
        ok = ok && sink_printf(out, "send lag us ");
#define TEXT_LAG(key, pct) ok = ok && sink_printf(out, "%s %.1f  ", key, us(hist_percentile(r->send_lag, pct)));
        REPORT_PERCENTILES(TEXT_LAG)
#undef TEXT_LAG
        ok = ok && sink_printf(out, "max %.1f  (generator behind schedule)\n", us(hist_max(r->send_lag)));
    }
    ok = ok && sink_printf(out, "errors      %llu", (unsigned long long)load_errors(m));
    if (ok && load_errors(m) > 0) {
        size_t n;
        const struct metric_desc *desc = load_metric_desc(&n);
        const char *sep = " (";
        for (size_t i = 0; ok && i < n; i++) {
            if (strncmp(desc[i].name, "errors_", 7) == 0 && m->v[i] > 0) {
                ok = sink_printf(out, "%s%s %llu", sep, desc[i].name + 7, (unsigned long long)m->v[i]);
                sep = ", ";
            }
        }
        ok = ok && sink_printf(out, ")\nfirst error %s", r->first_error);
    }
    return ok && sink_printf(out, "\n");
}

bool report_json(struct sink *out, const struct opts *o, const struct load_result *r)
{
    const struct load_metrics *m = &r->metrics;
    bool ok = sink_printf(out, "{\"config\": {");
    for (size_t i = 0; ok && i < opts_count(); i++) {
        ok = sink_printf(out, "%s\"%s\": ", i ? ", " : "", opts_name(i)) && opts_value_json(o, i, out);
    }
    ok = ok && sink_printf(out, "}, \"seconds\": %.6f, \"ops_per_sec\": %.3f, \"requests\": %llu",
                   r->seconds, ops_per_sec(r), (unsigned long long)m->requests);
    if (m->get_keys > 0)
        ok = ok && sink_printf(out, ", \"hit_ratio\": %.6f", (double)m->hits / (double)m->get_keys);
    else
        ok = ok && sink_printf(out, ", \"hit_ratio\": null");
    ok = ok && sink_printf(out, ", \"latency_us\": {\"min\": %.3f, \"mean\": %.3f", us(hist_min(r->latency)),
                   hist_mean(r->latency) / 1000.0);
#define JSON_PCT(key, pct) ok = ok && sink_printf(out, ", \"" key "\": %.3f", us(hist_percentile(r->latency, pct)));
    REPORT_PERCENTILES(JSON_PCT)
#undef JSON_PCT
    ok = ok && sink_printf(out, ", \"max\": %.3f}, \"send_lag_us\": ", us(hist_max(r->latency)));
    if (o->rate > 0) {
        ok = ok && sink_printf(out, "{\"mean\": %.3f", hist_mean(r->send_lag) / 1000.0);
#define JSON_LAG(key, pct) ok = ok && sink_printf(out, ", \"" key "\": %.3f", us(hist_percentile(r->send_lag, pct)));
        REPORT_PERCENTILES(JSON_LAG)
#undef JSON_LAG
        ok = ok && sink_printf(out, ", \"max\": %.3f}", us(hist_max(r->send_lag)));
    } else {
        ok = ok && sink_printf(out, "null");
    }
    ok = ok && sink_printf(out, ", \"counters\": {");
    size_t n;
    const struct metric_desc *desc = load_metric_desc(&n);
    for (size_t i = 0; ok && i < n; i++)
        ok = sink_printf(out, "%s\"%s\": %llu", i ? ", " : "", desc[i].name, (unsigned long long)m->v[i]);
    ok = ok && sink_printf(out, "}, \"errors\": %llu, \"prefill_seconds\": %.6f, \"first_error\": ",
                   (unsigned long long)load_errors(m), r->prefill_seconds);
    if (r->first_error[0] != '\0')
        ok = ok && json_string(out, r->first_error);
    else
        ok = ok && sink_printf(out, "null");
    return ok && sink_printf(out, "}\n");
}

bool report_progress(struct sink *out, const struct load_progress *now,
                     const struct load_progress *prev)
{
    double dt = now->seconds - prev->seconds;
    double rate = dt > 0 ? (double)(now->done - prev->done) / dt : 0.0;
    bool ok = sink_printf(out, "[%6.1fs] %-7s %10.0f %s/s  %llu in all", now->seconds, now->phase, rate,
                  strcmp(now->phase, "prefill") == 0 ? "sets" : "requests",
                  (unsigned long long)now->done);
    uint64_t keys = now->get_keys - prev->get_keys;
    if (ok && keys > 0)
        ok = sink_printf(out, "  hit %.1f%%", 100.0 * (double)(now->hits - prev->hits) / (double)keys);
    return ok && sink_printf(out, "  errors %llu\n", (unsigned long long)now->errors);
}
