/*
 * sqlite_store.c - the embedded metadata store (one SQLite file, WAL mode).
 *
 * Every worker session has its own connection; writes are batched into one
 * transaction per call, and SQLite's busy timeout serialises writers.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

#define SCHEMA_VERSION "1"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS seen("
    "  origin TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL, pos BLOB NOT NULL,"
    "  PRIMARY KEY(origin, tbl, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS progress("
    "  origin TEXT NOT NULL, part TEXT NOT NULL, pos BLOB NOT NULL, events INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL, PRIMARY KEY(origin, part)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS inputs("
    "  input TEXT PRIMARY KEY, fp INTEGER NOT NULL, done INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('schema_version', '" SCHEMA_VERSION "');";

typedef struct sq_store {
    char *path;
    /* Writers of one process take turns here rather than in SQLite's busy
     * handler, which sleeps for milliseconds at a time when two workers
     * want the write lock at once. */
    pthread_mutex_t write_mu;
} sq_store;

typedef struct sq_sess {
    sq_store *st;
    sqlite3 *db;
    sqlite3_stmt *get, *put, *prog, *in_get, *in_put, *begin, *commit, *rollback, *prog_all;
} sq_sess;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sq_fail(sqlite3 *db, sl_error *err, const char *what)
{
    return sl_error_set(err, SL_ERR_STORE, "sqlite store: %s: %s", what,
                        db ? sqlite3_errmsg(db) : "out of memory");
}

static int open_db(const char *path, sqlite3 **out, sl_error *err)
{
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        sl_error_set(err, SL_ERR_STORE, "cannot open sqlite store %s: %s", path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 60000);
    if (sqlite3_exec(
            db,
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384; "
            "PRAGMA mmap_size=268435456; PRAGMA wal_autocheckpoint=8192;",
            NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, path);
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

static void sess_close(void *p)
{
    sq_sess *s = p;

    if (s == NULL)
        return;
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->prog);
    sqlite3_finalize(s->in_get);
    sqlite3_finalize(s->in_put);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_finalize(s->prog_all);
    sqlite3_close(s->db);
    free(s);
}

static void *sess_open(void *self, sl_error *err)
{
    sq_store *st = self;
    sq_sess *s = sl_xcalloc(1, sizeof(*s));
    static const struct {
        size_t off;
        const char *sql;
    } stmts[] = {
        {offsetof(sq_sess, get), "SELECT pos FROM seen WHERE origin=?1 AND tbl=?2 AND key=?3"},
        {offsetof(sq_sess, put), "INSERT INTO seen(origin, tbl, key, pos) VALUES(?1, ?2, ?3, ?4) "
                                 "ON CONFLICT(origin, tbl, key) DO UPDATE SET pos=excluded.pos "
                                 "WHERE excluded.pos > seen.pos"},
        {offsetof(sq_sess, prog),
         "INSERT INTO progress(origin, part, pos, events, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5) "
         "ON CONFLICT(origin, part) DO UPDATE SET events=events+excluded.events, "
         "updated_ms=excluded.updated_ms, "
         "pos=CASE WHEN excluded.pos > pos THEN excluded.pos ELSE pos END"},
        {offsetof(sq_sess, in_get), "SELECT fp, done FROM inputs WHERE input=?1"},
        {offsetof(sq_sess, in_put),
         "INSERT INTO inputs(input, fp, done, updated_ms) VALUES(?1, ?2, ?3, ?4) "
         "ON CONFLICT(input) DO UPDATE SET fp=excluded.fp, done=excluded.done, "
         "updated_ms=excluded.updated_ms"},
        {offsetof(sq_sess, begin), "BEGIN IMMEDIATE"},
        {offsetof(sq_sess, commit), "COMMIT"},
        {offsetof(sq_sess, rollback), "ROLLBACK"},
        {offsetof(sq_sess, prog_all),
         "SELECT origin, part, pos, events FROM progress ORDER BY origin, part"},
    };
    size_t i;

    s->st = st;
    if (open_db(st->path, &s->db, err) != 0) {
        free(s);
        return NULL;
    }
    for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_stmt **slot = (sqlite3_stmt **)((char *)s + stmts[i].off);

        if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
            SQLITE_OK) {
            sq_fail(s->db, err, "prepare");
            sess_close(s);
            return NULL;
        }
    }
    return s;
}

static int step_done(sq_sess *s, sqlite3_stmt *st, sl_error *err, const char *what)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sq_fail(s->db, err, what);
    return 0;
}

static int seen_get(void *p, sl_str origin, sl_str table, sl_str key, sl_buf *pos, sl_error *err)
{
    sq_sess *s = p;
    int rc;

    sqlite3_bind_text(s->get, 1, origin.p, (int)origin.len, SQLITE_STATIC);
    sqlite3_bind_text(s->get, 2, table.p, (int)table.len, SQLITE_STATIC);
    sqlite3_bind_text(s->get, 3, key.p, (int)key.len, SQLITE_STATIC);
    rc = sqlite3_step(s->get);
    if (rc == SQLITE_ROW) {
        sl_buf_reset(pos);
        sl_buf_append(pos, sqlite3_column_blob(s->get, 0), (size_t)sqlite3_column_bytes(s->get, 0));
        sqlite3_reset(s->get);
        return 1;
    }
    sqlite3_reset(s->get);
    if (rc != SQLITE_DONE)
        return sq_fail(s->db, err, "read seen");
    return 0;
}

/* Partition progress aggregated over one batch before it is written. */
typedef struct prog_acc {
    sl_str origin, part, pos;
    int64_t events;
} prog_acc;

static int seen_put(void *p, const sl_seen *rows, size_t n, sl_error *err)
{
    sq_sess *s = p;
    prog_acc *acc = NULL;
    size_t nacc = 0, i, j;
    int64_t now = now_ms();
    int rc = -1;

    if (n == 0)
        return 0;
    acc = sl_xmalloc(n * sizeof(*acc));
    pthread_mutex_lock(&s->st->write_mu);
    if (step_done(s, s->begin, err, "begin") != 0)
        goto out;
    for (i = 0; i < n; i++) {
        const sl_seen *r = &rows[i];

        sqlite3_bind_text(s->put, 1, r->origin.p, (int)r->origin.len, SQLITE_STATIC);
        sqlite3_bind_text(s->put, 2, r->table.p, (int)r->table.len, SQLITE_STATIC);
        sqlite3_bind_text(s->put, 3, r->key.p, (int)r->key.len, SQLITE_STATIC);
        sqlite3_bind_blob(s->put, 4, r->position.p, (int)r->position.len, SQLITE_STATIC);
        if (step_done(s, s->put, err, "write seen") != 0)
            goto rollback;
        for (j = 0; j < nacc; j++)
            if (acc[j].origin.len == r->origin.len && acc[j].part.len == r->partition.len &&
                memcmp(acc[j].origin.p, r->origin.p, r->origin.len) == 0 &&
                memcmp(acc[j].part.p, r->partition.p, r->partition.len) == 0)
                break;
        if (j == nacc) {
            acc[nacc].origin = r->origin;
            acc[nacc].part = r->partition;
            acc[nacc].pos = r->position;
            acc[nacc++].events = 0;
        }
        acc[j].events++;
        {
            size_t m = acc[j].pos.len < r->position.len ? acc[j].pos.len : r->position.len;
            int c = memcmp(r->position.p, acc[j].pos.p, m);

            if (c > 0 || (c == 0 && r->position.len > acc[j].pos.len))
                acc[j].pos = r->position;
        }
    }
    for (j = 0; j < nacc; j++) {
        sqlite3_bind_text(s->prog, 1, acc[j].origin.p, (int)acc[j].origin.len, SQLITE_STATIC);
        sqlite3_bind_text(s->prog, 2, acc[j].part.p, (int)acc[j].part.len, SQLITE_STATIC);
        sqlite3_bind_blob(s->prog, 3, acc[j].pos.p, (int)acc[j].pos.len, SQLITE_STATIC);
        sqlite3_bind_int64(s->prog, 4, acc[j].events);
        sqlite3_bind_int64(s->prog, 5, now);
        if (step_done(s, s->prog, err, "write progress") != 0)
            goto rollback;
    }
    if (step_done(s, s->commit, err, "commit") != 0)
        goto rollback;
    rc = 0;
    goto out;
rollback:
    step_done(s, s->rollback, NULL, "rollback");
out:
    pthread_mutex_unlock(&s->st->write_mu);
    free(acc);
    return rc;
}

static int input_get(void *p, const char *input, uint64_t fp, int64_t *done, sl_error *err)
{
    sq_sess *s = p;
    int rc;

    *done = 0;
    sqlite3_bind_text(s->in_get, 1, input, -1, SQLITE_STATIC);
    rc = sqlite3_step(s->in_get);
    /* A different fingerprint means the file was replaced: start over (the
     * per-row positions still keep anything from being applied twice). */
    if (rc == SQLITE_ROW && (uint64_t)sqlite3_column_int64(s->in_get, 0) == fp)
        *done = sqlite3_column_int64(s->in_get, 1);
    sqlite3_reset(s->in_get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(s->db, err, "read inputs");
    return 0;
}

static int input_put(void *p, const char *input, uint64_t fp, int64_t done, sl_error *err)
{
    sq_sess *s = p;
    int rc;

    sqlite3_bind_text(s->in_put, 1, input, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->in_put, 2, (int64_t)fp);
    sqlite3_bind_int64(s->in_put, 3, done);
    sqlite3_bind_int64(s->in_put, 4, now_ms());
    pthread_mutex_lock(&s->st->write_mu);
    rc = step_done(s, s->in_put, err, "write inputs");
    pthread_mutex_unlock(&s->st->write_mu);
    return rc;
}

static int progress_each(void *p,
                         int (*fn)(void *arg, const char *origin, const char *partition,
                                   const char *position, int64_t events),
                         void *arg, sl_error *err)
{
    sq_sess *s = p;
    int rc;

    while ((rc = sqlite3_step(s->prog_all)) == SQLITE_ROW) {
        if (fn(arg, (const char *)sqlite3_column_text(s->prog_all, 0),
               (const char *)sqlite3_column_text(s->prog_all, 1),
               (const char *)sqlite3_column_text(s->prog_all, 2),
               sqlite3_column_int64(s->prog_all, 3)) != 0)
            break;
    }
    sqlite3_reset(s->prog_all);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(s->db, err, "read progress");
    return 0;
}

static void sq_destroy(void *self)
{
    sq_store *st = self;

    if (st == NULL)
        return;
    pthread_mutex_destroy(&st->write_mu);
    free(st->path);
    free(st);
}

static const sl_store_ops sqlite_ops = {
    .scheme = "sqlite",
    .session_open = sess_open,
    .session_close = sess_close,
    .seen_get = seen_get,
    .seen_put = seen_put,
    .input_get = input_get,
    .input_put = input_put,
    .progress_each = progress_each,
    .destroy = sq_destroy,
};

int sl_sqlite_store_open(sl_store *out, const char *path, sl_error *err);

int sl_sqlite_store_open(sl_store *out, const char *path, sl_error *err)
{
    sqlite3 *db = NULL;
    sq_store *st;

    if (path[0] == '\0')
        return sl_error_set(err, SL_ERR_USAGE, "sqlite store needs a path: sqlite:PATH");
    if (open_db(path, &db, err) != 0)
        return -1;
    if (sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, "create schema");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_close(db);
    st = sl_xcalloc(1, sizeof(*st));
    st->path = sl_xstrdup(path);
    pthread_mutex_init(&st->write_mu, NULL);
    out->ops = &sqlite_ops;
    out->self = st;
    return 0;
}
