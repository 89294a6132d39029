/*
 * world.c - the simulated sites, their links, and the hub that drives the
 * real engine.
 *
 * A site has a database (table x key -> row), an emitter that turns every
 * change of it into one Debezium PostgreSQL event on its site -> hub link,
 * and an applier that consumes its hub -> site link in order and upserts or
 * deletes. The hub consumes the site -> hub links through the engine's own
 * code path (sl_item_decode, sl_proc_item) and sends every output on to the
 * destination's link at once; every few items it "flushes": it hands the
 * proc's row states and conflicts to the store (sl_proc_reset + seen_put),
 * which is also where its consumer positions count as committed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"
#include "sim.h"

const char *sim_site_name(const sim *S, int s)
{
    return S->p->sites[s].name;
}

int sim_log_pending(const sim_log *l)
{
    return (int)(l->n - l->next);
}

static void log_push(sim_log *l, int id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->ids = sl_xrealloc(l->ids, l->cap * sizeof(*l->ids));
    }
    l->ids[l->n++] = id;
}

static void ints_push(int **v, size_t *n, size_t *cap, int x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = sl_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

void sim_world_init(sim *S)
{
    int s, t, k;

    for (s = 0; s < S->nsites; s++) {
        sim_site *st = &S->site[s];

        memset(st, 0, sizeof(*st));
        st->up.up = st->down.up = true;
        st->up.weight = st->down.weight = 8;
        for (t = 0; t < SIM_MAXTABLES; t++)
            for (k = 0; k <= SIM_MAXKEYS; k++)
                st->cell[t][k].ownw = -1;
    }
}

void sim_world_free(sim *S)
{
    size_t i;
    int s;

    for (i = 0; i < S->nevs; i++)
        free(S->evs[i].line);
    free(S->evs);
    free(S->outs);
    free(S->writes);
    for (s = 0; s < S->nsites; s++) {
        free(S->site[s].up.ids);
        free(S->site[s].down.ids);
    }
    free(S->hub.uncommitted);
    free(S->hub.replay);
    S->evs = NULL;
    S->outs = NULL;
    S->writes = NULL;
}

/* ---- the emitter ------------------------------------------------------------ */

static int64_t site_clock(sim *S, int s)
{
    sim_site *st = &S->site[s];
    int64_t ts = S->now + st->skew;

    /* strictly increasing per site: two changes of one site never tie */
    if (ts <= st->clock)
        ts = st->clock + 1;
    st->clock = ts;
    return ts;
}

/* One Debezium PostgreSQL change event, as a record line with its key. */
static int emit(sim *S, int s, int t, int k, char op, const sim_row *before, const sim_row *after,
                sim_kind kind, int write, int64_t applied_v, int out)
{
    sim_site *st = &S->site[s];
    sim_ev *ev;
    sl_buf b = SL_BUF_INIT;
    int id;

    if (S->nevs == S->capevs) {
        S->capevs = S->capevs ? S->capevs * 2 : 256;
        S->evs = sl_xrealloc(S->evs, S->capevs * sizeof(*S->evs));
    }
    id = (int)S->nevs++;
    ev = &S->evs[id];
    memset(ev, 0, sizeof(*ev));
    ev->site = s;
    ev->table = t;
    ev->key = k;
    ev->op = op;
    ev->before = *before;
    ev->after = *after;
    ev->ts = site_clock(S, s);
    st->lsn += sim_range(&S->rng, 1, 64) * 8;
    ev->lsn = st->lsn;
    ev->kind = kind;
    ev->write = write;
    ev->applied_v = applied_v;
    ev->out = out;

    sl_buf_printf(&b, "{\"topic\":\"%s.%s.%s\",\"partition\":0,\"offset\":%zu,\"key\":{\"id\":%d},",
                  sim_site_name(S, s), S->schema, S->tname[t], st->up.n, k);
    sl_buf_puts(&b, "\"value\":{\"before\":");
    sim_row_json(before, &b);
    sl_buf_puts(&b, ",\"after\":");
    sim_row_json(after, &b);
    sl_buf_printf(&b,
                  ",\"source\":{\"version\":\"2.7.0.Final\",\"connector\":\"postgresql\","
                  "\"name\":\"%s\",\"ts_ms\":%" PRId64 ",\"snapshot\":\"false\",\"db\":\"simdb\","
                  "\"sequence\":\"[null,\\\"%" PRId64 "\\\"]\",\"schema\":\"%s\",\"table\":\"%s\","
                  "\"txId\":%" PRId64 ",\"lsn\":%" PRId64 ",\"xmin\":null},",
                  sim_site_name(S, s), ev->ts, ev->lsn, S->schema, S->tname[t], ev->lsn / 8,
                  ev->lsn);
    sl_buf_printf(&b, "\"op\":\"%c\",\"ts_ms\":%" PRId64 ",\"transaction\":null}}", op, ev->ts + 2);
    ev->len = b.len;
    ev->line = sl_buf_steal(&b, NULL);
    log_push(&st->up, id);
    return id;
}

void sim_local_write(sim *S, int s, int t, int k, char op)
{
    sim_cell *c = &S->site[s].cell[t][k];
    sim_row before = c->row, after;
    sim_write *w;
    int wid;
    sl_buf b = SL_BUF_INIT;

    if (op == 0)
        op = c->row.present ? (sim_chance(&S->rng, 300) ? 'd' : 'u') : 'c';
    if (op == 'c' && c->row.present)
        op = 'u';
    else if (op == 'u' && !c->row.present)
        op = 'c';
    else if (op == 'd' && !c->row.present)
        return; /* deleting an absent row changes nothing: no event */

    memset(&after, 0, sizeof(after));
    if (op != 'd') {
        after.present = true;
        after.id = k;
        after.n = sim_range(&S->rng, 0, 99);
        /* unique content: a local write never equals any version the hub made */
        snprintf(after.s, sizeof(after.s), "%s.%" PRIu64, sim_site_name(S, s), ++S->counter);
        after.qty = op == 'c' ? sim_range(&S->rng, 0, 20) : before.qty + sim_range(&S->rng, -5, 10);
    }

    if (S->nwrites == S->capwrites) {
        S->capwrites = S->capwrites ? S->capwrites * 2 : 64;
        S->writes = sl_xrealloc(S->writes, S->capwrites * sizeof(*S->writes));
    }
    wid = (int)S->nwrites++;
    w = &S->writes[wid];
    memset(w, 0, sizeof(*w));
    w->site = s;
    w->table = t;
    w->key = k;
    w->op = op;
    w->row = after;
    if (c->ownw >= 0) {
        w->base_kind = 2;
        w->base_w = c->ownw;
    } else if (c->basever != 0) {
        w->base_kind = 1;
        w->base_v = c->basever;
    }
    c->row = after;
    c->ownw = wid;
    w->ev = emit(S, s, t, k, op, &before, &after, SIM_LOCAL, wid, 0, -1);
    if (S->tracing) {
        sim_row_json(&after, &b);
        sim_tracef(S, "  %s local %c %s#%d %s base=%s%" PRId64 " ts=%" PRId64 " -> ev%d\n",
                   sim_site_name(S, s), op, S->tname[t], k, b.data,
                   w->base_kind == 2 ? "own w" : "v",
                   w->base_kind == 2 ? (int64_t)w->base_w : w->base_v, S->evs[w->ev].ts, w->ev);
    }
    sl_buf_free(&b);
}

/* ---- the applier ------------------------------------------------------------ */

static void apply_out(sim *S, int d, int id)
{
    sim_out *o = &S->outs[id];
    sim_cell *c = &S->site[d].cell[o->table][o->key];
    sim_row before = c->row, none;
    int ev = -1;

    memset(&none, 0, sizeof(none));
    /* The applier contract (docs/conflicts.md): outputs are at least once,
     * so an applier drops a version it has applied already for this row
     * (sluice.version not newer than the newest it applied). */
    if (!S->o->applier_naive && o->version > 0 && o->version <= c->appliedver) {
        S->dup_skipped++;
        sim_tracef(S, "  %s drops out%d (v%" PRId64 " %c %s#%d): version applied already\n",
                   sim_site_name(S, d), id, o->version, o->op, S->tname[o->table], o->key);
        return;
    }
    if (o->version > c->appliedver)
        c->appliedver = o->version;
    if (o->op == 'd') {
        if (c->row.present) {
            c->row.present = false;
            ev = emit(S, d, o->table, o->key, 'd', &before, &none, SIM_APPLIER, -1, o->version, id);
        }
    } else {
        c->row = o->after;
        /* PostgreSQL logs an UPDATE even when nothing changed */
        if (!S->o->applier_quiet || !sim_row_eq(&before, &o->after))
            ev = emit(S, d, o->table, o->key, before.present ? 'u' : 'c', &before, &o->after,
                      SIM_APPLIER, -1, o->version, id);
    }
    c->basever = o->version;
    c->ownw = -1;
    if (ev >= 0)
        sim_tracef(S, "  %s applies out%d (v%" PRId64 " %c %s#%d) -> ev%d\n", sim_site_name(S, d),
                   id, o->version, o->op, S->tname[o->table], o->key, ev);
    else
        sim_tracef(S, "  %s applies out%d (v%" PRId64 " %c %s#%d): no change, no event\n",
                   sim_site_name(S, d), id, o->version, o->op, S->tname[o->table], o->key);
}

/* ---- the hub ---------------------------------------------------------------- */

static const char *verdict_name(int v)
{
    switch (v) {
    case SL_VERDICT_ROUTED:
        return "ROUTED";
    case SL_VERDICT_FILTERED:
        return "FILTERED";
    case SL_VERDICT_UNROUTED:
        return "UNROUTED";
    case SL_VERDICT_IGNORED:
        return "IGNORED";
    case SL_VERDICT_SKIPPED:
        return "SKIPPED";
    case SL_VERDICT_DUPLICATE:
        return "DUPLICATE";
    case SL_VERDICT_DEAD:
        return "DEAD";
    case SL_VERDICT_ECHO:
        return "ECHO";
    case SL_VERDICT_SAME:
        return "SAME";
    case SL_VERDICT_KEPT:
        return "KEPT";
    }
    return "?";
}

static int verdict_class(int v)
{
    switch (v) {
    case SL_VERDICT_DUPLICATE:
        return SIM_C_DUP;
    case SL_VERDICT_ECHO:
        return SIM_C_ECHO;
    case SL_VERDICT_SAME:
        return SIM_C_SAME;
    case SL_VERDICT_ROUTED:
        return SIM_C_NEW;
    case SL_VERDICT_KEPT:
        return SIM_C_KEPT;
    }
    return SIM_C_OTHER;
}

const char *sim_class_name(int c)
{
    static const char *names[] = {"duplicate", "echo", "same", "new version", "kept", "other"};

    return c >= 0 && c <= SIM_C_OTHER ? names[c] : "?";
}

void sim_hub_start(sim *S)
{
    S->hub.w = sl_proc_new(S->st, S->sess);
    sl_proc_set_cache_limit(S->hub.w, S->o->cache_rows, 0);
    S->hub.sent = 0;
}

void sim_hub_stop(sim *S)
{
    sl_proc_free(S->hub.w);
    S->hub.w = NULL;
}

static int topic_table(const sim *S, const char *p, size_t n)
{
    int t;

    for (t = 0; t < S->ntables; t++)
        if (strlen(S->tname[t]) == n && memcmp(S->tname[t], p, n) == 0)
            return t;
    return -1;
}

static bool hdr(const sl_record *r, const char *name, sl_str *out)
{
    size_t i, n = strlen(name);

    for (i = 0; i < r->nheaders; i++)
        if (r->headers[i].name.len == n && memcmp(r->headers[i].name.p, name, n) == 0) {
            *out = r->headers[i].value;
            return true;
        }
    return false;
}

/* A hub output on its way to a destination's link. */
static void dispatch(sim *S, const sl_record *r)
{
    sl_json j;
    sl_error e;
    sl_str v, topic = r->topic;
    sim_out *o;
    int d = -1, t = -1, id, root, top, k;
    const char *dot1, *dot2;
    char why[160];
    int64_t key = -1;

    sl_json_init(&j);
    if (topic.len == strlen(S->p->dead_letter_topic) &&
        memcmp(topic.p, S->p->dead_letter_topic, topic.len) == 0) {
        S->dead_letters++;
        if (!hdr(r, "sluice.error", &v))
            v.p = "?", v.len = 1;
        sim_failf(S, "dead letter at hub item %" PRIu64 ": %.*s", S->hub.items, (int)v.len, v.p);
        goto out;
    }
    /* sim.{dest}.{table} */
    dot1 = topic.len > 4 && memcmp(topic.p, "sim.", 4) == 0 ? topic.p + 4 : NULL;
    dot2 = dot1 ? memchr(dot1, '.', (size_t)(topic.p + topic.len - dot1)) : NULL;
    if (dot2) {
        d = sl_program_site(S->p, dot1, (size_t)(dot2 - dot1));
        t = topic_table(S, dot2 + 1, (size_t)(topic.p + topic.len - dot2 - 1));
    }
    if (d < 0 || t < 0) {
        sim_failf(S, "output to an unexpected topic %.*s", (int)topic.len, topic.p);
        goto out;
    }
    if (r->key == NULL || sl_json_parse(&j, r->key, r->key_len, &e) != 0 ||
        (k = sl_json_get(&j, 0, "id", 2)) < 0 || j.tok[k].type != SL_J_NUMBER) {
        sim_failf(S, "output to %.*s without a usable key", (int)topic.len, topic.p);
        goto out;
    }
    key = strtoll(j.src + j.tok[k].start, NULL, 10);
    if (key < 1 || key > S->nkeys) {
        sim_failf(S, "output for an unknown key %" PRId64, key);
        goto out;
    }

    if (S->nouts == S->capouts) {
        S->capouts = S->capouts ? S->capouts * 2 : 256;
        S->outs = sl_xrealloc(S->outs, S->capouts * sizeof(*S->outs));
    }
    id = (int)S->nouts++;
    o = &S->outs[id];
    memset(o, 0, sizeof(*o));
    o->dest = d;
    o->table = t;
    o->key = (int)key;
    if (hdr(r, "sluice.version", &v)) {
        char tmp[32];

        snprintf(tmp, sizeof(tmp), "%.*s", (int)v.len, v.p);
        o->version = strtoll(tmp, NULL, 10);
    }
    if (hdr(r, "sluice.origin", &v))
        snprintf(o->origin, sizeof(o->origin), "%.*s", (int)v.len, v.p);
    if (o->version <= 0)
        sim_failf(S, "out%d to %s has no sluice.version header", id, sim_site_name(S, d));

    if (r->value == NULL || sl_json_parse(&j, r->value, r->value_len, &e) != 0) {
        sim_failf(S, "out%d: value is not JSON", id);
        o->op = 'd';
        goto queue;
    }
    root = 0;
    top = sl_json_get(&j, 0, "payload", 7);
    if (top >= 0 && j.tok[top].type == SL_J_OBJECT)
        root = top;
    top = sl_json_get(&j, root, "op", 2);
    o->op = top >= 0 && j.tok[top].type == SL_J_STRING && j.tok[top].len == 3
                ? j.src[j.tok[top].start + 1]
                : '?';
    if (o->op == 'c' || o->op == 'u' || o->op == 'r') {
        if (sim_row_from_tok(&j, sl_json_get(&j, root, "after", 5), &o->after, why, sizeof(why)) !=
                0 ||
            !o->after.present) {
            sim_failf(S, "out%d (op %c) to %s: bad after: %s", id, o->op, sim_site_name(S, d),
                      o->after.present ? why : "null");
            o->op = 'd';
        } else if (o->after.id != key) {
            sim_failf(S, "out%d: after.id %" PRId64 " but key %" PRId64, id, o->after.id, key);
        }
    } else if (o->op != 'd') {
        sim_failf(S, "out%d: unexpected op '%c'", id, o->op);
        o->op = 'd';
    }
queue:
    log_push(&S->site[d].down, id);
    if (S->tracing) {
        sl_buf b = SL_BUF_INIT;

        if (o->op == 'd')
            sl_buf_puts(&b, "delete");
        else
            sim_row_json(&o->after, &b);
        sim_tracef(S, "    out%d -> %s v%" PRId64 " %c origin=%s %s\n", id, sim_site_name(S, d),
                   o->version, o->op, o->origin, b.data);
        sl_buf_free(&b);
    }
out:
    sl_json_free(&j);
}

/* Send the outputs of the proc not sent yet, at most `limit` of them. */
static void send_outputs(sim *S, size_t limit)
{
    sim_hub *H = &S->hub;
    size_t n, i;
    const sl_record *r = sl_proc_outputs(H->w, &n);

    for (i = H->sent; i < n && i - H->sent < limit; i++) {
        dispatch(S, &r[i]);
        H->outputs++;
    }
    H->sent = i;
}

/* The hub consumes one event. `limit` caps the outputs sent (a kill -9 in
 * the middle of sending); SIZE_MAX sends all. */
static void hub_consume(sim *S, int evid, size_t limit)
{
    sim_hub *H = &S->hub;
    sim_ev *ev = &S->evs[evid];
    bool first = !ev->modeled;
    sl_error err;
    sl_buf desc = SL_BUF_INIT;
    int cls = SIM_C_OTHER, hcls;
    size_t before;

    sl_error_clear(&err);
    sl_item_decode(&H->it, S->p, ev->line, ev->len, "sim", H->seq++, &H->j);
    {
        /* as the pipeline does before each delivery (MongoDB: one read for
         * the rows the cache lacks) */
        sl_item *items[1] = {&H->it};
        int order[1] = {0};

        if (sl_proc_preload(H->w, items, order, 0, 1, &err) != 0) {
            sim_failf(S, "hub: store read failed on ev%d: %s", evid, err.msg);
            ints_push(&H->uncommitted, &H->nunc, &H->capunc, evid);
            return;
        }
    }
    if (sl_proc_item(H->w, &H->it, &err) != 0) {
        sim_failf(S, "hub: sl_proc_item failed on ev%d: %s", evid, err.msg);
        ints_push(&H->uncommitted, &H->nunc, &H->capunc, evid);
        return;
    }
    H->items++;
    if ((int)H->it.verdict < 16)
        H->verdicts[H->it.verdict]++;
    ints_push(&H->uncommitted, &H->nunc, &H->capunc, evid);
    hcls = verdict_class((int)H->it.verdict);
    if (first) {
        ev->modeled = true;
        sim_model_event(S->model, evid, &desc, &cls);
        if (cls != hcls && !sim_model_crossed(S->model, ev->table, ev->key))
            S->verdict_diffs++;
    }
    if (S->tracing) {
        sim_tracef(S, "  hub <- ev%d (%s %s %c %s#%d lsn=%" PRId64 " ts=%" PRId64 "%s): %s%s%s%s\n",
                   evid, sim_site_name(S, ev->site), ev->kind == SIM_LOCAL ? "local" : "applier",
                   ev->op, S->tname[ev->table], ev->key, ev->lsn, ev->ts, first ? "" : ", again",
                   verdict_name((int)H->it.verdict), first ? " | model: " : "",
                   first ? desc.data : "", first && cls != hcls ? "  <-- verdicts differ" : "");
        if (H->it.verdict == SL_VERDICT_DEAD)
            sim_tracef(S, "    dead: %s\n", H->it.err.msg);
    }
    sl_buf_free(&desc);
    before = H->sent;
    send_outputs(S, limit);
    if (limit != SIZE_MAX) {
        sim_tracef(S, "  (the hub dies while sending: %zu output(s) of ev%d went out)\n",
                   H->sent - before, evid);
        return; /* no store write after this one */
    }
    if (++H->since_flush >= H->flush_every)
        sim_hub_flush(S);
}

void sim_hub_flush(sim *S)
{
    sim_hub *H = &S->hub;
    sl_seen_set set;
    sl_error err;

    send_outputs(S, SIZE_MAX); /* the pipeline writes the store once outputs are safe */
    sl_error_clear(&err);
    memset(&set, 0, sizeof(set));
    sl_proc_reset(H->w, &set);
    if (S->st->ops->seen_put(S->sess, set.rows, set.n, set.conflicts, set.nconflicts, &err) != 0)
        sim_failf(S, "store: seen_put failed: %s", err.msg);
    sim_tracef(S, "  hub flush: %zu row states, %zu conflicts to the store\n", set.n,
               set.nconflicts);
    sl_seen_set_free(&set);
    H->sent = 0;
    H->nunc = 0;
    H->since_flush = 0;
    H->flushes++;
}

void sim_hub_crash_clean(sim *S)
{
    sim_hub_flush(S);
    sim_hub_stop(S);
    sim_hub_start(S);
    S->hub.crashes++;
    sim_tracef(S, "  hub restarts (clean: after the store write)\n");
}

/* What the hub can consume: -1 the replay queue after a kill -9 (it comes
 * first, in its order), 0 the site -> hub links that are up (*total: their
 * weights), -2 nothing. */
static int hub_source(sim *S, int *total)
{
    int s;

    *total = 0;
    if (S->hub.rpos < S->hub.nreplay)
        return -1;
    for (s = 0; s < S->nsites; s++)
        if (S->site[s].up.up && sim_log_pending(&S->site[s].up) > 0)
            *total += S->site[s].up.weight;
    return *total ? 0 : -2;
}

/* The up link that weighted pick p (0 <= p < total) falls on. */
static int pick_up_link(sim *S, int p)
{
    int s;

    for (s = 0; s < S->nsites; s++) {
        sim_log *l = &S->site[s].up;

        if (!l->up || sim_log_pending(l) == 0)
            continue;
        if (p < l->weight)
            return s;
        p -= l->weight;
    }
    return -1;
}

static int next_input(sim *S, int s)
{
    sim_hub *H = &S->hub;

    if (s < 0)
        return H->replay[H->rpos++];
    return S->site[s].up.ids[S->site[s].up.next++];
}

void sim_hub_kill9(sim *S)
{
    sim_hub *H = &S->hub;
    int *nr = NULL;
    size_t nn = 0, cap = 0, i;
    int total;

    /* sometimes the kill comes while an item's outputs are being sent */
    if (sim_chance(&S->rng, 400)) {
        int src = hub_source(S, &total);

        if (src == 0)
            src = pick_up_link(S, sim_below(&S->rng, total));
        if (src != -2)
            hub_consume(S, next_input(S, src), (size_t)sim_below(&S->rng, 3));
    }
    /* what was consumed since the last store write comes again, first */
    for (i = 0; i < H->nunc; i++)
        ints_push(&nr, &nn, &cap, H->uncommitted[i]);
    for (i = H->rpos; i < H->nreplay; i++)
        ints_push(&nr, &nn, &cap, H->replay[i]);
    free(H->replay);
    H->replay = nr;
    H->nreplay = nn;
    H->capreplay = cap;
    H->rpos = 0;
    H->nunc = 0;
    H->since_flush = 0;
    sim_hub_stop(S);
    sim_hub_start(S);
    H->kills++;
    sim_tracef(S, "  hub killed (-9) before its store write: %zu inputs will come again\n", nn);
}

/* ---- links ------------------------------------------------------------------ */

bool sim_deliver_one(sim *S)
{
    int total = 0, hubtotal, src, s, pick;

    src = hub_source(S, &hubtotal);
    if (src == -1)
        total += 16; /* the replay after a kill -9 */
    else
        total += hubtotal;
    for (s = 0; s < S->nsites; s++)
        if (S->site[s].down.up && sim_log_pending(&S->site[s].down) > 0)
            total += S->site[s].down.weight;
    if (total == 0)
        return false;
    pick = sim_below(&S->rng, total);
    if (src == -1) {
        if (pick < 16) {
            hub_consume(S, next_input(S, -1), SIZE_MAX);
            return true;
        }
        pick -= 16;
    } else if (pick < hubtotal) {
        hub_consume(S, next_input(S, pick_up_link(S, pick)), SIZE_MAX);
        return true;
    } else {
        pick -= hubtotal;
    }
    for (s = 0; s < S->nsites; s++) {
        sim_log *l = &S->site[s].down;

        if (!l->up || sim_log_pending(l) == 0)
            continue;
        if (pick < l->weight) {
            int id = l->ids[l->next++];

            if (l->next <= l->applied) {
                /* a redelivery: the idempotent applier knows this offset */
                S->dup_skipped++;
                sim_tracef(S, "  %s skips out%d (redelivered, applied already)\n",
                           sim_site_name(S, s), id);
            } else {
                l->applied = l->next;
                apply_out(S, s, id);
            }
            return true;
        }
        pick -= l->weight;
    }
    return false;
}

bool sim_quiet(const sim *S)
{
    int s;

    if (S->hub.rpos < S->hub.nreplay || S->hub.nunc > 0)
        return false;
    for (s = 0; s < S->nsites; s++)
        if (sim_log_pending(&S->site[s].up) || sim_log_pending(&S->site[s].down))
            return false;
    return true;
}

void sim_link_flap(sim *S)
{
    int s, which, dur;

    if (S->nsites < 2)
        return;
    do
        s = sim_below(&S->rng, S->nsites);
    while (s == S->hubsite); /* the hub's own links are local */
    which = sim_below(&S->rng, 3);
    dur = sim_chance(&S->rng, 250) ? sim_range(&S->rng, 60, 400) : sim_range(&S->rng, 3, 40);
    if (which != 1) {
        S->site[s].up.up = false;
        S->site[s].up.down_until = S->step + dur;
    }
    if (which != 0) {
        S->site[s].down.up = false;
        S->site[s].down.down_until = S->step + dur;
    }
    sim_tracef(S, "  link %s %s down for %d steps\n", sim_site_name(S, s),
               which == 0   ? "->hub"
               : which == 1 ? "<-hub"
                            : "<->hub",
               dur);
}

void sim_link_dup(sim *S)
{
    int s = sim_below(&S->rng, S->nsites), k = sim_range(&S->rng, 1, 3);
    bool down = sim_chance(&S->rng, 500);
    sim_log *l = down ? &S->site[s].down : &S->site[s].up;

    if (l->next == 0)
        return;
    if ((size_t)k > l->next)
        k = (int)l->next;
    l->next -= (size_t)k;
    sim_tracef(S, "  link %s %s redelivers its last %d messages\n", sim_site_name(S, s),
               down ? "<-hub" : "->hub", k);
}

void sim_links_tick(sim *S)
{
    int s;

    for (s = 0; s < S->nsites; s++) {
        sim_log *ls[2] = {&S->site[s].up, &S->site[s].down};
        int i;

        for (i = 0; i < 2; i++)
            if (!ls[i]->up && S->step >= ls[i]->down_until) {
                ls[i]->up = true;
                sim_tracef(S, "  link %s %s back up\n", sim_site_name(S, s),
                           i == 0 ? "->hub" : "<-hub");
            }
    }
}

void sim_links_heal(sim *S)
{
    int s;

    for (s = 0; s < S->nsites; s++) {
        S->site[s].up.up = S->site[s].down.up = true;
        S->site[s].up.weight = S->site[s].down.weight = 8;
    }
}
