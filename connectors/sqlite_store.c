/*
 * sqlite_store.c - the embedded metadata store (one SQLite file, WAL mode).
 *
 * Every worker session has its own connection; writes are batched into one
 * transaction per call, and SQLite's busy timeout serialises writers of
 * different processes. Tables (docs/store.md):
 *   segs(id, data)                    the consolidated view: row state documents appended
 *                                     in segments, found through an index in memory
 *                                     (sqlite_rows.c)
 *   conflicts(id, ...)                one record per conflict, upserted by id
 *   progress(origin, part, pos, ...)  newest position processed per source partition
 *   inputs(input, fp, done, ...)      how far each input stream was read
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "progress.h"
#include "sqlite_rows.h"
#include "store.h"

#define SCHEMA_VERSION 5

/* Version 1 had a `seen` table (newest position per origin, table and key).
 * Version 2 keeps that inside each row's state document instead, which a
 * position alone cannot be turned into: opening a version-1 file drops it.
 * Version 3 has the same tables; its row documents are binary (the engine
 * still reads the JSON documents of version 2, and rewrites a row in the new
 * form when it changes), so a sluice that knows only version 2 must not
 * open it. Version 4 keeps the documents in appended segments instead of
 * one `rows` row each under a unique (tbl, key) index; opening a version-2
 * or 3 file moves them over (sq_rows_migrate). Version 5 may compress a
 * segment (`segs.raw`), which a sluice that knows only version 4 would
 * take for damage; opening a version-4 file adds the column, and its old
 * segments are read as they are. */
static const char schema_sql[] =
    /* row documents: appended in segments, indexed in memory (sqlite_rows.c) */
    SQ_ROWS_SCHEMA
    "CREATE TABLE IF NOT EXISTS conflicts("
    "  id TEXT NOT NULL PRIMARY KEY, tbl TEXT NOT NULL, key TEXT NOT NULL,"
    "  site_in TEXT NOT NULL, site_cur TEXT NOT NULL, v_cur INTEGER NOT NULL,"
    "  v_res INTEGER NOT NULL, base TEXT NOT NULL, current TEXT NOT NULL,"
    "  incoming TEXT NOT NULL, result TEXT NOT NULL, rule TEXT NOT NULL,"
    "  strategy TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, pos BLOB NOT NULL,"
    "  ts_in INTEGER NOT NULL, ts_cur INTEGER NOT NULL, detected_ms INTEGER NOT NULL,"
    "  decided_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS conflicts_tbl_key ON conflicts(tbl, key);"
    "CREATE INDEX IF NOT EXISTS conflicts_site_in ON conflicts(site_in);"
    "CREATE INDEX IF NOT EXISTS conflicts_site_cur ON conflicts(site_cur);"
    /* status first, then time: "the open ones, newest first" reads the index in order */
    "CREATE INDEX IF NOT EXISTS conflicts_status ON conflicts(status, detected_ms);"
    "CREATE TABLE IF NOT EXISTS progress("
    "  origin TEXT NOT NULL, part TEXT NOT NULL, pos BLOB NOT NULL, events INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL, PRIMARY KEY(origin, part)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS inputs("
    "  input TEXT PRIMARY KEY, fp INTEGER NOT NULL, done INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);";

/* The conflict columns in the order of sl_conflict_rec, for INSERT and SELECT. */
#define CONFLICT_COLS                                                                              \
    "id, tbl, key, site_in, site_cur, v_cur, v_res, base, current, incoming, result, rule, "       \
    "strategy, status, reason, pos, ts_in, ts_cur, detected_ms, decided_ms"

/* conflicts_each builds one statement per combination of filter fields. */
enum { F_TABLE = 1, F_KEY = 2, F_SITE = 4, F_STATUS = 8, F_COMBOS = 16 };

typedef struct sq_store {
    char *path;
    sq_rows *rows; /* where each row's newest document is */
    /* Writers of one process take turns here rather than in SQLite's busy
     * handler, which sleeps for milliseconds at a time when two workers
     * want the write lock at once. */
    pthread_mutex_t write_mu;
    /* Checkpoints (copying the WAL back into the database, with fsyncs) run
     * on a thread of their own, so that a commit never waits for one: the
     * writers' connections never checkpoint, and tell this thread when the
     * WAL has grown (wal_hook). */
    pthread_t ckpt;
    bool ckpt_running, ckpt_stop;
    int ckpt_pages; /* WAL pages at the last commit */
    int ckpt_at;    /* WAL pages that wake the checkpointer: CKPT_BYTES of them */
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
} sq_store;

/* Wake the checkpointer at this WAL size, and at least every CKPT_PERIOD_S
 * seconds. tests/store/test_store_hooks.c builds this file with a small size
 * and no timer, to see the wake-up alone. */
#ifndef CKPT_BYTES
#define CKPT_BYTES (16 << 20)
#endif
#ifndef CKPT_PERIOD_S
#define CKPT_PERIOD_S 1
#endif

typedef struct sq_sess {
    sq_store *st;
    sqlite3 *db;
    sqlite3_stmt *conf_put, *conf_decide, *prog, *in_get, *in_put, *begin, *commit, *rollback,
        *prog_all;
    sq_rows_sess rs;
    sqlite3_stmt *conf_q[F_COMBOS]; /* prepared on first use */
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

/* A NULL pointer would bind SQL NULL; an empty string must stay a string. */
static void bind_str(sqlite3_stmt *st, int i, sl_str s)
{
    sqlite3_bind_text(st, i, s.p ? s.p : "", (int)s.len, SQLITE_STATIC);
}

static void bind_blob(sqlite3_stmt *st, int i, sl_str s)
{
    sqlite3_bind_blob(st, i, s.p ? s.p : "", (int)s.len, SQLITE_STATIC);
}

static sl_str col_str(sqlite3_stmt *st, int i)
{
    sl_str s;

    s.p = (const char *)sqlite3_column_text(st, i);
    s.len = (size_t)sqlite3_column_bytes(st, i);
    if (s.p == NULL)
        s.p = "";
    return s;
}

static sl_str col_blob(sqlite3_stmt *st, int i)
{
    sl_str s;

    s.p = sqlite3_column_blob(st, i);
    s.len = (size_t)sqlite3_column_bytes(st, i);
    if (s.p == NULL)
        s.p = "";
    return s;
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
    /* A new file gets 16 KiB pages (SQLite's default is 4 KiB): a quarter of
     * the pages, log frames and B-tree cells for the same documents, about 8%
     * of the state benchmark's CPU (docs/performance.md). A file that exists
     * keeps its page size; the pragma does nothing there. */
    if (sqlite3_exec(db,
                     "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                     "PRAGMA cache_size=-16384; "
                     "PRAGMA mmap_size=0; PRAGMA wal_autocheckpoint=0;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, path);
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

/* The schema version recorded in meta: 0 for a new file, -1 on error. */
static int schema_version(sqlite3 *db, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, v = 0;

    if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k='schema_version'", -1, &st, NULL) !=
        SQLITE_OK)
        return sq_fail(db, err, "read schema version");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = atoi((const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_DONE)
        v = sq_fail(db, err, "read schema version");
    sqlite3_finalize(st);
    return v;
}

/* Create the schema, or bring an older file up to date, in one transaction
 * so that two processes opening a new file at once do not interleave. */
static int schema_ensure(sqlite3 *db, const char *path, sl_error *err)
{
    int v, rc = -1;
    char sql[128];

    if (sqlite3_exec(db,
                     "BEGIN IMMEDIATE;"
                     "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);",
                     NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, "create schema");
        goto out;
    }
    v = schema_version(db, err);
    if (v < 0)
        goto rollback;
    if (v > SCHEMA_VERSION) {
        sl_error_set(err, SL_ERR_STORE,
                     "sqlite store %s: schema version %d was written by a newer sluice (this one "
                     "knows up to %d)",
                     path, v, SCHEMA_VERSION);
        goto rollback;
    }
    if (v == 1 && sqlite3_exec(db, "DROP TABLE IF EXISTS seen", NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, "migrate schema 1 to 2: drop table seen");
        goto rollback;
    }
    if (sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, "create schema");
        goto rollback;
    }
    if (v == 4 && sqlite3_exec(db, SQ_ROWS_SCHEMA_FROM_4, NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, "migrate schema 4 to 5: add segs.raw");
        goto rollback;
    }
    if ((v == 2 || v == 3) && sq_rows_migrate(db, err) != 0)
        goto rollback;
    snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO meta(k, v) VALUES('schema_version', '%d')",
             SCHEMA_VERSION);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(db, err, "create schema");
        goto rollback;
    }
    rc = 0;
    goto out;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
    return rc;
}

static void sess_close(void *p)
{
    sq_sess *s = p;
    size_t i;

    if (s == NULL)
        return;
    sqlite3_finalize(s->conf_put);
    sqlite3_finalize(s->conf_decide);
    sqlite3_finalize(s->prog);
    sqlite3_finalize(s->in_get);
    sqlite3_finalize(s->in_put);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_finalize(s->prog_all);
    sq_rows_sess_free(&s->rs);
    for (i = 0; i < F_COMBOS; i++)
        sqlite3_finalize(s->conf_q[i]);
    sqlite3_close(s->db);
    free(s);
}

static int wal_grew(void *arg, sqlite3 *db, const char *name, int pages)
{
    sq_store *st = arg;

    pthread_mutex_lock(&st->ckpt_mu);
    st->ckpt_pages = pages;
    if (pages >= st->ckpt_at)
        pthread_cond_signal(&st->ckpt_cv);
    pthread_mutex_unlock(&st->ckpt_mu);
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    sq_store *st = arg;
    sqlite3 *db = NULL;
    sl_error err;

    pthread_setname_np(pthread_self(), "sluice-sqlckpt");
    if (open_db(st->path, &db, &err) != 0)
        return NULL; /* the writers' own connections will report the problem */
    pthread_mutex_lock(&st->ckpt_mu);
    while (!st->ckpt_stop) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += CKPT_PERIOD_S;
        if (st->ckpt_pages < st->ckpt_at)
            pthread_cond_timedwait(&st->ckpt_cv, &st->ckpt_mu, &ts);
        if (st->ckpt_stop)
            break;
        st->ckpt_pages = 0;
        pthread_mutex_unlock(&st->ckpt_mu);
        /* PASSIVE: copies what no reader still needs, never blocks a writer */
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&st->ckpt_mu);
    }
    pthread_mutex_unlock(&st->ckpt_mu);
    sqlite3_close(db); /* the last connection to close checkpoints the rest */
    return NULL;
}

static void *sess_open(void *self, sl_error *err)
{
    sq_store *st = self;
    sq_sess *s = sl_xcalloc(1, sizeof(*s));
    static const struct {
        size_t off;
        const char *sql;
    } stmts[] = {
        {offsetof(sq_sess, conf_put),
         "INSERT INTO conflicts(" CONFLICT_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
         "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) "
         "ON CONFLICT(id) DO UPDATE SET tbl=excluded.tbl, key=excluded.key, "
         "site_in=excluded.site_in, site_cur=excluded.site_cur, v_cur=excluded.v_cur, "
         "v_res=excluded.v_res, base=excluded.base, current=excluded.current, "
         "incoming=excluded.incoming, result=excluded.result, rule=excluded.rule, "
         "strategy=excluded.strategy, status=excluded.status, reason=excluded.reason, "
         "pos=excluded.pos, ts_in=excluded.ts_in, ts_cur=excluded.ts_cur, "
         "detected_ms=excluded.detected_ms, decided_ms=excluded.decided_ms"},
        {offsetof(sq_sess, conf_decide),
         "UPDATE conflicts SET status=?2, result=?3, decided_ms=?4 WHERE id=?1"},
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
    sqlite3_wal_hook(s->db, wal_grew, st);
    for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_stmt **slot = (sqlite3_stmt **)((char *)s + stmts[i].off);

        if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
            SQLITE_OK) {
            sq_fail(s->db, err, "prepare");
            sess_close(s);
            return NULL;
        }
    }
    if (sq_rows_sess_init(&s->rs, s->db, err) != 0) {
        sess_close(s);
        return NULL;
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

/* A callback may use the session again while a query runs (list the
 * conflicts of a table, decide one): a statement in use is then not
 * reused but a fresh one prepared, which *tmp owns. */
static sqlite3_stmt *stmt_free_or_new(sq_sess *s, sqlite3_stmt *cached, const char *sql,
                                      sqlite3_stmt **tmp, sl_error *err)
{
    *tmp = NULL;
    if (cached && !sqlite3_stmt_busy(cached))
        return cached;
    if (sqlite3_prepare_v2(s->db, sql ? sql : sqlite3_sql(cached), -1, tmp, NULL) != SQLITE_OK) {
        sq_fail(s->db, err, "prepare");
        return NULL;
    }
    return *tmp;
}

static void stmt_done(sqlite3_stmt *st, sqlite3_stmt *tmp)
{
    if (tmp) {
        sqlite3_finalize(tmp);
        return;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int row_get(void *p, sl_str table, sl_str key, sl_buf *doc, sl_error *err)
{
    sq_sess *s = p;

    return sq_rows_get(s->st->rows, &s->rs, table, key, doc, err);
}

static int rows_any(void *p, sl_error *err)
{
    sq_sess *s = p;

    return sq_rows_any(s->st->rows, &s->rs, err);
}

static void bind_conflict(sqlite3_stmt *st, const sl_conflict_rec *c)
{
    bind_str(st, 1, c->id);
    bind_str(st, 2, c->table);
    bind_str(st, 3, c->key);
    bind_str(st, 4, c->site_incoming);
    bind_str(st, 5, c->site_current);
    sqlite3_bind_int64(st, 6, c->v_current);
    sqlite3_bind_int64(st, 7, c->v_result);
    bind_str(st, 8, c->base);
    bind_str(st, 9, c->current);
    bind_str(st, 10, c->incoming);
    bind_str(st, 11, c->result);
    bind_str(st, 12, c->rule);
    bind_str(st, 13, c->strategy);
    bind_str(st, 14, c->status);
    bind_str(st, 15, c->reason);
    bind_blob(st, 16, c->position);
    sqlite3_bind_int64(st, 17, c->ts_incoming);
    sqlite3_bind_int64(st, 18, c->ts_current);
    sqlite3_bind_int64(st, 19, c->detected_ms);
    sqlite3_bind_int64(st, 20, c->decided_ms);
}

static int seen_put(void *p, const sl_seen *rows, size_t n, const sl_conflict_rec *conflicts,
                    size_t nconflicts, sl_error *err)
{
    sq_sess *s = p;
    sl_prog_acc *acc = NULL;
    size_t nacc, i;
    int64_t now = now_ms();
    int rc = -1;

    if (n == 0 && nconflicts == 0)
        return 0;
    acc = sl_xmalloc((n ? n : 1) * sizeof(*acc));
    nacc = sl_progress_aggregate(rows, n, acc);
    pthread_mutex_lock(&s->st->write_mu);
    if (step_done(s, s->begin, err, "begin") != 0)
        goto out;
    if (sq_rows_write(s->st->rows, &s->rs, rows, n, err) != 0)
        goto rollback;
    for (i = 0; i < nconflicts; i++) {
        bind_conflict(s->conf_put, &conflicts[i]);
        if (step_done(s, s->conf_put, err, "write conflicts") != 0)
            goto rollback;
    }
    for (i = 0; i < nacc; i++) {
        bind_str(s->prog, 1, acc[i].origin);
        bind_str(s->prog, 2, acc[i].part);
        bind_blob(s->prog, 3, acc[i].pos);
        sqlite3_bind_int64(s->prog, 4, acc[i].events);
        sqlite3_bind_int64(s->prog, 5, now);
        if (step_done(s, s->prog, err, "write progress") != 0)
            goto rollback;
    }
    if (step_done(s, s->commit, err, "commit") != 0)
        goto rollback;
    sq_rows_committed(s->st->rows, &s->rs);
    rc = 0;
    goto out;
rollback:
    step_done(s, s->rollback, NULL, "rollback");
    sq_rows_discard(&s->rs);
out:
    /* the statements bound the caller's bytes: drop the references */
    sqlite3_clear_bindings(s->conf_put);
    sqlite3_clear_bindings(s->prog);
    pthread_mutex_unlock(&s->st->write_mu);
    free(acc);
    return rc;
}

static const char *conflict_sql(unsigned f, char *sql, size_t cap)
{
    size_t n;
    const char *and = " WHERE";

    n = (size_t)snprintf(sql, cap, "SELECT " CONFLICT_COLS " FROM conflicts");
    if (f & F_TABLE) {
        n += (size_t)snprintf(sql + n, cap - n, "%s tbl=?1", and);
        and = " AND";
    }
    if (f & F_KEY) {
        n += (size_t)snprintf(sql + n, cap - n, "%s key=?2", and);
        and = " AND";
    }
    if (f & F_SITE) {
        n += (size_t)snprintf(sql + n, cap - n, "%s (site_in=?3 OR site_cur=?3)", and);
        and = " AND";
    }
    if (f & F_STATUS)
        n += (size_t)snprintf(sql + n, cap - n, "%s status=?4", and);
    snprintf(sql + n, cap - n, " ORDER BY detected_ms DESC, id LIMIT ?5");
    return sql;
}

static int conflicts_each(void *p, const sl_conflict_filter *f, size_t limit,
                          int (*fn)(void *arg, const sl_conflict_rec *c), void *arg, sl_error *err)
{
    sq_sess *s = p;
    unsigned mask = 0;
    char sql[1024];
    sqlite3_stmt *st, *tmp = NULL;
    sl_conflict_rec c;
    int rc;

    if (f && f->table)
        mask |= F_TABLE;
    if (f && f->key)
        mask |= F_KEY;
    if (f && f->site)
        mask |= F_SITE;
    if (f && f->status)
        mask |= F_STATUS;
    conflict_sql(mask, sql, sizeof(sql));
    if (s->conf_q[mask] == NULL && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                                      &s->conf_q[mask], NULL) != SQLITE_OK)
        return sq_fail(s->db, err, "prepare conflicts query");
    st = stmt_free_or_new(s, s->conf_q[mask], sql, &tmp, err);
    if (st == NULL)
        return -1;
    if (mask & F_TABLE)
        sqlite3_bind_text(st, 1, f->table, -1, SQLITE_STATIC);
    if (mask & F_KEY)
        sqlite3_bind_text(st, 2, f->key, -1, SQLITE_STATIC);
    if (mask & F_SITE)
        sqlite3_bind_text(st, 3, f->site, -1, SQLITE_STATIC);
    if (mask & F_STATUS)
        sqlite3_bind_text(st, 4, f->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, limit ? (int64_t)limit : -1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&c, 0, sizeof(c));
        c.id = col_str(st, 0);
        c.table = col_str(st, 1);
        c.key = col_str(st, 2);
        c.site_incoming = col_str(st, 3);
        c.site_current = col_str(st, 4);
        c.v_current = sqlite3_column_int64(st, 5);
        c.v_result = sqlite3_column_int64(st, 6);
        c.base = col_str(st, 7);
        c.current = col_str(st, 8);
        c.incoming = col_str(st, 9);
        c.result = col_str(st, 10);
        c.rule = col_str(st, 11);
        c.strategy = col_str(st, 12);
        c.status = col_str(st, 13);
        c.reason = col_str(st, 14);
        c.position = col_blob(st, 15);
        c.ts_incoming = sqlite3_column_int64(st, 16);
        c.ts_current = sqlite3_column_int64(st, 17);
        c.detected_ms = sqlite3_column_int64(st, 18);
        c.decided_ms = sqlite3_column_int64(st, 19);
        if (fn(arg, &c) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        sq_fail(s->db, err, "read conflicts");
    stmt_done(st, tmp);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int conflict_decide(void *p, sl_str id, sl_str status, sl_str result, sl_error *err)
{
    sq_sess *s = p;
    int rc;

    bind_str(s->conf_decide, 1, id);
    bind_str(s->conf_decide, 2, status);
    bind_str(s->conf_decide, 3, result);
    sqlite3_bind_int64(s->conf_decide, 4, now_ms());
    pthread_mutex_lock(&s->st->write_mu);
    rc = step_done(s, s->conf_decide, err, "decide conflict");
    if (rc == 0)
        rc = sqlite3_changes(s->db) > 0;
    pthread_mutex_unlock(&s->st->write_mu);
    sqlite3_clear_bindings(s->conf_decide);
    return rc;
}

static int rows_each(void *p, const char *table,
                     int (*fn)(void *arg, sl_str table, sl_str key, sl_str doc), void *arg,
                     sl_error *err)
{
    sq_sess *s = p;

    return sq_rows_each(s->st->rows, &s->rs, table, fn, arg, err);
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
    sqlite3_stmt *st, *tmp = NULL;
    int rc;

    st = stmt_free_or_new(s, s->prog_all, NULL, &tmp, err);
    if (st == NULL)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (fn(arg, col_str(st, 0).p, col_str(st, 1).p, col_str(st, 2).p,
               sqlite3_column_int64(st, 3)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        sq_fail(s->db, err, "read progress");
    stmt_done(st, tmp);
    return rc == SQLITE_DONE ? 0 : -1;
}

static uint64_t round_trips(void *p)
{
    return 0; /* embedded: no server */
}

static void sq_destroy(void *self)
{
    sq_store *st = self;

    if (st == NULL)
        return;
    if (st->ckpt_running) {
        pthread_mutex_lock(&st->ckpt_mu);
        st->ckpt_stop = true;
        pthread_cond_signal(&st->ckpt_cv);
        pthread_mutex_unlock(&st->ckpt_mu);
        pthread_join(st->ckpt, NULL);
    }
    pthread_mutex_destroy(&st->ckpt_mu);
    pthread_cond_destroy(&st->ckpt_cv);
    pthread_mutex_destroy(&st->write_mu);
    sq_rows_free(st->rows);
    free(st->path);
    free(st);
}

static const sl_store_ops sqlite_ops = {
    .scheme = "sqlite",
    .session_open = sess_open,
    .session_close = sess_close,
    .row_get = row_get,
    .rows_any = rows_any,
    .seen_put = seen_put,
    .conflicts_each = conflicts_each,
    .conflict_decide = conflict_decide,
    .rows_each = rows_each,
    .input_get = input_get,
    .input_put = input_put,
    .progress_each = progress_each,
    .round_trips = round_trips,
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
    if (schema_ensure(db, path, err) != 0) {
        sqlite3_close(db);
        return -1;
    }
    st = sl_xcalloc(1, sizeof(*st));
    st->ckpt_at = CKPT_BYTES / sq_page_size(db);
    sqlite3_close(db);
    st->path = sl_xstrdup(path);
    st->rows = sq_rows_new();
    pthread_mutex_init(&st->write_mu, NULL);
    pthread_mutex_init(&st->ckpt_mu, NULL);
    pthread_cond_init(&st->ckpt_cv, NULL);
    st->ckpt_running = pthread_create(&st->ckpt, NULL, ckpt_main, st) == 0;
    out->ops = &sqlite_ops;
    out->self = st;
    return 0;
}
