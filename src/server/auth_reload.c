/* auth_reload.c - a reload of the authentication state (see auth.h).
 *
 * What a reload asks of winbindd (group SIDs of the rules, the domain and
 * computer names of NTLM challenges) runs on the winbind pool, so a stalled
 * winbindd never freezes the loop; the loop swaps the result in when it
 * arrives (auth_swap). Everything else (config, user file, keytab) is read
 * on the loop. */
#include <stdio.h>
#include <stdlib.h>

#include "authgate/err.h"
#include "auth_int.h"
#include "rules/rules.h"

/* The rules file read with a resolver that only notes a group lookup: a
 * syntax error shows at once (in the ctl reply too), and a file without
 * groups needs no winbind at all. */
static int wb_group_dry(void *arg, const char *name, char *sid, size_t cap)
{
    *(bool *)arg = true;
    snprintf(sid, cap, "S-1-0-0");
    return 0;
}

struct reload_job {
    struct ag_job base;
    struct ag_config *cfg;  /* the new configuration (reference) */
    struct ag_users *users; /* its user file, read on the loop (reference) */
    bool want_rules, want_names;
    struct ag_rules *rules; /* run: the rules with their group SIDs */
    char err[600];          /* run: why the rules did not load */
    struct auth_wb_names names;
};

static void reload_run(struct ag_job *j)
{
    struct reload_job *r = (struct reload_job *)j;
    if (r->want_rules)
        r->rules = ag_rules_load(r->cfg->rules_file, auth_wb_group, NULL, r->err, sizeof r->err);
    if (r->rules && ag_rules_check_routes(r->rules, r->cfg, r->err, sizeof r->err) != 0) {
        ag_rules_free(r->rules);
        r->rules = NULL;
    }
    if (r->want_names && (!r->want_rules || r->rules))
        auth_read_wb_names(&r->names);
}

static void reload_done(struct ag_job *j, void *owner)
{
    struct reload_job *r = (struct reload_job *)j;
    struct ag_server *srv = owner;
    srv->reload_job = NULL;
    uv_timer_stop(&srv->reload_timer);
    if (r->want_rules && !r->rules) {
        ag_server_reload_finish(srv, r->cfg, r->err);
        return;
    }
    if (r->rules)
        ag_info("event=rules_loaded file=%s rules=%zu", r->cfg->rules_file,
                ag_rules_count(r->rules));
    auth_swap(srv, r->cfg, r->rules, r->users, &r->names);
    r->rules = NULL;
    r->users = NULL;
    ag_server_reload_finish(srv, r->cfg, NULL);
}

static void reload_release(struct ag_job *j)
{
    struct reload_job *r = (struct reload_job *)j;
    ag_rules_free(r->rules);
    auth_users_unref(r->users);
    ag_config_unref(r->cfg);
}

static const struct ag_job_ops reload_ops = {"reload", reload_run, reload_done, reload_release};

static void on_reload_timeout(uv_timer_t *t)
{
    struct ag_server *srv = t->data;
    struct ag_job *j = srv->reload_job;
    if (!j)
        return;
    srv->reload_job = NULL;
    srv->auth.reload_timeouts++;
    /* The job finishes (or not) on its own and then only frees itself. */
    struct ag_config *ncfg = ag_config_ref(((struct reload_job *)j)->cfg);
    ag_job_detach(j);
    char err[128];
    snprintf(err, sizeof err,
             "winbind did not answer within handshake_timeout (%ums); the old "
             "configuration stays",
             ncfg->handshake_timeout_ms);
    ag_server_reload_finish(srv, ncfg, err);
    ag_config_unref(ncfg);
}

int ag_auth_reload(struct ag_server *srv, struct ag_config *ncfg, char *err, size_t errlen)
{
    struct ag_users *u;
    struct ag_rules *rules = NULL;
    bool wb = ag_config_uses_backend(ncfg, AG_BACKEND_WINBIND), groups = false;
    if (ncfg->rules_file) {
        rules = ag_rules_load(ncfg->rules_file, wb ? wb_group_dry : NULL, &groups, err, errlen);
        if (!rules)
            return -1;
        if (ag_rules_check_routes(rules, ncfg, err, errlen) != 0) {
            ag_rules_free(rules);
            return -1;
        }
    }
    if (auth_load_users(ncfg, &u, err, errlen) != 0) {
        ag_rules_free(rules);
        return -1;
    }
    if (!groups && !auth_wants_wb_names(ncfg)) {
        /* Nothing to ask winbindd: done here and now. */
        if (rules)
            ag_info("event=rules_loaded file=%s rules=%zu", ncfg->rules_file,
                    ag_rules_count(rules));
        struct auth_wb_names none = {.rc = AG_EIO};
        auth_swap(srv, ncfg, rules, u, &none);
        return 0;
    }
    ag_rules_free(rules);
    struct reload_job *r = calloc(1, sizeof *r);
    if (!r) {
        auth_users_unref(u);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->base.ops = &reload_ops;
    r->cfg = ag_config_ref(ncfg);
    r->users = u;
    r->want_rules = groups;
    r->want_names = auth_wants_wb_names(ncfg);
    r->names.rc = AG_EIO;
    if (ag_job_submit(&srv->workers, AG_POOL_WINBIND, &r->base, srv) != 0) {
        reload_release(&r->base);
        free(r);
        snprintf(err, errlen, "the winbind worker queue is full");
        return -1;
    }
    srv->reload_job = &r->base;
    srv->reload_timer.data = srv;
    /* The deadline a client's verification gets from winbindd, the new
     * configuration's: below libwbclient's own ~65 s on a hung winbindd. */
    uv_timer_start(&srv->reload_timer, on_reload_timeout, ncfg->handshake_timeout_ms, 0);
    ag_info("event=reload_started config=%s note=\"winbind lookups off the loop\"", ncfg->path);
    return 1;
}
