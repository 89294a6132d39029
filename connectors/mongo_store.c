/*
 * mongo_store.c - the metadata store in MongoDB, through libmongoc 1.23.
 *
 * One mongoc_client_t per session (sessions are per thread, so no pool).
 * Collections (docs/store.md):
 *   rows      {_id: "<tbl>\x1f<key>", t, k, doc, u}
 *   conflicts {_id: id, t, k, si, sc, vc, vr, base, current, incoming, result, rule,
 *              strategy, status, reason, pos, tsi, tsc, det, dec}
 *   progress  {_id: "<origin>\x1f<part>", o, p, pos, n, u}
 *   inputs    {_id: input, fp, done, u}
 * Positions are bytes in memcmp order; they are stored as lowercase hex,
 * whose string order is the same, so $max on them is right.
 *
 * Nothing here relies on transactions (the test server has none, and a
 * deployment need not run a replica set): every write is a single-document
 * upsert that can be repeated, so a batch cut short by a crash is simply
 * written again when its changes are processed again.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "progress.h"
#include "store.h"

#define DEFAULT_DB         "sluice"
#define DEFAULT_TIMEOUT_MS 5000
#define SEP                '\x1f' /* between the parts of an _id: no table, key or site has it */
#define SEP_NEXT           '\x20' /* the byte after SEP: ends a prefix range */

typedef struct mg_store {
    mongoc_uri_t *uri;
    char *db;
    char *where; /* "host:port,..." for messages (no credentials) */
} mg_store;

typedef struct mg_sess {
    mg_store *st;
    mongoc_client_t *client;
    mongoc_collection_t *rows, *conflicts, *progress, *inputs;
    uint64_t trips; /* commands sent, counted by the command-started monitor */
    sl_buf id;      /* scratch: an _id being built */
    sl_buf hex;     /* scratch: positions in hex, or decoded */
} mg_sess;

static pthread_once_t mg_once = PTHREAD_ONCE_INIT;

/* libmongoc's default log handler writes to stderr; library code never
 * prints, and every failure reaches the caller through a bson_error_t. */
static void mg_log_quiet(mongoc_log_level_t level, const char *domain, const char *msg, void *arg)
{
}

/* libmongoc keeps counters in a shared-memory file named after the process
 * (/dev/shm/mongoc-PID), made when the library is initialised (by the
 * library itself before main, in Debian's build) and removed only by
 * mongoc_cleanup. A process killed with -9 leaves it behind, and a later
 * process given the same pid finds it and prints "Falling back to malloc
 * for counters" on stderr. The counters stay mapped; only the name goes,
 * as soon as the process starts. */
void sl_store_forget_shm(void)
{
    char name[32];

    snprintf(name, sizeof(name), "/mongoc-%u", (unsigned)getpid());
    (void)shm_unlink(name);
}

static void mg_init(void)
{
    mongoc_init();
    mongoc_log_set_handler(mg_log_quiet, NULL);
    sl_store_forget_shm(); /* when the library waited for mongoc_init */
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int mg_fail(const mg_store *st, sl_error *err, const char *what, const bson_error_t *e)
{
    if (e->domain == MONGOC_ERROR_SERVER_SELECTION)
        return sl_error_set(err, SL_ERR_STORE, "mongodb store: %s: cannot reach MongoDB at %s: %s",
                            what, st->where, e->message);
    return sl_error_set(err, SL_ERR_STORE, "mongodb store (%s): %s: %s", st->where, what,
                        e->message);
}

/* ---- bson helpers --------------------------------------------------------- */

static void put_str(bson_t *b, const char *name, sl_str s)
{
    bson_append_utf8(b, name, -1, s.p ? s.p : "", (int)s.len);
}

static void put_cstr(bson_t *b, const char *name, const char *s)
{
    bson_append_utf8(b, name, -1, s, -1);
}

static sl_str iter_str(const bson_iter_t *it)
{
    sl_str s = {"", 0};
    uint32_t n = 0;

    if (BSON_ITER_HOLDS_UTF8(it)) {
        s.p = bson_iter_utf8(it, &n);
        s.len = n;
    }
    return s;
}

/* A state document: binary (schema version 3), or a string (version 2). */
static sl_str iter_doc(const bson_iter_t *it)
{
    sl_str s = {"", 0};
    uint32_t n = 0;
    const uint8_t *p = NULL;
    bson_subtype_t sub;

    if (BSON_ITER_HOLDS_BINARY(it)) {
        bson_iter_binary(it, &sub, &n, &p);
        s.p = p ? (const char *)p : "";
        s.len = n;
        return s;
    }
    return iter_str(it);
}

static int64_t iter_i64(const bson_iter_t *it)
{
    return BSON_ITER_HOLDS_NUMBER(it) ? bson_iter_as_int64(it) : 0;
}

/* "<a>\x1f<b>" in s->id; returns it as a string of known length. */
static sl_str make_id(mg_sess *s, sl_str a, sl_str b)
{
    sl_str id;

    sl_buf_reset(&s->id);
    sl_buf_append(&s->id, a.p ? a.p : "", a.len);
    sl_buf_putc(&s->id, SEP);
    sl_buf_append(&s->id, b.p ? b.p : "", b.len);
    id.p = s->id.data;
    id.len = s->id.len;
    return id;
}

static void hex_put(sl_buf *b, sl_str pos)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    sl_buf_reserve(b, pos.len * 2);
    for (i = 0; i < pos.len; i++) {
        unsigned char c = (unsigned char)pos.p[i];

        b->data[b->len++] = digits[c >> 4];
        b->data[b->len++] = digits[c & 15];
    }
    b->data[b->len] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode hex into b (replacing its contents; NUL-terminated). A stored
 * value that is not hex (written by hand) is passed through as it is. */
static sl_str hex_get(sl_buf *b, sl_str hex)
{
    size_t i;
    sl_str out;

    sl_buf_reset(b);
    for (i = 0; i + 1 < hex.len; i += 2) {
        int hi = hex_val(hex.p[i]), lo = hex_val(hex.p[i + 1]);

        if (hi < 0 || lo < 0)
            break;
        sl_buf_putc(b, (char)(hi << 4 | lo));
    }
    if (i != hex.len) {
        sl_buf_reset(b);
        sl_buf_append(b, hex.p, hex.len);
    }
    sl_buf_reserve(b, 0); /* a NUL even when empty */
    b->data[b->len] = '\0';
    out.p = b->data;
    out.len = b->len;
    return out;
}

/* ---- sessions ------------------------------------------------------------- */

static void on_command_started(const mongoc_apm_command_started_t *ev)
{
    mg_sess *s = mongoc_apm_command_started_get_context(ev);

    s->trips++;
}

static void sess_close(void *p)
{
    mg_sess *s = p;

    if (s == NULL)
        return;
    if (s->rows)
        mongoc_collection_destroy(s->rows);
    if (s->conflicts)
        mongoc_collection_destroy(s->conflicts);
    if (s->progress)
        mongoc_collection_destroy(s->progress);
    if (s->inputs)
        mongoc_collection_destroy(s->inputs);
    if (s->client)
        mongoc_client_destroy(s->client);
    sl_buf_free(&s->id);
    sl_buf_free(&s->hex);
    free(s);
}

static mongoc_client_t *client_new(mg_store *st, sl_error *err)
{
    bson_error_t e = {0};
    mongoc_client_t *c = mongoc_client_new_from_uri_with_error(st->uri, &e);

    if (c == NULL) {
        mg_fail(st, err, "create client", &e);
        return NULL;
    }
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    return c;
}

static void *sess_open(void *self, sl_error *err)
{
    mg_store *st = self;
    mg_sess *s = sl_xcalloc(1, sizeof(*s));
    mongoc_apm_callbacks_t *cbs;

    s->st = st;
    s->client = client_new(st, err);
    if (s->client == NULL) {
        sess_close(s);
        return NULL;
    }
    cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(cbs, on_command_started);
    mongoc_client_set_apm_callbacks(s->client, cbs, s); /* the client copies them */
    mongoc_apm_callbacks_destroy(cbs);
    s->rows = mongoc_client_get_collection(s->client, st->db, "rows");
    s->conflicts = mongoc_client_get_collection(s->client, st->db, "conflicts");
    s->progress = mongoc_client_get_collection(s->client, st->db, "progress");
    s->inputs = mongoc_client_get_collection(s->client, st->db, "inputs");
    return s;
}

static uint64_t round_trips(void *p)
{
    mg_sess *s = p;

    return s->trips;
}

/* ---- rows ----------------------------------------------------------------- */

static int row_get(void *p, sl_str table, sl_str key, sl_buf *doc, sl_error *err)
{
    mg_sess *s = p;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t e = {0};
    bson_iter_t it;
    int rc = 0;

    put_str(&filter, "_id", make_id(s, table, key));
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "doc", 1);
    bson_append_document_end(&opts, &proj);
    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_BOOL(&opts, "singleBatch", true);
    cur = mongoc_collection_find_with_opts(s->rows, &filter, &opts, NULL);
    if (mongoc_cursor_next(cur, &d)) {
        sl_str v = {"", 0};

        if (bson_iter_init_find(&it, d, "doc"))
            v = iter_doc(&it);
        sl_buf_reset(doc);
        sl_buf_append(doc, v.p, v.len);
        rc = 1;
    } else if (mongoc_cursor_error(cur, &e)) {
        rc = mg_fail(s->st, err, "read rows", &e);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* rows_get: the ids asked for, sorted, to find each answer's index. */
typedef struct id_ix {
    char *id;
    size_t len, i;
} id_ix;

static int id_cmp(const void *a, const void *b)
{
    const id_ix *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->id, y->id, m);

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* One find with _id $in [...] for a batch's rows (a restarted process's
 * first look at each row costs a round trip per batch, not per row). */
static int rows_get(void *p, const sl_str *tables, const sl_str *keys, size_t n,
                    void (*fn)(void *arg, size_t i, sl_str doc), void *arg, sl_error *err)
{
    mg_sess *s = p;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sub, arr, proj;
    mongoc_cursor_t *cur = NULL;
    const bson_t *d;
    bson_error_t e = {0};
    id_ix *ix = sl_xcalloc(n ? n : 1, sizeof(*ix));
    char num[24];
    size_t i;
    int rc = 0;

    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &arr);
    for (i = 0; i < n; i++) {
        sl_str id = make_id(s, tables[i], keys[i]);

        ix[i].id = sl_xstrndup(id.p, id.len);
        ix[i].len = id.len;
        ix[i].i = i;
        snprintf(num, sizeof(num), "%zu", i);
        bson_append_utf8(&arr, num, -1, id.p, (int)id.len);
    }
    bson_append_array_end(&sub, &arr);
    bson_append_document_end(&filter, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "doc", 1);
    bson_append_document_end(&opts, &proj);
    BSON_APPEND_INT64(&opts, "batchSize", (int64_t)(n ? n : 1)); /* all in the first reply */
    qsort(ix, n, sizeof(*ix), id_cmp);
    cur = mongoc_collection_find_with_opts(s->rows, &filter, &opts, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        bson_iter_t it;
        sl_str id = {"", 0}, doc = {"", 0};
        id_ix want, *hit;

        if (bson_iter_init_find(&it, d, "_id"))
            id = iter_str(&it);
        if (bson_iter_init_find(&it, d, "doc"))
            doc = iter_doc(&it);
        want.id = (char *)id.p;
        want.len = id.len;
        hit = bsearch(&want, ix, n, sizeof(*ix), id_cmp);
        if (hit)
            fn(arg, hit->i, doc);
    }
    if (mongoc_cursor_error(cur, &e))
        rc = mg_fail(s->st, err, "read rows", &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    for (i = 0; i < n; i++)
        free(ix[i].id);
    free(ix);
    return rc;
}

static int rows_each(void *p, const char *table,
                     int (*fn)(void *arg, sl_str table, sl_str key, sl_str doc), void *arg,
                     sl_error *err)
{
    mg_sess *s = p;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sub;
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t e = {0};
    bson_iter_t it;
    int rc = 0;

    /* One table is the _id range ["<tbl>\x1f", "<tbl>\x20"): the primary
     * index serves it in key order, no other index needed. */
    if (table) {
        size_t n = strlen(table);
        sl_buf b = SL_BUF_INIT;

        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &sub);
        sl_buf_append(&b, table, n);
        sl_buf_putc(&b, SEP);
        bson_append_utf8(&sub, "$gte", -1, b.data, (int)b.len);
        b.data[n] = SEP_NEXT;
        bson_append_utf8(&sub, "$lt", -1, b.data, (int)b.len);
        bson_append_document_end(&filter, &sub);
        sl_buf_free(&b);
    }
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sub);
    BSON_APPEND_INT32(&sub, "_id", 1);
    bson_append_document_end(&opts, &sub);
    cur = mongoc_collection_find_with_opts(s->rows, &filter, &opts, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        sl_str t = {"", 0}, k = {"", 0}, doc = {"", 0};

        if (!bson_iter_init(&it, d))
            continue;
        while (bson_iter_next(&it)) {
            const char *name = bson_iter_key(&it);

            if (strcmp(name, "t") == 0)
                t = iter_str(&it);
            else if (strcmp(name, "k") == 0)
                k = iter_str(&it);
            else if (strcmp(name, "doc") == 0)
                doc = iter_doc(&it);
        }
        if (fn(arg, t, k, doc) != 0)
            goto out;
    }
    if (mongoc_cursor_error(cur, &e))
        rc = mg_fail(s->st, err, "read rows", &e);
out:
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* ---- batches -------------------------------------------------------------- */

static mongoc_bulk_operation_t *bulk_new(mongoc_collection_t *c)
{
    bson_t opts = BSON_INITIALIZER;
    mongoc_bulk_operation_t *b;

    BSON_APPEND_BOOL(&opts, "ordered", true);
    b = mongoc_collection_create_bulk_operation_with_opts(c, &opts);
    bson_destroy(&opts);
    return b;
}

/* Only the call's success counts: the test server's counts are unreliable
 * after an error, and a success means every operation was applied. */
static int bulk_run(mg_sess *s, mongoc_bulk_operation_t *b, const char *what, sl_error *err)
{
    bson_t reply;
    bson_error_t e = {0};
    int rc = 0;

    if (mongoc_bulk_operation_execute(b, &reply, &e) == 0)
        rc = mg_fail(s->st, err, what, &e);
    bson_destroy(&reply);
    return rc;
}

static void conflict_doc(mg_sess *s, bson_t *d, const sl_conflict_rec *c)
{
    put_str(d, "t", c->table);
    put_str(d, "k", c->key);
    put_str(d, "si", c->site_incoming);
    put_str(d, "sc", c->site_current);
    BSON_APPEND_INT64(d, "vc", c->v_current);
    BSON_APPEND_INT64(d, "vr", c->v_result);
    put_str(d, "base", c->base);
    put_str(d, "current", c->current);
    put_str(d, "incoming", c->incoming);
    put_str(d, "result", c->result);
    put_str(d, "rule", c->rule);
    put_str(d, "strategy", c->strategy);
    put_str(d, "status", c->status);
    put_str(d, "reason", c->reason);
    sl_buf_reset(&s->hex);
    hex_put(&s->hex, c->position);
    bson_append_utf8(d, "pos", -1, s->hex.data ? s->hex.data : "", (int)s->hex.len);
    BSON_APPEND_INT64(d, "tsi", c->ts_incoming);
    BSON_APPEND_INT64(d, "tsc", c->ts_current);
    BSON_APPEND_INT64(d, "det", c->detected_ms);
    BSON_APPEND_INT64(d, "dec", c->decided_ms);
}

static int put_rows(mg_sess *s, const sl_seen *rows, size_t n, int64_t now, sl_error *err)
{
    mongoc_bulk_operation_t *b = NULL;
    bson_t upsert = BSON_INITIALIZER;
    bson_error_t e = {0};
    size_t i;
    int rc = -1;

    BSON_APPEND_BOOL(&upsert, "upsert", true);
    for (i = 0; i < n; i++) {
        const sl_seen *r = &rows[i];
        bson_t sel = BSON_INITIALIZER, d = BSON_INITIALIZER;
        bool ok;

        if (r->doc.len == 0)
            continue; /* progress only */
        if (b == NULL)
            b = bulk_new(s->rows);
        put_str(&sel, "_id", make_id(s, r->table, r->key));
        put_str(&d, "t", r->table);
        put_str(&d, "k", r->key);
        bson_append_binary(&d, "doc", -1, BSON_SUBTYPE_BINARY, (const uint8_t *)r->doc.p,
                           (uint32_t)r->doc.len);
        BSON_APPEND_INT64(&d, "u", now);
        ok = mongoc_bulk_operation_replace_one_with_opts(b, &sel, &d, &upsert, &e);
        bson_destroy(&sel);
        bson_destroy(&d);
        if (!ok) {
            mg_fail(s->st, err, "write rows", &e);
            goto out;
        }
    }
    rc = b ? bulk_run(s, b, "write rows", err) : 0;
out:
    if (b)
        mongoc_bulk_operation_destroy(b);
    bson_destroy(&upsert);
    return rc;
}

static int put_conflicts(mg_sess *s, const sl_conflict_rec *c, size_t n, sl_error *err)
{
    mongoc_bulk_operation_t *b;
    bson_t upsert = BSON_INITIALIZER;
    bson_error_t e = {0};
    size_t i;
    int rc = -1;

    if (n == 0)
        return 0;
    b = bulk_new(s->conflicts);
    BSON_APPEND_BOOL(&upsert, "upsert", true);
    for (i = 0; i < n; i++) {
        bson_t sel = BSON_INITIALIZER, d = BSON_INITIALIZER;
        bool ok;

        put_str(&sel, "_id", c[i].id);
        conflict_doc(s, &d, &c[i]);
        ok = mongoc_bulk_operation_replace_one_with_opts(b, &sel, &d, &upsert, &e);
        bson_destroy(&sel);
        bson_destroy(&d);
        if (!ok) {
            mg_fail(s->st, err, "write conflicts", &e);
            goto out;
        }
    }
    rc = bulk_run(s, b, "write conflicts", err);
out:
    mongoc_bulk_operation_destroy(b);
    bson_destroy(&upsert);
    return rc;
}

static int put_progress(mg_sess *s, const sl_prog_acc *acc, size_t n, int64_t now, sl_error *err)
{
    mongoc_bulk_operation_t *b;
    bson_t upsert = BSON_INITIALIZER;
    bson_error_t e = {0};
    size_t i;
    int rc = -1;

    if (n == 0)
        return 0;
    b = bulk_new(s->progress);
    BSON_APPEND_BOOL(&upsert, "upsert", true);
    for (i = 0; i < n; i++) {
        bson_t sel = BSON_INITIALIZER, up = BSON_INITIALIZER, sub;
        bool ok;

        put_str(&sel, "_id", make_id(s, acc[i].origin, acc[i].part));
        sl_buf_reset(&s->hex);
        hex_put(&s->hex, acc[i].pos);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$max", &sub);
        bson_append_utf8(&sub, "pos", -1, s->hex.data, (int)s->hex.len);
        bson_append_document_end(&up, &sub);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$inc", &sub);
        BSON_APPEND_INT64(&sub, "n", acc[i].events);
        bson_append_document_end(&up, &sub);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &sub);
        put_str(&sub, "o", acc[i].origin);
        put_str(&sub, "p", acc[i].part);
        BSON_APPEND_INT64(&sub, "u", now);
        bson_append_document_end(&up, &sub);
        ok = mongoc_bulk_operation_update_one_with_opts(b, &sel, &up, &upsert, &e);
        bson_destroy(&sel);
        bson_destroy(&up);
        if (!ok) {
            mg_fail(s->st, err, "write progress", &e);
            goto out;
        }
    }
    rc = bulk_run(s, b, "write progress", err);
out:
    mongoc_bulk_operation_destroy(b);
    bson_destroy(&upsert);
    return rc;
}

/* Rows first, then conflicts, then progress: progress is what `status`
 * shows, so it never runs ahead of the state it stands for. */
static int seen_put(void *p, const sl_seen *rows, size_t n, const sl_conflict_rec *conflicts,
                    size_t nconflicts, sl_error *err)
{
    mg_sess *s = p;
    sl_prog_acc *acc;
    size_t nacc;
    int64_t now = now_ms();
    int rc = -1;

    if (n == 0 && nconflicts == 0)
        return 0;
    acc = sl_xmalloc((n ? n : 1) * sizeof(*acc));
    nacc = sl_progress_aggregate(rows, n, acc);
    if (put_rows(s, rows, n, now, err) != 0 || put_conflicts(s, conflicts, nconflicts, err) != 0 ||
        put_progress(s, acc, nacc, now, err) != 0)
        goto out;
    rc = 0;
out:
    free(acc);
    return rc;
}

/* ---- conflicts ------------------------------------------------------------ */

/* Where each field of a conflict document goes in sl_conflict_rec. */
typedef struct field_at {
    const char *name;
    size_t off;
} field_at;

static const field_at conflict_strs[] = {
    {"_id", offsetof(sl_conflict_rec, id)},
    {"t", offsetof(sl_conflict_rec, table)},
    {"k", offsetof(sl_conflict_rec, key)},
    {"si", offsetof(sl_conflict_rec, site_incoming)},
    {"sc", offsetof(sl_conflict_rec, site_current)},
    {"base", offsetof(sl_conflict_rec, base)},
    {"current", offsetof(sl_conflict_rec, current)},
    {"incoming", offsetof(sl_conflict_rec, incoming)},
    {"result", offsetof(sl_conflict_rec, result)},
    {"rule", offsetof(sl_conflict_rec, rule)},
    {"strategy", offsetof(sl_conflict_rec, strategy)},
    {"status", offsetof(sl_conflict_rec, status)},
    {"reason", offsetof(sl_conflict_rec, reason)},
};

static const field_at conflict_ints[] = {
    {"vc", offsetof(sl_conflict_rec, v_current)},    {"vr", offsetof(sl_conflict_rec, v_result)},
    {"tsi", offsetof(sl_conflict_rec, ts_incoming)}, {"tsc", offsetof(sl_conflict_rec, ts_current)},
    {"det", offsetof(sl_conflict_rec, detected_ms)}, {"dec", offsetof(sl_conflict_rec, decided_ms)},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* c points into d, and its position into pos. */
static void conflict_read(const bson_t *d, sl_conflict_rec *c, sl_buf *pos)
{
    bson_iter_t it;
    size_t i;

    memset(c, 0, sizeof(*c));
    for (i = 0; i < NELEM(conflict_strs); i++)
        *(sl_str *)((char *)c + conflict_strs[i].off) = (sl_str){"", 0};
    c->position = (sl_str){"", 0};
    if (!bson_iter_init(&it, d))
        return;
    while (bson_iter_next(&it)) {
        const char *name = bson_iter_key(&it);

        if (strcmp(name, "pos") == 0) {
            c->position = hex_get(pos, iter_str(&it));
            continue;
        }
        for (i = 0; i < NELEM(conflict_strs); i++)
            if (strcmp(name, conflict_strs[i].name) == 0)
                *(sl_str *)((char *)c + conflict_strs[i].off) = iter_str(&it);
        for (i = 0; i < NELEM(conflict_ints); i++)
            if (strcmp(name, conflict_ints[i].name) == 0)
                *(int64_t *)((char *)c + conflict_ints[i].off) = iter_i64(&it);
    }
}

static int conflicts_each(void *p, const sl_conflict_filter *f, size_t limit,
                          int (*fn)(void *arg, const sl_conflict_rec *c), void *arg, sl_error *err)
{
    mg_sess *s = p;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sub, arr, el;
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t e = {0};
    sl_conflict_rec c;
    sl_buf pos = SL_BUF_INIT; /* its own: the callback may use the session */
    int rc = 0;

    if (f && f->table)
        put_cstr(&filter, "t", f->table);
    if (f && f->key)
        put_cstr(&filter, "k", f->key);
    if (f && f->status)
        put_cstr(&filter, "status", f->status);
    if (f && f->site) {
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &el);
        put_cstr(&el, "si", f->site);
        bson_append_document_end(&arr, &el);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &el);
        put_cstr(&el, "sc", f->site);
        bson_append_document_end(&arr, &el);
        bson_append_array_end(&filter, &arr);
    }
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sub);
    BSON_APPEND_INT32(&sub, "det", -1);
    BSON_APPEND_INT32(&sub, "_id", 1);
    bson_append_document_end(&opts, &sub);
    if (limit)
        BSON_APPEND_INT64(&opts, "limit", (int64_t)limit);
    cur = mongoc_collection_find_with_opts(s->conflicts, &filter, &opts, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        conflict_read(d, &c, &pos);
        if (fn(arg, &c) != 0)
            goto out;
    }
    if (mongoc_cursor_error(cur, &e))
        rc = mg_fail(s->st, err, "read conflicts", &e);
out:
    sl_buf_free(&pos);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

static int conflict_decide(void *p, sl_str id, sl_str status, sl_str result, sl_error *err)
{
    mg_sess *s = p;
    bson_t sel = BSON_INITIALIZER, up = BSON_INITIALIZER, sub, reply;
    bson_error_t e = {0};
    bson_iter_t it;
    int rc;

    put_str(&sel, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &sub);
    put_str(&sub, "status", status);
    put_str(&sub, "result", result);
    BSON_APPEND_INT64(&sub, "dec", now_ms());
    bson_append_document_end(&up, &sub);
    if (!mongoc_collection_update_one(s->conflicts, &sel, &up, NULL, &reply, &e))
        rc = mg_fail(s->st, err, "decide conflict", &e);
    else
        rc = bson_iter_init_find(&it, &reply, "matchedCount") && iter_i64(&it) > 0;
    bson_destroy(&reply);
    bson_destroy(&sel);
    bson_destroy(&up);
    return rc;
}

/* ---- inputs and progress -------------------------------------------------- */

static int input_get(void *p, const char *input, uint64_t fp, int64_t *done, sl_error *err)
{
    mg_sess *s = p;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t e = {0};
    bson_iter_t it;
    int rc = 0;

    *done = 0;
    put_cstr(&filter, "_id", input);
    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_BOOL(&opts, "singleBatch", true);
    cur = mongoc_collection_find_with_opts(s->inputs, &filter, &opts, NULL);
    if (mongoc_cursor_next(cur, &d)) {
        /* A different fingerprint means the input was replaced: start over. */
        if (bson_iter_init_find(&it, d, "fp") && (uint64_t)iter_i64(&it) == fp &&
            bson_iter_init_find(&it, d, "done"))
            *done = iter_i64(&it);
    } else if (mongoc_cursor_error(cur, &e)) {
        rc = mg_fail(s->st, err, "read inputs", &e);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

static int input_put(void *p, const char *input, uint64_t fp, int64_t done, sl_error *err)
{
    mg_sess *s = p;
    bson_t sel = BSON_INITIALIZER, d = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;
    bson_error_t e = {0};
    int rc = 0;

    put_cstr(&sel, "_id", input);
    BSON_APPEND_INT64(&d, "fp", (int64_t)fp);
    BSON_APPEND_INT64(&d, "done", done);
    BSON_APPEND_INT64(&d, "u", now_ms());
    BSON_APPEND_BOOL(&opts, "upsert", true);
    if (!mongoc_collection_replace_one(s->inputs, &sel, &d, &opts, &reply, &e))
        rc = mg_fail(s->st, err, "write inputs", &e);
    bson_destroy(&reply);
    bson_destroy(&sel);
    bson_destroy(&d);
    bson_destroy(&opts);
    return rc;
}

static int progress_each(void *p,
                         int (*fn)(void *arg, const char *origin, const char *partition,
                                   const char *position, int64_t events),
                         void *arg, sl_error *err)
{
    mg_sess *s = p;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sub;
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t e = {0};
    bson_iter_t it;
    sl_buf buf = SL_BUF_INIT; /* its own: the callback may use the session */
    int rc = 0;

    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sub);
    BSON_APPEND_INT32(&sub, "_id", 1);
    bson_append_document_end(&opts, &sub);
    cur = mongoc_collection_find_with_opts(s->progress, &filter, &opts, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        const char *o = "", *part = "";
        sl_str pos = {"", 0};
        int64_t n = 0;

        if (!bson_iter_init(&it, d))
            continue;
        while (bson_iter_next(&it)) {
            const char *name = bson_iter_key(&it);

            /* bson strings are NUL-terminated: o and p can be passed on as they are */
            if (strcmp(name, "o") == 0)
                o = iter_str(&it).p;
            else if (strcmp(name, "p") == 0)
                part = iter_str(&it).p;
            else if (strcmp(name, "pos") == 0)
                pos = hex_get(&buf, iter_str(&it));
            else if (strcmp(name, "n") == 0)
                n = iter_i64(&it);
        }
        if (fn(arg, o, part, pos.p, n) != 0)
            goto out;
    }
    if (mongoc_cursor_error(cur, &e))
        rc = mg_fail(s->st, err, "read progress", &e);
out:
    sl_buf_free(&buf);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* ---- the store ------------------------------------------------------------ */

static void mg_destroy(void *self)
{
    mg_store *st = self;

    if (st == NULL)
        return;
    if (st->uri)
        mongoc_uri_destroy(st->uri);
    free(st->db);
    free(st->where);
    free(st);
}

static const sl_store_ops mongo_ops = {
    .scheme = "mongodb",
    .session_open = sess_open,
    .session_close = sess_close,
    .row_get = row_get,
    .rows_get = rows_get,
    .seen_put = seen_put,
    .conflicts_each = conflicts_each,
    .conflict_decide = conflict_decide,
    .rows_each = rows_each,
    .input_get = input_get,
    .input_put = input_put,
    .progress_each = progress_each,
    .round_trips = round_trips,
    .destroy = mg_destroy,
};

/* "host:port,host:port" (or the SRV name) for messages: never the URI
 * itself, which may hold a password. */
static char *describe_hosts(const mongoc_uri_t *uri)
{
    const mongoc_host_list_t *h;
    sl_buf b = SL_BUF_INIT;

    for (h = mongoc_uri_get_hosts(uri); h; h = h->next) {
        if (b.len)
            sl_buf_putc(&b, ',');
        sl_buf_puts(&b, h->host_and_port);
    }
    if (b.len == 0 && mongoc_uri_get_srv_hostname(uri))
        sl_buf_printf(&b, "%s (SRV)", mongoc_uri_get_srv_hostname(uri));
    if (b.len == 0)
        sl_buf_puts(&b, "?");
    return sl_buf_steal(&b, NULL);
}

/* The indexes the conflict queries use (a real MongoDB uses them; the test
 * server accepts and ignores non-unique ones). createIndexes with the same
 * specification again is a no-op. */
static int create_indexes(mg_store *st, mongoc_client_t *c, sl_error *err)
{
    static const char *const specs[][3] = {
        {"t_k", "t", "k"}, {"si", "si", NULL}, {"sc", "sc", NULL}, {"status_det", "status", "det"}};
    mongoc_database_t *db = mongoc_client_get_database(c, st->db);
    bson_t cmd = BSON_INITIALIZER, arr, idx, key;
    bson_error_t e = {0};
    char n[8];
    size_t i;
    int rc = 0;

    put_cstr(&cmd, "createIndexes", "conflicts");
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
    for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        snprintf(n, sizeof(n), "%zu", i);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, n, &idx);
        BSON_APPEND_DOCUMENT_BEGIN(&idx, "key", &key);
        BSON_APPEND_INT32(&key, specs[i][1], 1);
        if (specs[i][2])
            BSON_APPEND_INT32(&key, specs[i][2], strcmp(specs[i][2], "det") == 0 ? -1 : 1);
        bson_append_document_end(&idx, &key);
        put_cstr(&idx, "name", specs[i][0]);
        bson_append_document_end(&arr, &idx);
    }
    bson_append_array_end(&cmd, &arr);
    if (!mongoc_database_write_command_with_opts(db, &cmd, NULL, NULL, &e))
        rc = mg_fail(st, err, "create indexes on conflicts", &e);
    bson_destroy(&cmd);
    mongoc_database_destroy(db);
    return rc;
}

int sl_mongo_store_open(sl_store *out, const char *uri, sl_error *err);

int sl_mongo_store_open(sl_store *out, const char *uri, sl_error *err)
{
    mg_store *st = sl_xcalloc(1, sizeof(*st));
    mongoc_client_t *c = NULL;
    bson_t ping = BSON_INITIALIZER;
    bson_error_t e = {0};
    const char *db;
    int rc = -1;

    pthread_once(&mg_once, mg_init);
    st->uri = mongoc_uri_new_with_error(uri, &e);
    if (st->uri == NULL) {
        /* the URI is not repeated: it may hold a password */
        sl_error_set(err, SL_ERR_USAGE, "invalid MongoDB URI: %s", e.message);
        goto out;
    }
    /* Fail within seconds, not libmongoc's 30 s, when the server is not there. */
    if (!mongoc_uri_has_option(st->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(st->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       DEFAULT_TIMEOUT_MS);
    if (!mongoc_uri_has_option(st->uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(st->uri, MONGOC_URI_CONNECTTIMEOUTMS, DEFAULT_TIMEOUT_MS);
    if (!mongoc_uri_has_option(st->uri, MONGOC_URI_APPNAME))
        mongoc_uri_set_appname(st->uri, "sluice");
    db = mongoc_uri_get_database(st->uri);
    st->db = sl_xstrdup(db && db[0] ? db : DEFAULT_DB);
    st->where = describe_hosts(st->uri);

    c = client_new(st, err);
    if (c == NULL)
        goto out;
    BSON_APPEND_INT32(&ping, "ping", 1);
    if (!mongoc_client_command_simple(c, "admin", &ping, NULL, NULL, &e)) {
        if (e.domain == MONGOC_ERROR_SERVER_SELECTION)
            sl_error_set(err, SL_ERR_STORE, "cannot reach MongoDB at %s: %s", st->where, e.message);
        else
            mg_fail(st, err, "ping", &e);
        goto out;
    }
    if (create_indexes(st, c, err) != 0)
        goto out;
    out->ops = &mongo_ops;
    out->self = st;
    st = NULL;
    rc = 0;
out:
    if (c)
        mongoc_client_destroy(c);
    bson_destroy(&ping);
    mg_destroy(st);
    return rc;
}
