/*
 * sqlite_rows.h - the row documents of the SQLite store.
 *
 * Documents are appended, never updated in place: each batch's documents go
 * into `segs` rows that fit one B-tree page (LZ4-compressed when that is
 * shorter),
 * and a hash index in memory says where each row's newest document is. A
 * row written again leaves its old entry behind as garbage, which later
 * batches move out of mostly-dead segments (compaction) so that the file
 * stays within about twice its live size. The index is built from the
 * segments when the process first needs it and follows what other
 * processes append (every lookup and every write first reads the segments
 * newer than the last one it knows). docs/store.md has the layout and its
 * costs; connectors/sqlite_store.c owns the transactions.
 */
#ifndef SL_SQLITE_ROWS_H
#define SL_SQLITE_ROWS_H

#include <sqlite3.h>

#include "store.h"

/* `raw`: 0 when `data` holds the entries as they are, else their length
 * before LZ4 compressed them into `data` (schema version 5). */
#define SQ_ROWS_SCHEMA                                                                             \
    "CREATE TABLE IF NOT EXISTS segs(id INTEGER PRIMARY KEY, data BLOB NOT NULL,"                  \
    "  raw INTEGER NOT NULL DEFAULT 0);"
/* Bring a version-4 `segs` (no `raw`: nothing compressed) up to date. */
#define SQ_ROWS_SCHEMA_FROM_4 "ALTER TABLE segs ADD COLUMN raw INTEGER NOT NULL DEFAULT 0;"

typedef struct sq_rows sq_rows; /* one per store handle (process-wide index) */

/* One session's statements and buffers. */
typedef struct sq_rows_sess {
    sqlite3 *db;
    sqlite3_stmt *after, *one, *put, *del;
    sl_buf seg;           /* the segment being filled */
    sl_buf pend;          /* bytes of the segments written in the open transaction */
    struct sq_pseg *pseg; /* ... and where each starts */
    size_t npseg, cappseg;
    int64_t *gone; /* segments deleted in the open transaction */
    size_t ngone, capgone;
    int64_t next_id;
    size_t seg_bytes; /* a segment closes before an entry takes it past this */
    sl_buf tmp;
    sl_buf z; /* a segment compressed, or one read from the file expanded */
} sq_rows_sess;

sq_rows *sq_rows_new(void);
void sq_rows_free(sq_rows *r);

/* The file's page size (4096 when it cannot be read). */
int sq_page_size(sqlite3 *db);

int sq_rows_sess_init(sq_rows_sess *s, sqlite3 *db, sl_error *err);
void sq_rows_sess_free(sq_rows_sess *s);

/* The newest document of (table, key): 1 and *doc filled, 0 when unknown. */
int sq_rows_get(sq_rows *r, sq_rows_sess *s, sl_str table, sl_str key, sl_buf *doc, sl_error *err);
/* 1 when the store holds any row, 0 when none. */
int sq_rows_any(sq_rows *r, sq_rows_sess *s, sl_error *err);
/* Every row of `table` (NULL: all), by table then key (bytes). */
int sq_rows_each(sq_rows *r, sq_rows_sess *s, const char *table,
                 int (*fn)(void *arg, sl_str table, sl_str key, sl_str doc), void *arg,
                 sl_error *err);

/* Inside the caller's write transaction (BEGIN IMMEDIATE): append the
 * documents of rows (those with one), moving live entries out of
 * mostly-dead segments first. Then, after COMMIT, sq_rows_committed puts
 * them in the index; after a ROLLBACK, sq_rows_discard forgets them. */
int sq_rows_write(sq_rows *r, sq_rows_sess *s, const sl_seen *rows, size_t n, sl_error *err);
void sq_rows_committed(sq_rows *r, sq_rows_sess *s);
void sq_rows_discard(sq_rows_sess *s);

/* Schema migration, inside the caller's transaction: the documents of the
 * old `rows` table (schema version 3 and before) become segments, in rowid
 * order, and the table is dropped. */
int sq_rows_migrate(sqlite3 *db, sl_error *err);

/* Numbers for tests and docs: rows indexed, entries in segments, segments. */
void sq_rows_stats(sq_rows *r, size_t *live, size_t *entries, size_t *segs);

#endif
