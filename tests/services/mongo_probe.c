/*
 * mongo_probe: checks that a MongoDB-wire server does what sluice's metadata store
 * needs, through libmongoc 1.23 (Debian's libmongoc-dev), the client the store uses.
 *
 *   mongo_probe URI write  [DB]   drop DB, then exercise every operation; leaves known data
 *   mongo_probe URI verify [DB]   after a server restart: the data `write` left is intact
 *   mongo_probe URI fill   [DB]   insert {_id: i} for i = 0, 1, ... until an insert fails (the
 *                                 server was killed); print each acknowledged i on stdout
 *   mongo_probe URI filled N [DB] after a restart: the N acknowledged inserts are all there
 *                                 (one more may be, whose reply was lost)
 *
 * One line per check: "ok NAME", "FAIL NAME: why", or "info NAME: ..." for features the
 * store must not rely on (transactions); exit status 1 when any check failed, 2 on usage.
 * Built by tests/services/mongo-smoke.sh with cc and pkg-config, not by the main CMake.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#define COLL          "rows"
#define COUNTERS      "counters"
#define INDEX_NAME    "uniq_table_key_site"
#define DUP_KEY       11000
#define N_INSERT      100
#define N_THREADS     4
#define N_PER_THREAD  50
#define EXPECT_ROWS   97 /* what `write` leaves in COLL; see probe_write */
#define EXPECT_SEEN   15
#define EXPECT_SHARED (N_THREADS * N_PER_THREAD)

typedef struct probe {
    mongoc_client_t *client;
    mongoc_collection_t *rows;
    mongoc_collection_t *counters;
    const char *db;
    int failed;
} probe;

static void check(probe *p, bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints one result line; the detail is shown for failures only. */
static void check(probe *p, bool ok, const char *name, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        printf("ok %s\n", name);
    } else {
        p->failed++;
        printf("FAIL %s: ", name);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

static int64_t reply_int(const bson_t *reply, const char *field)
{
    bson_iter_t it;

    if (reply && bson_iter_init_find(&it, reply, field) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return -1;
}

static int64_t doc_int(const bson_t *doc, const char *dotted)
{
    bson_iter_t it, sub;

    if (doc && bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, dotted, &sub) &&
        BSON_ITER_HOLDS_NUMBER(&sub))
        return bson_iter_as_int64(&sub);
    return -1;
}

static bool doc_str_eq(const bson_t *doc, const char *dotted, const char *want)
{
    bson_iter_t it, sub;

    return doc && bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, dotted, &sub) &&
           BSON_ITER_HOLDS_UTF8(&sub) && strcmp(bson_iter_utf8(&sub, NULL), want) == 0;
}

static void row_key(char *buf, size_t len, int i)
{
    snprintf(buf, len, "k%03d", i);
}

/* The selector of the unique compound index: one row's metadata from one site. */
static bson_t *row_selector(int i)
{
    char key[16];

    row_key(key, sizeof key, i);
    return BCON_NEW("table", BCON_UTF8("orders"), "key", BCON_UTF8(key), "site", BCON_UTF8("hub"));
}

/* Fetches one row by its index key; returns a copy the caller destroys, or NULL. */
static bson_t *find_row(probe *p, int i, bson_error_t *err)
{
    bson_t *filter = row_selector(i);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(p->rows, filter, NULL, NULL);
    const bson_t *doc;
    bson_t *out = NULL;

    if (mongoc_cursor_next(cur, &doc))
        out = bson_copy(doc);
    else if (mongoc_cursor_error(cur, err))
        out = NULL;
    else
        bson_set_error(err, 0, 0, "no document for key %d", i);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    return out;
}

static int64_t count_rows(probe *p, const bson_t *filter, bson_error_t *err)
{
    return mongoc_collection_count_documents(p->rows, filter, NULL, NULL, NULL, err);
}

static bool index_is_unique(probe *p, bson_error_t *err)
{
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(p->rows, NULL);
    const bson_t *doc;
    bool found = false;
    bson_iter_t it;

    while (mongoc_cursor_next(cur, &doc)) {
        if (doc_str_eq(doc, "name", INDEX_NAME) && bson_iter_init_find(&it, doc, "unique") &&
            bson_iter_as_bool(&it))
            found = true;
    }
    if (mongoc_cursor_error(cur, err))
        found = false;
    else if (!found)
        bson_set_error(err, 0, 0, "index %s missing or not unique", INDEX_NAME);
    mongoc_cursor_destroy(cur);
    return found;
}

/* A duplicate of an existing (table, key, site) must be refused with E11000. */
static void check_unique_enforced(probe *p, const char *name)
{
    bson_t *doc = row_selector(0);
    bson_error_t err = {0};
    bool ok;

    BCON_APPEND(doc, "ver", BCON_INT64(-1));
    ok = mongoc_collection_insert_one(p->rows, doc, NULL, NULL, &err);
    check(p, !ok && err.code == DUP_KEY, name, "insert of a duplicate %s (code %u: %s)",
          ok ? "succeeded" : "failed with another error", err.code, ok ? "" : err.message);
    bson_destroy(doc);
}

static void probe_ping(probe *p)
{
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t err = {0};
    bool ok = mongoc_client_command_simple(p->client, "admin", cmd, NULL, NULL, &err);

    check(p, ok, "ping", "%s", err.message);
    bson_destroy(cmd);
}

static void probe_create_index(probe *p)
{
    mongoc_database_t *db = mongoc_client_get_database(p->client, p->db);
    bson_error_t err = {0};
    bson_t *cmd;
    bool ok;

    ok = mongoc_database_drop_with_opts(db, NULL, &err) || err.code == 26 /* NamespaceNotFound */;
    check(p, ok, "drop-database", "%s", err.message);

    /* createIndexes is the command every MongoDB since 2.6 documents; one unique compound
     * index (the row identity) and one plain index for time-ordered scans. */
    cmd =
        BCON_NEW("createIndexes", BCON_UTF8(COLL), "indexes", "[", "{", "key", "{", "table",
                 BCON_INT32(1), "key", BCON_INT32(1), "site", BCON_INT32(1), "}", "name",
                 BCON_UTF8(INDEX_NAME), "unique", BCON_BOOL(true), "}", "{", "key", "{", "table",
                 BCON_INT32(1), "ts", BCON_INT32(-1), "}", "name", BCON_UTF8("table_ts"), "}", "]");
    ok = mongoc_database_write_command_with_opts(db, cmd, NULL, NULL, &err);
    check(p, ok, "create-unique-compound-index", "%s", err.message);
    bson_destroy(cmd);

    ok = index_is_unique(p, &err);
    check(p, ok, "list-indexes-unique", "%s", err.message);
    mongoc_database_destroy(db);
}

static void probe_insert_many(probe *p)
{
    bson_t *docs[N_INSERT];
    bson_t reply;
    bson_error_t err = {0};
    bool ok;
    int i;

    for (i = 0; i < N_INSERT; i++) {
        docs[i] = row_selector(i);
        BCON_APPEND(docs[i], "ver", BCON_INT64(i), "ts", BCON_INT64(1000 + i), "state",
                    BCON_UTF8("new"));
    }
    ok =
        mongoc_collection_insert_many(p->rows, (const bson_t **)docs, N_INSERT, NULL, &reply, &err);
    check(p, ok && reply_int(&reply, "insertedCount") == N_INSERT, "insert-many",
          "ok=%d insertedCount=%" PRId64 " %s", ok, reply_int(&reply, "insertedCount"),
          ok ? "" : err.message);
    bson_destroy(&reply);
    for (i = 0; i < N_INSERT; i++)
        bson_destroy(docs[i]);
    check_unique_enforced(p, "unique-index-rejects-duplicate");
}

/* Adds "upsert one row: $set state, $max ver, $setOnInsert ts" to a bulk. */
static bool bulk_upsert(mongoc_bulk_operation_t *bulk, int i, int64_t ver, bson_error_t *err)
{
    bson_t *sel = row_selector(i);
    bson_t *upd = BCON_NEW("$set", "{", "state", BCON_UTF8("seen"), "}", "$max", "{", "ver",
                           BCON_INT64(ver), "}", "$setOnInsert", "{", "ts", BCON_INT64(0), "}");
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    bool ok = mongoc_bulk_operation_update_one_with_opts(bulk, sel, upd, opts, err);

    bson_destroy(sel);
    bson_destroy(upd);
    bson_destroy(opts);
    return ok;
}

static bool bulk_insert(mongoc_bulk_operation_t *bulk, int i, bson_error_t *err)
{
    bson_t *doc = row_selector(i);
    bool ok;

    BCON_APPEND(doc, "ver", BCON_INT64(i), "ts", BCON_INT64(1000 + i), "state", BCON_UTF8("new"));
    ok = mongoc_bulk_operation_insert_with_opts(bulk, doc, NULL, err);
    bson_destroy(doc);
    return ok;
}

static mongoc_bulk_operation_t *new_bulk(probe *p, bool ordered)
{
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(ordered));
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts(p->rows, opts);

    bson_destroy(opts);
    return bulk;
}

static void probe_bulk_upserts(probe *p)
{
    mongoc_bulk_operation_t *bulk = new_bulk(p, true);
    bson_error_t err = {0};
    bson_t reply = BSON_INITIALIZER;
    bson_t *row;
    bool ok = true;
    int i;

    /* 10 existing rows get $set + a higher $max; 5 new rows are upserted. */
    for (i = 0; i < 10 && ok; i++)
        ok = bulk_upsert(bulk, i, 500 + i, &err);
    for (i = 100; i < 105 && ok; i++)
        ok = bulk_upsert(bulk, i, 500 + i, &err);
    ok = ok && mongoc_bulk_operation_execute(bulk, &reply, &err) != 0;
    check(p,
          ok && reply_int(&reply, "nMatched") == 10 && reply_int(&reply, "nModified") == 10 &&
              reply_int(&reply, "nUpserted") == 5,
          "bulk-ordered-upsert-set-max",
          "ok=%d nMatched=%" PRId64 " nModified=%" PRId64 " nUpserted=%" PRId64 " %s", ok,
          reply_int(&reply, "nMatched"), reply_int(&reply, "nModified"),
          reply_int(&reply, "nUpserted"), ok ? "" : err.message);
    bson_destroy(&reply);
    bson_init(&reply);
    mongoc_bulk_operation_destroy(bulk);

    /* $max with a lower value must leave the row alone: stale versions never win. */
    bulk = new_bulk(p, false);
    ok = bulk_upsert(bulk, 0, 1, &err) && mongoc_bulk_operation_execute(bulk, &reply, &err) != 0;
    row = find_row(p, 0, &err);
    check(p,
          ok && reply_int(&reply, "nMatched") == 1 && reply_int(&reply, "nUpserted") == 0 &&
              doc_int(row, "ver") == 500 && doc_int(row, "ts") == 1000,
          "bulk-unordered-max-keeps-higher", "ok=%d ver=%" PRId64 " ts=%" PRId64 " %s", ok,
          doc_int(row, "ver"), doc_int(row, "ts"), ok ? "" : err.message);
    if (row)
        bson_destroy(row);
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);

    row = find_row(p, 102, &err);
    check(p,
          doc_int(row, "ver") == 602 && doc_int(row, "ts") == 0 && doc_str_eq(row, "state", "seen"),
          "upsert-set-on-insert", "ver=%" PRId64 " ts=%" PRId64, doc_int(row, "ver"),
          doc_int(row, "ts"));
    if (row)
        bson_destroy(row);
}

/* Index of the first entry of reply.writeErrors, or -1. */
static int64_t first_write_error(const bson_t *reply)
{
    bson_iter_t it, sub;

    if (bson_iter_init(&it, reply) && bson_iter_find_descendant(&it, "writeErrors.0.index", &sub) &&
        BSON_ITER_HOLDS_NUMBER(&sub))
        return bson_iter_as_int64(&sub);
    return -1;
}

/* A duplicate in the middle of a bulk: ordered stops there, unordered goes on. What the
 * store may rely on is the error, writeErrors[].index and the data; nInserted after a
 * write error is reported as info because not every server counts it as MongoDB does. */
static void probe_bulk_errors(probe *p)
{
    static const struct {
        const char *name;
        bool ordered;
        int first, last;  /* keys inserted around the duplicate */
        int64_t inserted; /* what MongoDB reports as nInserted */
        bool last_present;
    } cases[] = {
        {"bulk-ordered-stops-at-duplicate", true, 200, 201, 1, false},
        {"bulk-unordered-continues-past-duplicate", false, 300, 301, 2, true},
    };
    size_t c;

    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mongoc_bulk_operation_t *bulk = new_bulk(p, cases[c].ordered);
        bson_error_t err = {0}, ferr;
        bson_t reply = BSON_INITIALIZER;
        bson_t *first, *last;
        int64_t n;
        bool ok;

        ok = bulk_insert(bulk, cases[c].first, &err) && bulk_insert(bulk, 0, &err) &&
             bulk_insert(bulk, cases[c].last, &err);
        ok = ok && mongoc_bulk_operation_execute(bulk, &reply, &err) != 0;
        first = find_row(p, cases[c].first, &ferr);
        last = find_row(p, cases[c].last, &ferr);
        check(p,
              !ok && err.code == DUP_KEY && first_write_error(&reply) == 1 && first != NULL &&
                  (last != NULL) == cases[c].last_present,
              cases[c].name,
              "ok=%d code=%u writeErrors[0].index=%" PRId64
              " first present=%d last present=%d (%s)",
              ok, err.code, first_write_error(&reply), first != NULL, last != NULL, err.message);
        n = reply_int(&reply, "nInserted");
        if (n != cases[c].inserted)
            printf("info %s: nInserted=%" PRId64 " where MongoDB reports %" PRId64 "\n",
                   cases[c].name, n, cases[c].inserted);
        if (first)
            bson_destroy(first);
        if (last)
            bson_destroy(last);
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
    }
}

static void probe_find(probe *p)
{
    bson_t *filter = BCON_NEW("table", BCON_UTF8("orders"), "site", BCON_UTF8("hub"), "ver", "{",
                              "$gte", BCON_INT64(500), "}");
    bson_t *opts = BCON_NEW("sort", "{", "key", BCON_INT32(1), "}", "hint", BCON_UTF8(INDEX_NAME),
                            "projection", "{", "_id", BCON_INT32(0), "key", BCON_INT32(1), "ver",
                            BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(p->rows, filter, opts, NULL);
    static const int want[EXPECT_SEEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101, 102, 103, 104};
    const bson_t *doc;
    bson_error_t err = {0};
    char key[16];
    int n = 0, bad = -1;
    bson_t *row;

    while (mongoc_cursor_next(cur, &doc)) {
        if (n < EXPECT_SEEN) {
            row_key(key, sizeof key, want[n]);
            if (bad < 0 && (!doc_str_eq(doc, "key", key) || doc_int(doc, "ver") != 500 + want[n] ||
                            bson_has_field(doc, "_id")))
                bad = n;
        }
        n++;
    }
    mongoc_cursor_error(cur, &err);
    check(p, n == EXPECT_SEEN && bad < 0 && err.code == 0, "find-compound-filter-sort-hint",
          "got %d docs (want %d), first wrong at %d, %s", n, EXPECT_SEEN, bad, err.message);
    mongoc_cursor_destroy(cur);

    row = find_row(p, 50, &err);
    check(p, doc_int(row, "ver") == 50 && doc_str_eq(row, "state", "new"), "find-by-index-key",
          "%s", row ? "wrong values" : err.message);
    if (row)
        bson_destroy(row);
    bson_destroy(filter);
    bson_destroy(opts);
}

/* findAndModify as the store uses it: bump a row and read it back in one step. */
static bson_t *fam(probe *p, int i, const bson_t *update, mongoc_find_and_modify_flags_t flags,
                   bson_error_t *err)
{
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_t *query = row_selector(i);
    bson_t reply, value;
    bson_t *out = NULL;
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;

    if (update)
        mongoc_find_and_modify_opts_set_update(opts, update);
    mongoc_find_and_modify_opts_set_flags(opts, flags);
    if (mongoc_collection_find_and_modify_with_opts(p->rows, query, opts, &reply, err) &&
        bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&value, data, len))
            out = bson_copy(&value);
    }
    bson_destroy(&reply);
    bson_destroy(query);
    mongoc_find_and_modify_opts_destroy(opts);
    return out;
}

static void probe_find_and_modify(probe *p)
{
    bson_t *upd = BCON_NEW("$inc", "{", "ver", BCON_INT64(1), "}", "$set", "{", "state",
                           BCON_UTF8("fam"), "}");
    bson_error_t err = {0}, ferr;
    bson_t *doc, *gone;

    doc = fam(p, 50, upd, MONGOC_FIND_AND_MODIFY_RETURN_NEW, &err);
    check(p, doc_int(doc, "ver") == 51 && doc_str_eq(doc, "state", "fam"),
          "find-and-modify-inc-return-new", "ver=%" PRId64 " %s", doc_int(doc, "ver"), err.message);
    if (doc)
        bson_destroy(doc);

    doc = fam(p, 400, upd, MONGOC_FIND_AND_MODIFY_RETURN_NEW | MONGOC_FIND_AND_MODIFY_UPSERT, &err);
    check(p, doc_int(doc, "ver") == 1 && doc_str_eq(doc, "key", "k400"), "find-and-modify-upsert",
          "ver=%" PRId64 " %s", doc_int(doc, "ver"), err.message);
    if (doc)
        bson_destroy(doc);

    doc = fam(p, 60, NULL, MONGOC_FIND_AND_MODIFY_REMOVE, &err);
    gone = find_row(p, 60, &ferr);
    check(p, doc_int(doc, "ver") == 60 && gone == NULL, "find-and-modify-remove",
          "ver=%" PRId64 " still there=%d %s", doc_int(doc, "ver"), gone != NULL, err.message);
    if (doc)
        bson_destroy(doc);
    if (gone)
        bson_destroy(gone);
    bson_destroy(upd);
}

static void probe_delete(probe *p)
{
    bson_t *sel = BCON_NEW("table", BCON_UTF8("orders"), "key", "{", "$in", "[", BCON_UTF8("k090"),
                           BCON_UTF8("k091"), BCON_UTF8("k092"), BCON_UTF8("k093"),
                           BCON_UTF8("k094"), BCON_UTF8("k095"), BCON_UTF8("k096"),
                           BCON_UTF8("k097"), BCON_UTF8("k098"), BCON_UTF8("k099"), "]", "}");
    bson_t *one = row_selector(80);
    bson_error_t err = {0};
    bson_t reply;
    bool ok;

    ok = mongoc_collection_delete_many(p->rows, sel, NULL, &reply, &err);
    check(p, ok && reply_int(&reply, "deletedCount") == 10, "delete-many-in",
          "ok=%d deletedCount=%" PRId64 " %s", ok, reply_int(&reply, "deletedCount"), err.message);
    bson_destroy(&reply);

    ok = mongoc_collection_delete_one(p->rows, one, NULL, &reply, &err);
    check(p, ok && reply_int(&reply, "deletedCount") == 1, "delete-one",
          "ok=%d deletedCount=%" PRId64 " %s", ok, reply_int(&reply, "deletedCount"), err.message);
    bson_destroy(&reply);
    bson_destroy(sel);
    bson_destroy(one);
}

/* The counts every later check (and `verify` after a restart) relies on. */
static void probe_counts(probe *p, const char *suffix)
{
    bson_t *all = BCON_NEW("table", BCON_UTF8("orders"));
    bson_t *seen = BCON_NEW("table", BCON_UTF8("orders"), "state", BCON_UTF8("seen"));
    bson_error_t err = {0};
    char name[64];
    int64_t n;

    n = count_rows(p, all, &err);
    snprintf(name, sizeof name, "count-documents%s", suffix);
    check(p, n == EXPECT_ROWS, name, "got %" PRId64 " want %d %s", n, EXPECT_ROWS, err.message);

    n = count_rows(p, seen, &err);
    snprintf(name, sizeof name, "count-documents-filter%s", suffix);
    check(p, n == EXPECT_SEEN, name, "got %" PRId64 " want %d %s", n, EXPECT_SEEN, err.message);

    n = mongoc_collection_estimated_document_count(p->rows, NULL, NULL, NULL, &err);
    snprintf(name, sizeof name, "estimated-document-count%s", suffix);
    check(p, n == EXPECT_ROWS, name, "got %" PRId64 " want %d %s", n, EXPECT_ROWS, err.message);
    bson_destroy(all);
    bson_destroy(seen);
}

typedef struct worker {
    mongoc_client_pool_t *pool;
    const char *db;
    int id;
    int errors;
    bson_error_t first_error;
    int64_t seq[N_PER_THREAD]; /* numbers handed out by findAndModify, -1 on error */
} worker;

/* Takes the next number of the "seq" document atomically; -1 on error. */
static int64_t next_seq(mongoc_collection_t *coll, const bson_t *inc, bson_error_t *err)
{
    bson_t *query = BCON_NEW("_id", BCON_UTF8("seq"));
    bson_t reply;
    int64_t n = -1;

    if (mongoc_collection_find_and_modify(coll, query, NULL, inc, NULL, false, false, true, &reply,
                                          err))
        n = doc_int(&reply, "value.n");
    bson_destroy(&reply);
    bson_destroy(query);
    return n;
}

/* Each thread bumps one shared counter, takes numbers from a findAndModify sequence and
 * upserts rows of its own, as the engine's workers would, concurrently through a pool. */
static void *worker_run(void *arg)
{
    worker *w = arg;
    mongoc_client_t *client = mongoc_client_pool_pop(w->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, w->db, COUNTERS);
    bson_t *shared = BCON_NEW("_id", BCON_UTF8("shared"));
    bson_t *inc = BCON_NEW("$inc", "{", "n", BCON_INT64(1), "}");
    bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
    bson_error_t err = {0};
    char id[32];
    int i;

    for (i = 0; i < N_PER_THREAD; i++) {
        bson_t *own;
        bool ok;

        ok = mongoc_collection_update_one(coll, shared, inc, NULL, NULL, &err);
        if (ok) {
            snprintf(id, sizeof id, "t%d-%03d", w->id, i);
            own = BCON_NEW("_id", BCON_UTF8(id));
            ok = mongoc_collection_update_one(coll, own, inc, upsert, NULL, &err);
            bson_destroy(own);
        }
        if (ok) {
            w->seq[i] = next_seq(coll, inc, &err);
            ok = w->seq[i] > 0;
        }
        if (!ok && w->errors++ == 0)
            w->first_error = err;
    }
    bson_destroy(shared);
    bson_destroy(inc);
    bson_destroy(upsert);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(w->pool, client);
    return NULL;
}

static int64_t shared_counter(probe *p, bson_error_t *err)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8("shared"));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(p->counters, filter, NULL, NULL);
    const bson_t *doc;
    int64_t n = -1;

    memset(err, 0, sizeof *err);
    if (mongoc_cursor_next(cur, &doc))
        n = doc_int(doc, "n");
    mongoc_cursor_error(cur, err);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    return n;
}

static void probe_concurrency(probe *p, const mongoc_uri_t *uri)
{
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    bson_t *doc = BCON_NEW("_id", BCON_UTF8("shared"), "n", BCON_INT64(0));
    bson_t *seq = BCON_NEW("_id", BCON_UTF8("seq"), "n", BCON_INT64(0));
    bool taken[EXPECT_SHARED + 1] = {false};
    int dups = 0, j;
    bson_t *mine = BCON_NEW("_id", "{", "$regex", BCON_UTF8("^t"), "}");
    worker w[N_THREADS];
    pthread_t t[N_THREADS];
    bson_error_t err = {0};
    int i, errors = 0, started = 0;
    int64_t n;

    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_max_size(pool, N_THREADS);
    if (!mongoc_collection_insert_one(p->counters, doc, NULL, NULL, &err) ||
        !mongoc_collection_insert_one(p->counters, seq, NULL, NULL, &err)) {
        check(p, false, "concurrent-updates", "seed insert: %s", err.message);
        goto out;
    }
    for (i = 0; i < N_THREADS; i++) {
        w[i] = (worker){.pool = pool, .db = p->db, .id = i};
        for (j = 0; j < N_PER_THREAD; j++)
            w[i].seq[j] = -1;
        if (pthread_create(&t[i], NULL, worker_run, &w[i]) != 0)
            break;
        started++;
    }
    for (i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        if (w[i].errors)
            fprintf(stderr, "mongo_probe: thread %d: %d errors, first: %s\n", i, w[i].errors,
                    w[i].first_error.message);
        errors += w[i].errors;
        for (j = 0; j < N_PER_THREAD; j++) {
            if (w[i].seq[j] < 1 || w[i].seq[j] > EXPECT_SHARED || taken[w[i].seq[j]])
                dups++;
            else
                taken[w[i].seq[j]] = true;
        }
    }
    n = shared_counter(p, &err);
    check(p, started == N_THREADS && errors == 0 && n == EXPECT_SHARED, "concurrent-updates-pool",
          "threads=%d errors=%d counter=%" PRId64 " want %d", started, errors, n, EXPECT_SHARED);
    check(p, started == N_THREADS && dups == 0, "concurrent-find-and-modify-sequence",
          "%d of %d numbers duplicated or out of range", dups, EXPECT_SHARED);
    n = mongoc_collection_count_documents(p->counters, mine, NULL, NULL, NULL, &err);
    check(p, n == EXPECT_SHARED, "concurrent-upserts-pool", "got %" PRId64 " want %d %s", n,
          EXPECT_SHARED, err.message);
out:
    bson_destroy(doc);
    bson_destroy(seq);
    bson_destroy(mine);
    mongoc_client_pool_destroy(pool);
}

/* Not a requirement: reports what a multi-document transaction gets, so that the store's
 * design does not depend on one. The step that fails and its message are printed. */
static void probe_transactions(probe *p)
{
    mongoc_client_session_t *cs;
    bson_t *doc = BCON_NEW("_id", BCON_UTF8("txn"));
    bson_t opts = BSON_INITIALIZER;
    bson_error_t err = {0};
    const char *step = "start_session";

    cs = mongoc_client_start_session(p->client, NULL, &err);
    if (!cs)
        goto out;
    step = "start_transaction";
    if (!mongoc_client_session_start_transaction(cs, NULL, &err))
        goto out;
    step = "insert_in_transaction";
    if (!mongoc_client_session_append(cs, &opts, &err) ||
        !mongoc_collection_insert_one(p->counters, doc, &opts, NULL, &err))
        goto out;
    step = "commit_transaction";
    if (!mongoc_client_session_commit_transaction(cs, NULL, &err))
        goto out;
    step = NULL;
out:
    if (step)
        printf("info transactions: unsupported: %s failed: domain=%u code=%u: %s\n", step,
               err.domain, err.code, err.message);
    else
        printf("info transactions: supported (commit succeeded)\n");
    if (cs)
        mongoc_client_session_destroy(cs);
    bson_destroy(&opts);
    bson_destroy(doc);
}

static void probe_write(probe *p, const mongoc_uri_t *uri)
{
    probe_ping(p);
    probe_create_index(p);
    probe_insert_many(p);
    probe_bulk_upserts(p);
    probe_bulk_errors(p);
    probe_find(p);
    probe_find_and_modify(p);
    probe_delete(p);
    probe_counts(p, "");
    probe_concurrency(p, uri);
    probe_transactions(p);
}

/* After a restart on the same data directory: everything `write` left is still there. */
static void probe_verify(probe *p)
{
    static const struct {
        int key;
        int64_t ver; /* -1: the row must be absent */
        const char *state;
    } rows[] = {
        {0, 500, "seen"},  {50, 51, "fam"}, {102, 602, "seen"}, {400, 1, "fam"},
        {301, 301, "new"}, {60, -1, NULL},  {80, -1, NULL},     {201, -1, NULL},
    };
    bson_error_t err = {0};
    char name[64];
    size_t i;
    int64_t n;

    probe_ping(p);
    check(p, index_is_unique(p, &err), "index-survives-restart", "%s", err.message);
    check_unique_enforced(p, "unique-enforced-after-restart");
    probe_counts(p, "-after-restart");
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        bson_t *row = find_row(p, rows[i].key, &err);

        snprintf(name, sizeof name, "row-k%03d-after-restart", rows[i].key);
        if (rows[i].ver < 0)
            check(p, row == NULL, name, "row should be absent");
        else
            check(p, doc_int(row, "ver") == rows[i].ver && doc_str_eq(row, "state", rows[i].state),
                  name, "ver=%" PRId64 " want %" PRId64 " %s", doc_int(row, "ver"), rows[i].ver,
                  row ? "" : err.message);
        if (row)
            bson_destroy(row);
    }
    n = shared_counter(p, &err);
    check(p, n == EXPECT_SHARED, "counter-after-restart", "got %" PRId64 " %s", n, err.message);
}

static void probe_fill(probe *p)
{
    mongoc_collection_t *fill = mongoc_client_get_collection(p->client, p->db, "fill");
    bson_error_t err = {0};
    int32_t i;

    mongoc_collection_drop(fill, NULL);
    for (i = 0; i < INT32_MAX; i++) {
        bson_t *doc = BCON_NEW("_id", BCON_INT32(i), "pad", BCON_UTF8("0123456789abcdef"));
        bool ok = mongoc_collection_insert_one(fill, doc, NULL, NULL, &err);

        bson_destroy(doc);
        if (!ok)
            break;
        /* One line per acknowledged insert, flushed: the caller kills the server at any time. */
        printf("%" PRId32 "\n", i);
        fflush(stdout);
    }
    mongoc_collection_destroy(fill);
}

static void probe_filled(probe *p, long acked)
{
    mongoc_collection_t *fill = mongoc_client_get_collection(p->client, p->db, "fill");
    bson_t *below = BCON_NEW("_id", "{", "$lt", BCON_INT64(acked), "}");
    bson_t *all = bson_new();
    bson_error_t err = {0};
    int64_t n_below, n_all;

    n_below = mongoc_collection_count_documents(fill, below, NULL, NULL, NULL, &err);
    n_all = mongoc_collection_count_documents(fill, all, NULL, NULL, NULL, &err);
    check(p, n_below == acked && (n_all == acked || n_all == acked + 1),
          "acknowledged-inserts-survive-kill",
          "acknowledged %ld, stored %" PRId64 " of them and %" PRId64 " in all %s", acked, n_below,
          n_all, err.message);
    bson_destroy(below);
    bson_destroy(all);
    mongoc_collection_destroy(fill);
}

int main(int argc, char **argv)
{
    probe p = {0};
    mongoc_uri_t *uri = NULL;
    bson_error_t err = {0};
    int rc = 2;

    const char *mode = argc >= 3 ? argv[2] : "";
    int nargs = strcmp(mode, "filled") == 0 ? 4 : 3; /* arguments before the optional DB */
    char *end = NULL;
    long acked = 0;

    if (argc < nargs || argc > nargs + 1 ||
        (strcmp(mode, "write") != 0 && strcmp(mode, "verify") != 0 && strcmp(mode, "fill") != 0 &&
         strcmp(mode, "filled") != 0)) {
        fprintf(stderr, "usage: %s URI write|verify|fill [DB]\n       %s URI filled N [DB]\n",
                argv[0], argv[0]);
        return 2;
    }
    if (nargs == 4) {
        acked = strtol(argv[3], &end, 10);
        if (*argv[3] == '\0' || *end != '\0' || acked < 0) {
            fprintf(stderr, "mongo_probe: bad count '%s'\n", argv[3]);
            return 2;
        }
    }
    p.db = argc == nargs + 1 ? argv[nargs] : "sluice_probe";
    mongoc_init();
    uri = mongoc_uri_new_with_error(argv[1], &err);
    if (!uri) {
        fprintf(stderr, "mongo_probe: bad URI: %s\n", err.message);
        goto out;
    }
    /* Fail fast when nothing listens, instead of the 30 s default. */
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 3000);
    p.client = mongoc_client_new_from_uri_with_error(uri, &err);
    if (!p.client) {
        fprintf(stderr, "mongo_probe: %s\n", err.message);
        goto out;
    }
    mongoc_client_set_error_api(p.client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(p.client, "sluice-mongo-probe");
    p.rows = mongoc_client_get_collection(p.client, p.db, COLL);
    p.counters = mongoc_client_get_collection(p.client, p.db, COUNTERS);
    if (strcmp(mode, "write") == 0)
        probe_write(&p, uri);
    else if (strcmp(mode, "verify") == 0)
        probe_verify(&p);
    else if (strcmp(mode, "fill") == 0)
        probe_fill(&p);
    else
        probe_filled(&p, acked);
    rc = p.failed ? 1 : 0;
    if (strcmp(mode, "fill") != 0)
        printf("%s: %d failed\n", mode, p.failed);
out:
    if (p.rows)
        mongoc_collection_destroy(p.rows);
    if (p.counters)
        mongoc_collection_destroy(p.counters);
    if (p.client)
        mongoc_client_destroy(p.client);
    if (uri)
        mongoc_uri_destroy(uri);
    mongoc_cleanup();
    return rc;
}
