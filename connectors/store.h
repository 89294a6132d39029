/*
 * store.h - the metadata store.
 *
 * What sluice must remember between runs:
 *  - the consolidated view: for every replicated row (table + canonical key
 *    JSON) one document, the row's state, which the engine encodes (binary;
 *    JSON before schema 3) and the store keeps as opaque bytes (engine/rowstate.h says
 *    what is in it: the consolidated version, what each site was sent and
 *    acknowledged, the newest source position seen from each site, the
 *    images that serve as merge bases);
 *  - conflicts, records of their own, queryable by table, key, site, status;
 *  - per origin and source partition the newest position processed
 *    (`sluice status`), and per input stream how far it was read.
 *
 * The store handle is shared; each worker opens its own session (its own
 * connection) and uses it from that thread only. Backends: SQLite (the
 * embedded default, connectors/sqlite_store.c), MongoDB
 * (connectors/mongo_store.c) and "none" (nothing is remembered).
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../common/value.h"

#define SL_STORE_DEFAULT_URI "sqlite:sluice.db"

/* One processed change, as recorded in a batch: the row's new state
 * document, and the progress of its origin's source partition. */
typedef struct sl_seen {
    sl_str origin;    /* site name */
    sl_str table;     /* "schema.table" */
    sl_str key;       /* canonical key JSON */
    sl_str position;  /* encoded, memcmp-ordered; may be empty */
    sl_str partition; /* source partition */
    sl_str doc;       /* the row's state document after this change; empty:
                         leave the stored document alone (progress only) */
} sl_seen;

/* Conflict status values (stored as these strings). */
#define SL_CONFLICT_RESOLVED "resolved" /* decided by the table's rule */
#define SL_CONFLICT_OPEN     "open"     /* waiting for an operator */
#define SL_CONFLICT_OPERATOR "operator" /* decided by an operator */

/* One conflict. Strings are JSON text where they hold rows ("null" for none
 * or a deleted row). `id` is derived from (table, key, incoming site,
 * incoming position), so recording the same conflict twice (a re-delivery
 * after a crash) overwrites, never duplicates. */
typedef struct sl_conflict_rec {
    sl_str id;
    sl_str table, key;
    sl_str site_incoming; /* the site whose change conflicted */
    sl_str site_current;  /* the writer of the consolidated version */
    int64_t v_current;    /* consolidated version it conflicted with */
    int64_t v_result;     /* version the resolution created (= v_current when current stays) */
    sl_str base, current, incoming, result; /* row images (JSON text or "null") */
    sl_str rule;                            /* "retail.rules:31:5" - the rule that decided */
    sl_str strategy; /* "latest", "prefer central", "merge", "lua merge_points", "manual" */
    sl_str status;   /* SL_CONFLICT_* */
    sl_str reason;   /* why it went to an operator (Lua error, ...); may be empty */
    sl_str position; /* the incoming change's source position */
    int64_t ts_incoming, ts_current; /* source ts_ms of both sides */
    int64_t detected_ms;             /* wall clock */
    int64_t decided_ms;              /* wall clock; 0 while open */
} sl_conflict_rec;

/* Query filter: NULL fields match anything. site matches either side. */
typedef struct sl_conflict_filter {
    const char *table;
    const char *key;
    const char *site;
    const char *status;
} sl_conflict_filter;

typedef struct sl_store_ops {
    const char *scheme;
    void *(*session_open)(void *self, sl_error *err);
    void (*session_close)(void *sess);
    /* The row's state document: 1 and *doc filled (replacing its contents),
     * 0 when the row is unknown, -1 on error. */
    int (*row_get)(void *sess, sl_str table, sl_str key, sl_buf *doc, sl_error *err);
    /* 1 when the store holds any row document, 0 when none, -1 on error
     * (optional: NULL means ask rows_each). */
    int (*rows_any)(void *sess, sl_error *err);
    /* Several rows in one request (optional: NULL where a request per row
     * costs no more, as with SQLite): fn(arg, i, doc) for each rows[i] the
     * store has (tables[i], keys[i]), in any order, the document valid
     * during the call only. 0, or -1 on error. */
    int (*rows_get)(void *sess, const sl_str *tables, const sl_str *keys, size_t n,
                    void (*fn)(void *arg, size_t i, sl_str doc), void *arg, sl_error *err);
    /* Record a batch atomically where the backend can (SQLite: one
     * transaction; MongoDB: ordered bulk writes, each idempotent): row
     * documents (in order: a later one for the same row replaces an earlier
     * one), conflicts (upserted by id), and partition progress. */
    int (*seen_put)(void *sess, const sl_seen *rows, size_t n, const sl_conflict_rec *conflicts,
                    size_t nconflicts, sl_error *err);
    /* Conflicts matching f, newest first, at most `limit` (0: all). The
     * callback's record is valid during the call only; stop by returning
     * non-zero. */
    int (*conflicts_each)(void *sess, const sl_conflict_filter *f, size_t limit,
                          int (*fn)(void *arg, const sl_conflict_rec *c), void *arg, sl_error *err);
    /* An operator's decision: set status, result and decided_ms of conflict id.
     * Returns 1 when it existed, 0 when not, -1 on error. */
    int (*conflict_decide)(void *sess, sl_str id, sl_str status, sl_str result, sl_error *err);
    /* Every row document of a table (NULL: all tables), in key order. */
    int (*rows_each)(void *sess, const char *table,
                     int (*fn)(void *arg, sl_str table, sl_str key, sl_str doc), void *arg,
                     sl_error *err);
    /* How many lines (or the offset) of an input stream are done. */
    int (*input_get)(void *sess, const char *input, uint64_t fp, int64_t *done, sl_error *err);
    int (*input_put)(void *sess, const char *input, uint64_t fp, int64_t done, sl_error *err);
    /* Per origin + partition: newest position processed (for status). The
     * callback gets each row; stop by returning non-zero. */
    int (*progress_each)(void *sess,
                         int (*fn)(void *arg, const char *origin, const char *partition,
                                   const char *position, int64_t events),
                         void *arg, sl_error *err);
    /* Round trips to the server made by this session so far (0 for embedded
     * stores that have no server). */
    uint64_t (*round_trips)(void *sess);
    void (*destroy)(void *self);
} sl_store_ops;

typedef struct sl_store {
    const sl_store_ops *ops;
    void *self;
} sl_store;

/* Open by URI: "sqlite:PATH" (file created if missing), "mongodb://..."
 * (database from the URI path, default "sluice") or "none" (no state:
 * nothing is remembered; every run processes everything). */
int sl_store_open(sl_store *st, const char *uri, sl_error *err);

/* Remove the name of libmongoc's shared-memory counters file of this
 * process (/dev/shm/mongoc-PID; connectors/mongo_store.c says why). Called
 * first thing by the command line; harmless when there is none. */
void sl_store_forget_shm(void);

static inline void sl_store_destroy(sl_store *st)
{
    if (st->ops)
        st->ops->destroy(st->self);
    st->ops = NULL;
}

#endif
