/* test_stats.c - the counter table (src/server/stats.def): every row has a
 * well-formed, unique stats key and Prometheus name (and label), help text
 * and a kind that fits its name; each row reads its own field; "stats" and
 * "metrics" print every row, with its value, from the same reading. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/commands.h"
#include "ctl/proto.h"
#include "ctl_reply_text.h"
#include "server/server.h"
#include "server/stats.h"

/* Every (row, dimension index) as its stats key, metric, label and value. */
struct line {
    char key[AG_STAT_NAME_MAX], label[AG_STAT_NAME_MAX];
    const struct ag_stat_row *row;
    size_t i;
};

static size_t all_lines(struct line **out)
{
    size_t n = 0;
    for (size_t k = 0; k < ag_stat_n_rows; k++)
        n += ag_stat_dim_size(ag_stat_rows[k].dim);
    struct line *l = calloc(n, sizeof *l);
    assert_non_null(l);
    size_t o = 0;
    for (size_t k = 0; k < ag_stat_n_rows; k++) {
        const struct ag_stat_row *row = &ag_stat_rows[k];
        for (size_t i = 0; i < ag_stat_dim_size(row->dim); i++, o++) {
            const char *dn = ag_stat_dim_name(row->dim, i);
            assert_true(ag_stat_expand(l[o].key, sizeof l[o].key, row->key, dn) < sizeof l[o].key);
            if (row->label)
                assert_true(ag_stat_expand(l[o].label, sizeof l[o].label, row->label, dn) <
                            sizeof l[o].label);
            l[o].row = row;
            l[o].i = i;
        }
    }
    *out = l;
    return n;
}

static bool all_of(const char *s, const char *first, const char *rest)
{
    if (!*s || !strchr(first, *s))
        return false;
    for (s++; *s; s++)
        if (!strchr(rest, *s))
            return false;
    return true;
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define DIGIT "0123456789"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

static const struct ag_stat_family *family_of(const char *metric)
{
    for (size_t f = 0; f < ag_stat_n_families; f++)
        if (strcmp(ag_stat_families[f].metric, metric) == 0)
            return &ag_stat_families[f];
    return NULL;
}

static size_t rows_of(const char *metric)
{
    size_t n = 0;
    for (size_t k = 0; k < ag_stat_n_rows; k++)
        n += strcmp(ag_stat_rows[k].metric, metric) == 0;
    return n;
}

static void test_rows_well_formed(void **state)
{
    (void)state;
    assert_true(ag_stat_n_rows > 80);
    for (size_t k = 0; k < ag_stat_n_rows; k++) {
        const struct ag_stat_row *r = &ag_stat_rows[k];
        bool dim = r->dim != AG_STAT_DIM_NONE;
        /* a dimension puts its name where %s stands, in key and label */
        assert_int_equal(strstr(r->key, "%s") != NULL, dim);
        if (dim) {
            assert_non_null(r->label);
            assert_null(strstr(strstr(r->key, "%s") + 2, "%"));
            assert_true(ends_with(r->label, "=%s"));
        }
        assert_true(all_of(r->metric, LOWER "_", LOWER DIGIT "_"));
        assert_true(strncmp(r->metric, "authgate_", 9) == 0);
        if (r->kind == AG_STAT_KIND_COUNTER)
            assert_true(ends_with(r->metric, "_total"));
        else
            assert_false(ends_with(r->metric, "_total"));
        /* help: one line, a sentence, nothing a HELP line would escape */
        assert_non_null(r->help);
        assert_true(strlen(r->help) > 5 && ends_with(r->help, "."));
        assert_null(strpbrk(r->help, "\n\\"));
        /* a family of its own, or one declared with its HELP and shared:
         * every row of it labelled with the same name, all of one kind */
        const struct ag_stat_family *f = family_of(r->metric);
        size_t shared = rows_of(r->metric);
        if (!r->label) {
            assert_int_equal(shared, 1);
            assert_null(f);
        } else {
            assert_true(f != NULL || (dim && shared == 1));
            size_t ln = (size_t)(strchr(r->label, '=') - r->label);
            for (size_t j = 0; j < ag_stat_n_rows; j++) {
                const struct ag_stat_row *o = &ag_stat_rows[j];
                if (strcmp(o->metric, r->metric) != 0)
                    continue;
                assert_int_equal(o->kind, r->kind);
                assert_non_null(o->label);
                assert_true(strncmp(o->label, r->label, ln + 1) == 0);
            }
        }
    }
    for (size_t f = 0; f < ag_stat_n_families; f++) {
        assert_true(rows_of(ag_stat_families[f].metric) > 1);
        assert_true(ends_with(ag_stat_families[f].help, "."));
        assert_null(strpbrk(ag_stat_families[f].help, "\n\\"));
    }

    struct line *l;
    size_t n = all_lines(&l);
    for (size_t a = 0; a < n; a++) {
        assert_true(all_of(l[a].key, LOWER, LOWER DIGIT "_"));
        assert_string_not_equal(l[a].key, "uptime_s"); /* cmd_stats writes that one */
        if (l[a].row->label) {
            char name[AG_STAT_NAME_MAX];
            const char *eq = strchr(l[a].label, '=');
            assert_non_null(eq);
            snprintf(name, sizeof name, "%.*s", (int)(eq - l[a].label), l[a].label);
            assert_true(all_of(name, LOWER UPPER "_", LOWER UPPER DIGIT "_"));
            assert_string_not_equal(name, "le");
            assert_true(strncmp(name, "__", 2) != 0);
            assert_true(all_of(eq + 1, LOWER DIGIT, LOWER DIGIT "_"));
        }
        for (size_t b = a + 1; b < n; b++) {
            if (strcmp(l[a].key, l[b].key) == 0)
                fail_msg("stats key %s twice", l[a].key);
            if (strcmp(l[a].row->metric, l[b].row->metric) == 0 &&
                strcmp(l[a].label, l[b].label) == 0)
                fail_msg("metric %s{%s} twice", l[a].row->metric, l[a].label);
        }
    }
    free(l);
}

/* The keys and metric names operators and the integration tests use: a row
 * may be added, never renamed away. */
static const char *const kept_keys[] = {
    "conns_accepted",
    "requests",
    "forwarded",
    "tunnels",
    "responses_2xx",
    "responses_5xx",
    "auth_407_sent",
    "auth_negotiate_started",
    "auth_ntlm_succeeded",
    "auth_basic_failed",
    "auth_fail_bad_password",
    "auth_fail_unknown_user",
    "auth_fail_skew",
    "auth_fail_timeout",
    "auth_basic_cache_hits",
    "auth_identity_expired",
    "auth_identity_reset",
    "limit_handshakes",
    "limit_handshakes_global",
    "limit_handshakes_addr",
    "throttle_refused_user_addr",
    "throttle_refused_addr",
    "throttle_refused_user",
    "throttle_refused_full",
    "throttle_ceiling_passed",
    "throttle_wrong_passwords",
    "throttle_fail_unrecorded",
    "throttle_keys_user_addr",
    "throttle_keys_addr",
    "throttle_keys_user",
    "limit_jobs",
    "limit_rounds",
    "limit_accept_paused",
    "limit_inbuf_full",
    "limit_chunk_size",
    "limit_header_too_large",
    "bad_requests",
    "loops_detected",
    "ports_denied",
    "rules_groups_unavailable",
    "dst_this_network",
    "timeout_head",
    "timeout_idle",
    "timeout_dns",
    "timeout_connect",
    "timeout_upstream",
    "timeout_tunnel",
    "timeout_drain",
    "upstream_errors",
    "upstream_opened",
    "upstream_reused",
    "upstream_not_pooled_fds",
    "bytes_in",
    "bytes_out",
    "jobs_submitted",
    "jobs_completed",
    "jobs_detached",
    "jobs_cancelled",
    "jobs_refused_cap",
    "jobs_refused_winbind",
    "jobs_refused_kerberos",
    "jobs_refused_local",
    "reload_timeouts",
    "ctl_commands",
    "ctl_denied",
    "ctl_bad",
    "ctl_limit",
};

static const char *const kept_metrics[] = {
    "authgate_connections",
    "authgate_connections_authenticated",
    "authgate_handshakes_in_progress",
    "authgate_tunnels_open",
    "authgate_jobs_in_flight",
    "authgate_connections_accepted_total",
    "authgate_requests_total",
    "authgate_requests_forwarded_total",
    "authgate_tunnels_total",
    "authgate_responses_total",
    "authgate_auth_challenges_total",
    "authgate_auth_handshakes_started_total",
    "authgate_auth_handshakes_succeeded_total",
    "authgate_auth_handshakes_failed_total",
    "authgate_auth_failures_total",
    "authgate_auth_basic_cache_hits_total",
    "authgate_auth_identity_expired_total",
    "authgate_auth_identity_reset_total",
    "authgate_rules_groups_unavailable_total",
    "authgate_limit_hits_total",
    "authgate_timeouts_total",
    "authgate_bad_requests_total",
    "authgate_loops_detected_total",
    "authgate_connect_ports_denied_total",
    "authgate_dst_this_network_total",
    "authgate_upstream_errors_total",
    "authgate_upstream_connections_opened_total",
    "authgate_upstream_connections_reused_total",
    "authgate_received_bytes_total",
    "authgate_sent_bytes_total",
    "authgate_jobs_submitted_total",
    "authgate_jobs_refused_total",
    "authgate_reload_timeouts_total",
    "authgate_ctl_commands_total",
    "authgate_ctl_denied_total",
    "authgate_ctl_bad_commands_total",
};

static void test_names_kept(void **state)
{
    (void)state;
    struct line *l;
    size_t n = all_lines(&l);
    for (size_t k = 0; k < sizeof kept_keys / sizeof kept_keys[0]; k++) {
        bool found = false;
        for (size_t a = 0; a < n && !found; a++)
            found = strcmp(l[a].key, kept_keys[k]) == 0;
        if (!found)
            fail_msg("stats key %s is gone", kept_keys[k]);
    }
    for (size_t k = 0; k < sizeof kept_metrics / sizeof kept_metrics[0]; k++)
        if (rows_of(kept_metrics[k]) == 0)
            fail_msg("metric %s is gone", kept_metrics[k]);
    free(l);
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

/* Every field a row names gets its own value: both outputs must show each
 * row's value on its own line, so a row reading another's field (or a
 * missing row) fails. */
static void test_outputs_show_every_row(void **state)
{
    (void)state;
    static struct ag_stats st;
    static struct ag_auth_stats au;
    static struct ag_workers w;
    struct ag_stats_view v = {.srv = &st, .auth = &au, .workers = &w};
    uint64_t next = 1000;
#define AG_STAT_SERVER(f, ...) st.f = next++;
#define AG_STAT_AUTH(f, ...) au.f = next++;
#define AG_STAT_SCHEME(f, ...)                                                                     \
    for (size_t s = 0; s < 4; s++)                                                                 \
        au.f[s] = next++;
#define AG_STAT_SESSION(f, ...) v.sessions.f = next++;
#define AG_STAT_THROTTLE(f, ...) v.throttle.f = next++;
#define AG_STAT_WORKERS(f, ...) w.f = next++;
#define AG_STAT_POOL(f, ...)                                                                       \
    for (size_t p = 0; p < AG_POOL_N; p++)                                                         \
        w.pools[p].f = next++;
#define AG_STAT_GAUGE(f, ...) v.f = next++;
#include "server/stats.def"

    struct ag_ctl_reply r;
    ag_ctl_reply_init(&r);
    ag_ctl_stats_counters(&v, &r);
    char *stats = finish(&r);
    ag_ctl_reply_init(&r);
    ag_ctl_metrics_counters(&v, AG_METRICS_PROMETHEUS, &r);
    char *metrics = finish(&r);

    struct line *l;
    size_t n = all_lines(&l);
    uint64_t *seen = calloc(n, sizeof *seen);
    assert_non_null(seen);
    for (size_t a = 0; a < n; a++) {
        const struct ag_stat_row *row = l[a].row;
        uint64_t val = row->get(&v, l[a].i);
        assert_true(val >= 1000); /* read from a field set above */
        for (size_t b = 0; b < a; b++)
            if (seen[b] == val)
                fail_msg("%s reads the field of %s", l[a].key, l[b].key);
        seen[a] = val;

        char want[3 * AG_STAT_NAME_MAX + 32];
        snprintf(want, sizeof want, "%s=%llu", l[a].key, (unsigned long long)val);
        if (!has_line(stats, want))
            fail_msg("stats lacks '%s'", want);
        if (row->label) {
            const char *eq = strchr(l[a].label, '=');
            snprintf(want, sizeof want, "%s{%.*s=\"%s\"} %llu", row->metric, (int)(eq - l[a].label),
                     l[a].label, eq + 1, (unsigned long long)val);
        } else {
            snprintf(want, sizeof want, "%s %llu", row->metric, (unsigned long long)val);
        }
        if (!has_line(metrics, want))
            fail_msg("metrics lacks '%s'", want);
        const struct ag_stat_family *f = family_of(row->metric);
        snprintf(want, sizeof want, "# HELP %s %s", row->metric, f ? f->help : row->help);
        assert_true(has_line(metrics, want));
        snprintf(want, sizeof want, "# TYPE %s %s", row->metric,
                 row->kind == AG_STAT_KIND_COUNTER ? "counter" : "gauge");
        assert_true(has_line(metrics, want));
    }
    /* one HELP per family, and stats has one line per row and dimension */
    for (size_t k = 0; k < ag_stat_n_rows; k++) {
        char want[AG_STAT_NAME_MAX + 16];
        snprintf(want, sizeof want, "# HELP %s ", ag_stat_rows[k].metric);
        const char *p = strstr(metrics, want);
        assert_non_null(p);
        assert_null(strstr(p + 1, want));
    }
    size_t lines = 0;
    for (const char *p = stats; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, n + 1); /* + the status line */
    free(seen);
    free(l);
    free(stats);
    free(metrics);
}

/* The real commands on a server with nothing running: each prints every
 * row once. */
static void test_commands_print_the_table(void **state)
{
    (void)state;
    static struct ag_server srv;
    static struct ag_config cfg;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    srv.loop = &loop;
    srv.cfg = &cfg;
    srv.stats.forwarded = 860000;
    const char *cmds[] = {"stats", "metrics"};
    char *out[2];
    for (size_t c = 0; c < 2; c++) {
        struct ag_ctl_cmd cmd;
        assert_int_equal(ag_ctl_parse(cmds[c], strlen(cmds[c]), &cmd), 0);
        struct ag_ctl_reply r;
        ag_ctl_reply_init(&r);
        ag_ctl_run(&srv, &cmd, AG_CTL_WB_UNUSED, &r);
        out[c] = finish(&r);
        assert_true(ends_with(out[c], "\n.ok\n"));
    }
    assert_true(has_line(out[0], "forwarded=860000"));
    assert_true(has_line(out[1], "authgate_requests_forwarded_total 860000"));
    struct line *l;
    size_t n = all_lines(&l);
    for (size_t a = 0; a < n; a++) {
        char want[AG_STAT_NAME_MAX + 16];
        snprintf(want, sizeof want, "\n%s=", l[a].key);
        assert_non_null(strstr(out[0], want));
        snprintf(want, sizeof want, "\n%s%s", l[a].row->metric, l[a].row->label ? "{" : " ");
        assert_non_null(strstr(out[1], want));
    }
    free(l);
    free(out[0]);
    free(out[1]);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_well_formed),
        cmocka_unit_test(test_names_kept),
        cmocka_unit_test(test_outputs_show_every_row),
        cmocka_unit_test(test_commands_print_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
