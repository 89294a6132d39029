/*
 * test_store.c - the metadata-store contract (connectors/store.h), one table
 * of tests run against every backend:
 *   sqlite   always, each test on a new file in a temporary directory;
 *   mongodb  when SLUICE_TEST_MONGO_URI is set (tests/store/run-mongo.sh starts a
 *            server and sets it), each test on a database of its own, dropped after.
 * Plus what only one backend has: SQLite's schema migration, MongoDB's round
 * trips, and how opening fails.
 *
 *   test_store                 run everything available
 *   test_store -v              also print the run time of the larger tests
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <setjmp.h>
#include <cmocka.h>

#include <mongoc/mongoc.h>
#include <sqlite3.h>

#include "common/buf.h"
#include "connectors/store.h"
#include "store_test.h"

/* ---- backends --------------------------------------------------------------- */

typedef struct backend {
    const char *name;
    bool counts_trips; /* round_trips() counts commands (a server) or is always 0 */
} backend;

static const backend be_sqlite = {"sqlite", false};
static const backend be_mongo = {"mongodb", true};

static char tmpdir[256];       /* sqlite files live here */
static const char *mongo_base; /* SLUICE_TEST_MONGO_URI or NULL */
static int test_seq;           /* each test gets its own file or database */
static bool verbose;

typedef struct fx {
    const backend *be;
    char uri[1024];
    char db[128]; /* mongodb: the database to drop afterwards */
    sl_store st;
    void *sess;
    sl_error err;
    bool open;
} fx;

/* base URI with its database (the path) replaced by db: scheme://hosts/db?options */
static void mongo_uri_with_db(char *out, size_t cap, const char *base, const char *db)
{
    const char *hosts = strstr(base, "://");
    const char *end, *query;

    hosts = hosts ? hosts + 3 : base;
    end = hosts + strcspn(hosts, "/?");
    query = strchr(end, '?');
    snprintf(out, cap, "%.*s/%s%s", (int)(end - base), base, db, query ? query : "");
}

static int fx_open(fx *f)
{
    sl_error_clear(&f->err);
    if (sl_store_open(&f->st, f->uri, &f->err) != 0) {
        print_error("open %s: %s\n", f->uri, f->err.msg);
        return -1;
    }
    f->sess = f->st.ops->session_open(f->st.self, &f->err);
    if (f->sess == NULL) {
        print_error("session %s: %s\n", f->uri, f->err.msg);
        sl_store_destroy(&f->st);
        return -1;
    }
    f->open = true;
    return 0;
}

static void fx_close(fx *f)
{
    if (!f->open)
        return;
    f->st.ops->session_close(f->sess);
    sl_store_destroy(&f->st);
    f->open = false;
}

static int setup(void **state)
{
    const backend *be = *state;
    fx *f = calloc(1, sizeof(*f));

    f->be = be;
    test_seq++;
    *state = f;
    if (be == &be_sqlite) {
        snprintf(f->uri, sizeof(f->uri), "sqlite:%s/t%d.db", tmpdir, test_seq);
    } else {
        if (mongo_base == NULL)
            return 0; /* the test skips itself */
        snprintf(f->db, sizeof(f->db), "sluice_test_%ld_%d", (long)getpid(), test_seq);
        mongo_uri_with_db(f->uri, sizeof(f->uri), mongo_base, f->db);
    }
    return fx_open(f);
}

/* Drop a test database through libmongoc directly: the store has no such operation. */
static void mongo_drop(const char *uri_text, const char *db)
{
    mongoc_client_t *c = mongoc_client_new(uri_text);
    mongoc_database_t *d;

    if (c == NULL)
        return;
    d = mongoc_client_get_database(c, db);
    mongoc_database_drop_with_opts(d, NULL, NULL);
    mongoc_database_destroy(d);
    mongoc_client_destroy(c);
}

static int teardown(void **state)
{
    fx *f = *state;
    char path[512];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    size_t i;

    fx_close(f);
    if (f->be == &be_sqlite) {
        for (i = 0; i < 3; i++) {
            snprintf(path, sizeof(path), "%s%s", f->uri + 7, suffixes[i]);
            unlink(path);
        }
    } else if (f->db[0]) {
        mongo_drop(f->uri, f->db);
    }
    free(f);
    return 0;
}

/* Every contract test starts with this: the fixture, or a skip. */
static fx *begin(void **state)
{
    fx *f = *state;

    if (!f->open)
        skip(); /* main said why */
    return f;
}

/* ---- helpers ---------------------------------------------------------------- */

#define put_ok(f, rows, n, c, nc)                                                                  \
    do {                                                                                           \
        int rc_ = (f)->st.ops->seen_put((f)->sess, rows, n, c, nc, &(f)->err);                     \
        if (rc_ != 0)                                                                              \
            print_error("seen_put: %s\n", (f)->err.msg);                                           \
        assert_int_equal(rc_, 0);                                                                  \
    } while (0)

/* row_get as a test sees it: 1 and the document, 0, or the failure. */
static int get(fx *f, const char *table, const char *key, sl_buf *doc)
{
    int rc = f->st.ops->row_get(f->sess, S(table), S(key), doc, &f->err);

    if (rc < 0)
        print_error("row_get: %s\n", f->err.msg);
    return rc;
}

static void assert_doc(fx *f, const char *table, const char *key, const char *want, size_t len)
{
    sl_buf doc = SL_BUF_INIT;

    sl_buf_puts(&doc, "left over from before");
    assert_int_equal(get(f, table, key, &doc), 1);
    assert_int_equal(doc.len, len);
    assert_memory_equal(doc.data, want, len);
    sl_buf_free(&doc);
}

static sl_conflict_rec conflict(const char *id, const char *table, const char *key, const char *si,
                                const char *sc, const char *status, int64_t det)
{
    sl_conflict_rec c;

    memset(&c, 0, sizeof(c));
    c.id = S(id);
    c.table = S(table);
    c.key = S(key);
    c.site_incoming = S(si);
    c.site_current = S(sc);
    c.v_current = 3;
    c.v_result = 4;
    c.base = S("null");
    c.current = S("{\"id\":1,\"qty\":5}");
    c.incoming = S("{\"id\":1,\"qty\":7}");
    c.result = S("{\"id\":1,\"qty\":7}");
    c.rule = S("retail.rules:31:5");
    c.strategy = S("latest");
    c.status = S(status);
    c.reason = S("");
    c.position = S("0000000000000abc");
    c.ts_incoming = 1700000000123;
    c.ts_current = 1700000000100;
    c.detected_ms = det;
    c.decided_ms = strcmp(status, SL_CONFLICT_OPEN) == 0 ? 0 : det + 1;
    return c;
}

/* Appends "<id>," per conflict: the order and the set in one string. */
static int collect_ids(void *arg, const sl_conflict_rec *c)
{
    sl_buf *b = arg;

    sl_buf_append(b, c->id.p, c->id.len);
    sl_buf_putc(b, ',');
    return 0;
}

static char *ids_where(fx *f, const char *table, const char *key, const char *site,
                       const char *status, size_t limit)
{
    sl_conflict_filter flt = {table, key, site, status};
    sl_buf b = SL_BUF_INIT;

    sl_buf_puts(&b, "");
    if (f->st.ops->conflicts_each(f->sess, &flt, limit, collect_ids, &b, &f->err) != 0) {
        print_error("conflicts_each: %s\n", f->err.msg);
        fail();
    }
    return sl_buf_steal(&b, NULL);
}

#define assert_ids(f, want, table, key, site, status, limit)                                       \
    do {                                                                                           \
        char *got_ = ids_where(f, table, key, site, status, limit);                                \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

/* A deep copy of one conflict record (the callback's is valid during the call only). */
typedef struct conflict_copy {
    sl_buf text; /* every string field, each NUL-terminated, in field order */
    sl_conflict_rec rec;
    int count;
} conflict_copy;

/* The string fields of sl_conflict_rec (clang-format does not settle on a
 * layout for this list, so it is left alone). */
/* clang-format off */
#define CONFLICT_STR_FIELDS(X) \
    X(id) X(table) X(key) X(site_incoming) X(site_current) X(base) X(current) X(incoming) \
    X(result) X(rule) X(strategy) X(status) X(reason) X(position)
/* clang-format on */

static int copy_conflict(void *arg, const sl_conflict_rec *c)
{
    conflict_copy *cc = arg;
    size_t offs[32], k = 0;

    cc->count++;
    sl_buf_reset(&cc->text);
    cc->rec = *c;
#define COPY(name)                                                                                 \
    offs[k++] = cc->text.len;                                                                      \
    sl_buf_append(&cc->text, c->name.p, c->name.len);                                              \
    sl_buf_putc(&cc->text, '\0');
    CONFLICT_STR_FIELDS(COPY)
#undef COPY
    k = 0;
#define POINT(name) cc->rec.name.p = cc->text.data + offs[k++];
    CONFLICT_STR_FIELDS(POINT)
#undef POINT
    return 0;
}

static void assert_str(sl_str got, sl_str want)
{
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.p, want.p, want.len);
}

static void assert_conflict_equal(const sl_conflict_rec *got, const sl_conflict_rec *want)
{
#define CMP(name) assert_str(got->name, want->name);
    CONFLICT_STR_FIELDS(CMP)
#undef CMP
    assert_int_equal(got->v_current, want->v_current);
    assert_int_equal(got->v_result, want->v_result);
    assert_int_equal(got->ts_incoming, want->ts_incoming);
    assert_int_equal(got->ts_current, want->ts_current);
    assert_int_equal(got->detected_ms, want->detected_ms);
    assert_int_equal(got->decided_ms, want->decided_ms);
}

/* rows_each as one string: "table|key|doc\n" per row, in the order given. */
static int collect_rows(void *arg, sl_str table, sl_str key, sl_str doc)
{
    sl_buf *b = arg;

    sl_buf_append(b, table.p, table.len);
    sl_buf_putc(b, '|');
    sl_buf_append(b, key.p, key.len);
    sl_buf_putc(b, '|');
    sl_buf_append(b, doc.p, doc.len);
    sl_buf_putc(b, '\n');
    return 0;
}

static char *rows_of(fx *f, const char *table)
{
    sl_buf b = SL_BUF_INIT;

    sl_buf_puts(&b, "");
    if (f->st.ops->rows_each(f->sess, table, collect_rows, &b, &f->err) != 0) {
        print_error("rows_each: %s\n", f->err.msg);
        fail();
    }
    return sl_buf_steal(&b, NULL);
}

static int collect_progress(void *arg, const char *origin, const char *partition,
                            const char *position, int64_t events)
{
    sl_buf *b = arg;

    sl_buf_printf(b, "%s/%s=%s:%lld;", origin, partition, position, (long long)events);
    return 0;
}

static char *progress_of(fx *f)
{
    sl_buf b = SL_BUF_INIT;

    sl_buf_puts(&b, "");
    if (f->st.ops->progress_each(f->sess, collect_progress, &b, &f->err) != 0) {
        print_error("progress_each: %s\n", f->err.msg);
        fail();
    }
    return sl_buf_steal(&b, NULL);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the contract ------------------------------------------------------------ */

/* Documents come back byte for byte: quotes, backslashes, UTF-8 of 2, 3
 * and 4 bytes, and one of 100 KB. */
static void test_row_roundtrip(void **state)
{
    fx *f = begin(state);
    static const char *const docs[] = {
        "{\"v\":1}",
        "{\"name\":\"O'Brien \\\"the\\\" \\\\ one\",\"note\":\"tab\\there\"}",
        "{\"city\":\"Zürich\",\"word\":\"日本語\",\"emoji\":\"😀\"}",
        "x",
    };
    sl_buf big = SL_BUF_INIT;
    sl_seen rows[5];
    size_t i;

    sl_buf_puts(&big, "{\"blob\":\"");
    while (big.len < 100 * 1024)
        sl_buf_puts(&big, "quote\\\" é 中 😀 0123456789 ");
    sl_buf_puts(&big, "\"}");
    rows[0] = seen("central", "retail.orders", "{\"id\":1}", "p1", "", docs[0]);
    rows[1] = seen("central", "retail.orders", "{\"id\":\"it's \\\"2\\\"\"}", "p2", "", docs[1]);
    rows[2] = seen("store1", "retail.orders", "{\"id\":\"ünï\"}", "p3", "", docs[2]);
    rows[3] = seen("store1", "retail.customers", "{\"id\":1}", "p4", "", docs[3]);
    rows[4] = seen("store1", "retail.big", "{\"id\":1}", "p5", "", big.data);
    put_ok(f, rows, 5, NULL, 0);
    for (i = 0; i < 5; i++)
        assert_doc(f, rows[i].table.p, rows[i].key.p, rows[i].doc.p, rows[i].doc.len);
    sl_buf_free(&big);
}

/* Within a batch, the later document for a row wins; a row without a
 * document (progress only) leaves the stored one alone. */
static void test_row_last_in_batch_wins(void **state)
{
    fx *f = begin(state);
    sl_seen rows[] = {
        seen("a", "s.t", "{\"id\":1}", "01", "", "{\"v\":1}"),
        seen("a", "s.t", "{\"id\":2}", "02", "", "{\"v\":20}"),
        seen("b", "s.t", "{\"id\":1}", "03", "", "{\"v\":2}"),
        seen("a", "s.t", "{\"id\":1}", "04", "", "{\"v\":3}"),
    };
    sl_seen progress_only[] = {seen("a", "s.t", "{\"id\":1}", "05", "", "")};

    put_ok(f, rows, 4, NULL, 0);
    assert_doc(f, "s.t", "{\"id\":1}", "{\"v\":3}", 7);
    assert_doc(f, "s.t", "{\"id\":2}", "{\"v\":20}", 8);
    put_ok(f, progress_only, 1, NULL, 0);
    assert_doc(f, "s.t", "{\"id\":1}", "{\"v\":3}", 7);
    /* and a later batch replaces it */
    rows[0].doc = S("{\"v\":4}");
    put_ok(f, rows, 1, NULL, 0);
    assert_doc(f, "s.t", "{\"id\":1}", "{\"v\":4}", 7);
}

static void test_row_unknown(void **state)
{
    fx *f = begin(state);
    sl_seen rows[] = {seen("a", "s.t", "{\"id\":1}", "01", "", "{\"v\":1}")};
    sl_buf doc = SL_BUF_INIT;

    assert_int_equal(get(f, "s.t", "{\"id\":1}", &doc), 0);
    put_ok(f, rows, 1, NULL, 0);
    assert_int_equal(get(f, "s.t", "{\"id\":2}", &doc), 0);
    assert_int_equal(get(f, "s.u", "{\"id\":1}", &doc), 0);
    assert_int_equal(get(f, "s", "t\x1f{\"id\":1}", &doc), 0);
    assert_int_equal(get(f, "s.t", "{\"id\":1}", &doc), 1);
    sl_buf_free(&doc);
}

/* Recording a conflict again (re-delivery) overwrites it: one record, the
 * newer fields, every field as written. */
static void test_conflict_upsert(void **state)
{
    fx *f = begin(state);
    sl_conflict_rec c[2];
    conflict_copy cc = {.count = 0};
    sl_conflict_filter all = {NULL, NULL, NULL, NULL};

    c[0] =
        conflict("c1", "retail.orders", "{\"id\":1}", "store1", "central", SL_CONFLICT_OPEN, 1000);
    c[0].reason = S("lua: merge_points: attempt to index a nil value");
    c[0].strategy = S("lua merge_points");
    c[0].base = S("{\"id\":1,\"qty\":\"ü \\\"q\\\"\"}");
    put_ok(f, NULL, 0, c, 1);
    assert_int_equal(f->st.ops->conflicts_each(f->sess, &all, 0, copy_conflict, &cc, &f->err), 0);
    assert_int_equal(cc.count, 1);
    assert_conflict_equal(&cc.rec, &c[0]);

    /* the same id again, twice in one batch, with rows too: the last one stays */
    c[1] = c[0];
    c[1].status = S(SL_CONFLICT_RESOLVED);
    c[1].result = S("{\"id\":1,\"qty\":9}");
    c[1].v_result = 5;
    c[1].decided_ms = 1234;
    c[1].reason = S("");
    c[1].position = S("0000000000000abd");
    {
        sl_seen rows[] = {seen("store1", "retail.orders", "{\"id\":1}", "0a", "", "{}")};

        put_ok(f, rows, 1, c, 2);
    }
    cc.count = 0;
    assert_int_equal(f->st.ops->conflicts_each(f->sess, &all, 0, copy_conflict, &cc, &f->err), 0);
    assert_int_equal(cc.count, 1);
    assert_conflict_equal(&cc.rec, &c[1]);
    sl_buf_free(&cc.text);
}

/* Every filter field alone and together, site on either side, newest
 * first (ties by id), and the limit. */
static void test_conflict_filters(void **state)
{
    fx *f = begin(state);
    sl_conflict_rec c[] = {
        conflict("c1", "s.orders", "{\"id\":1}", "store1", "central", SL_CONFLICT_RESOLVED, 100),
        conflict("c2", "s.orders", "{\"id\":1}", "store2", "store1", SL_CONFLICT_OPEN, 300),
        conflict("c3", "s.orders", "{\"id\":2}", "central", "store2", SL_CONFLICT_OPEN, 200),
        conflict("c4", "s.items", "{\"id\":1}", "store1", "store2", SL_CONFLICT_OPERATOR, 400),
        conflict("c0", "s.items", "{\"id\":2}", "store3", "central", SL_CONFLICT_OPEN, 300),
    };

    put_ok(f, NULL, 0, c, 3);
    put_ok(f, NULL, 0, c + 3, 2);
    assert_ids(f, "c4,c0,c2,c3,c1,", NULL, NULL, NULL, NULL, 0);
    assert_ids(f, "c2,c3,c1,", "s.orders", NULL, NULL, NULL, 0);
    assert_ids(f, "c4,c0,", "s.items", NULL, NULL, NULL, 0);
    assert_ids(f, "", "s.none", NULL, NULL, NULL, 0);
    assert_ids(f, "c2,c1,", "s.orders", "{\"id\":1}", NULL, NULL, 0);
    assert_ids(f, "c4,c2,c1,", NULL, "{\"id\":1}", NULL, NULL, 0);
    /* site: incoming side (c1, c4) or current side (c2) */
    assert_ids(f, "c4,c2,c1,", NULL, NULL, "store1", NULL, 0);
    assert_ids(f, "c0,c3,c1,", NULL, NULL, "central", NULL, 0);
    assert_ids(f, "c0,", NULL, NULL, "store3", NULL, 0);
    assert_ids(f, "c0,c2,c3,", NULL, NULL, NULL, SL_CONFLICT_OPEN, 0);
    assert_ids(f, "c1,", NULL, NULL, NULL, SL_CONFLICT_RESOLVED, 0);
    assert_ids(f, "c4,", NULL, NULL, NULL, SL_CONFLICT_OPERATOR, 0);
    assert_ids(f, "c2,c3,", "s.orders", NULL, NULL, SL_CONFLICT_OPEN, 0);
    assert_ids(f, "c2,", "s.orders", "{\"id\":1}", "store2", SL_CONFLICT_OPEN, 0);
    assert_ids(f, "", "s.orders", "{\"id\":1}", "store3", NULL, 0);
    assert_ids(f, "c4,", NULL, NULL, NULL, NULL, 1);
    assert_ids(f, "c4,c0,c2,", NULL, NULL, NULL, NULL, 3);
    assert_ids(f, "c0,c2,", NULL, NULL, NULL, SL_CONFLICT_OPEN, 2);
    assert_ids(f, "c4,c0,c2,c3,c1,", NULL, NULL, NULL, NULL, 50);
}

static int stop_after_two(void *arg, const sl_conflict_rec *c)
{
    int *n = arg;

    return ++*n == 2;
}

/* An operator decides from inside a listing: the callback uses the
 * session while the query runs. */
typedef struct decide_all {
    fx *f;
    int decided;
} decide_all;

static int decide_each(void *arg, const sl_conflict_rec *c)
{
    decide_all *d = arg;
    int rc = d->f->st.ops->conflict_decide(d->f->sess, c->id, S(SL_CONFLICT_OPERATOR), S("null"),
                                           &d->f->err);

    if (rc != 1)
        print_error("decide %.*s inside conflicts_each: %d %s\n", (int)c->id.len, c->id.p, rc,
                    d->f->err.msg);
    d->decided += rc == 1;
    return 0;
}

static void test_conflict_decide(void **state)
{
    fx *f = begin(state);
    sl_conflict_rec c[] = {
        conflict("c1", "s.orders", "{\"id\":1}", "store1", "central", SL_CONFLICT_OPEN, 100),
        conflict("c2", "s.orders", "{\"id\":2}", "store1", "central", SL_CONFLICT_OPEN, 200),
        conflict("c3", "s.orders", "{\"id\":3}", "store2", "central", SL_CONFLICT_OPEN, 300),
    };
    conflict_copy cc = {.count = 0};
    sl_conflict_filter one = {NULL, "{\"id\":1}", NULL, NULL};
    sl_conflict_filter two = {NULL, "{\"id\":2}", NULL, NULL};
    sl_conflict_filter all = {NULL, NULL, NULL, NULL};
    decide_all d = {f, 0};
    int64_t t0 = (int64_t)time(NULL) * 1000;
    int n = 0;

    put_ok(f, NULL, 0, c, 3);
    assert_int_equal(f->st.ops->conflict_decide(f->sess, S("c1"), S(SL_CONFLICT_OPERATOR),
                                                S("{\"id\":1,\"qty\":6}"), &f->err),
                     1);
    assert_int_equal(
        f->st.ops->conflict_decide(f->sess, S("nope"), S(SL_CONFLICT_OPERATOR), S("null"), &f->err),
        0);
    assert_int_equal(f->st.ops->conflicts_each(f->sess, &one, 0, copy_conflict, &cc, &f->err), 0);
    assert_int_equal(cc.count, 1);
    assert_string_equal(cc.rec.status.p, SL_CONFLICT_OPERATOR);
    assert_string_equal(cc.rec.result.p, "{\"id\":1,\"qty\":6}");
    assert_true(cc.rec.decided_ms >= t0 - 1000 && cc.rec.decided_ms < t0 + 60000);
    /* everything else as it was */
    c[0].status = cc.rec.status;
    c[0].result = cc.rec.result;
    c[0].decided_ms = cc.rec.decided_ms;
    assert_conflict_equal(&cc.rec, &c[0]);
    /* the others untouched */
    cc.count = 0;
    assert_int_equal(f->st.ops->conflicts_each(f->sess, &two, 0, copy_conflict, &cc, &f->err), 0);
    assert_int_equal(cc.count, 1);
    assert_conflict_equal(&cc.rec, &c[1]);
    assert_ids(f, "c3,c2,", NULL, NULL, NULL, SL_CONFLICT_OPEN, 0);
    /* stopping early, then deciding every open one from inside the listing */
    assert_int_equal(f->st.ops->conflicts_each(f->sess, &all, 0, stop_after_two, &n, &f->err), 0);
    assert_int_equal(n, 2);
    {
        sl_conflict_filter open = {NULL, NULL, NULL, SL_CONFLICT_OPEN};

        assert_int_equal(f->st.ops->conflicts_each(f->sess, &open, 0, decide_each, &d, &f->err), 0);
    }
    assert_int_equal(d.decided, 2);
    assert_ids(f, "", NULL, NULL, NULL, SL_CONFLICT_OPEN, 0);
    assert_ids(f, "c3,c2,c1,", NULL, NULL, NULL, SL_CONFLICT_OPERATOR, 0);
    sl_buf_free(&cc.text);
}

static int stop_at_first(void *arg, sl_str table, sl_str key, sl_str doc)
{
    int *n = arg;

    ++*n;
    return 1;
}

/* Rows by table, then key (bytes); one table only when asked, including
 * tables whose names start like another's. */
static void test_rows_each(void **state)
{
    fx *f = begin(state);
    sl_seen rows[] = {
        seen("a", "s.t", "{\"id\":9}", "1", "", "d1"),
        seen("a", "s.t", "{\"id\":10}", "2", "", "d2"),
        seen("a", "s", "{\"id\":1}", "3", "", "d3"),
        seen("a", "s.t2", "{\"id\":1}", "4", "", "d4"),
        seen("a", "s.t", "{\"id\":\"é\"}", "5", "", "d5"),
        seen("a", "r.z", "{\"id\":1}", "6", "", "d6"),
        seen("a", "s.t", "{\"id\":\"a\"}", "7", "", "d7"),
        seen("a", "s.t", "{\"id\":9}", "8", "", ""), /* progress only: no change */
    };
    char *got;
    int n = 0;

    put_ok(f, rows, 8, NULL, 0);
    got = rows_of(f, NULL);
    assert_string_equal(got, "r.z|{\"id\":1}|d6\n"
                             "s|{\"id\":1}|d3\n"
                             "s.t|{\"id\":\"a\"}|d7\n"
                             "s.t|{\"id\":\"é\"}|d5\n"
                             "s.t|{\"id\":10}|d2\n"
                             "s.t|{\"id\":9}|d1\n"
                             "s.t2|{\"id\":1}|d4\n");
    free(got);
    got = rows_of(f, "s.t");
    assert_string_equal(got, "s.t|{\"id\":\"a\"}|d7\n"
                             "s.t|{\"id\":\"é\"}|d5\n"
                             "s.t|{\"id\":10}|d2\n"
                             "s.t|{\"id\":9}|d1\n");
    free(got);
    got = rows_of(f, "s");
    assert_string_equal(got, "s|{\"id\":1}|d3\n");
    free(got);
    got = rows_of(f, "none");
    assert_string_equal(got, "");
    free(got);
    assert_int_equal(f->st.ops->rows_each(f->sess, NULL, stop_at_first, &n, &f->err), 0);
    assert_int_equal(n, 1);
}

/* Per origin and partition: the largest position (memcmp order, a prefix
 * before its extensions, bytes unsigned) and the number of events; rows
 * without a position leave no progress. */
static void test_progress(void **state)
{
    fx *f = begin(state);
    sl_seen b1[] = {
        seen("central", "s.t", "{\"id\":1}", "000a", "db1", "x"),
        seen("central", "s.t", "{\"id\":2}", "000c", "db1", "x"),
        seen("central", "s.t", "{\"id\":3}", "000b", "db1", ""),
        seen("central", "s.t", "{\"id\":1}", "0001", "db2", "x"),
        seen("store1", "s.t", "{\"id\":1}", "p\x7f", "", "x"),
        seen("nopos", "s.t", "{\"id\":9}", "", "db1", "x"),
    };
    sl_seen b2[] = {
        seen("central", "s.t", "{\"id\":1}", "0009", "db1", "x"),  /* older: max stays */
        seen("central", "s.t", "{\"id\":4}", "000c0", "db1", "x"), /* extends 000c: newer */
        seen("store1", "s.t", "{\"id\":1}", "p\x80", "", "x"),     /* 0x80 > 0x7f */
    };
    sl_seen b3[] = {seen("store1", "s.t", "{\"id\":1}", "p\x10", "", "x")};
    char *got;

    put_ok(f, b1, 6, NULL, 0);
    got = progress_of(f);
    assert_string_equal(got, "central/db1=000c:3;central/db2=0001:1;store1/=p\x7f:1;");
    free(got);
    put_ok(f, b2, 3, NULL, 0);
    put_ok(f, b3, 1, NULL, 0);
    got = progress_of(f);
    assert_string_equal(got, "central/db1=000c0:5;central/db2=0001:1;store1/=p\x80:3;");
    free(got);
    /* the row without a position was still recorded */
    assert_doc(f, "s.t", "{\"id\":9}", "x", 1);
}

static void test_inputs(void **state)
{
    fx *f = begin(state);
    int64_t done = -5;

    assert_int_equal(f->st.ops->input_get(f->sess, "in/a.jsonl", 42, &done, &f->err), 0);
    assert_int_equal(done, 0);
    assert_int_equal(f->st.ops->input_put(f->sess, "in/a.jsonl", 42, 1000, &f->err), 0);
    assert_int_equal(f->st.ops->input_put(f->sess, "topic/3", UINT64_MAX - 1, 77, &f->err), 0);
    assert_int_equal(f->st.ops->input_get(f->sess, "in/a.jsonl", 42, &done, &f->err), 0);
    assert_int_equal(done, 1000);
    assert_int_equal(f->st.ops->input_put(f->sess, "in/a.jsonl", 42, 1500, &f->err), 0);
    assert_int_equal(f->st.ops->input_get(f->sess, "in/a.jsonl", 42, &done, &f->err), 0);
    assert_int_equal(done, 1500);
    /* another fingerprint: the input was replaced, start over */
    assert_int_equal(f->st.ops->input_get(f->sess, "in/a.jsonl", 43, &done, &f->err), 0);
    assert_int_equal(done, 0);
    /* fingerprints use all 64 bits */
    assert_int_equal(f->st.ops->input_get(f->sess, "topic/3", UINT64_MAX - 1, &done, &f->err), 0);
    assert_int_equal(done, 77);
    assert_int_equal(f->st.ops->input_get(f->sess, "topic/4", UINT64_MAX - 1, &done, &f->err), 0);
    assert_int_equal(done, 0);
}

/* Close everything, open the same URI again: all of it is still there. */
static void test_reopen(void **state)
{
    fx *f = begin(state);
    sl_seen rows[] = {
        seen("central", "s.t", "{\"id\":1}", "0001", "db1", "{\"v\":1}"),
        seen("store1", "s.t", "{\"id\":2}", "0002", "", "{\"v\":2}"),
    };
    sl_conflict_rec c[] = {
        conflict("c1", "s.t", "{\"id\":1}", "store1", "central", SL_CONFLICT_OPEN, 100)};
    conflict_copy cc = {.count = 0};
    sl_conflict_filter all = {NULL, NULL, NULL, NULL};
    int64_t done = 0;
    char *got;

    put_ok(f, rows, 2, c, 1);
    assert_int_equal(f->st.ops->input_put(f->sess, "in", 7, 12, &f->err), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_doc(f, "s.t", "{\"id\":1}", "{\"v\":1}", 7);
    assert_doc(f, "s.t", "{\"id\":2}", "{\"v\":2}", 7);
    assert_int_equal(f->st.ops->conflicts_each(f->sess, &all, 0, copy_conflict, &cc, &f->err), 0);
    assert_int_equal(cc.count, 1);
    assert_conflict_equal(&cc.rec, &c[0]);
    got = progress_of(f);
    assert_string_equal(got, "central/db1=0001:1;store1/=0002:1;");
    free(got);
    assert_int_equal(f->st.ops->input_get(f->sess, "in", 7, &done, &f->err), 0);
    assert_int_equal(done, 12);
    sl_buf_free(&cc.text);
}

typedef struct count_rows {
    int n;
    int bad;
    char last[64];
} count_rows;

/* Keys come in order and each document names its key. */
static int check_row(void *arg, sl_str table, sl_str key, sl_str doc)
{
    count_rows *c = arg;
    char want[96], k[64];

    snprintf(k, sizeof(k), "%.*s", (int)key.len, key.p);
    snprintf(want, sizeof(want), "{\"key\":%s,\"n\":%d}", k, atoi(k + 7));
    if (strcmp(k, c->last) <= 0 || doc.len != strlen(want) || memcmp(doc.p, want, doc.len) != 0)
        c->bad++;
    snprintf(c->last, sizeof(c->last), "%s", k);
    c->n++;
    return 0;
}

/* 10,000 rows written in batches of 500, then read back. */
static void test_many_rows(void **state)
{
    fx *f = begin(state);
    enum { N = 10000, BATCH = 500 };
    static char keys[N][32], docs[N][96];
    sl_seen *rows = calloc(BATCH, sizeof(*rows));
    count_rows c = {0, 0, ""};
    double t0 = now_s(), t1, t2;
    uint64_t trips;
    int i, j;

    for (i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "{\"id\":%05d}", i);
        snprintf(docs[i], sizeof(docs[i]), "{\"key\":%s,\"n\":%d}", keys[i], i);
    }
    for (i = 0; i < N; i += BATCH) {
        char pos[32];

        for (j = 0; j < BATCH; j++) {
            snprintf(pos, sizeof(pos), "%016x", i + j);
            rows[j] = seen("central", "s.many", keys[i + j], "", "db", docs[i + j]);
        }
        /* every row carries a position; the batch's newest is enough here */
        rows[BATCH - 1].position = S(pos);
        put_ok(f, rows, BATCH, NULL, 0);
        rows[BATCH - 1].position = S("");
    }
    t1 = now_s();
    trips = f->st.ops->round_trips(f->sess);
    assert_int_equal(f->st.ops->rows_each(f->sess, "s.many", check_row, &c, &f->err), 0);
    trips = f->st.ops->round_trips(f->sess) - trips;
    t2 = now_s();
    assert_int_equal(c.n, N);
    assert_int_equal(c.bad, 0);
    for (i = 0; i < N; i += 997)
        assert_doc(f, "s.many", keys[i], docs[i], strlen(docs[i]));
    {
        char *got = progress_of(f);

        assert_string_equal(got, "central/db=000000000000270f:20;");
        free(got);
    }
    if (verbose)
        print_message("[   INFO   ] %s: 10,000 rows written in %.2f s, read back in %.2f s "
                      "(%llu round trips)\n",
                      f->be->name, t1 - t0, t2 - t1, (unsigned long long)trips);
    free(rows);
}

/* Sessions of several threads write at once, each its own rows. */
typedef struct writer_arg {
    fx *f;
    int id;
    int rc;
    char msg[512];
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    sl_error err = {0};
    void *sess = w->f->st.ops->session_open(w->f->st.self, &err);
    char keys[50][32];
    sl_seen rows[50];
    int b, i;

    if (sess == NULL) {
        w->rc = -1;
        snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
        return NULL;
    }
    for (b = 0; b < 10 && w->rc == 0; b++) {
        for (i = 0; i < 50; i++) {
            snprintf(keys[i], sizeof(keys[i]), "{\"w\":%d,\"i\":%03d}", w->id, b * 50 + i);
            rows[i] = seen("central", "s.par", keys[i], "00000001", "db", keys[i]);
        }
        w->rc = w->f->st.ops->seen_put(sess, rows, 50, NULL, 0, &err);
    }
    if (w->rc != 0)
        snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
    w->f->st.ops->session_close(sess);
    return NULL;
}

static int count_one(void *arg, sl_str table, sl_str key, sl_str doc)
{
    int *n = arg;

    ++*n;
    return !(key.len == doc.len && memcmp(key.p, doc.p, key.len) == 0);
}

static void test_parallel_sessions(void **state)
{
    fx *f = begin(state);
    enum { T = 4 };
    pthread_t th[T];
    writer_arg w[T];
    int i, n = 0;
    char *got;

    for (i = 0; i < T; i++) {
        w[i] = (writer_arg){f, i, 0, ""};
        pthread_create(&th[i], NULL, writer, &w[i]);
    }
    for (i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        if (w[i].rc != 0)
            print_error("writer %d: %s\n", i, w[i].msg);
        assert_int_equal(w[i].rc, 0);
    }
    assert_int_equal(f->st.ops->rows_each(f->sess, "s.par", count_one, &n, &f->err), 0);
    assert_int_equal(n, T * 500);
    /* every batch counted, none lost between sessions */
    got = progress_of(f);
    assert_string_equal(got, "central/db=00000001:2000;");
    free(got);
}

/* round_trips: 0 for SQLite; for MongoDB one per command, and a batch is
 * one bulk write per collection it touches. */
static void test_round_trips(void **state)
{
    fx *f = begin(state);
    sl_seen rows[] = {
        seen("a", "s.t", "{\"id\":1}", "01", "", "{\"v\":1}"),
        seen("a", "s.t", "{\"id\":2}", "02", "", "{\"v\":2}"),
        seen("a", "s.t", "{\"id\":3}", "03", "", ""),
    };
    sl_conflict_rec c[] = {
        conflict("c1", "s.t", "{\"id\":1}", "b", "a", SL_CONFLICT_OPEN, 1),
        conflict("c2", "s.t", "{\"id\":2}", "b", "a", SL_CONFLICT_OPEN, 2),
    };
    sl_buf doc = SL_BUF_INIT;
    uint64_t t0 = f->st.ops->round_trips(f->sess);
    int64_t done;
    char *got;
    uint64_t want[] = {1, 3, 4, 5, 6, 7, 8, 9};
    uint64_t got_trips[8];
    int k = 0;

    assert_int_equal(get(f, "s.t", "{\"id\":1}", &doc), 0);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* find */
    put_ok(f, rows, 3, NULL, 0);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* rows + progress */
    put_ok(f, rows + 2, 1, NULL, 0);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* progress only */
    put_ok(f, NULL, 0, c, 2);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* conflicts only */
    got = ids_where(f, NULL, NULL, NULL, NULL, 0);
    free(got);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* find */
    assert_int_equal(
        f->st.ops->conflict_decide(f->sess, S("c1"), S("operator"), S("null"), &f->err), 1);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* update */
    assert_int_equal(f->st.ops->input_put(f->sess, "in", 1, 2, &f->err), 0);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* update (replace) */
    assert_int_equal(f->st.ops->input_get(f->sess, "in", 1, &done, &f->err), 0);
    got_trips[k++] = f->st.ops->round_trips(f->sess) - t0; /* find */
    put_ok(f, NULL, 0, NULL, 0);                           /* nothing to do: no trip */
    assert_int_equal(f->st.ops->round_trips(f->sess) - t0, got_trips[k - 1]);
    for (k = 0; k < 8; k++)
        assert_int_equal(got_trips[k], f->be->counts_trips ? want[k] : 0);
    sl_buf_free(&doc);
}

/* rows_get (where the backend has it): every row asked for that exists comes
 * back once with its document, whatever the order, in one round trip;
 * missing rows do not; binary documents come back byte for byte. */
typedef struct got_rows {
    char docs[8][64];
    size_t lens[8];
    int calls[8];
} got_rows;

static void on_got(void *arg, size_t i, sl_str doc)
{
    got_rows *g = arg;

    assert_true(i < 8);
    g->calls[i]++;
    assert_true(doc.len < sizeof(g->docs[i]));
    memcpy(g->docs[i], doc.p, doc.len);
    g->lens[i] = doc.len;
}

static void test_rows_get(void **state)
{
    fx *f = begin(state);
    static const char bin[] = {'\0', 'S', 3, 0, 1, 2, (char)0xff, 0};
    sl_seen rows[] = {
        seen("a", "s.t", "{\"id\":1}", "01", "", "{\"v\":1}"),
        seen("a", "s.t", "{\"id\":3}", "02", "", "{\"v\":3}"),
        seen("a", "s.u", "{\"id\":1}", "03", "", "x"),
    };
    sl_str tables[] = {S("s.t"), S("s.t"), S("s.t"), S("s.u"), S("s.u")};
    sl_str keys[] = {S("{\"id\":3}"), S("{\"id\":2}"), S("{\"id\":1}"), S("{\"id\":1}"),
                     S("{\"id\":9}")};
    got_rows g;
    uint64_t t0;

    if (f->st.ops->rows_get == NULL) {
        skip(); /* SQLite: a request per row costs no more */
        return;
    }
    rows[2].doc.p = bin;
    rows[2].doc.len = sizeof(bin);
    put_ok(f, rows, 3, NULL, 0);
    memset(&g, 0, sizeof(g));
    t0 = f->st.ops->round_trips(f->sess);
    assert_int_equal(f->st.ops->rows_get(f->sess, tables, keys, 5, on_got, &g, &f->err), 0);
    if (f->be->counts_trips)
        assert_int_equal(f->st.ops->round_trips(f->sess) - t0, 1);
    assert_int_equal(g.calls[0], 1);
    assert_int_equal(g.lens[0], 7);
    assert_memory_equal(g.docs[0], "{\"v\":3}", 7);
    assert_int_equal(g.calls[1], 0); /* s.t {"id":2}: not there */
    assert_int_equal(g.calls[2], 1);
    assert_memory_equal(g.docs[2], "{\"v\":1}", 7);
    assert_int_equal(g.calls[3], 1); /* s.u {"id":1}: the binary document */
    assert_int_equal(g.lens[3], sizeof(bin));
    assert_memory_equal(g.docs[3], bin, sizeof(bin));
    assert_int_equal(g.calls[4], 0);
}

/* ---- one backend only ----------------------------------------------------------- */

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        print_error("%s: %s\n", sql, msg);
    assert_null(msg);
}

static int one_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st;
    int rc;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW;
}

/* The bytes of the entries in segs, before compression. */
#define SEG_RAW_BYTES "SELECT sum(CASE raw WHEN 0 THEN length(data) ELSE raw END) FROM segs"

/* The file at path, opened directly, after checking that sluice left it at
 * the current schema version. */
static sqlite3 *open_current(const char *path)
{
    sqlite3 *db;
    char v[64];

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(one_text(db, "SELECT v FROM meta WHERE k='schema_version'", v, sizeof(v)), 1);
    assert_string_equal(v, "5");
    return db;
}

/* A file as an older sluice left it: name under tmpdir, made by sql, still
 * open for more. path and uri (sizes 512 and 600) name it. */
static sqlite3 *old_file(const char *name, const char *sql, char *path, char *uri)
{
    sqlite3 *db;

    snprintf(path, 512, "%s/%s", tmpdir, name);
    snprintf(uri, 600, "sqlite:%s", path);
    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_ok(db, sql);
    return db;
}

/* The store at uri and a session on it, which must open. */
static void *open_ok(sl_store *st, const char *uri)
{
    sl_error err = {0};
    void *sess;

    if (sl_store_open(st, uri, &err) != 0)
        print_error("%s\n", err.msg);
    assert_non_null(st->ops);
    sess = st->ops->session_open(st->self, &err);
    assert_non_null(sess);
    return sess;
}

/* Row (table, key) has the document of len bytes at want. */
static void row_is(const sl_store *st, void *sess, const char *table, const char *key,
                   const char *want, size_t len)
{
    sl_buf b = SL_BUF_INIT;
    sl_error err = {0};

    assert_int_equal(st->ops->row_get(sess, S(table), S(key), &b, &err), 1);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, want, len);
    sl_buf_free(&b);
}

/* A file of schema version 1 (the old `seen` table) opens at the current
 * version: `seen` is gone, progress and inputs are kept, the new tables
 * work. A file from a newer sluice is refused. */
static void test_sqlite_migrate(void **state)
{
    char path[512], uri[600], v[64];
    sqlite3 *db;
    sl_store st = {0};
    sl_error err = {0};
    void *sess;
    int64_t done = 0;
    sl_buf b = SL_BUF_INIT;
    sl_seen rows[] = {seen("central", "s.t", "{\"id\":1}", "0008", "db1", "{}")};
    fx f = {0};
    char *got;

    db = old_file(
        "v1.db",
        "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
        "CREATE TABLE seen(origin TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL,"
        "  pos BLOB NOT NULL, PRIMARY KEY(origin, tbl, key)) WITHOUT ROWID;"
        "CREATE TABLE progress(origin TEXT NOT NULL, part TEXT NOT NULL, pos BLOB NOT NULL,"
        "  events INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
        "  PRIMARY KEY(origin, part)) WITHOUT ROWID;"
        "CREATE TABLE inputs(input TEXT PRIMARY KEY, fp INTEGER NOT NULL,"
        "  done INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
        "INSERT INTO meta VALUES('schema_version', '1');"
        "INSERT INTO seen VALUES('central', 's.t', '{\"id\":1}', X'3031');"
        "INSERT INTO progress VALUES('central', 'db1', X'30303037', 12, 1);"
        "INSERT INTO inputs VALUES('in/a', 5, 99, 1);",
        path, uri);
    sqlite3_close(db);

    if (sl_store_open(&st, uri, &err) != 0)
        print_error("%s\n", err.msg);
    assert_non_null(st.ops);
    sess = st.ops->session_open(st.self, &err);
    assert_non_null(sess);
    f.st = st;
    f.sess = sess;
    /* progress and inputs as they were; the row is unknown */
    got = progress_of(&f);
    assert_string_equal(got, "central/db1=0007:12;");
    free(got);
    assert_int_equal(st.ops->input_get(sess, "in/a", 5, &done, &err), 0);
    assert_int_equal(done, 99);
    assert_int_equal(st.ops->row_get(sess, S("s.t"), S("{\"id\":1}"), &b, &err), 0);
    /* and the new tables work, the old progress counts on */
    assert_int_equal(st.ops->seen_put(sess, rows, 1, NULL, 0, &err), 0);
    assert_int_equal(st.ops->row_get(sess, S("s.t"), S("{\"id\":1}"), &b, &err), 1);
    got = progress_of(&f);
    assert_string_equal(got, "central/db1=0008:13;");
    free(got);
    st.ops->session_close(sess);
    sl_store_destroy(&st);

    db = open_current(path);
    assert_int_equal(one_text(db, "SELECT name FROM sqlite_master WHERE name='seen'", v, sizeof(v)),
                     0);
    assert_int_equal(one_text(db,
                              "SELECT count(*) FROM sqlite_master WHERE type='index' AND tbl_name="
                              "'conflicts' AND name LIKE 'conflicts_%'",
                              v, sizeof(v)),
                     1);
    assert_string_equal(v, "4");
    /* a file a newer sluice wrote */
    exec_ok(db, "UPDATE meta SET v='6' WHERE k='schema_version'");
    sqlite3_close(db);
    assert_int_equal(sl_store_open(&st, uri, &err), -1);
    assert_int_equal(err.code, SL_ERR_STORE);
    assert_non_null(strstr(err.msg, "schema version 6"));
    sl_buf_free(&b);
    unlink(path);
}

/* Version 3 kept one `rows` row per document; version 4 appends documents
 * in segments. Opening a version-3 file moves every document over (the
 * row written last wins, as before), drops `rows`, and later writes go on
 * from there. */
static void test_sqlite_migrate_v3(void **state)
{
    char path[512], uri[600], v[64];
    sqlite3 *db;
    sl_store st = {0};
    sl_error err = {0};
    void *sess;
    sl_buf b = SL_BUF_INIT, all = SL_BUF_INIT;
    sl_seen rows[] = {seen("central", "s.t", "{\"id\":2}", "0009", "db1", "two-new")};
    int i;

    db = old_file("v3.db",
                  "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
                  "CREATE TABLE rows(tbl TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,"
                  "  updated_ms INTEGER NOT NULL);"
                  "CREATE UNIQUE INDEX rows_key ON rows(tbl, key);"
                  "INSERT INTO meta VALUES('schema_version', '3');"
                  "INSERT INTO rows VALUES('s.t', '{\"id\":1}', X'0053030102', 1);"
                  "INSERT INTO rows VALUES('s.t', '{\"id\":2}', 'two', 1);"
                  "INSERT INTO rows VALUES('s.u', '{\"id\":1}', '{\"v\":2}', 1);",
                  path, uri);
    /* enough rows to fill several segments */
    for (i = 0; i < 100; i++) {
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO rows VALUES('s.many', '{\"id\":%03d}', '%0100d', 1);", i, i);
        exec_ok(db, sql);
    }
    sqlite3_close(db);

    sess = open_ok(&st, uri);
    row_is(&st, sess, "s.t", "{\"id\":1}", "\x00\x53\x03\x01\x02", 5);
    row_is(&st, sess, "s.u", "{\"id\":1}", "{\"v\":2}", 7);
    assert_int_equal(st.ops->row_get(sess, S("s.many"), S("{\"id\":077}"), &b, &err), 1);
    assert_int_equal(b.len, 100);
    assert_memory_equal(b.data + 98, "77", 2);
    assert_int_equal(st.ops->seen_put(sess, rows, 1, NULL, 0, &err), 0);
    assert_int_equal(st.ops->rows_each(sess, "s.t", collect_rows, &all, &err), 0);
    {
        static const char want[] = "s.t|{\"id\":1}|\x00S\x03\x01\x02\n"
                                   "s.t|{\"id\":2}|two-new\n";

        assert_int_equal(all.len, sizeof(want) - 1);
        assert_memory_equal(all.data, want, sizeof(want) - 1);
    }
    st.ops->session_close(sess);
    sl_store_destroy(&st);

    db = open_current(path);
    assert_int_equal(one_text(db, "SELECT name FROM sqlite_master WHERE name='rows'", v, sizeof(v)),
                     0);
    assert_int_equal(one_text(db, "SELECT count(*) > 2 FROM segs", v, sizeof(v)), 1);
    assert_string_equal(v, "1");
    sqlite3_close(db);
    sl_buf_free(&b);
    sl_buf_free(&all);
    unlink(path);
}

/* Version 4 stored every segment as it is; version 5 compresses them and
 * says so in `segs.raw`. Opening a version-4 file adds the column, reads
 * its old segments as they are, and writes new ones compressed. */
static void test_sqlite_migrate_v4(void **state)
{
    char path[512], uri[600], v[64], doc[400];
    sqlite3 *db;
    sl_store st = {0};
    sl_error err = {0};
    void *sess;
    sl_buf all = SL_BUF_INIT;
    sl_seen rows[1];
    size_t i;

    (void)state;
    /* one segment of two entries: varint length + bytes of table, key, doc */
    db = old_file("v4.db",
                  "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
                  "CREATE TABLE segs(id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
                  "INSERT INTO meta VALUES('schema_version', '4');"
                  "INSERT INTO segs VALUES(1, CAST("
                  "  X'03' || 's.t' || X'08' || '{\"id\":1}' || X'03' || 'one' ||"
                  "  X'03' || 's.t' || X'08' || '{\"id\":2}' || X'03' || 'two' AS BLOB));",
                  path, uri);
    sqlite3_close(db);
    for (i = 0; i + 1 < sizeof(doc); i++)
        doc[i] = "central store_01 "[i % 17];
    doc[sizeof(doc) - 1] = '\0';
    rows[0] = seen("central", "s.t", "{\"id\":2}", "0009", "db1", doc);

    sess = open_ok(&st, uri);
    row_is(&st, sess, "s.t", "{\"id\":1}", "one", 3);
    assert_int_equal(st.ops->seen_put(sess, rows, 1, NULL, 0, &err), 0);
    st.ops->session_close(sess);
    sl_store_destroy(&st);

    db = open_current(path);
    assert_int_equal(one_text(db, "SELECT raw FROM segs WHERE id = 1", v, sizeof(v)), 1);
    assert_string_equal(v, "0");
    /* the new segment: one entry, compressed to well under its length */
    assert_int_equal(one_text(db, "SELECT raw FROM segs WHERE id = 2", v, sizeof(v)), 1);
    assert_int_equal(atol(v), 1 + 3 + 1 + 8 + 2 + (long)strlen(doc));
    assert_int_equal(
        one_text(db, "SELECT length(data) * 4 < raw FROM segs WHERE id = 2", v, sizeof(v)), 1);
    assert_string_equal(v, "1");
    sqlite3_close(db);

    /* a new handle reads both kinds */
    sess = open_ok(&st, uri);
    assert_int_equal(st.ops->rows_each(sess, "s.t", collect_rows, &all, &err), 0);
    {
        static const char head[] = "s.t|{\"id\":1}|one\ns.t|{\"id\":2}|";
        size_t hl = sizeof(head) - 1;

        assert_int_equal(all.len, hl + strlen(doc) + 1);
        assert_memory_equal(all.data, head, hl);
        assert_memory_equal(all.data + hl, doc, strlen(doc));
    }
    st.ops->session_close(sess);
    sl_store_destroy(&st);
    sl_buf_free(&all);
    unlink(path);
}

/* A damaged compressed segment is an error that names it, never a wrong
 * document: whether its bytes or its length were changed. */
static void corrupt_one(const char *path, const char *uri, const char *damage, const char *want)
{
    sqlite3 *db;
    sl_store st = {0};
    sl_error err = {0};
    void *sess;
    sl_buf b = SL_BUF_INIT;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_ok(db, damage);
    sqlite3_close(db);
    sess = open_ok(&st, uri);
    assert_int_equal(st.ops->row_get(sess, S("s.z"), S("{\"id\":1}"), &b, &err), -1);
    assert_int_equal(err.code, SL_ERR_STORE);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" does not say \"%s\"", err.msg, want);
    st.ops->session_close(sess);
    sl_store_destroy(&st);
    sl_buf_free(&b);
}

/* A new file under tmpdir holding one row, {"id":1} of table, with doc. */
static void one_row_file(const char *name, const char *table, const char *doc, char *path,
                         char *uri)
{
    sl_store st = {0};
    sl_error err = {0};
    sl_seen rows[1];
    void *sess;

    rows[0] = seen("central", table, "{\"id\":1}", "0001", "db1", doc);
    snprintf(path, 512, "%s/%s", tmpdir, name);
    snprintf(uri, 600, "sqlite:%s", path);
    unlink(path);
    sess = open_ok(&st, uri);
    assert_int_equal(st.ops->seen_put(sess, rows, 1, NULL, 0, &err), 0);
    st.ops->session_close(sess);
    sl_store_destroy(&st);
}

static void test_sqlite_corrupt_segment(void **state)
{
    char path[512], uri[600], doc[300];

    (void)state;
    memset(doc, 'z', sizeof(doc) - 1);
    doc[sizeof(doc) - 1] = '\0';
    one_row_file("corrupt.db", "s.z", doc, path, uri);

    corrupt_one(path, uri, "UPDATE segs SET raw = raw + 1",
                "segment 1 is corrupt (LZ4 could not expand it to");
    corrupt_one(path, uri, "UPDATE segs SET raw = 1000000000",
                "bytes cannot expand to 1000000000)");
    corrupt_one(path, uri, "UPDATE segs SET raw = 320, data = zeroblob(length(data))",
                "segment 1 is corrupt");
    unlink(path);
}

/* A segment that LZ4 cannot shorten (bytes without repeats) is stored as it
 * is, `raw` 0, and reads back. */
static void test_sqlite_incompressible(void **state)
{
    char path[512], uri[600], v[64], doc[300];
    sl_store st = {0};
    sqlite3 *db;
    void *sess;
    uint32_t x = 12345;
    size_t i;

    (void)state;
    for (i = 0; i + 1 < sizeof(doc); i++) {
        x = x * 1664525u + 1013904223u;
        doc[i] = (char)('!' + (x >> 24) % 94);
    }
    doc[sizeof(doc) - 1] = '\0';
    one_row_file("random.db", "s.r", doc, path, uri);

    db = open_current(path);
    assert_int_equal(one_text(db, "SELECT raw || ' ' || length(data) FROM segs", v, sizeof(v)), 1);
    assert_string_equal(v, "0 314"); /* 1 + 3 + 1 + 8 + 2 + 299 bytes, as they are */
    sqlite3_close(db);
    sess = open_ok(&st, uri);
    row_is(&st, sess, "s.r", "{\"id\":1}", doc, strlen(doc));
    st.ops->session_close(sess);
    sl_store_destroy(&st);
    unlink(path);
}

/* Two handles on one file behave as two processes do: each has its own
 * index, and sees what the other appended. A row rewritten many times
 * leaves garbage that later batches compact: the file stays near its live
 * size, and every handle (and a new one) still finds each row's newest
 * document. */
static void test_sqlite_segments(void **state)
{
    enum { NROWS = 200, ROUNDS = 100, BATCH = 50 };
    char path[512], uri[600], v[64], keys[NROWS][32], docs[BATCH][48];
    sqlite3 *db;
    sl_store a = {0}, b = {0};
    sl_error err = {0};
    void *sa, *sb;
    sl_buf doc = SL_BUF_INIT, all = SL_BUF_INIT;
    sl_seen rows[BATCH];
    long bytes;
    int round, i, j;

    snprintf(path, sizeof(path), "%s/segs.db", tmpdir);
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    unlink(path);
    open_pair(uri, &a, &b, &sa, &sb);
    assert_int_equal(b.ops->rows_any(sb, &err), 0);
    for (i = 0; i < NROWS; i++)
        snprintf(keys[i], sizeof(keys[i]), "{\"id\":%03d}", i);
    for (round = 0; round <= ROUNDS; round++) {
        for (i = 0; i < NROWS; i += BATCH) {
            for (j = 0; j < BATCH; j++) {
                snprintf(docs[j], sizeof(docs[j]), "round %03d row %03d", round, i + j);
                rows[j] = seen("central", "s.seg", keys[i + j], "", "db", docs[j]);
            }
            assert_int_equal(a.ops->seen_put(sa, rows, BATCH, NULL, 0, &err), 0);
        }
        if (round == 0) {
            /* b sees a's first rows, and indexes them where they are now */
            assert_int_equal(b.ops->rows_any(sb, &err), 1);
            assert_int_equal(b.ops->row_get(sb, S("s.seg"), S(keys[5]), &doc, &err), 1);
            assert_int_equal(doc.len, 17);
            assert_memory_equal(doc.data, "round 000 row 005", 17);
        }
    }
    /* b finds the newest of every row, though a moved most of them */
    for (i = 0; i < NROWS; i++) {
        char want[48];

        snprintf(want, sizeof(want), "round %03d row %03d", ROUNDS, i);
        assert_int_equal(b.ops->row_get(sb, S("s.seg"), S(keys[i]), &doc, &err), 1);
        assert_int_equal(doc.len, strlen(want));
        assert_memory_equal(doc.data, want, doc.len);
    }
    /* and a finds what b writes */
    rows[0] = seen("central", "s.seg", "{\"id\":999}", "", "db", "from b");
    assert_int_equal(b.ops->seen_put(sb, rows, 1, NULL, 0, &err), 0);
    assert_int_equal(a.ops->row_get(sa, S("s.seg"), S("{\"id\":999}"), &doc, &err), 1);
    assert_memory_equal(doc.data, "from b", 6);
    a.ops->session_close(sa);
    b.ops->session_close(sb);
    sl_store_destroy(&a);
    sl_store_destroy(&b);

    /* 20,200 documents of ~32 bytes were written; without compaction the
     * segments would hold ~650 KB before compression. Garbage may reach the
     * larger of the live entries and 4,096 before compaction starts. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(one_text(db, SEG_RAW_BYTES, v, sizeof(v)), 1);
    bytes = atol(v);
    assert_int_equal(one_text(db, "SELECT sum(length(data)) FROM segs", v, sizeof(v)), 1);
    if (verbose)
        print_message("[   INFO   ] segments hold %ld bytes, %s compressed\n", bytes, v);
    assert_true(bytes > NROWS * 30);
    assert_true(bytes < (4096 + 2 * NROWS + 2 * BATCH + 64) * 34);
    /* the documents differ in a few digits: compressed, well under half */
    assert_true(atol(v) * 2 < bytes);
    sqlite3_close(db);

    /* a new handle builds its index from the file */
    assert_int_equal(sl_store_open(&a, uri, &err), 0);
    sa = a.ops->session_open(a.self, &err);
    assert_int_equal(a.ops->rows_each(sa, "s.seg", collect_rows, &all, &err), 0);
    for (i = 0, j = 0; i < (int)all.len; i++)
        j += all.data[i] == '\n';
    assert_int_equal(j, NROWS + 1);
    assert_non_null(strstr(all.data, "s.seg|{\"id\":000}|round 100 row 000\n"));
    assert_non_null(strstr(all.data, "s.seg|{\"id\":199}|round 100 row 199\n"
                                     "s.seg|{\"id\":999}|from b\n"));
    assert_int_equal(a.ops->rows_each(sa, "s.none", collect_rows, &all, &err), 0);
    a.ops->session_close(sa);
    sl_store_destroy(&a);
    sl_buf_free(&doc);
    sl_buf_free(&all);
    unlink(path);
}

/* A new file gets 16 KiB pages and segments that fill one; a file made
 * with 4 KiB pages (before that default) keeps them, and its segments stay
 * within one of its pages. Either way no segment spills into overflow. */
static void seg_sizes(const char *path, int page, long seg_max)
{
    char uri[600], v[64], doc[160], key[32];
    sl_store st = {0};
    sl_error err = {0};
    sl_seen rows[100];
    sl_buf got = SL_BUF_INIT;
    sqlite3 *db;
    void *s;
    int i, batch;

    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    assert_int_equal(sl_store_open(&st, uri, &err), 0);
    s = st.ops->session_open(st.self, &err);
    assert_non_null(s);
    memset(doc, 'd', sizeof(doc) - 1);
    doc[sizeof(doc) - 1] = '\0';
    for (batch = 0; batch < 10; batch++) {
        for (i = 0; i < 100; i++) {
            snprintf(key, sizeof(key), "{\"id\":%d}", batch * 100 + i);
            rows[i] = seen("central", "s.pg", strdup(key), "", "db", doc);
        }
        assert_int_equal(st.ops->seen_put(s, rows, 100, NULL, 0, &err), 0);
        for (i = 0; i < 100; i++)
            free((char *)rows[i].key.p);
    }
    assert_int_equal(st.ops->row_get(s, S("s.pg"), S("{\"id\":777}"), &got, &err), 1);
    assert_int_equal(got.len, strlen(doc));
    st.ops->session_close(s);
    sl_store_destroy(&st);
    sl_buf_free(&got);

    db = open_current(path);
    assert_int_equal(one_text(db, "PRAGMA page_size", v, sizeof(v)), 1);
    assert_int_equal(atoi(v), page);
    assert_int_equal(
        one_text(db, "SELECT max(CASE raw WHEN 0 THEN length(data) ELSE raw END) FROM segs", v,
                 sizeof(v)),
        1);
    assert_true(atol(v) <= seg_max);
    assert_true(atol(v) > seg_max - 200); /* filled: ~180-byte entries */
    assert_int_equal(one_text(db, "SELECT max(length(data)) FROM segs", v, sizeof(v)), 1);
    assert_true(atol(v) <= seg_max);
    sqlite3_close(db);
    unlink(path);
}

static void test_sqlite_page_size(void **state)
{
    char path[512];
    sqlite3 *db;

    (void)state;
    snprintf(path, sizeof(path), "%s/pg16.db", tmpdir);
    unlink(path);
    seg_sizes(path, 16384, 16384 - 296);

    snprintf(path, sizeof(path), "%s/pg4.db", tmpdir);
    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_ok(db, "PRAGMA page_size=4096; CREATE TABLE made_before(x)");
    sqlite3_close(db);
    seg_sizes(path, 4096, 4096 - 296);
}

/* Opening fails with a message a user can act on, and fast. */
static void test_open_errors(void **state)
{
    sl_store st = {0};
    sl_error err = {0};
    char uri[600];
    double t0;

    assert_int_equal(sl_store_open(&st, "redis://x", &err), -1);
    assert_int_equal(err.code, SL_ERR_USAGE);
    assert_non_null(strstr(err.msg, "unknown store 'redis://x'"));

    assert_int_equal(sl_store_open(&st, "sqlite:", &err), -1);
    assert_int_equal(err.code, SL_ERR_USAGE);

    snprintf(uri, sizeof(uri), "sqlite:%s/no/such/dir/x.db", tmpdir);
    assert_int_equal(sl_store_open(&st, uri, &err), -1);
    assert_int_equal(err.code, SL_ERR_STORE);
    assert_non_null(strstr(err.msg, "cannot open sqlite store"));

    assert_int_equal(sl_store_open(&st, "mongodb://user:secret@h:99999/", &err), -1);
    assert_int_equal(err.code, SL_ERR_USAGE);
    assert_non_null(strstr(err.msg, "invalid MongoDB URI"));
    assert_null(strstr(err.msg, "secret"));

    /* nothing listens on port 1: refused at once, reported as such */
    t0 = now_s();
    assert_int_equal(sl_store_open(&st, "mongodb://u:secret@127.0.0.1:1/db", &err), -1);
    assert_int_equal(err.code, SL_ERR_STORE);
    assert_non_null(strstr(err.msg, "cannot reach MongoDB at 127.0.0.1:1: "));
    assert_null(strstr(err.msg, "secret"));
    assert_true(now_s() - t0 < 10);

    /* a server that accepts connections but never answers: the default
     * timeout (5 s), or the URI's */
    {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        double took;

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 8), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/", ntohs(sa.sin_port));
        t0 = now_s();
        assert_int_equal(sl_store_open(&st, uri, &err), -1);
        took = now_s() - t0;
        assert_non_null(strstr(err.msg, "cannot reach MongoDB at 127.0.0.1:"));
        assert_true(took > 4 && took < 9);
        snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/?connectTimeoutMS=1000",
                 ntohs(sa.sin_port));
        t0 = now_s();
        assert_int_equal(sl_store_open(&st, uri, &err), -1);
        took = now_s() - t0;
        assert_true(took > 0.5 && took < 3);
        close(fd);
    }

    /* the none store: nothing remembered, nothing fails */
    {
        sl_buf b = SL_BUF_INIT;
        sl_seen rows[] = {seen("a", "s.t", "{}", "1", "", "{}")};
        int64_t done = 1;
        void *sess;

        assert_int_equal(sl_store_open(&st, "none", &err), 0);
        sess = st.ops->session_open(st.self, &err);
        assert_non_null(sess);
        assert_int_equal(st.ops->seen_put(sess, rows, 1, NULL, 0, &err), 0);
        assert_int_equal(st.ops->row_get(sess, S("s.t"), S("{}"), &b, &err), 0);
        assert_int_equal(st.ops->conflict_decide(sess, S("x"), S("operator"), S("null"), &err), 0);
        assert_int_equal(st.ops->input_get(sess, "in", 1, &done, &err), 0);
        assert_int_equal(done, 0);
        assert_int_equal(st.ops->round_trips(sess), 0);
        st.ops->session_close(sess);
        sl_store_destroy(&st);
    }
}

/* ---- main ----------------------------------------------------------------------- */

#define CONTRACT(X)                                                                                \
    X(test_row_roundtrip)                                                                          \
    X(test_row_last_in_batch_wins)                                                                 \
    X(test_row_unknown)                                                                            \
    X(test_conflict_upsert)                                                                        \
    X(test_conflict_filters)                                                                       \
    X(test_conflict_decide)                                                                        \
    X(test_rows_each)                                                                              \
    X(test_progress)                                                                               \
    X(test_inputs)                                                                                 \
    X(test_reopen)                                                                                 \
    X(test_many_rows)                                                                              \
    X(test_parallel_sessions)                                                                      \
    X(test_round_trips)                                                                            \
    X(test_rows_get)

#define SQLITE_TEST(fn)                                                                            \
    cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&be_sqlite),
#define MONGO_TEST(fn)                                                                             \
    cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&be_mongo),

/* At exit: whatever a failed test left in the temporary directory, then the directory. */
static void rm_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[600];

    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest sqlite_tests[] = {CONTRACT(SQLITE_TEST)
                                                  cmocka_unit_test(test_sqlite_migrate),
                                              cmocka_unit_test(test_sqlite_migrate_v3),
                                              cmocka_unit_test(test_sqlite_migrate_v4),
                                              cmocka_unit_test(test_sqlite_corrupt_segment),
                                              cmocka_unit_test(test_sqlite_incompressible),
                                              cmocka_unit_test(test_sqlite_segments),
                                              cmocka_unit_test(test_sqlite_page_size)};
    const struct CMUnitTest mongo_tests[] = {CONTRACT(MONGO_TEST)};
    const struct CMUnitTest open_tests[] = {cmocka_unit_test(test_open_errors)};
    const char *tmp = getenv("TMPDIR");
    int failed = 0;

    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    mongo_base = getenv("SLUICE_TEST_MONGO_URI");
    if (mongo_base && mongo_base[0] == '\0')
        mongo_base = NULL;
    snprintf(tmpdir, sizeof(tmpdir), "%s/sluice-store-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror(tmpdir);
        return 1;
    }
    atexit(rm_tmpdir);
    mongoc_init();
    failed += cmocka_run_group_tests_name("store open", open_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("sqlite store", sqlite_tests, NULL, NULL);
    if (mongo_base == NULL)
        print_message("[   INFO   ] mongodb store: SLUICE_TEST_MONGO_URI is not set; its tests are "
                      "skipped (tests/store/run-mongo.sh runs them)\n");
    failed += cmocka_run_group_tests_name("mongodb store", mongo_tests, NULL, NULL);
    mongoc_cleanup();
    return failed ? 1 : 0;
}
