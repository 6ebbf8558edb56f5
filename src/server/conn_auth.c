/* conn_auth.c - authentication of a connection (see auth_glue.h).
 * Interim: with auth_schemes none every request proceeds; otherwise every
 * request is refused with 407 until the auth core lands. */
#include "auth_glue.h"
#include "conn.h"

enum ag_auth_verdict ag_conn_auth(struct conn *c)
{
    if (c->cfg->n_schemes == 0)
        return AG_AUTH_PROCEED;
    exchange_reply(c, 407, "Proxy-Authenticate: Basic realm=\"authgate\"\r\n", NULL);
    return AG_AUTH_REPLIED;
}

const char *ag_conn_user(const struct conn *c)
{
    return "-";
}

const char *ag_conn_identity_header(const struct conn *c)
{
    return NULL;
}
