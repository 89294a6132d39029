/*
 * model.c - an independent model of the hub (docs: /tmp/briefs/semantics.md,
 * the lead's spec), written from the spec and not from the engine's code.
 *
 * It sees the hub's input in the order the hub first consumed it, but where
 * the hub has to infer, it uses the simulator's ground truth:
 *  - whether an event is an applier write (and of which version: the
 *    sluice.version header of the output the applier applied) or a local
 *    write, instead of matching content against the queue of sent versions;
 *  - which version a local write was based on: the version of the last
 *    output the site applied to that row, or the site's own earlier write
 *    once the model has decided about it (its version, or -1 when it did not
 *    become one), instead of the S.held the hub tracks. (--held-spec makes
 *    the model use its own S.held instead, to tell spec gaps from bugs.)
 * Everything else follows the spec: versions numbered 1, 2, ...; conflict iff
 * the row has a live version (or a tombstone younger than the retention) and
 * the base is not it; resolution per the table's rule, re-implemented here
 * (the Lua hook too, see lua_sim_merge); sends per step 7 with the spec's
 * per-site queue of unacknowledged versions, which the ground truth
 * acknowledges.
 *
 * Where content matching cannot tell what happened (PRODUCT.md, "a delete
 * carries no content"), the model marks the row "crossed" and the checks do
 * not hold the hub to the model there (they still require convergence):
 *  - a local delete at a site while a delete is queued to it (the hub takes
 *    the local delete for the echo);
 *  - an applier delete that made an event although the hub sent it unqueued
 *    (it thought the site held nothing; the hub takes it for a local delete).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define RETENTION_MS (7LL * 24 * 3600 * 1000)

typedef struct mver {
    sim_row img; /* present false: a tombstone */
    int64_t ts;
    int writer;
} mver;

typedef struct msite {
    int64_t held; /* the spec's S.held: 0 nothing known, -1 own content */
    int64_t *q;   /* versions sent and not acknowledged, oldest first */
    size_t nq, capq;
    int64_t *silent; /* deletes sent without queueing */
    size_t nsilent, capsilent;
    int64_t pos; /* newest lsn seen from the site for this row */
} msite;

typedef struct mkey {
    int64_t v;
    mver *vers; /* vers[i] is version i + 1 */
    size_t capvers;
    msite site[SIM_MAXSITES];
    int conflicts, open;
    bool crossed;
    char why[200];
} mkey;

struct sim_model {
    sim *S;
    mkey keys[SIM_MAXTABLES][SIM_MAXKEYS + 1];
};

typedef enum { R_CURRENT, R_INCOMING, R_MERGED, R_MANUAL } mres;

sim_model *sim_model_new(sim *S)
{
    sim_model *m = sl_xcalloc(1, sizeof(*m));

    m->S = S;
    return m;
}

void sim_model_free(sim_model *m)
{
    int t, k, s;

    if (m == NULL)
        return;
    for (t = 0; t < SIM_MAXTABLES; t++)
        for (k = 0; k <= SIM_MAXKEYS; k++) {
            mkey *mk = &m->keys[t][k];

            free(mk->vers);
            for (s = 0; s < SIM_MAXSITES; s++) {
                free(mk->site[s].q);
                free(mk->site[s].silent);
            }
        }
    free(m);
}

static void push64(int64_t **v, size_t *n, size_t *cap, int64_t x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = sl_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

static const mver *ver(const mkey *k, int64_t x)
{
    return x >= 1 && x <= k->v ? &k->vers[x - 1] : NULL;
}

static bool tomb(const mkey *k, int64_t x)
{
    const mver *v = ver(k, x);

    return v && !v->img.present;
}

static int64_t will_hold(const msite *ms)
{
    return ms->nq ? ms->q[ms->nq - 1] : ms->held;
}

static void cross(sim_model *m, mkey *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cross(sim_model *m, mkey *k, const char *fmt, ...)
{
    va_list ap;

    if (k->crossed)
        return;
    k->crossed = true;
    va_start(ap, fmt);
    vsnprintf(k->why, sizeof(k->why), fmt, ap);
    va_end(ap);
}

static int64_t new_version(mkey *k, const sim_row *img, int64_t ts, int writer)
{
    if ((size_t)k->v == k->capvers) {
        k->capvers = k->capvers ? k->capvers * 2 : 8;
        k->vers = sl_xrealloc(k->vers, k->capvers * sizeof(*k->vers));
    }
    k->vers[k->v].img = *img;
    k->vers[k->v].ts = ts;
    k->vers[k->v].writer = writer;
    return ++k->v;
}

/* Step 7: one send of version x to site d. */
static void send(sim_model *m, mkey *k, int d, int64_t x, sl_buf *desc)
{
    msite *ms = &k->site[d];
    int64_t wh = will_hold(ms);

    if (tomb(k, x) && (wh == 0 || tomb(k, wh))) {
        /* nothing live there: no CDC event will come back */
        push64(&ms->silent, &ms->nsilent, &ms->capsilent, x);
        sl_buf_printf(desc, " %s(unqueued)", sim_site_name(m->S, d));
        return;
    }
    push64(&ms->q, &ms->nq, &ms->capq, x);
    sl_buf_printf(desc, " %s", sim_site_name(m->S, d));
}

static void send_all_but(sim_model *m, mkey *k, int s, int64_t x, sl_buf *desc)
{
    int d;

    sl_buf_printf(desc, "; v%" PRId64 " to", x);
    for (d = 0; d < m->S->nsites; d++)
        if (d != s)
            send(m, k, d, x, desc);
}

/* ---- resolution ------------------------------------------------------------- */

typedef struct side {
    const sim_row *row; /* present false: deleted (or, for the base, none) */
    int64_t ts;
    int site;
} side;

/* latest: higher ts_ms; then higher site priority; then the name that sorts first. */
static bool in_wins_latest(const sim_model *m, const side *in, const side *cur)
{
    const sl_program *p = m->S->p;
    int c;

    if (in->ts != cur->ts)
        return in->ts > cur->ts;
    if (p->sites[in->site].priority != p->sites[cur->site].priority)
        return p->sites[in->site].priority > p->sites[cur->site].priority;
    c = strcmp(p->sites[in->site].name, p->sites[cur->site].name);
    /* the same site on both sides cannot tie: a site's clock never repeats */
    return c < 0;
}

static int64_t col_int(const sim_row *r, const char *col)
{
    if (strcmp(col, "id") == 0)
        return r->id;
    if (strcmp(col, "n") == 0)
        return r->n;
    return r->qty;
}

static void set_int(sim_row *r, const char *col, int64_t v)
{
    if (strcmp(col, "id") == 0)
        r->id = v;
    else if (strcmp(col, "n") == 0)
        r->n = v;
    else
        r->qty = v;
}

static void merge_rows(const sim_model *m, const sl_conflict *c, const side *base, const side *cur,
                       const side *in, sim_row *out)
{
    static const char *cols[] = {"id", "n", "s", "qty"};
    bool in_latest = in_wins_latest(m, in, cur);
    size_t i, k;

    *out = *cur->row;
    for (i = 0; i < 4; i++) {
        const char *col = cols[i];
        const sl_merge_col *rule = NULL;
        const sim_row *from;
        bool str = strcmp(col, "s") == 0;
        sl_merge_kind kind;

        for (k = 0; k < c->ncols; k++)
            if (strcmp(c->cols[k].column, col) == 0)
                rule = &c->cols[k];
        for (k = 0; rule == NULL && k < c->ncols; k++)
            if (strcmp(c->cols[k].column, "*") == 0)
                rule = &c->cols[k];
        kind = rule ? rule->kind : SL_MERGE_LATEST;
        from = in_latest ? in->row : cur->row;
        switch (kind) {
        case SL_MERGE_LATEST:
            break;
        case SL_MERGE_PREFER:
            /* SITE's side; both sides SITE: the incoming (newer) change */
            if (in->site == rule->site)
                from = in->row;
            else if (cur->site == rule->site)
                from = cur->row;
            break;
        case SL_MERGE_MAX:
        case SL_MERGE_MIN: {
            int d = str ? strcmp(in->row->s, cur->row->s)
                        : (col_int(in->row, col) > col_int(cur->row, col)) -
                              (col_int(in->row, col) < col_int(cur->row, col));
            bool take_in = kind == SL_MERGE_MAX ? d > 0 : d < 0;

            from = take_in ? in->row : cur->row;
            break;
        }
        case SL_MERGE_DELTA:
            if (!str) {
                int64_t b = base->row->present ? col_int(base->row, col) : 0;

                set_int(out, col, col_int(cur->row, col) + col_int(in->row, col) - b);
                continue;
            }
            break;
        }
        if (str)
            memcpy(out->s, from->s, sizeof(out->s));
        else
            set_int(out, col, col_int(from, col));
    }
    out->present = true;
}

/* tests/sim/sim.lua's sim_merge, in C. false: it returned nil. */
static bool lua_sim_merge(const sim_model *m, const side *base, const side *cur, const side *in,
                          sim_row *out)
{
    const char *cs = m->S->p->sites[cur->site].name, *is = m->S->p->sites[in->site].name;
    const sim_row *newer = in->row;

    if (!cur->row->present || !in->row->present)
        return false;
    if ((cur->row->n + in->row->n) % 5 == 0)
        return false;
    if (cur->ts > in->ts || (cur->ts == in->ts && strcmp(cs, is) < 0))
        newer = cur->row;
    *out = *newer;
    out->qty = cur->row->qty + in->row->qty - (base->row->present ? base->row->qty : 0);
    return true;
}

static mres resolve(const sim_model *m, int t, const side *base, const side *cur, const side *in,
                    sim_row *merged, sl_buf *desc)
{
    const sl_conflict *c = &m->S->tab[t]->conflict;
    bool cdel = !cur->row->present, idel = !in->row->present;

    if (c->kind == SL_CONFLICT_MANUAL) {
        sl_buf_puts(desc, "manual: parked");
        return R_MANUAL;
    }
    if (cdel || idel) {
        bool in_wins;

        if (cdel && idel) {
            in_wins = false; /* nothing to decide */
            sl_buf_puts(desc, "both deleted: ");
        } else if (c->on_delete == SL_DELETE_WINS) {
            in_wins = idel;
            sl_buf_puts(desc, "delete wins: ");
        } else if (c->on_delete == SL_DELETE_UPDATE_WINS) {
            in_wins = !idel;
            sl_buf_puts(desc, "update wins: ");
        } else {
            in_wins = in_wins_latest(m, in, cur);
            sl_buf_puts(desc, "delete, latest: ");
        }
        sl_buf_puts(desc, in_wins ? "incoming wins" : "current stays");
        return in_wins ? R_INCOMING : R_CURRENT;
    }
    switch (c->kind) {
    case SL_CONFLICT_LATEST:
        break;
    case SL_CONFLICT_PREFER:
        /* both sides from SITE: the incoming (newer) change */
        if (in->site == c->prefer_site) {
            sl_buf_puts(desc, "prefer: incoming wins");
            return R_INCOMING;
        }
        if (cur->site == c->prefer_site) {
            sl_buf_puts(desc, "prefer: current stays");
            return R_CURRENT;
        }
        sl_buf_puts(desc, "prefer (neither side): ");
        break;
    case SL_CONFLICT_MERGE:
        merge_rows(m, c, base, cur, in, merged);
        sl_buf_puts(desc, "merge");
        return R_MERGED;
    case SL_CONFLICT_LUA:
        if (lua_sim_merge(m, base, cur, in, merged)) {
            sl_buf_puts(desc, "lua: merged");
            return R_MERGED;
        }
        sl_buf_puts(desc, "lua: nil, parked");
        return R_MANUAL;
    case SL_CONFLICT_MANUAL:
        break;
    }
    if (in_wins_latest(m, in, cur)) {
        sl_buf_puts(desc, "latest: incoming wins");
        return R_INCOMING;
    }
    sl_buf_puts(desc, "latest: current stays");
    return R_CURRENT;
}

/* ---- one event -------------------------------------------------------------- */

static void applier_event(sim_model *m, mkey *k, const sim_ev *e, int evid, sl_buf *desc, int *cls)
{
    msite *ms = &k->site[e->site];
    int64_t x = e->applied_v;
    size_t i;

    *cls = SIM_C_ECHO;
    for (i = 0; i < ms->nq; i++)
        if (ms->q[i] == x) {
            memmove(ms->q, ms->q + i + 1, (ms->nq - i - 1) * sizeof(*ms->q));
            ms->nq -= i + 1;
            ms->held = x;
            sl_buf_printf(desc, "echo of v%" PRId64, x);
            if (i)
                sl_buf_printf(desc, " (and %zu older sends)", i);
            return;
        }
    for (i = 0; i < ms->nsilent; i++)
        if (ms->silent[i] == x)
            cross(m, k,
                  "ev%d: %s's applier deleted its row for v%" PRId64
                  ", which the hub sent unqueued (it expected no event): content matching takes "
                  "it for a local delete",
                  evid, sim_site_name(m->S, e->site), x);
    if (x > k->v)
        sl_buf_printf(desc, "echo of v%" PRId64 ", a version the model never made (diverged)", x);
    else
        sl_buf_printf(desc, "echo of v%" PRId64 ", not queued (a repeated output)", x);
    /* the site holds x now: when nothing newer is on its way, it needs the current version */
    ms->held = x;
    if (k->v > 0 && will_hold(ms) != k->v) {
        sl_buf_puts(desc, "; re-send");
        send(m, k, e->site, k->v, desc);
    }
}

static int64_t truth_base(const sim_model *m, const sim_write *w, bool *ok)
{
    const sim_write *b;

    *ok = true;
    if (w->base_kind == 0)
        return 0;
    if (w->base_kind == 1)
        return w->base_v;
    b = &m->S->writes[w->base_w];
    if (b->outcome == SIM_W_PENDING) {
        *ok = false; /* cannot happen: links are FIFO */
        return 0;
    }
    return b->result_v;
}

void sim_model_event(sim_model *m, int evid, sl_buf *desc, int *cls)
{
    sim *S = m->S;
    const sim_ev *e = &S->evs[evid];
    mkey *k = &m->keys[e->table][e->key];
    msite *ms = &k->site[e->site];
    int s = e->site;
    sim_write *w;
    bool idel = e->op == 'd', ok, conflict;
    int64_t base, detect, vdet;
    size_t i;
    side sb, sc, si;
    sim_row none, merged, baserow;
    mres r;

    if (e->lsn <= ms->pos) {
        *cls = SIM_C_DUP;
        sl_buf_puts(desc, "duplicate");
        return;
    }
    ms->pos = e->lsn;
    if (e->kind == SIM_APPLIER) {
        applier_event(m, k, e, evid, desc, cls);
        return;
    }

    w = &S->writes[e->write];
    for (i = 0; i < ms->nq; i++) {
        const mver *q = ver(k, ms->q[i]);

        if (q && ((idel && !q->img.present) || (!idel && sim_row_eq(&q->img, &e->after))))
            cross(m, k,
                  "ev%d: a local %s at %s while v%" PRId64
                  " (%s) is queued to it: content matching takes it for the echo",
                  evid, idel ? "delete" : "write", sim_site_name(S, s), ms->q[i],
                  idel ? "a delete" : "the same content");
    }

    /* step 4: the content the row already has */
    if (k->v > 0 && ms->nq == 0) {
        const mver *cur = ver(k, k->v);

        if ((idel && !cur->img.present) || (!idel && sim_row_eq(&cur->img, &e->after))) {
            ms->held = k->v;
            w->outcome = SIM_W_SAME;
            w->result_v = k->v;
            *cls = SIM_C_SAME;
            sl_buf_printf(desc, "same as v%" PRId64, k->v);
            return;
        }
    }

    base = truth_base(m, w, &ok);
    if (!ok)
        sim_failf(S, "model: ev%d is based on a write the model has not seen (links not FIFO?)",
                  evid);
    detect = S->o->held_mode == SIM_HELD_TRUTH ? base : ms->held;
    vdet = k->v;
    if (vdet > 0 && tomb(k, vdet) && e->ts - ver(k, vdet)->ts > RETENTION_MS)
        vdet = 0;
    conflict = vdet > 0 && detect != k->v;
    sl_buf_printf(desc, "base v%" PRId64, base);
    if (base != ms->held)
        sl_buf_printf(desc, " (spec S.held v%" PRId64 ")", ms->held);
    sl_buf_printf(desc, ", current v%" PRId64 ": ", k->v);

    memset(&none, 0, sizeof(none));
    if (conflict) {
        const mver *cur = ver(k, k->v), *bv = ver(k, detect);

        k->conflicts++;
        baserow = bv ? bv->img : none;
        /* based on its own earlier write that lost or went into a merge: that
         * content is the base (docs/conflicts.md) */
        if (!bv && w->base_kind == 2 && S->writes[w->base_w].result_v == -1)
            baserow = S->writes[w->base_w].row;
        sb.row = &baserow;
        sb.ts = bv ? bv->ts : 0;
        sb.site = bv ? bv->writer : s;
        sc.row = &cur->img;
        sc.ts = cur->ts;
        sc.site = cur->writer;
        si.row = &e->after;
        si.ts = e->ts;
        si.site = s;
        sl_buf_printf(desc, "conflict with %s's v%" PRId64 ", ", sim_site_name(S, cur->writer),
                      k->v);
        r = resolve(m, e->table, &sb, &sc, &si, &merged, desc);
    } else {
        r = R_INCOMING;
        sl_buf_puts(desc, "no conflict");
    }

    /* docs/conflicts.md: a merge that reproduces one side is that side */
    if (r == R_MERGED && sim_row_eq(&merged, &e->after)) {
        sl_buf_puts(desc, " (= incoming)");
        r = R_INCOMING;
    } else if (r == R_MERGED && sim_row_eq(&merged, sc.row)) {
        sl_buf_puts(desc, " (= current)");
        r = R_CURRENT;
    }

    switch (r) {
    case R_INCOMING: {
        int64_t nv = new_version(k, &e->after, e->ts, s);

        send_all_but(m, k, s, nv, desc);
        if (ms->nq > 0) {
            sl_buf_puts(desc, "; older sends queued to the writer:");
            send(m, k, s, nv, desc);
            /* the spec leaves S.held alone here (truth: S holds nv until
             * the older sends arrive) */
            if (S->o->held_mode == SIM_HELD_TRUTH)
                ms->held = nv;
        } else {
            ms->held = nv;
        }
        w->outcome = SIM_W_ACCEPTED;
        w->result_v = nv;
        *cls = SIM_C_NEW;
        break;
    }
    case R_MERGED: {
        int64_t nv = new_version(k, &merged, e->ts > sc.ts ? e->ts : sc.ts, s);

        sl_buf_puts(desc, " ");
        sim_row_json(&merged, desc);
        send_all_but(m, k, s, nv, desc);
        ms->held = -1; /* the writer holds its own content, not the merged row */
        send(m, k, s, nv, desc);
        w->outcome = SIM_W_MERGED;
        w->result_v = -1;
        *cls = SIM_C_NEW;
        break;
    }
    case R_CURRENT:
    case R_MANUAL:
        ms->held = -1;
        if (will_hold(ms) != k->v) {
            sl_buf_printf(desc, "; v%" PRId64 " back to", k->v);
            send(m, k, s, k->v, desc);
        }
        if (r == R_MANUAL)
            k->open++;
        w->outcome = r == R_MANUAL ? SIM_W_MANUAL : SIM_W_LOST;
        w->result_v = -1;
        *cls = SIM_C_KEPT;
        break;
    }
}

void sim_model_final(const sim_model *m, int table, int key, sim_mfinal *out)
{
    const mkey *k = &m->keys[table][key];

    memset(out, 0, sizeof(*out));
    out->v = k->v;
    if (k->v > 0)
        out->img = k->vers[k->v - 1].img;
    out->conflicts = k->conflicts;
    out->open = k->open;
    out->crossed = k->crossed;
    out->why = k->why;
}

bool sim_model_crossed(const sim_model *m, int table, int key)
{
    return m->keys[table][key].crossed;
}
