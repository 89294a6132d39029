/*
 * process.c - the two stages every input message goes through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process.h"

/* ---- stage A: decode (reader thread) ---------------------------------------- */

void sl_item_init(sl_item *it)
{
    memset(it, 0, sizeof(*it));
    sl_event_init(&it->ev);
}

void sl_item_free(sl_item *it)
{
    sl_buf_free(&it->rscratch);
    sl_buf_free(&it->qname);
    sl_buf_free(&it->key);
    sl_event_free(&it->ev);
}

static bool blank(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

void sl_item_decode(sl_item *it, const sl_program *p, const char *line, size_t len,
                    const char *input, int64_t pos, sl_json *j)
{
    sl_event *ev = &it->ev;
    sl_str schema;

    it->raw.p = line;
    it->raw.len = len;
    sl_buf_reset(&it->rscratch);
    sl_buf_reset(&it->qname);
    sl_buf_reset(&it->key);
    sl_error_clear(&it->err);
    memset(&it->rec, 0, sizeof(it->rec));
    it->rec.partition = -1;
    it->rec.offset = -1;
    it->prog = p;
    it->table = NULL;
    it->origin = -1;
    it->input = input;
    it->pos = pos;
    it->hash = (uint64_t)pos;
    it->fate = SL_FATE_DEAD;

    if (blank(line, len)) {
        it->fate = SL_FATE_BLANK;
        return;
    }
    if (sl_record_parse_line(&it->rec, line, len, j, &it->rscratch, &it->err) != 0)
        return;
    if (sl_event_decode(ev, &it->rec, &it->err) != 0)
        return;
    switch (ev->kind) {
    case SL_EV_CHANGE:
        break;
    case SL_EV_TOMBSTONE:
        it->fate = SL_FATE_TOMBSTONE;
        return;
    case SL_EV_TX_BEGIN:
    case SL_EV_TX_END:
        it->fate = SL_FATE_TX;
        return;
    case SL_EV_MESSAGE:
        it->fate = SL_FATE_MESSAGE;
        return;
    case SL_EV_SCHEMA_CHANGE:
        it->fate = SL_FATE_SCHEMA;
        return;
    }
    /* PostgreSQL and SQL Server name tables schema.table; MySQL db.table. */
    schema = ev->schema.len ? ev->schema : ev->db;
    sl_buf_append(&it->qname, schema.p, schema.len);
    sl_buf_putc(&it->qname, '.');
    sl_buf_append(&it->qname, ev->table.p, ev->table.len);
    it->table = sl_program_find_table(p, schema.p, schema.len, ev->table.p, ev->table.len);
    if (it->table == NULL) {
        sl_error_set(&it->err, SL_ERR_INVALID, "no rules for table %s", it->qname.data);
        return;
    }
    if (it->table->ignored) {
        it->fate = SL_FATE_IGNORED;
        return;
    }
    it->origin = sl_program_site_by_source(p, ev->origin.p, ev->origin.len);
    if (it->origin < 0) {
        sl_error_set(&it->err, SL_ERR_INVALID,
                     "unknown origin site '%.*s' (source.name): declare it with `site %.*s;` "
                     "or map it with `site NAME source \"%.*s\";`",
                     (int)ev->origin.len, ev->origin.p, (int)ev->origin.len, ev->origin.p,
                     (int)ev->origin.len, ev->origin.p);
        return;
    }
    if (ev->op == 't') {
        /* a truncate has no row: it is ordered with the table as a whole */
        sl_buf_puts(&it->key, "{}");
    } else if (sl_event_key(ev, it->table->key_cols, it->table->nkey, &it->key, &it->err) != 0) {
        return;
    }
    it->hash = sl_hash64(it->key.data, it->key.len,
                         sl_hash64(it->qname.data, it->qname.len, SL_HASH_SEED));
    it->fate = SL_FATE_PROCESS;
}

/* ---- stage B: the worker's processor ---------------------------------------- */

typedef struct centry {
    struct centry *next;
    uint64_t h;
    uint32_t klen, plen, pcap;
    char *pos;  /* owned */
    char key[]; /* klen bytes */
} centry;

#define CACHE_BUCKETS 65536
#define CACHE_MAX     131072

typedef struct hw {
    char *origin, *partition, *pos;
    struct hw *next;
} hw;

typedef struct out_desc {
    size_t topic, topic_len, key, key_len, val, val_len;
    size_t hdr; /* first index into hdrs */
    size_t nhdr;
    bool null_value;
} out_desc;

typedef struct hdr_desc {
    size_t name, name_len, val, val_len;
} hdr_desc;

typedef struct seen_desc {
    size_t origin, origin_len, table, table_len, key, key_len, pos, pos_len, part, part_len;
} seen_desc;

typedef struct tcount {
    struct tcount *next;
    uint64_t n;
    char topic[];
} tcount;

#define TOPIC_BUCKETS 256

struct sl_proc {
    const sl_store *store;
    void *sess;
    sl_counters c;
    sl_pool arena;
    sl_buf tmp, val, topic;

    centry **cache;
    size_t ncache;
    bool evicted;
    hw *hws; /* newest position per origin+partition when the run started */

    sl_buf out; /* bytes of every pending output */
    out_desc *outs;
    size_t nouts, capouts;
    hdr_desc *hdrs;
    size_t nhdrs, caphdrs;
    sl_record *recs;
    size_t caprecs;

    sl_buf seenb; /* bytes of pending seen rows */
    seen_desc *seen;
    size_t nseen, capseen;
    void (*evict_hook)(void *arg);
    void *evict_arg;

    tcount *topics[TOPIC_BUCKETS];
};

static int load_hw(void *arg, const char *origin, const char *partition, const char *position,
                   int64_t events)
{
    sl_proc *w = arg;
    hw *h = sl_xcalloc(1, sizeof(*h));

    h->origin = sl_xstrdup(origin);
    h->partition = sl_xstrdup(partition ? partition : "");
    h->pos = sl_xstrdup(position ? position : "");
    h->next = w->hws;
    w->hws = h;
    return 0;
}

sl_proc *sl_proc_new(const sl_store *store, void *sess)
{
    sl_proc *w = sl_xcalloc(1, sizeof(*w));

    w->store = store;
    w->sess = sess;
    sl_pool_init(&w->arena);
    w->cache = sl_xcalloc(CACHE_BUCKETS, sizeof(*w->cache));
    if (store && sess)
        store->ops->progress_each(sess, load_hw, w, NULL);
    return w;
}

static void cache_clear(sl_proc *w)
{
    size_t i;
    centry *e, *next;

    for (i = 0; i < CACHE_BUCKETS; i++) {
        for (e = w->cache[i]; e; e = next) {
            next = e->next;
            free(e->pos);
            free(e);
        }
        w->cache[i] = NULL;
    }
    w->ncache = 0;
}

void sl_proc_free(sl_proc *w)
{
    hw *h, *hn;
    tcount *t, *tn;
    size_t i;

    if (w == NULL)
        return;
    cache_clear(w);
    free(w->cache);
    for (h = w->hws; h; h = hn) {
        hn = h->next;
        free(h->origin);
        free(h->partition);
        free(h->pos);
        free(h);
    }
    for (i = 0; i < TOPIC_BUCKETS; i++)
        for (t = w->topics[i]; t; t = tn) {
            tn = t->next;
            free(t);
        }
    sl_pool_free(&w->arena);
    sl_buf_free(&w->tmp);
    sl_buf_free(&w->val);
    sl_buf_free(&w->topic);
    sl_buf_free(&w->out);
    sl_buf_free(&w->seenb);
    free(w->outs);
    free(w->hdrs);
    free(w->recs);
    free(w->seen);
    free(w);
}

sl_counters *sl_proc_counters(sl_proc *w)
{
    return &w->c;
}

static void count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static int poscmp(sl_str a, const char *b, size_t blen)
{
    size_t m = a.len < blen ? a.len : blen;
    int c = m ? memcmp(a.p, b, m) : 0;

    if (c)
        return c;
    return a.len < blen ? -1 : a.len > blen;
}

/* Is pos newer than everything processed for origin+partition before this run? */
static bool beyond_hw(sl_proc *w, const char *origin, sl_str part, sl_str pos)
{
    hw *h;

    for (h = w->hws; h; h = h->next)
        if (strcmp(h->origin, origin) == 0 && strlen(h->partition) == part.len &&
            memcmp(h->partition, part.p, part.len) == 0)
            return poscmp(pos, h->pos, strlen(h->pos)) > 0;
    return true;
}

/* Remember pos for key k: in entry e when the key is cached already (the
 * entry found by the lookup), else in a new entry at the head of its bucket. */
static void cache_set(sl_proc *w, centry *e, uint64_t h, const char *k, size_t klen, sl_str pos)
{
    centry **slot = &w->cache[h % CACHE_BUCKETS];

    if (e == NULL) {
        if (w->ncache >= CACHE_MAX) {
            /* Forget it all and ask the store from now on - once everything
             * handed out has reached the store, or a change seen a moment
             * ago could pass for new. */
            if (w->evict_hook)
                w->evict_hook(w->evict_arg);
            cache_clear(w);
            w->evicted = true;
        }
        e = sl_xmalloc(sizeof(*e) + klen);
        e->h = h;
        e->klen = (uint32_t)klen;
        memcpy(e->key, k, klen);
        e->pos = NULL;
        e->pcap = 0;
        e->next = *slot;
        *slot = e;
        w->ncache++;
    }
    if (e->pcap < pos.len) {
        e->pos = sl_xrealloc(e->pos, pos.len);
        e->pcap = (uint32_t)pos.len;
    }
    memcpy(e->pos, pos.p, pos.len);
    e->plen = (uint32_t)pos.len;
}

/* 1: already processed; 0: new (and now remembered); -1: store error. */
static int check_seen(sl_proc *w, sl_item *it, sl_error *err)
{
    sl_event *ev = &it->ev;
    const char *origin = it->prog->sites[it->origin].name;
    sl_str pos = ev->position, o, t, k;
    uint64_t h;
    centry **slot, *e;
    sl_buf *ck = &w->tmp;
    int r;

    if (pos.len == 0 || w->store == NULL)
        return 0; /* no position, or no store: nothing to compare against */
    sl_buf_reset(ck);
    sl_buf_puts(ck, origin);
    sl_buf_putc(ck, '\x1f');
    sl_buf_append(ck, it->qname.data, it->qname.len);
    sl_buf_putc(ck, '\x1f');
    sl_buf_append(ck, it->key.data, it->key.len);
    h = sl_hash64(ck->data, ck->len, SL_HASH_SEED);
    slot = &w->cache[h % CACHE_BUCKETS];
    for (e = *slot; e; e = e->next)
        if (e->h == h && e->klen == ck->len && memcmp(e->key, ck->data, ck->len) == 0)
            break;
    if (e != NULL) {
        if (poscmp(pos, e->pos, e->plen) <= 0)
            return 1;
    } else if (w->evicted || !beyond_hw(w, origin, ev->partition, pos)) {
        sl_buf stored = SL_BUF_INIT;

        o.p = origin;
        o.len = strlen(origin);
        t.p = it->qname.data;
        t.len = it->qname.len;
        k.p = it->key.data;
        k.len = it->key.len;
        r = w->store->ops->seen_get(w->sess, o, t, k, &stored, err);
        if (r < 0) {
            sl_buf_free(&stored);
            return -1;
        }
        if (r == 1 && poscmp(pos, stored.data, stored.len) <= 0) {
            sl_str sp = {stored.data, stored.len};

            cache_set(w, NULL, h, ck->data, ck->len, sp);
            sl_buf_free(&stored);
            return 1;
        }
        sl_buf_free(&stored);
    }
    cache_set(w, e, h, ck->data, ck->len, pos);
    return 0;
}

static void push_seen(sl_proc *w, sl_item *it)
{
    seen_desc *s;
    const char *origin = it->prog->sites[it->origin].name;

    if (it->ev.position.len == 0 || w->store == NULL)
        return;
    if (w->nseen == w->capseen) {
        w->capseen = w->capseen ? w->capseen * 2 : 256;
        w->seen = sl_xrealloc(w->seen, w->capseen * sizeof(*w->seen));
    }
    s = &w->seen[w->nseen++];
    s->origin = w->seenb.len;
    s->origin_len = strlen(origin);
    sl_buf_append(&w->seenb, origin, s->origin_len);
    s->table = w->seenb.len;
    s->table_len = it->qname.len;
    sl_buf_append(&w->seenb, it->qname.data, it->qname.len);
    s->key = w->seenb.len;
    s->key_len = it->key.len;
    sl_buf_append(&w->seenb, it->key.data, it->key.len);
    s->pos = w->seenb.len;
    s->pos_len = it->ev.position.len;
    sl_buf_append(&w->seenb, it->ev.position.p, it->ev.position.len);
    s->part = w->seenb.len;
    s->part_len = it->ev.partition.len;
    sl_buf_append(&w->seenb, it->ev.partition.p, it->ev.partition.len);
}

static void topic_count(sl_proc *w, const char *topic, size_t len)
{
    uint64_t h = sl_hash64(topic, len, SL_HASH_SEED);
    tcount **slot = &w->topics[h % TOPIC_BUCKETS], *t;

    for (t = *slot; t; t = t->next)
        if (strlen(t->topic) == len && memcmp(t->topic, topic, len) == 0) {
            t->n++;
            return;
        }
    t = sl_xmalloc(sizeof(*t) + len + 1);
    memcpy(t->topic, topic, len);
    t->topic[len] = '\0';
    t->n = 1;
    t->next = *slot;
    *slot = t;
}

void sl_proc_topic_counts(sl_proc *w, void (*fn)(void *arg, const char *topic, uint64_t n),
                          void *arg)
{
    size_t i;
    tcount *t;

    for (i = 0; i < TOPIC_BUCKETS; i++)
        for (t = w->topics[i]; t; t = t->next)
            fn(arg, t->topic, t->n);
}

static out_desc *new_out(sl_proc *w)
{
    out_desc *o;

    if (w->nouts == w->capouts) {
        w->capouts = w->capouts ? w->capouts * 2 : 256;
        w->outs = sl_xrealloc(w->outs, w->capouts * sizeof(*w->outs));
    }
    o = &w->outs[w->nouts++];
    memset(o, 0, sizeof(*o));
    o->hdr = w->nhdrs;
    return o;
}

static void add_hdr(sl_proc *w, out_desc *o, const char *name, const char *val, size_t vlen)
{
    hdr_desc *h;

    if (o->nhdr >= SL_MAX_HEADERS)
        return;
    if (w->nhdrs == w->caphdrs) {
        w->caphdrs = w->caphdrs ? w->caphdrs * 2 : 512;
        w->hdrs = sl_xrealloc(w->hdrs, w->caphdrs * sizeof(*w->hdrs));
    }
    h = &w->hdrs[w->nhdrs++];
    h->name = w->out.len;
    h->name_len = strlen(name);
    sl_buf_append(&w->out, name, h->name_len);
    h->val = w->out.len;
    h->val_len = vlen;
    sl_buf_append(&w->out, val, vlen);
    o->nhdr++;
}

/* Append bytes as JSON: raw when they parse as JSON, else as a JSON string
 * holding them verbatim, else (not UTF-8, which a JSON string cannot hold
 * exactly) as base64. Returns true for base64. */
static bool put_original(sl_proc *w, const char *p, size_t n, size_t *off, size_t *len)
{
    sl_json j;
    sl_error e;
    bool b64 = false;

    sl_json_init(&j);
    *off = w->out.len;
    if (sl_json_parse(&j, p, n, &e) == 0) {
        sl_buf_append(&w->out, p, n);
    } else if (sl_utf8_valid(p, n)) {
        sl_buf_json_str(&w->out, p, n);
    } else {
        sl_buf_base64_str(&w->out, p, n);
        b64 = true;
    }
    *len = w->out.len - *off;
    sl_json_free(&j);
    return b64;
}

static void dead_letter(sl_proc *w, sl_item *it, const sl_error *why)
{
    out_desc *o = new_out(w);
    const sl_program *p = it->prog;
    bool key_b64 = false, val_b64 = false;

    it->verdict = SL_VERDICT_DEAD;
    if (why != &it->err)
        it->err = *why;
    why = &it->err;

    o->topic = w->out.len;
    sl_buf_puts(&w->out, p->dead_letter_topic);
    o->topic_len = w->out.len - o->topic;
    if (it->rec.key)
        key_b64 = put_original(w, it->rec.key, it->rec.key_len, &o->key, &o->key_len);
    else
        o->key_len = 0;
    /* The original bytes: the record's value when the line parsed as a
     * record, else the whole line. Nothing the user gave is dropped. */
    if (it->rec.topic.len == 0 && it->rec.key == NULL) /* a bare line, exactly as read */
        val_b64 = put_original(w, it->raw.p, it->raw.len, &o->val, &o->val_len);
    else if (it->rec.value)
        val_b64 = put_original(w, it->rec.value, it->rec.value_len, &o->val, &o->val_len);
    else
        o->null_value = true;
    if (key_b64)
        add_hdr(w, o, "sluice.key.encoding", "base64", 6);
    if (val_b64)
        add_hdr(w, o, "sluice.value.encoding", "base64", 6);
    add_hdr(w, o, "sluice.error", why->msg, strlen(why->msg));
    add_hdr(w, o, "sluice.error.code", sl_errcode_name(why->code),
            strlen(sl_errcode_name(why->code)));
    if (it->input) {
        sl_buf_reset(&w->tmp);
        sl_buf_printf(&w->tmp, "%s:%lld", it->input, (long long)it->pos);
        add_hdr(w, o, "sluice.input", w->tmp.data, w->tmp.len);
    }
    if (it->rec.topic.len)
        add_hdr(w, o, "sluice.source.topic", it->rec.topic.p, it->rec.topic.len);
    if (it->origin >= 0)
        add_hdr(w, o, "sluice.origin", p->sites[it->origin].name,
                strlen(p->sites[it->origin].name));
    if (it->qname.len)
        add_hdr(w, o, "sluice.table", it->qname.data, it->qname.len);
    add_hdr(w, o, "sluice.rules", p->version, strlen(p->version));
    topic_count(w, p->dead_letter_topic, strlen(p->dead_letter_topic));
    count(&w->c.dead);
}

/* Evaluate the routes: the destination sites of this change. */
static int route(sl_proc *w, sl_item *it, sl_eval_ctx *ctx, sl_siteset *dests, sl_error *err)
{
    const sl_table *t = it->table;
    size_t i, k;
    bool pass;
    sl_value v;

    memset(dests, 0, sizeof(*dests));
    for (i = 0; i < t->nroutes; i++) {
        const sl_route *r = &t->routes[i];

        if (!sl_siteset_has(&r->from, it->origin))
            continue;
        if (r->where && (sl_eval_pred(r->where, ctx, &pass, err) != 0 || !pass)) {
            if (err->code != SL_OK)
                return -1;
            continue;
        }
        if (r->to_expr == NULL) {
            for (k = 0; k < SL_MAX_SITES / 64; k++)
                dests->w[k] |= r->to.w[k];
            continue;
        }
        if (sl_eval(r->to_expr, ctx, &v, err) != 0)
            return -1;
        if (v.type == SL_V_NULL)
            continue; /* no site named: this route does not apply */
        {
            sl_buf name = SL_BUF_INIT;
            int site;

            if (v.type == SL_V_STRING)
                sl_buf_append(&name, v.u.s.p, v.u.s.len);
            else if (v.type == SL_V_INT)
                sl_buf_printf(&name, "%lld", (long long)v.u.i);
            site = name.len ? sl_program_site(it->prog, name.data, name.len) : -1;
            if (site < 0) {
                sl_buf msg = SL_BUF_INIT, ex = SL_BUF_INIT;

                sl_value_format(&v, &msg);
                sl_expr_format(r->to_expr, &ex);
                sl_error_set(
                    err, SL_ERR_INVALID, "%s:%d:%d: route to site(%s): %s is not a declared site",
                    r->loc.file ? r->loc.file : "?", r->loc.line, r->loc.col, ex.data, msg.data);
                sl_buf_free(&ex);
                sl_buf_free(&msg);
                sl_buf_free(&name);
                return -1;
            }
            sl_siteset_add(dests, site);
            sl_buf_free(&name);
        }
    }
    /* A route never sends a change back to where it came from. */
    dests->w[it->origin / 64] &= ~((uint64_t)1 << (it->origin % 64));
    return 0;
}

static void emit(sl_proc *w, sl_item *it, const sl_siteset *dests)
{
    const sl_program *p = it->prog;
    const sl_table *t = it->table;
    const sl_event *ev = &it->ev;
    sl_str schema = ev->schema.len ? ev->schema : ev->db;
    const char *origin = p->sites[it->origin].name;
    /* one rendering per distinct column selection */
    const sl_colsel *rsel[8];
    size_t roff[8], rlen[8], nr = 0, i;
    size_t key_off, key_len;
    size_t d;

    key_off = w->out.len;
    if (t->nkey == 0 && it->rec.key != NULL && it->ev.has_key)
        sl_buf_append(&w->out, it->rec.key, it->rec.key_len); /* keeps a key schema */
    else
        sl_buf_append(&w->out, it->key.data, it->key.len);
    key_len = w->out.len - key_off;

    for (d = 0; d < p->nsites; d++) {
        const sl_colsel *sel;
        out_desc *o;

        if (!sl_siteset_has(dests, (int)d))
            continue;
        sel = t->sel ? t->sel[d] : NULL;
        o = new_out(w);
        sl_buf_reset(&w->topic);
        sl_program_topic(p, t, p->sites[d].name, origin, schema, ev->table, &w->topic);
        o->topic = w->out.len;
        o->topic_len = w->topic.len;
        sl_buf_append(&w->out, w->topic.data, w->topic.len);
        o->key = key_off;
        o->key_len = key_len;
        for (i = 0; i < nr; i++)
            if (rsel[i] == sel)
                break;
        if (i == nr) {
            size_t off = w->out.len;

            sl_buf_reset(&w->val);
            sl_event_write_value(ev, sel, &w->val);
            sl_buf_append(&w->out, w->val.data, w->val.len);
            if (nr < 8) {
                rsel[nr] = sel;
                roff[nr] = off;
                rlen[nr++] = w->val.len;
            }
            o->val = off;
            o->val_len = w->val.len;
        } else {
            o->val = roff[i];
            o->val_len = rlen[i];
        }
        add_hdr(w, o, "sluice.origin", origin, strlen(origin));
        add_hdr(w, o, "sluice.rules", p->version, strlen(p->version));
        /* the change's version: an applier that sees a position it already
         * applied for this key (at-least-once delivery) can drop it */
        if (ev->position.len)
            add_hdr(w, o, "sluice.position", ev->position.p, ev->position.len);
        topic_count(w, w->topic.data, w->topic.len);
        count(&w->c.written);
    }
}

int sl_proc_item(sl_proc *w, sl_item *it, sl_error *err)
{
    sl_eval_ctx ctx;
    sl_error why;
    bool pass;
    int r;
    size_t k;

    count(&w->c.read);
    switch (it->fate) {
    case SL_FATE_PROCESS:
        break;
    case SL_FATE_DEAD:
        dead_letter(w, it, &it->err);
        return 0;
    case SL_FATE_IGNORED:
        it->verdict = SL_VERDICT_IGNORED;
        count(&w->c.ignored);
        return 0;
    default:
        it->verdict = SL_VERDICT_SKIPPED;
        count(&w->c.skipped);
        return 0;
    }
    r = check_seen(w, it, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        it->verdict = SL_VERDICT_DUPLICATE;
        count(&w->c.duplicate);
        return 0;
    }
    push_seen(w, it);

    sl_pool_reset(&w->arena);
    ctx.ev = &it->ev;
    ctx.origin.p = it->prog->sites[it->origin].name;
    ctx.origin.len = strlen(ctx.origin.p);
    ctx.arena = &w->arena;
    sl_error_clear(&why);
    if (it->table->where) {
        if (sl_eval_pred(it->table->where, &ctx, &pass, &why) != 0) {
            dead_letter(w, it, &why);
            return 0;
        }
        if (!pass) {
            it->verdict = SL_VERDICT_FILTERED;
            count(&w->c.filtered);
            return 0;
        }
    }
    if (route(w, it, &ctx, &it->dests, &why) != 0) {
        dead_letter(w, it, &why);
        return 0;
    }
    for (k = 0; k < SL_MAX_SITES / 64; k++)
        if (it->dests.w[k])
            break;
    if (k == SL_MAX_SITES / 64) {
        it->verdict = SL_VERDICT_UNROUTED;
        count(&w->c.unrouted);
        return 0;
    }
    it->verdict = SL_VERDICT_ROUTED;
    count(&w->c.routed);
    emit(w, it, &it->dests);
    return 0;
}

const sl_record *sl_proc_outputs(sl_proc *w, size_t *n)
{
    size_t i, h;

    if (w->caprecs < w->nouts) {
        w->caprecs = w->nouts;
        w->recs = sl_xrealloc(w->recs, w->caprecs * sizeof(*w->recs));
    }
    for (i = 0; i < w->nouts; i++) {
        const out_desc *o = &w->outs[i];
        sl_record *r = &w->recs[i];

        r->topic.p = w->out.data + o->topic;
        r->topic.len = o->topic_len;
        r->partition = -1;
        r->offset = -1;
        r->key = o->key_len ? w->out.data + o->key : NULL;
        r->key_len = o->key_len;
        r->value = o->null_value ? NULL : w->out.data + o->val;
        r->value_len = o->null_value ? 0 : o->val_len;
        r->nheaders = o->nhdr;
        for (h = 0; h < o->nhdr; h++) {
            const hdr_desc *d = &w->hdrs[o->hdr + h];

            r->headers[h].name.p = w->out.data + d->name;
            r->headers[h].name.len = d->name_len;
            r->headers[h].value.p = w->out.data + d->val;
            r->headers[h].value.len = d->val_len;
            r->headers[h].null_value = false;
        }
        r->where.p = NULL;
        r->where.len = 0;
    }
    *n = w->nouts;
    return w->recs;
}

void sl_seen_set_free(sl_seen_set *s)
{
    sl_buf_free(&s->bytes);
    free(s->rows);
    s->rows = NULL;
    s->n = 0;
}

void sl_proc_reset(sl_proc *w, sl_seen_set *out)
{
    size_t i;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
        if (w->nseen) {
            out->rows = sl_xmalloc(w->nseen * sizeof(*out->rows));
            out->n = w->nseen;
            /* the rows point into the bytes, which move with the set */
            out->bytes = w->seenb;
            memset(&w->seenb, 0, sizeof(w->seenb));
            for (i = 0; i < w->nseen; i++) {
                const seen_desc *d = &w->seen[i];
                sl_seen *r = &out->rows[i];

                r->origin.p = out->bytes.data + d->origin;
                r->origin.len = d->origin_len;
                r->table.p = out->bytes.data + d->table;
                r->table.len = d->table_len;
                r->key.p = out->bytes.data + d->key;
                r->key.len = d->key_len;
                r->position.p = out->bytes.data + d->pos;
                r->position.len = d->pos_len;
                r->partition.p = out->bytes.data + d->part;
                r->partition.len = d->part_len;
            }
        }
    }
    w->nseen = 0;
    sl_buf_reset(&w->seenb);
    w->nouts = 0;
    w->nhdrs = 0;
    sl_buf_reset(&w->out);
}

void sl_proc_set_evict_hook(sl_proc *w, void (*hook)(void *arg), void *arg)
{
    w->evict_hook = hook;
    w->evict_arg = arg;
}
