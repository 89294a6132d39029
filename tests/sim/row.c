/*
 * row.c - the simulator's rows: render as JSON, parse back strictly.
 *
 * Parsing is strict on purpose: a hub output or a consolidated image with a
 * column too many, one missing, or an integer turned into a float is a
 * finding, not something to paper over.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"
#include "sim.h"

void sim_row_json(const sim_row *r, sl_buf *out)
{
    if (!r->present) {
        sl_buf_puts(out, "null");
        return;
    }
    sl_buf_printf(out, "{\"id\":%" PRId64 ",\"n\":%" PRId64 ",\"s\":", r->id, r->n);
    sl_buf_json_str(out, r->s, strlen(r->s));
    sl_buf_printf(out, ",\"qty\":%" PRId64 "}", r->qty);
}

bool sim_row_eq(const sim_row *a, const sim_row *b)
{
    if (a->present != b->present)
        return false;
    if (!a->present)
        return true;
    return a->id == b->id && a->n == b->n && a->qty == b->qty && strcmp(a->s, b->s) == 0;
}

static int get_int(const sl_json *j, int t, int64_t *out)
{
    sl_str r;
    char tmp[32], *end;

    if (t < 0 || j->tok[t].type != SL_J_NUMBER)
        return -1;
    r = sl_json_raw(j, t);
    if (r.len == 0 || r.len >= sizeof(tmp))
        return -1;
    memcpy(tmp, r.p, r.len);
    tmp[r.len] = '\0';
    *out = strtoll(tmp, &end, 10);
    return *end == '\0' ? 0 : -1; /* "3.0" or "3e0" is not an integer */
}

int sim_row_from_tok(const sl_json *j, int t, sim_row *r, char *why, size_t whylen)
{
    int k, seen = 0;

    memset(r, 0, sizeof(*r));
    if (t < 0) {
        snprintf(why, whylen, "no row");
        return -1;
    }
    if (j->tok[t].type == SL_J_NULL)
        return 0;
    if (j->tok[t].type != SL_J_OBJECT) {
        snprintf(why, whylen, "row is not an object");
        return -1;
    }
    for (k = sl_json_first(j, t); k >= 0; k = sl_json_next_member(j, k)) {
        int v = k + 1;
        sl_str name = sl_json_raw(j, k);

        if (sl_json_str_eq(j, k, "id", 2) && get_int(j, v, &r->id) == 0) {
            seen |= 1;
        } else if (sl_json_str_eq(j, k, "n", 1) && get_int(j, v, &r->n) == 0) {
            seen |= 2;
        } else if (sl_json_str_eq(j, k, "qty", 3) && get_int(j, v, &r->qty) == 0) {
            seen |= 4;
        } else if (sl_json_str_eq(j, k, "s", 1) && j->tok[v].type == SL_J_STRING) {
            sl_buf tmp = SL_BUF_INIT;

            sl_json_unescape(j, v, &tmp);
            if (tmp.len >= sizeof(r->s)) {
                sl_buf_free(&tmp);
                snprintf(why, whylen, "column s too long");
                return -1;
            }
            memcpy(r->s, tmp.data, tmp.len);
            r->s[tmp.len] = '\0';
            sl_buf_free(&tmp);
            seen |= 8;
        } else {
            sl_str val = sl_json_raw(j, v);

            snprintf(why, whylen, "unexpected column %.*s: %.*s", (int)name.len, name.p,
                     (int)(val.len > 40 ? 40 : val.len), val.p);
            return -1;
        }
    }
    if (seen != 15) {
        snprintf(why, whylen, "missing column(s):%s%s%s%s", seen & 1 ? "" : " id",
                 seen & 2 ? "" : " n", seen & 8 ? "" : " s", seen & 4 ? "" : " qty");
        return -1;
    }
    r->present = true;
    return 0;
}

int sim_row_parse(const char *json, size_t len, sim_row *r, char *why, size_t whylen)
{
    sl_json j;
    sl_error e;
    int rc;

    sl_json_init(&j);
    if (sl_json_parse(&j, json, len, &e) != 0) {
        snprintf(why, whylen, "bad JSON: %s", e.msg);
        sl_json_free(&j);
        memset(r, 0, sizeof(*r));
        return -1;
    }
    rc = sim_row_from_tok(&j, 0, r, why, whylen);
    sl_json_free(&j);
    return rc;
}
