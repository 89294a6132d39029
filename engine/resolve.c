/*
 * resolve.c - conflict strategies: latest, prefer SITE, per-column merge,
 * Lua, manual; and what a delete on either side does.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "resolve.h"

static int priority(const sl_program *p, const char *site)
{
    int i = site ? sl_program_site(p, site, strlen(site)) : -1;

    return i >= 0 ? p->sites[i].priority : 0;
}

bool sl_latest_wins(const sl_program *p, const sl_side *in, const sl_side *cur)
{
    int pi, pc, c;

    if (in->ts != cur->ts)
        return in->ts > cur->ts;
    pi = priority(p, in->site);
    pc = priority(p, cur->site);
    if (pi != pc)
        return pi > pc;
    c = strcmp(in->site ? in->site : "", cur->site ? cur->site : "");
    return c < 0;
}

void sl_strategy_name(const sl_program *p, const sl_table *t, bool delete_involved, sl_buf *out)
{
    const sl_conflict *c = &t->conflict;

    if (delete_involved && c->kind != SL_CONFLICT_MANUAL) {
        sl_buf_puts(out, c->on_delete == SL_DELETE_WINS          ? "delete wins"
                         : c->on_delete == SL_DELETE_UPDATE_WINS ? "update wins"
                                                                 : "latest (delete)");
        return;
    }
    switch (c->kind) {
    case SL_CONFLICT_LATEST:
        sl_buf_puts(out, "latest");
        break;
    case SL_CONFLICT_PREFER:
        sl_buf_printf(out, "prefer %s", p->sites[c->prefer_site].name);
        break;
    case SL_CONFLICT_MERGE:
        sl_buf_puts(out, "merge");
        break;
    case SL_CONFLICT_LUA:
        sl_buf_printf(out, "lua %s", c->lua_fn);
        break;
    case SL_CONFLICT_MANUAL:
        sl_buf_puts(out, "manual");
        break;
    }
}

/* ---- per-column merge ---------------------------------------------------------- */

typedef struct num {
    bool ok, is_int, quoted;
    int64_t i;
    double d;
    int decimals; /* digits after the point as written */
} num;

static num num_of(const sl_json *j, int t)
{
    num n = {0};
    char tmp[64];
    sl_str r;
    const char *s, *dot;
    char *end;
    size_t len;

    if (t < 0)
        return n;
    r = sl_json_raw(j, t);
    s = r.p;
    len = r.len;
    if (j->tok[t].type == SL_J_STRING) {
        if (j->tok[t].escaped || len < 3)
            return n;
        s++;
        len -= 2;
        n.quoted = true;
    } else if (j->tok[t].type != SL_J_NUMBER) {
        return n;
    }
    if (len == 0 || len >= sizeof(tmp))
        return n;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    n.is_int = strpbrk(tmp, ".eE") == NULL;
    if (n.is_int) {
        n.i = strtoll(tmp, &end, 10);
        n.d = (double)n.i;
    } else {
        n.d = strtod(tmp, &end);
    }
    if (*end != '\0' || end == tmp)
        return n;
    dot = strchr(tmp, '.');
    n.decimals = dot && !strpbrk(tmp, "eE") ? (int)strlen(dot + 1) : 0;
    n.ok = true;
    return n;
}

static void put_num(sl_buf *out, num n)
{
    if (n.quoted)
        sl_buf_putc(out, '"');
    if (n.is_int)
        sl_buf_printf(out, "%" PRId64, n.i);
    else if (n.decimals > 0)
        sl_buf_printf(out, "%.*f", n.decimals, n.d);
    else
        sl_buf_printf(out, "%.17g", n.d);
    if (n.quoted)
        sl_buf_putc(out, '"');
}

/* base + (cur - base) + (in - base); a missing or null base counts as 0. */
static bool put_delta(sl_buf *out, const sl_json *bj, int bt, const sl_json *cj, int ct,
                      const sl_json *ij, int it)
{
    num b = num_of(bj, bt), c = num_of(cj, ct), i = num_of(ij, it), r;

    if (!c.ok || !i.ok)
        return false;
    if (!b.ok) {
        memset(&b, 0, sizeof(b));
        b.ok = b.is_int = true;
    }
    r = c;
    if (c.is_int && i.is_int && b.is_int) {
        r.i = c.i + i.i - b.i;
        r.is_int = true;
    } else {
        r.is_int = false;
        r.d = c.d + i.d - b.d;
        r.decimals = c.decimals > i.decimals ? c.decimals : i.decimals;
    }
    put_num(out, r);
    return true;
}

/* -1, 0, 1 comparing two values of the same kind; 2 when not comparable. */
static int compare(const sl_json *aj, int at, const sl_json *bj, int bt)
{
    num a = num_of(aj, at), b = num_of(bj, bt);
    sl_str ra, rb;
    size_t m;
    int c;

    if (a.ok && b.ok) {
        if (a.is_int && b.is_int)
            return a.i < b.i ? -1 : a.i > b.i;
        return a.d < b.d ? -1 : a.d > b.d;
    }
    if (aj->tok[at].type != SL_J_STRING || bj->tok[bt].type != SL_J_STRING)
        return 2;
    ra = sl_json_raw(aj, at);
    rb = sl_json_raw(bj, bt);
    m = ra.len < rb.len ? ra.len : rb.len;
    c = memcmp(ra.p, rb.p, m);
    if (c)
        return c < 0 ? -1 : 1;
    return ra.len < rb.len ? -1 : ra.len > rb.len;
}

static const sl_merge_col *col_rule(const sl_conflict *c, const char *name, size_t len)
{
    const sl_merge_col *star = NULL;
    size_t i;

    for (i = 0; i < c->ncols; i++) {
        if (strcmp(c->cols[i].column, "*") == 0)
            star = &c->cols[i];
        else if (strlen(c->cols[i].column) == len && memcmp(c->cols[i].column, name, len) == 0)
            return &c->cols[i];
    }
    return star;
}

static bool is_null(const sl_json *j, int t)
{
    return t < 0 || j->tok[t].type == SL_J_NULL;
}

static void merge_rows(const sl_program *p, const sl_table *t, const sl_side *base,
                       const sl_side *cur, const sl_side *in, sl_buf *out)
{
    sl_json bj, cj, ij;
    sl_error e;
    sl_buf name = SL_BUF_INIT;
    bool in_newer = sl_latest_wins(p, in, cur);
    bool first = true;
    int pass, k;

    sl_json_init(&bj);
    sl_json_init(&cj);
    sl_json_init(&ij);
    if (base->row == NULL || sl_json_parse(&bj, base->row, strlen(base->row), &e) != 0)
        bj.ntok = 0;
    (void)sl_json_parse(&cj, cur->row, strlen(cur->row), &e);
    (void)sl_json_parse(&ij, in->row, strlen(in->row), &e);
    sl_buf_putc(out, '{');
    /* current's columns in their order, then columns only incoming has */
    for (pass = 0; pass < 2; pass++) {
        const sl_json *pj = pass == 0 ? &cj : &ij;

        for (k = sl_json_first(pj, 0); k >= 0; k = sl_json_next_member(pj, k)) {
            const sl_merge_col *r;
            int ct, it, bt;
            sl_str key = sl_json_raw(pj, k);
            const sl_json *wj;
            int wt;

            sl_buf_reset(&name);
            sl_json_unescape(pj, k, &name);
            ct = sl_json_get(&cj, 0, name.data, name.len);
            it = sl_json_get(&ij, 0, name.data, name.len);
            if (pass == 1 && ct >= 0)
                continue;
            bt = bj.ntok ? sl_json_get(&bj, 0, name.data, name.len) : -1;
            r = col_rule(&t->conflict, name.data, name.len);
            if (!first)
                sl_buf_putc(out, ',');
            first = false;
            sl_buf_append(out, key.p, key.len);
            sl_buf_putc(out, ':');
            /* default: the newer side's value, or the side that has it */
            wj = (in_newer && it >= 0) || ct < 0 ? &ij : &cj;
            wt = wj == &ij ? it : ct;
            if (r && ct >= 0 && it >= 0) {
                int c;

                switch (r->kind) {
                case SL_MERGE_LATEST:
                    break;
                case SL_MERGE_MAX:
                case SL_MERGE_MIN:
                    if (is_null(&cj, ct) || is_null(&ij, it)) {
                        wj = is_null(&cj, ct) ? &ij : &cj;
                        wt = wj == &ij ? it : ct;
                        break;
                    }
                    c = compare(&cj, ct, &ij, it);
                    if (c != 2) {
                        bool take_in = r->kind == SL_MERGE_MAX ? c < 0 : c > 0;

                        wj = take_in ? &ij : &cj;
                        wt = take_in ? it : ct;
                    }
                    break;
                case SL_MERGE_DELTA:
                    if (put_delta(out, &bj, bt, &cj, ct, &ij, it))
                        continue;
                    break;
                case SL_MERGE_PREFER: {
                    const char *s = p->sites[r->site].name;

                    if (in->site && strcmp(in->site, s) == 0) {
                        wj = &ij;
                        wt = it;
                    } else if (cur->site && strcmp(cur->site, s) == 0) {
                        wj = &cj;
                        wt = ct;
                    }
                    break;
                }
                }
            }
            {
                sl_str v = sl_json_raw(wj, wt);

                sl_buf_append(out, v.p, v.len);
            }
        }
    }
    sl_buf_putc(out, '}');
    sl_buf_free(&name);
    sl_json_free(&bj);
    sl_json_free(&cj);
    sl_json_free(&ij);
}

sl_outcome sl_resolve(const sl_program *p, const sl_table *t, const sl_side *base,
                      const sl_side *cur, const sl_side *in, sl_lua *L, const sl_lua_ctx *lctx,
                      sl_buf *merged, sl_buf *reason)
{
    const sl_conflict *c = &t->conflict;
    bool del = cur->row == NULL || in->row == NULL;
    const char *pref;

    if (c->kind == SL_CONFLICT_MANUAL)
        return SL_RES_MANUAL;
    if (del) {
        if (cur->row == NULL && in->row == NULL)
            return SL_RES_CURRENT; /* both deleted: nothing to decide */
        switch (c->on_delete) {
        case SL_DELETE_WINS:
            return in->row == NULL ? SL_RES_INCOMING : SL_RES_CURRENT;
        case SL_DELETE_UPDATE_WINS:
            return in->row != NULL ? SL_RES_INCOMING : SL_RES_CURRENT;
        case SL_DELETE_LATEST:
            break;
        }
        return sl_latest_wins(p, in, cur) ? SL_RES_INCOMING : SL_RES_CURRENT;
    }
    switch (c->kind) {
    case SL_CONFLICT_LATEST:
        break;
    case SL_CONFLICT_PREFER:
        pref = p->sites[c->prefer_site].name;
        if (in->site && strcmp(in->site, pref) == 0)
            return SL_RES_INCOMING;
        if (cur->site && strcmp(cur->site, pref) == 0)
            return SL_RES_CURRENT;
        break;
    case SL_CONFLICT_MERGE:
        merge_rows(p, t, base, cur, in, merged);
        return SL_RES_MERGED;
    case SL_CONFLICT_LUA: {
        sl_str b = {base->row, base->row ? strlen(base->row) : 0};
        sl_str cs = {cur->row, strlen(cur->row)};
        sl_str is = {in->row, strlen(in->row)};
        sl_error e;
        int r;

        if (L == NULL) {
            sl_buf_puts(reason, "no Lua state (the rules load no Lua file)");
            return SL_RES_MANUAL;
        }
        sl_error_clear(&e);
        r = sl_lua_merge(L, c->lua_fn, lctx, b, cs, is, merged, &e);
        if (r == 1)
            return SL_RES_MERGED;
        if (r == 0)
            sl_buf_printf(reason, "lua %s returned nil", c->lua_fn);
        else
            sl_buf_printf(reason, "lua %s failed: %s", c->lua_fn, e.msg);
        return SL_RES_MANUAL;
    }
    case SL_CONFLICT_MANUAL:
        return SL_RES_MANUAL;
    }
    return sl_latest_wins(p, in, cur) ? SL_RES_INCOMING : SL_RES_CURRENT;
}
