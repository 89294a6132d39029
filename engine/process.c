/*
 * process.c - the two stages every input message goes through.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "process.h"
#include "resolve.h"
#include "rowstate.h"

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

/* Every field of the item set for a new message, which is dead until
 * decoding says otherwise. */
static void item_reset(sl_item *it, const sl_program *p, const char *input, int64_t pos)
{
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
}

static void item_decode_event(sl_item *it, const sl_program *p);

void sl_item_decode(sl_item *it, const sl_program *p, const char *line, size_t len,
                    const char *input, int64_t pos, sl_json *j)
{
    item_reset(it, p, input, pos);
    it->raw.p = line;
    it->raw.len = len;
    if (blank(line, len)) {
        it->fate = SL_FATE_BLANK;
        return;
    }
    if (sl_record_parse_line(&it->rec, line, len, j, &it->rscratch, &it->err) != 0)
        return;
    item_decode_event(it, p);
}

void sl_item_decode_record(sl_item *it, const sl_program *p, const char *packed, size_t len,
                           const char *input, int64_t pos)
{
    item_reset(it, p, input, pos);
    it->raw.p = "";
    it->raw.len = 0;
    if (sl_record_unpack(&it->rec, packed, len, &it->err) != 0)
        return;
    /* the message's own bytes are its value (what a dead letter carries) */
    if (it->rec.value) {
        it->raw.p = it->rec.value;
        it->raw.len = it->rec.value_len;
    }
    item_decode_event(it, p);
}

/* From the record to the event, its table, origin and row key. */
static void item_decode_event(sl_item *it, const sl_program *p)
{
    sl_event *ev = &it->ev;
    sl_str schema;

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

/* A cached row state. The cache holds the authoritative state of every row
 * the worker touched recently, as its encoded document: one allocation per
 * row instead of a dozen, several times the rows in the same bytes, and
 * the document the store receives after each change (through the seen
 * set) is already made. The row being worked on is decoded into the
 * worker's `cur` and encoded back when the worker moves to another row. */
#define HASH_MEMO 8 /* row hashes remembered per row */

typedef struct rentry {
    struct rentry *next;
    struct rentry *dnext; /* the dirty list */
    uint64_t h;
    uint32_t klen, tlen; /* key: table (tlen bytes) \x1f key */
    bool dirty;          /* changed since its document was last handed out */
    uint32_t dlen, dcap; /* bytes of doc, and room for them */
    char *doc;           /* sl_rowstate_encode; NULL: no state yet (a new row) */
    char key[];
} rentry;

/* Row hashes already computed for one row, per column selection
 * (selections are interned: one pointer per distinct selection). */
typedef struct hash_memo {
    const sl_colsel *sel[HASH_MEMO];
    uint64_t val[HASH_MEMO];
    int n;
} hash_memo;

/* Cache entries and their documents come from chunks that are freed
 * together when the cache is cleared: a row costs a pointer bump instead of
 * two malloc/free pairs, and clearing costs a few free() calls. */
typedef struct slab_chunk {
    struct slab_chunk *next;
    size_t used, cap;
    char data[]; /* 8-byte aligned: the header is three words */
} slab_chunk;

#define SLAB_CHUNK (1u << 20)

#define CACHE_BUCKETS 262144 /* half a cached row per bucket: each probe is a cache miss */
#define CACHE_MAX     131072
/* ... and at most about this many bytes of row state: rows that many sites
 * have not acknowledged carry long queues (docs/conflicts.md). */
#define CACHE_BYTES (24u << 20)
/* While the store held no rows when the worker started, every row it has is
 * one this worker wrote: their hashes (up to this many) say a cache miss is
 * a new row without asking the store. */
#define KNOWN_MAX (16u << 20)

#define SL_DEFAULT_TOMBSTONE_MS (7LL * 24 * 3600 * 1000)

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
    size_t origin, origin_len, table, table_len, key, key_len, pos, pos_len, part, part_len, doc,
        doc_len;
} seen_desc;

/* A conflict on its way to the store: strings in confb. */
enum {
    CF_ID,
    CF_TABLE,
    CF_KEY,
    CF_SITE_IN,
    CF_SITE_CUR,
    CF_BASE,
    CF_CURRENT,
    CF_INCOMING,
    CF_RESULT,
    CF_RULE,
    CF_STRATEGY,
    CF_STATUS,
    CF_REASON,
    CF_POSITION,
    CF_NSTR
};

typedef struct conf_desc {
    size_t off[CF_NSTR], len[CF_NSTR];
    int64_t v_current, v_result, ts_in, ts_cur, detected_ms, decided_ms;
} conf_desc;

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
    sl_buf tmp, val, topic, img, doc, hscratch, merged, reason, strat;
    sl_json imgj; /* a version image being sent */

    rentry **cache;
    size_t ncache, cache_max, cache_bytes_max;
    slab_chunk *slab;  /* the cache's memory, newest chunk first */
    slab_chunk *spare; /* chunks of the cache before the last clear, for reuse */
    size_t slab_bytes; /* handed out from it, documents replaced since included */
    hash_memo in_h;    /* the change's row hashes computed so far */
    sl_rowstate cur;   /* the state of cur_e, decoded */
    rentry *cur_e;     /* NULL: cur holds nothing */
    sl_buf enc;
    rentry *dirty;   /* rows whose document goes out with the next reset */
    uint64_t *known; /* open addressing, 0 = empty */
    size_t nknown, capknown;
    bool all_known;
    int64_t tombstone_ms;

    sl_lua *lua;
    const sl_program *lua_prog; /* the program lua was loaded for */
    bool lua_failed;

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
    sl_buf confb; /* bytes of pending conflicts */
    conf_desc *confs;
    size_t nconfs, capconfs;
    void (*evict_hook)(void *arg);
    void *evict_arg;

    tcount *topics[TOPIC_BUCKETS];
};

static int first_row(void *arg, sl_str table, sl_str key, sl_str doc)
{
    *(bool *)arg = true;
    return 1;
}

sl_proc *sl_proc_new(const sl_store *store, void *sess)
{
    sl_proc *w = sl_xcalloc(1, sizeof(*w));

    w->store = store;
    w->sess = sess;
    w->tombstone_ms = SL_DEFAULT_TOMBSTONE_MS;
    sl_proc_set_cache_limit(w, 0, 0);
    sl_pool_init(&w->arena);
    sl_json_init(&w->imgj);
    w->cache = sl_xcalloc_written(CACHE_BUCKETS, sizeof(*w->cache));
    if (store && sess) {
        bool any = false;
        sl_error e;

        /* an empty store: every row is new until this worker writes it */
        if (store->ops->rows_any)
            w->all_known = store->ops->rows_any(sess, &e) == 0;
        else if (store->ops->rows_each(sess, NULL, first_row, &any, &e) == 0 && !any)
            w->all_known = true;
    }
    return w;
}

void sl_proc_set_tombstone_retention(sl_proc *w, int64_t ms)
{
    w->tombstone_ms = ms;
}

void sl_proc_set_cache_limit(sl_proc *w, size_t rows, size_t bytes)
{
    w->cache_max = rows ? rows : CACHE_MAX;
    w->cache_bytes_max = bytes ? bytes : CACHE_BYTES;
}

static void *slab_alloc(sl_proc *w, size_t n)
{
    slab_chunk *c = w->slab;
    void *p;

    n = (n + 7) & ~(size_t)7;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > SLAB_CHUNK ? n : SLAB_CHUNK;

        if (w->spare && w->spare->cap >= n) {
            c = w->spare;
            w->spare = c->next;
        } else {
            c = sl_xmalloc(sizeof(*c) + cap);
            c->cap = cap;
        }
        c->next = w->slab;
        c->used = 0;
        w->slab = c;
    }
    p = c->data + c->used;
    c->used += n;
    w->slab_bytes += n;
    return p;
}

static void slab_free(slab_chunk *c)
{
    slab_chunk *next;

    for (; c; c = next) {
        next = c->next;
        free(c);
    }
}

static size_t cache_slot(uint64_t h);

/* The decoded row goes back into its cache entry. */
static void cur_flush(sl_proc *w)
{
    rentry *e = w->cur_e;

    if (e == NULL)
        return;
    sl_buf_reset(&w->enc);
    sl_rowstate_encode(&w->cur, &w->enc);
    if (e->doc == NULL || e->dcap < w->enc.len) {
        e->doc = slab_alloc(w, w->enc.len);
        e->dcap = (uint32_t)w->enc.len;
    }
    e->dlen = (uint32_t)w->enc.len;
    memcpy(e->doc, w->enc.data, w->enc.len);
    sl_rowstate_clear(&w->cur);
    w->cur_e = NULL;
}

/* Forget cached rows; rows changed since the last reset stay (their
 * document has not been handed out yet), unless `all`. The ones that stay
 * move to other chunks, in the same dirty-list order; the old chunks are
 * kept for reuse (the memory stays the cache's), or freed with `all`. */
static void cache_clear(sl_proc *w, bool all)
{
    slab_chunk *old = w->slab;
    rentry *e, *n, **tail;

    if (all) {
        sl_rowstate_free(&w->cur);
        w->cur_e = NULL;
    } else {
        cur_flush(w);
    }
    if (w->cache)
        memset(w->cache, 0, CACHE_BUCKETS * sizeof(*w->cache));
    if (all) {
        slab_free(w->spare);
        w->spare = NULL;
    }
    w->slab = NULL;
    w->slab_bytes = 0;
    w->ncache = 0;
    e = all ? NULL : w->dirty;
    w->dirty = NULL;
    for (tail = &w->dirty; e; e = e->dnext) {
        n = slab_alloc(w, sizeof(*e) + e->klen);
        memcpy(n, e, sizeof(*e) + e->klen);
        if (e->doc) {
            n->doc = slab_alloc(w, e->dlen);
            memcpy(n->doc, e->doc, e->dlen);
            n->dcap = e->dlen;
        }
        n->dnext = NULL;
        *tail = n;
        tail = &n->dnext;
        n->next = w->cache[cache_slot(n->h)];
        w->cache[cache_slot(n->h)] = n;
        w->ncache++;
    }
    if (all) {
        slab_free(old);
    } else {
        /* the survivors were copied out of old: all of it is spare now */
        slab_chunk *last = old;

        while (last && last->next)
            last = last->next;
        if (last) {
            last->next = w->spare;
            w->spare = old;
        }
    }
}

void sl_proc_free(sl_proc *w)
{
    tcount *t, *tn;
    size_t i;

    if (w == NULL)
        return;
    cache_clear(w, true);
    sl_buf_free(&w->enc);
    free(w->cache);
    free(w->known);
    sl_lua_free(w->lua);
    for (i = 0; i < TOPIC_BUCKETS; i++)
        for (t = w->topics[i]; t; t = tn) {
            tn = t->next;
            free(t);
        }
    sl_pool_free(&w->arena);
    sl_json_free(&w->imgj);
    sl_buf_free(&w->tmp);
    sl_buf_free(&w->val);
    sl_buf_free(&w->topic);
    sl_buf_free(&w->img);
    sl_buf_free(&w->doc);
    sl_buf_free(&w->hscratch);
    sl_buf_free(&w->merged);
    sl_buf_free(&w->reason);
    sl_buf_free(&w->strat);
    sl_buf_free(&w->out);
    sl_buf_free(&w->seenb);
    sl_buf_free(&w->confb);
    free(w->outs);
    free(w->hdrs);
    free(w->recs);
    free(w->seen);
    free(w->confs);
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

/* ---- rows this worker knows the store lacks ----------------------------------- */

/* Where a row's hash (sl_item.hash) lands in the cache and in the known
 * set. Its low bits pick the worker, so they are the same for every row of
 * one worker: the slot comes from the mixed high bits. */
static size_t cache_slot(uint64_t h)
{
    return (size_t)((h * 0x9e3779b97f4a7c15ULL) >> 40) & (CACHE_BUCKETS - 1);
}

static size_t known_slot(const sl_proc *w, uint64_t h)
{
    return (size_t)((h * 0xbf58476d1ce4e5b9ULL) >> 32) & (w->capknown - 1);
}

static bool known_has(const sl_proc *w, uint64_t h)
{
    size_t i;

    if (w->capknown == 0)
        return false;
    h |= 1;
    for (i = known_slot(w, h); w->known[i]; i = (i + 1) & (w->capknown - 1))
        if (w->known[i] == h)
            return true;
    return false;
}

static void known_add(sl_proc *w, uint64_t h)
{
    size_t i;

    if (!w->all_known || known_has(w, h))
        return;
    if (w->nknown >= KNOWN_MAX) {
        /* too many to track: ask the store on every miss from now on */
        w->all_known = false;
        free(w->known);
        w->known = NULL;
        w->nknown = w->capknown = 0;
        return;
    }
    if ((w->nknown + 1) * 2 > w->capknown) {
        uint64_t *old = w->known;
        size_t oldcap = w->capknown, k;

        w->capknown = oldcap ? oldcap * 2 : 4096;
        w->known = sl_xcalloc_written(w->capknown, sizeof(*w->known));
        w->nknown = 0;
        for (k = 0; k < oldcap; k++)
            if (old[k]) {
                for (i = known_slot(w, old[k]); w->known[i]; i = (i + 1) & (w->capknown - 1))
                    ;
                w->known[i] = old[k];
                w->nknown++;
            }
        free(old);
    }
    h |= 1;
    for (i = known_slot(w, h); w->known[i]; i = (i + 1) & (w->capknown - 1))
        ;
    w->known[i] = h;
    w->nknown++;
}

/* The cached entry of the item's row, or NULL. */
static rentry *cache_find(const sl_proc *w, const sl_item *it)
{
    uint64_t h = it->hash; /* of table and key (stage A) */
    size_t tl = it->qname.len, kl = it->key.len;
    rentry *e;

    for (e = w->cache[cache_slot(h)]; e; e = e->next)
        if (e->h == h && e->tlen == tl && e->klen == tl + 1 + kl &&
            memcmp(e->key, it->qname.data, tl) == 0 &&
            memcmp(e->key + tl + 1, it->key.data, kl) == 0)
            return e;
    return NULL;
}

/* A new entry for the item's row, no state yet, not in the cache. */
static rentry *entry_new(sl_proc *w, const sl_item *it)
{
    size_t tl = it->qname.len, kl = it->key.len;
    rentry *e = slab_alloc(w, sizeof(*e) + tl + 1 + kl);

    e->h = it->hash;
    e->klen = (uint32_t)(tl + 1 + kl);
    e->tlen = (uint32_t)tl;
    e->dirty = false;
    e->dlen = e->dcap = 0;
    e->doc = NULL;
    e->dnext = NULL;
    e->next = NULL;
    memcpy(e->key, it->qname.data, tl);
    e->key[tl] = '\x1f';
    memcpy(e->key + tl + 1, it->key.data, kl);
    return e;
}

static void entry_insert(sl_proc *w, rentry *e)
{
    rentry **slot = &w->cache[cache_slot(e->h)];

    e->next = *slot;
    *slot = e;
    w->ncache++;
    known_add(w, e->h);
}

/* Room for n more rows: when the cache is full, forget it all and read from
 * the store again - once everything handed out has reached the store. */
static void cache_make_room(sl_proc *w, size_t n)
{
    if (w->ncache + n <= w->cache_max && w->slab_bytes < w->cache_bytes_max)
        return;
    if (w->evict_hook)
        w->evict_hook(w->evict_arg);
    cache_clear(w, false);
}

/* The row's state: from the cache, else the store, else a new one. NULL
 * with err filled when the store failed. */
static sl_rowstate *state_get(sl_proc *w, sl_item *it, sl_error *err)
{
    rentry *e = cache_find(w, it);
    int r;

    if (e != NULL && e == w->cur_e)
        return &w->cur; /* the row of the previous change: still decoded */
    cur_flush(w);
    if (e != NULL) {
        if (e->doc && sl_rowstate_read(&w->cur, e->doc, e->dlen, err) != 0)
            return NULL; /* our own encoding: cannot happen */
        w->cur_e = e;
        return &w->cur;
    }
    cache_make_room(w, 1);
    e = entry_new(w, it);
    if (!w->all_known || known_has(w, e->h)) {
        sl_str t = {it->qname.data, it->qname.len}, k = {it->key.data, it->key.len};

        sl_buf_reset(&w->doc);
        r = w->store->ops->row_get(w->sess, t, k, &w->doc, err);
        if (r == 1 && sl_rowstate_read(&w->cur, w->doc.data, w->doc.len, err) != 0) {
            sl_error_set(err, SL_ERR_STORE, "row %s %s: %s", it->qname.data, it->key.data,
                         err->msg);
            r = -1;
        }
        if (r < 0)
            return NULL; /* e stays in its chunk until the cache is cleared */
    }
    entry_insert(w, e);
    w->cur_e = e;
    return &w->cur;
}

/* rows_get's answers: the document of the i-th row asked for. */
typedef struct preload {
    sl_proc *w;
    rentry **ents;
} preload;

static void preload_one(void *arg, size_t i, sl_str doc)
{
    preload *pl = arg;
    rentry *e = pl->ents[i];

    e->doc = slab_alloc(pl->w, doc.len);
    memcpy(e->doc, doc.p, doc.len);
    e->dlen = e->dcap = (uint32_t)doc.len;
}

int sl_proc_preload(sl_proc *w, sl_item *const *items, const int *order, int from, int to,
                    sl_error *err)
{
    const sl_store_ops *ops = w->store ? w->store->ops : NULL;
    sl_str *tables = NULL, *keys = NULL;
    preload pl = {w, NULL};
    size_t n = 0, i;
    int k, rc = 0;

    if (ops == NULL || ops->rows_get == NULL || to <= from)
        return 0;
    cache_make_room(w, (size_t)(to - from));
    for (k = from; k < to; k++) {
        sl_item *it = items[order[k]];
        rentry *e;

        if (it->fate != SL_FATE_PROCESS || it->ev.op == 't' || cache_find(w, it) != NULL)
            continue;
        if (w->all_known && !known_has(w, it->hash))
            continue; /* a row this process created: nothing to read */
        if (n % 64 == 0) {
            tables = sl_xrealloc(tables, (n + 64) * sizeof(*tables));
            keys = sl_xrealloc(keys, (n + 64) * sizeof(*keys));
            pl.ents = sl_xrealloc(pl.ents, (n + 64) * sizeof(*pl.ents));
        }
        /* in the cache at once, so that a second change of the row in this
         * delivery is not asked for twice */
        e = entry_new(w, it);
        entry_insert(w, e);
        tables[n] = (sl_str){it->qname.data, it->qname.len};
        keys[n] = (sl_str){it->key.data, it->key.len};
        pl.ents[n++] = e;
    }
    if (n > 0 && ops->rows_get(w->sess, tables, keys, n, preload_one, &pl, err) != 0) {
        /* an entry without a document is a new row: none may stay */
        for (i = 0; i < n; i++) {
            rentry **link = &w->cache[cache_slot(pl.ents[i]->h)];

            while (*link != pl.ents[i])
                link = &(*link)->next;
            *link = pl.ents[i]->next;
            w->ncache--;
        }
        rc = -1;
    }
    free(tables);
    free(keys);
    free(pl.ents);
    return rc;
}

static seen_desc *new_seen(sl_proc *w)
{
    seen_desc *s;

    if (w->nseen == w->capseen) {
        w->capseen = w->capseen ? w->capseen * 2 : 256;
        w->seen = sl_xrealloc(w->seen, w->capseen * sizeof(*w->seen));
    }
    s = &w->seen[w->nseen++];
    memset(s, 0, sizeof(*s));
    return s;
}

/* The change was processed: its origin's progress goes to the store, and
 * the row's document with the next reset (once per reset however many
 * changes the row had meanwhile). */
static void push_seen(sl_proc *w, sl_item *it, sl_rowstate *st)
{
    seen_desc *s;
    const char *origin = it->prog->sites[it->origin].name;
    rentry *e = w->cur_e;

    if (!e->dirty) {
        e->dirty = true;
        e->dnext = w->dirty;
        w->dirty = e;
    }
    if (it->ev.position.len == 0)
        return;
    s = new_seen(w);
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
    s->doc = w->seenb.len;
}

/* The documents of the rows changed since the last reset, in the order
 * they were first changed (the store writes the batch as a whole). */
static void push_docs(sl_proc *w)
{
    rentry *e, *next;

    cur_flush(w);
    for (e = w->dirty; e; e = next) {
        seen_desc *s = new_seen(w);

        next = e->dnext;
        s->table = w->seenb.len;
        s->table_len = e->tlen;
        sl_buf_append(&w->seenb, e->key, e->tlen);
        s->key = w->seenb.len;
        s->key_len = e->klen - e->tlen - 1;
        sl_buf_append(&w->seenb, e->key + e->tlen + 1, s->key_len);
        s->origin = s->pos = s->part = w->seenb.len;
        s->doc = w->seenb.len;
        sl_buf_append(&w->seenb, e->doc, e->dlen);
        s->doc_len = e->dlen;
        e->dirty = false;
        e->dnext = NULL;
    }
    w->dirty = NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conf_str(sl_proc *w, conf_desc *c, int f, const char *p, size_t n)
{
    c->off[f] = w->confb.len;
    if (p)
        sl_buf_append(&w->confb, p, n);
    c->len[f] = w->confb.len - c->off[f];
}

static void conf_cstr(sl_proc *w, conf_desc *c, int f, const char *s)
{
    conf_str(w, c, f, s ? s : "null", strlen(s ? s : "null"));
}

/* ---- outputs ------------------------------------------------------------------ */

/* What an output says about the version it carries (headers). */
typedef struct vinfo {
    int64_t v; /* 0: stateless, no version header */
    const char *writer;
    sl_str pos;
} vinfo;

/* v in decimal at out (room for 20 digits); returns the length. */
static size_t dec_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* One output per site in dests: the change as received (img NULL), or the
 * version whose parsed image is img (op 'u'; 'd' with img NULL and del). */
static void emit(sl_proc *w, sl_item *it, const sl_siteset *dests, const sl_json *img, char op,
                 const vinfo *vi)
{
    const sl_program *p = it->prog;
    const sl_table *t = it->table;
    const sl_event *ev = &it->ev;
    sl_str schema = ev->schema.len ? ev->schema : ev->db;
    const char *origin = vi->writer ? vi->writer : p->sites[it->origin].name;
    /* one rendering per distinct column selection */
    const sl_colsel *rsel[8];
    size_t roff[8], rlen[8], nr = 0, i;
    size_t key_off, key_len;
    size_t d, vlen;
    char vbuf[24];

    key_off = w->out.len;
    if (t->nkey == 0 && it->rec.key != NULL && it->ev.has_key)
        sl_buf_append(&w->out, it->rec.key, it->rec.key_len); /* keeps a key schema */
    else
        sl_buf_append(&w->out, it->key.data, it->key.len);
    key_len = w->out.len - key_off;
    vlen = vi->v > 0 ? dec_u64(vbuf, (uint64_t)vi->v) : 0;

    for (d = 0; d < p->nsites; d++) {
        const sl_colsel *sel;
        out_desc *o;

        if (!sl_siteset_has(dests, (int)d))
            continue;
        sel = t->sel ? t->sel[d] : NULL;
        o = new_out(w);
        sl_buf_reset(&w->topic);
        sl_program_topic(p, t, p->sites[d].name, p->sites[it->origin].name, schema, ev->table,
                         &w->topic);
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
            if (op == 0)
                sl_event_write_value(ev, sel, &w->val);
            else
                sl_event_write_version(ev, sel, op, img, &w->val);
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
        if (vi->v > 0)
            add_hdr(w, o, "sluice.version", vbuf, vlen);
        /* the change's source position: with the version, what lets an
         * applier drop a repeat of this at-least-once delivery */
        if (vi->pos.len)
            add_hdr(w, o, "sluice.position", vi->pos.p, vi->pos.len);
        topic_count(w, w->topic.data, w->topic.len);
        count(&w->c.written);
    }
}

static bool siteset_empty(const sl_siteset *s)
{
    size_t k;

    for (k = 0; k < SL_MAX_SITES / 64; k++)
        if (s->w[k])
            return false;
    return true;
}

/* ---- the consolidated view ----------------------------------------------------- */

/* The Lua state for the item's program (loaded on first need, reloaded when
 * the rules change). NULL when the program has no Lua or it failed to load
 * (conflicts for Lua rules then go to the manual queue). */
static sl_lua *lua_for(sl_proc *w, const sl_program *p, sl_buf *reason)
{
    sl_error e;

    if (p->nlua == 0)
        return NULL;
    if (w->lua_prog != p) {
        sl_lua_free(w->lua);
        w->lua = NULL;
        w->lua_prog = p;
        w->lua_failed = false;
        sl_error_clear(&e);
        w->lua = sl_lua_new(p, &e);
        if (w->lua == NULL) {
            w->lua_failed = true;
            sl_buf_printf(reason, "%s", e.msg);
        }
    }
    return w->lua;
}

/* A selection that keeps every column hashes like none: the compiler gives
 * every site a selection, most of them that one. */
static const sl_colsel *hash_sel(const sl_colsel *sel)
{
    return sel != NULL && sel->all && sel->ndrop == 0 ? NULL : sel;
}

static bool memo_get(const hash_memo *m, const sl_colsel *sel, uint64_t *h)
{
    int i;

    for (i = 0; i < m->n; i++)
        if (m->sel[i] == sel) {
            *h = m->val[i];
            return true;
        }
    return false;
}

static void memo_put(hash_memo *m, const sl_colsel *sel, uint64_t h)
{
    if (m->n < HASH_MEMO) {
        m->sel[m->n] = sel;
        m->val[m->n++] = h;
    }
}

/* The hash of the change's row as a site with selection sel receives it:
 * computed once per distinct selection (sites mostly share one). The hash
 * of all columns comes with the row image, left in w->img: after this
 * returns for sel NULL, w->img holds the change's image (the call that put
 * the hash in the memo wrote it, and nothing else writes w->img before
 * proc_stateful is done with the change). */
static uint64_t in_hash(sl_proc *w, sl_item *it, const sl_colsel *sel)
{
    uint64_t h;

    sel = hash_sel(sel);
    if (memo_get(&w->in_h, sel, &h))
        return h;
    if (sel == NULL) {
        sl_buf_reset(&w->img);
        (void)sl_event_row_image(&it->ev, &w->img, &h);
    } else {
        h = sl_event_row_hash(&it->ev, sel, &w->hscratch);
    }
    memo_put(&w->in_h, sel, h);
    return h;
}

/* Send version v (image text row; NULL: deleted) to the sites in to, and
 * queue what each will echo. The incoming change itself is rendered when
 * as_incoming, else the image. */
static void send_version(sl_proc *w, sl_item *it, sl_rowstate *rs, const sl_siteset *to,
                         bool as_incoming, const vinfo *vi)
{
    const sl_program *p = it->prog;
    const sl_table *t = it->table;
    sl_siteset out;
    bool deleted = rs->deleted;
    sl_error e;
    size_t d;
    hash_memo img_h = {{NULL}, {0}, 0}; /* the image's hashes, as in_hash keeps the change's */

    memset(&out, 0, sizeof(out));
    w->imgj.ntok = 0;
    if (!as_incoming && !deleted && rs->row)
        (void)sl_json_parse(&w->imgj, rs->row, strlen(rs->row), &e);
    for (d = 0; d < p->nsites; d++) {
        sl_rs_site *st;
        int64_t wh;
        uint64_t h;
        const char *held_row = NULL;

        if (!sl_siteset_has(to, (int)d))
            continue;
        st = sl_rowstate_site(rs, p->sites[d].name);
        wh = sl_rowstate_will_hold(st);
        if (wh == rs->v)
            continue; /* it will hold this version anyway */
        if (deleted) {
            /* A delete reaches a site that will hold no live row as a
             * no-op there: no CDC event comes back, so it is not queued.
             * A site that will hold a tombstone gets nothing. */
            if (wh > 0 && sl_rowstate_image(rs, wh, &held_row) == 1 && held_row == NULL)
                continue;
            sl_siteset_add(&out, (int)d);
            if (wh == SL_HELD_NONE)
                continue;
            sl_rowstate_queue(st, rs->v, SL_EVENT_HASH_DELETED);
            continue;
        }
        sl_siteset_add(&out, (int)d);
        if (as_incoming) {
            h = in_hash(w, it, t->sel ? t->sel[d] : NULL);
        } else {
            const sl_colsel *sel = hash_sel(t->sel ? t->sel[d] : NULL);

            if (!memo_get(&img_h, sel, &h))
                memo_put(&img_h, sel, h = sl_image_hash(&w->imgj, sel, &w->hscratch));
        }
        sl_rowstate_queue(st, rs->v, h);
    }
    if (siteset_empty(&out))
        return;
    if (as_incoming)
        emit(w, it, &out, NULL, 0, vi);
    else
        emit(w, it, &out, deleted ? NULL : &w->imgj, deleted ? 'd' : 'u', vi);
}

static int64_t change_ts(const sl_event *ev);

/* The current version goes back to the change's origin (rendered from the
 * consolidated image, with the version's writer and position). */
static void send_current_to_origin(sl_proc *w, sl_item *it, sl_rowstate *rs)
{
    sl_siteset to;
    vinfo vi;

    memset(&to, 0, sizeof(to));
    sl_siteset_add(&to, it->origin);
    vi.v = rs->v;
    vi.writer = rs->writer;
    vi.pos.p = rs->pos ? rs->pos : "";
    vi.pos.len = strlen(vi.pos.p);
    send_version(w, it, rs, &to, false, &vi);
}

static void record_conflict(sl_proc *w, sl_item *it, const char *cur_row, const char *base_row,
                            const char *cur_site, int64_t cur_v, int64_t cur_ts, sl_outcome oc,
                            int64_t v_result, const char *result_row)
{
    const sl_program *p = it->prog;
    const sl_table *t = it->table;
    const char *origin = p->sites[it->origin].name;
    conf_desc *c;
    sl_buf *b = &w->tmp;
    const sl_loc *rule = t->conflict.loc.file ? &t->conflict.loc : &t->loc;
    bool del;

    if (w->nconfs == w->capconfs) {
        w->capconfs = w->capconfs ? w->capconfs * 2 : 16;
        w->confs = sl_xrealloc(w->confs, w->capconfs * sizeof(*w->confs));
    }
    c = &w->confs[w->nconfs++];
    memset(c, 0, sizeof(*c));
    sl_buf_reset(b);
    sl_buf_append(b, it->qname.data, it->qname.len);
    sl_buf_putc(b, '\x1f');
    sl_buf_append(b, it->key.data, it->key.len);
    sl_buf_putc(b, '\x1f');
    sl_buf_puts(b, origin);
    sl_buf_putc(b, '\x1f');
    if (it->ev.position.len)
        sl_buf_append(b, it->ev.position.p, it->ev.position.len);
    else
        sl_buf_printf(b, "v%lld", (long long)cur_v);
    {
        /* Idempotent (the same change gives the same id when it is redone)
         * and in source-time order: 11 hex digits of the change's ts_ms,
         * then 13 of a hash of what identifies it. New conflicts land at
         * the end of the store's id index instead of a random page of it. */
        char id[40];
        uint64_t ts = (uint64_t)change_ts(&it->ev) & ((1ULL << 44) - 1);
        uint64_t hh = sl_hash64(b->data, b->len, SL_HASH_SEED) & ((1ULL << 52) - 1);

        snprintf(id, sizeof(id), "%011llx%013llx", (unsigned long long)ts, (unsigned long long)hh);
        conf_str(w, c, CF_ID, id, strlen(id));
    }
    conf_str(w, c, CF_TABLE, it->qname.data, it->qname.len);
    conf_str(w, c, CF_KEY, it->key.data, it->key.len);
    conf_cstr(w, c, CF_SITE_IN, origin);
    conf_cstr(w, c, CF_SITE_CUR, cur_site ? cur_site : "");
    conf_cstr(w, c, CF_BASE, base_row);
    conf_cstr(w, c, CF_CURRENT, cur_row);
    if (it->ev.op != 'd') /* w->img holds the incoming image */
        conf_str(w, c, CF_INCOMING, w->img.data, w->img.len);
    else
        conf_cstr(w, c, CF_INCOMING, NULL);
    conf_cstr(w, c, CF_RESULT, result_row);
    sl_buf_reset(b);
    /* the `on conflict` statement, or the table block when it has none
     * (the default rule) */
    sl_buf_printf(b, "%s:%d:%d", rule->file ? rule->file : "?", rule->line, rule->col);
    conf_str(w, c, CF_RULE, b->data, b->len);
    del = cur_row == NULL || it->ev.op == 'd';
    sl_buf_reset(&w->strat);
    sl_strategy_name(p, t, del, &w->strat);
    conf_str(w, c, CF_STRATEGY, w->strat.data, w->strat.len);
    conf_cstr(w, c, CF_STATUS, oc == SL_RES_MANUAL ? SL_CONFLICT_OPEN : SL_CONFLICT_RESOLVED);
    conf_str(w, c, CF_REASON, w->reason.data, w->reason.len);
    conf_str(w, c, CF_POSITION, it->ev.position.p, it->ev.position.len);
    c->v_current = cur_v;
    c->v_result = v_result;
    c->ts_in = it->ev.source_ts_ms;
    c->ts_cur = cur_ts;
    c->detected_ms = now_ms();
    c->decided_ms = oc == SL_RES_MANUAL ? 0 : c->detected_ms;
    count(&w->c.conflicts);
    if (oc == SL_RES_MANUAL)
        count(&w->c.manual);
}

/* The site holds content of its own (not a version): remember it as the
 * base of its next change. */
static void set_own(sl_rs_site *st, const char *row)
{
    free(st->own);
    st->own = row ? sl_xstrdup(row) : NULL;
    st->held = SL_HELD_OWN;
}

static int64_t change_ts(const sl_event *ev)
{
    return ev->source_ts_ms ? ev->source_ts_ms : ev->ts_ms;
}

/* Stage B with a store: the consolidated view (docs/conflicts.md). */
static int proc_stateful(sl_proc *w, sl_item *it, sl_error *err)
{
    const sl_program *p = it->prog;
    const sl_table *t = it->table;
    sl_event *ev = &it->ev;
    const char *origin = p->sites[it->origin].name;
    sl_rowstate *rs;
    sl_rs_site *me;
    sl_eval_ctx ctx;
    sl_error why;
    sl_siteset dests;
    bool pass, conflict, in_del = ev->op == 'd';
    uint64_t h_me, h_full;
    size_t k;
    int64_t in_ts = change_ts(ev);
    vinfo vi;
    sl_outcome oc = SL_RES_INCOMING;

    w->in_h.n = 0;
    rs = state_get(w, it, err);
    if (rs == NULL)
        return -1;
    /* only merges (per column or in Lua) need the base a site changed from */
    rs->no_bases = t->conflict.kind != SL_CONFLICT_MERGE && t->conflict.kind != SL_CONFLICT_LUA;
    me = sl_rowstate_site(rs, origin);
    /* 1. stale or repeated: not newer than what this site sent before */
    if (ev->position.len && me->pos && poscmp(ev->position, me->pos, strlen(me->pos)) <= 0) {
        it->verdict = SL_VERDICT_DUPLICATE;
        count(&w->c.duplicate);
        return 0;
    }
    if (ev->position.len) {
        free(me->pos);
        me->pos = sl_xstrndup(ev->position.p, ev->position.len);
    }
    /* 2. an echo of a version sent to this site: its acknowledgement. The
     * site applies what it was sent in order, and every live version makes
     * a CDC event there, so the echo is of the first entry - or of a later
     * one when only deletes (of a row it may not have had) come before.
     * Versions forgotten from a full queue come back before it: with their
     * content gone, the next changes of the site are taken for their
     * echoes (docs/conflicts.md, limits). */
    if (me->lost > 0) {
        me->lost--;
        me->held = SL_HELD_NONE;
        it->verdict = SL_VERDICT_ECHO;
        count(&w->c.echo);
        push_seen(w, it, rs);
        return 0;
    }
    h_me = in_hash(w, it, t->sel ? t->sel[it->origin] : NULL);
    for (k = 0; k < me->nq; k++)
        if (me->q[k].hash == h_me || me->q[k].hash != SL_EVENT_HASH_DELETED)
            break;
    if (k < me->nq && me->q[k].hash == h_me) {
        sl_rowstate_ack(me, k);
        sl_rowstate_gc(rs);
        it->verdict = SL_VERDICT_ECHO;
        count(&w->c.echo);
        push_seen(w, it, rs);
        return 0;
    }
    /* 2b. a version the site acknowledged before, reported again: a repeated
     * delivery (outputs are at least once) applied after newer ones. The
     * site now holds that old version: it is not a change of the site, and
     * the current version goes back to it unless it is on its way already.
     * (Deletes carry no content and never count as repeats.) */
    if (h_me != SL_EVENT_HASH_DELETED) {
        for (k = me->nacked; k-- > 0;)
            if (me->acked[k].hash == h_me)
                break;
        if (k < me->nacked) {
            me->held = me->acked[k].v;
            it->verdict = SL_VERDICT_ECHO;
            count(&w->c.echo);
            if (rs->v > 0 && sl_rowstate_will_hold(me) != rs->v)
                send_current_to_origin(w, it, rs);
            sl_rowstate_gc(rs);
            push_seen(w, it, rs);
            return 0;
        }
    }

    sl_pool_reset(&w->arena);
    ctx.ev = ev;
    ctx.origin.p = origin;
    ctx.origin.len = strlen(origin);
    ctx.arena = &w->arena;
    ctx.last_row = NULL;
    if (in_del && rs->v > 0 && !rs->deleted && rs->row) {
        sl_error e;

        if (sl_json_parse(&w->imgj, rs->row, strlen(rs->row), &e) == 0)
            ctx.last_row = &w->imgj;
    }
    sl_error_clear(&why);
    /* 3. filters and routes */
    if (t->where) {
        if (sl_eval_pred(t->where, &ctx, &pass, &why) != 0) {
            dead_letter(w, it, &why);
            push_seen(w, it, rs);
            return 0;
        }
        if (!pass) {
            it->verdict = SL_VERDICT_FILTERED;
            count(&w->c.filtered);
            push_seen(w, it, rs);
            return 0;
        }
    }
    if (route(w, it, &ctx, &dests, &why) != 0) {
        dead_letter(w, it, &why);
        push_seen(w, it, rs);
        return 0;
    }
    it->dests = dests;
    h_full = in_hash(w, it, NULL);
    /* 4. the site already holds the consolidated content */
    if (rs->v > 0 && me->nq == 0 && h_full == rs->hash) {
        me->held = rs->v;
        sl_rowstate_gc(rs);
        it->verdict = SL_VERDICT_SAME;
        count(&w->c.same);
        push_seen(w, it, rs);
        return 0;
    }
    /* 5. conflict: the site changed a row whose current version it had not seen */
    conflict = rs->v > 0 && me->held != rs->v;
    if (t->conflict.detect_before && rs->v > 0 && ev->has_before) {
        /* `detect conflicts by before`: a full before image says what the
         * site changed from; it conflicts when that is not the consolidated
         * row. A before with other columns than that row (key-only replica
         * identity) says nothing: the version rule stands. */
        size_t nb, ni = 0;
        uint64_t hb = sl_event_before_hash(ev, &nb, &w->hscratch);

        if (!rs->deleted && rs->row) {
            sl_error e;

            if (sl_json_parse(&w->imgj, rs->row, strlen(rs->row), &e) == 0)
                ni = w->imgj.tok[0].count;
        }
        if (rs->deleted)
            conflict = true;
        else if (ni > 0 && nb == ni)
            conflict = hb != rs->hash;
    }
    if (conflict && rs->deleted && w->tombstone_ms > 0 && in_ts - rs->ts > w->tombstone_ms)
        conflict = false; /* the tombstone expired: a new row */
    sl_buf_reset(&w->merged);
    sl_buf_reset(&w->reason);
    /* w->img holds the change's row image since h_full (in_hash) */
    if (conflict) {
        sl_side base = {NULL, 0, NULL}, cur = {rs->deleted ? NULL : rs->row, rs->ts, rs->writer};
        sl_side in = {in_del ? NULL : w->img.data, in_ts, origin};
        const char *brow = NULL;
        sl_lua_ctx lctx;
        sl_lua *L = NULL;
        char rule[256];

        memset(&lctx, 0, sizeof(lctx));

        if (me->held > 0 && sl_rowstate_image(rs, me->held, &brow) == 1)
            base.row = brow;
        else if (me->held == SL_HELD_OWN)
            base.row = me->own; /* its own content, which lost or was merged */
        if (t->conflict.kind == SL_CONFLICT_LUA && !in_del && !rs->deleted) {
            L = lua_for(w, p, &w->reason);
            snprintf(rule, sizeof(rule), "%s:%d:%d",
                     t->conflict.loc.file ? t->conflict.loc.file : "?", t->conflict.loc.line,
                     t->conflict.loc.col);
            lctx.table = it->qname.data;
            lctx.key.p = it->key.data;
            lctx.key.len = it->key.len;
            lctx.incoming_site = origin;
            lctx.current_site = rs->writer;
            lctx.incoming_ts = in_ts;
            lctx.current_ts = rs->ts;
            lctx.incoming_op = ev->op;
            lctx.rule = rule;
        }
        if (L == NULL && w->reason.len) {
            oc = SL_RES_MANUAL;
        } else {
            oc = sl_resolve(p, t, &base, &cur, &in, L, &lctx, &w->merged, &w->reason);
        }
        if (oc == SL_RES_MERGED && w->merged.len) {
            /* a merge that reproduces one side is that side */
            sl_json mj;
            sl_error e;

            sl_json_init(&mj);
            if (sl_json_parse(&mj, w->merged.data, w->merged.len, &e) == 0) {
                uint64_t mh = sl_image_hash(&mj, NULL, &w->hscratch);

                if (mh == h_full)
                    oc = SL_RES_INCOMING;
                else if (!rs->deleted && mh == rs->hash)
                    oc = SL_RES_CURRENT;
            } else {
                oc = SL_RES_MANUAL;
                sl_buf_reset(&w->reason);
                sl_buf_printf(&w->reason, "the merge produced invalid JSON: %s", e.msg);
            }
            sl_json_free(&mj);
        }
        {
            const char *cur_row = rs->deleted ? NULL : rs->row;
            int64_t rv = oc == SL_RES_INCOMING || oc == SL_RES_MERGED ? rs->v + 1 : rs->v;
            const char *res = oc == SL_RES_MERGED     ? w->merged.data
                              : oc == SL_RES_INCOMING ? (in_del ? NULL : w->img.data)
                                                      : cur_row;

            record_conflict(w, it, cur_row, base.row, rs->writer, rs->v, rs->ts, oc, rv, res);
        }
    }
    /* 6. the outcome */
    if (oc == SL_RES_CURRENT || oc == SL_RES_MANUAL) {
        /* the current version stays; the site holds its own content until
         * it gets the current version back */
        set_own(me, in_del ? NULL : w->img.data); /* until what is queued to it arrives */
        send_current_to_origin(w, it, rs);
        it->verdict = SL_VERDICT_KEPT;
        count(&w->c.kept);
        sl_rowstate_gc(rs);
        push_seen(w, it, rs);
        return 0;
    }
    {
        bool merged = oc == SL_RES_MERGED;
        sl_str row =
            merged ? (sl_str){w->merged.data, w->merged.len} : (sl_str){w->img.data, w->img.len};
        int64_t ts = merged && rs->ts > in_ts ? rs->ts : in_ts;
        uint64_t hh = h_full;

        if (merged) {
            sl_error e;

            (void)sl_json_parse(&w->imgj, row.p, row.len, &e);
            hh = sl_image_hash(&w->imgj, NULL, &w->hscratch);
        }
        /* no longer the version it held: its image may go with the gc */
        me->held = SL_HELD_OWN;
        sl_rowstate_set_version(rs, rs->v + 1, origin, ts, ev->position, in_del && !merged, row,
                                in_del && !merged ? SL_EVENT_HASH_DELETED : hh);
        /* its own change is what it holds now, even with older versions
         * still on their way (they are followed by this one again); after
         * a merge, its own content until the merge reaches it */
        if (!merged)
            me->held = rs->v;
        else
            set_own(me, in_del ? NULL : w->img.data);
        if (merged || me->nq > 0)
            sl_siteset_add(&dests, it->origin);
        vi.v = rs->v;
        vi.writer = origin;
        vi.pos = ev->position;
        send_version(w, it, rs, &dests, !merged, &vi);
        sl_rowstate_gc(rs);
    }
    it->dests = dests;
    if (siteset_empty(&dests)) {
        it->verdict = SL_VERDICT_UNROUTED;
        count(&w->c.unrouted);
    } else {
        it->verdict = SL_VERDICT_ROUTED;
        count(&w->c.routed);
    }
    push_seen(w, it, rs);
    return 0;
}

int sl_proc_item(sl_proc *w, sl_item *it, sl_error *err)
{
    sl_eval_ctx ctx;
    sl_error why;
    bool pass;
    vinfo vi;

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
    if (w->store != NULL && it->ev.op != 't')
        return proc_stateful(w, it, err);

    /* no store: filter, route, send the change as it is */
    sl_pool_reset(&w->arena);
    ctx.ev = &it->ev;
    ctx.origin.p = it->prog->sites[it->origin].name;
    ctx.origin.len = strlen(ctx.origin.p);
    ctx.arena = &w->arena;
    ctx.last_row = NULL;
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
    if (siteset_empty(&it->dests)) {
        it->verdict = SL_VERDICT_UNROUTED;
        count(&w->c.unrouted);
        return 0;
    }
    it->verdict = SL_VERDICT_ROUTED;
    count(&w->c.routed);
    vi.v = 0;
    vi.writer = NULL;
    vi.pos = it->ev.position;
    emit(w, it, &it->dests, NULL, 0, &vi);
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
    sl_buf_free(&s->cbytes);
    free(s->rows);
    free(s->conflicts);
    memset(s, 0, sizeof(*s));
}

static sl_str cstr(const sl_buf *b, const conf_desc *d, int f)
{
    sl_str s = {b->data ? b->data + d->off[f] : "", d->len[f]};

    return s;
}

void sl_proc_reset(sl_proc *w, sl_seen_set *out)
{
    size_t i;

    if (out != NULL)
        push_docs(w);
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
        if (w->nseen) {
            out->rows = sl_xmalloc(w->nseen * sizeof(*out->rows));
            out->n = w->nseen;
            /* the rows point into the bytes, which move with the set */
            out->bytes = w->seenb;
            memset(&w->seenb, 0, sizeof(w->seenb));
            /* the next batch needs about as much: grow once, not by doubling */
            sl_buf_reserve(&w->seenb, out->bytes.len);
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
                r->doc.p = out->bytes.data + d->doc;
                r->doc.len = d->doc_len;
            }
        }
        if (w->nconfs) {
            out->conflicts = sl_xcalloc(w->nconfs, sizeof(*out->conflicts));
            out->nconflicts = w->nconfs;
            out->cbytes = w->confb;
            memset(&w->confb, 0, sizeof(w->confb));
            sl_buf_reserve(&w->confb, out->cbytes.len);
            for (i = 0; i < w->nconfs; i++) {
                const conf_desc *d = &w->confs[i];
                sl_conflict_rec *c = &out->conflicts[i];
                const sl_buf *b = &out->cbytes;

                c->id = cstr(b, d, CF_ID);
                c->table = cstr(b, d, CF_TABLE);
                c->key = cstr(b, d, CF_KEY);
                c->site_incoming = cstr(b, d, CF_SITE_IN);
                c->site_current = cstr(b, d, CF_SITE_CUR);
                c->base = cstr(b, d, CF_BASE);
                c->current = cstr(b, d, CF_CURRENT);
                c->incoming = cstr(b, d, CF_INCOMING);
                c->result = cstr(b, d, CF_RESULT);
                c->rule = cstr(b, d, CF_RULE);
                c->strategy = cstr(b, d, CF_STRATEGY);
                c->status = cstr(b, d, CF_STATUS);
                c->reason = cstr(b, d, CF_REASON);
                c->position = cstr(b, d, CF_POSITION);
                c->v_current = d->v_current;
                c->v_result = d->v_result;
                c->ts_incoming = d->ts_in;
                c->ts_current = d->ts_cur;
                c->detected_ms = d->detected_ms;
                c->decided_ms = d->decided_ms;
            }
        }
    }
    w->nseen = 0;
    sl_buf_reset(&w->seenb);
    w->nconfs = 0;
    sl_buf_reset(&w->confb);
    w->nouts = 0;
    w->nhdrs = 0;
    sl_buf_reset(&w->out);
}

void sl_proc_prefetch(sl_proc *w, const sl_item *it, bool entry)
{
    const rentry *e;

    if (w->store == NULL)
        return;
    if (!entry) {
        __builtin_prefetch(&w->cache[cache_slot(it->hash)]);
        if (w->capknown)
            __builtin_prefetch(&w->known[known_slot(w, it->hash | 1)]);
        return;
    }
    e = w->cache[cache_slot(it->hash)];
    if (e)
        __builtin_prefetch(e);
}

void sl_proc_set_evict_hook(sl_proc *w, void (*hook)(void *arg), void *arg)
{
    w->evict_hook = hook;
    w->evict_arg = arg;
}
