/*
 * process.h - what happens to one input message, in two stages.
 *
 * Stage A, sl_item_decode (any worker, a whole batch of lines at a time):
 * parse the line (a Kafka record: sl_item_decode_record, unpack it), decode
 * the event, find its table, origin site and row key. That is what picks
 * the worker for stage B: a row's events always go to the worker that owns
 * hash(table, key), so they are handled in input order. Stage B,
 * sl_proc_item (that worker): drop what was already processed, filter,
 * route, select columns and render one output record per destination, or a
 * dead letter with the reason.
 *
 * An sl_item is reused across messages (its buffers keep their capacity).
 * An sl_proc belongs to one worker thread: its own store session, cache of
 * seen positions, arena and output buffer.
 */
#ifndef SL_PROCESS_H
#define SL_PROCESS_H

#include <stdatomic.h>
#include <stdint.h>

#include "../connectors/store.h"
#include "../dsl/program.h"
#include "event.h"
#include "eval.h"

typedef enum sl_fate {
    SL_FATE_PROCESS = 0, /* a change for stage B */
    SL_FATE_DEAD,        /* stage A failed: err says why */
    SL_FATE_BLANK,       /* an empty line */
    SL_FATE_TX,          /* transaction BEGIN/END marker */
    SL_FATE_SCHEMA,      /* schema change */
    SL_FATE_MESSAGE,     /* logical decoding message (op m) */
    SL_FATE_TOMBSTONE,   /* null value after a delete */
    SL_FATE_IGNORED,     /* `ignore table` */
} sl_fate;

typedef struct sl_item {
    sl_str raw;      /* the input bytes, borrowed (they outlive the item's use): the
                      * line, or a packed record's value ("" for none) */
    sl_buf rscratch; /* record-parse scratch */
    sl_record rec;
    sl_event ev;
    sl_buf qname;           /* "schema.table" (or "db.table") */
    sl_buf key;             /* canonical key JSON */
    const sl_program *prog; /* the program it was decoded with (borrowed) */
    const sl_table *table;  /* in prog */
    int origin;             /* site index in prog, -1 unknown */
    sl_fate fate;
    sl_error err; /* why it was dead-lettered, in stage A or B */
    /* what stage B decided (for `sluice test` and tracing) */
    enum {
        SL_VERDICT_ROUTED,
        SL_VERDICT_FILTERED,
        SL_VERDICT_UNROUTED,
        SL_VERDICT_IGNORED,
        SL_VERDICT_SKIPPED,
        SL_VERDICT_DUPLICATE,
        SL_VERDICT_DEAD,
        SL_VERDICT_ECHO, /* the site applying a version sluice sent it */
        SL_VERDICT_SAME, /* the site already holds the consolidated content */
        SL_VERDICT_KEPT, /* lost a conflict (or parked): the current version stays */
    } verdict;
    sl_siteset dests;  /* ROUTED: the destination sites */
    const char *input; /* borrowed from the source */
    int64_t pos;
    uint64_t hash; /* of (table, key): picks the worker */
} sl_item;

void sl_item_init(sl_item *it);
void sl_item_free(sl_item *it);
/* Stage A. line[0..len) is borrowed: it must stay valid until the item has
 * been through stage B. Never fails: problems become SL_FATE_DEAD with
 * it->err filled. `j` is the calling thread's tokenizer. */
void sl_item_decode(sl_item *it, const sl_program *p, const char *line, size_t len,
                    const char *input, int64_t pos, sl_json *j);
/* Stage A for a record packed with sl_record_pack (a Kafka message): the
 * same as sl_item_decode of its wrapper line, without tokenizing anything
 * but the key and value (once, in sl_event_decode). packed[0..len) is
 * borrowed like a line, and it->rec points into it. */
void sl_item_decode_record(sl_item *it, const sl_program *p, const char *packed, size_t len,
                           const char *input, int64_t pos);

/* Counters, one set per worker; updated by their worker only, read by anyone. */
typedef struct sl_counters {
    _Atomic uint64_t read;      /* messages taken from the input */
    _Atomic uint64_t routed;    /* changes sent to at least one destination */
    _Atomic uint64_t written;   /* output records, dead letters excluded */
    _Atomic uint64_t filtered;  /* rejected by a `where` */
    _Atomic uint64_t unrouted;  /* passed the filters but no route applied */
    _Atomic uint64_t ignored;   /* `ignore table` */
    _Atomic uint64_t dead;      /* dead-lettered */
    _Atomic uint64_t duplicate; /* already processed (same or older position for the row) */
    _Atomic uint64_t skipped;   /* tx markers, schema changes, messages, tombstones, blanks */
    _Atomic uint64_t echo;      /* a site applying what sluice sent it (acknowledgements) */
    _Atomic uint64_t same;      /* a change to the content the row already has */
    _Atomic uint64_t conflicts; /* conflicts detected */
    _Atomic uint64_t manual;    /* of them, waiting for an operator */
    _Atomic uint64_t kept;      /* changes that lost: the current version stays */
} sl_counters;

typedef struct sl_proc sl_proc;

/* Borrowed: the store and its session (owned by the caller; store NULL: no
 * state - no duplicate detection, no consolidated view, no conflicts). Items carry the program they
 * were decoded with, and the caller keeps that program alive until they are processed. */
sl_proc *sl_proc_new(const sl_store *store, void *sess);
void sl_proc_free(sl_proc *w);
/* How long a deleted row's tombstone still makes a late change from a site
 * that had not seen the delete a conflict (ms of source time; default 7 days). */
void sl_proc_set_tombstone_retention(sl_proc *w, int64_t ms);
/* How many rows, and about how many bytes of their state, the worker's
 * cache holds before it is cleared (0: the default, 131,072 rows and 24
 * MiB). Tests make it small so that clearing happens all the time. */
void sl_proc_set_cache_limit(sl_proc *w, size_t rows, size_t bytes);

/* Stage B: appends output records to the proc's pending outputs. Returns 0,
 * or -1 when the metadata store failed (err filled; the engine stops). */
int sl_proc_item(sl_proc *w, sl_item *it, sl_error *err);

/* The outputs gathered since the last reset, as records for a sink. */
const sl_record *sl_proc_outputs(sl_proc *w, size_t *n);

/* Row states and conflicts of processed changes, on their way to the
 * store. Owns its memory: rows point into bytes, conflicts into cbytes. */
typedef struct sl_seen_set {
    sl_buf bytes;
    sl_seen *rows;
    size_t n;
    sl_buf cbytes;
    sl_conflict_rec *conflicts;
    size_t nconflicts;
} sl_seen_set;

void sl_seen_set_free(sl_seen_set *s);

/* Forget the outputs (after they were written) and move the positions
 * gathered since the last reset into *out (NULL: drop them). The caller
 * records them in the store; until it has, a change seen again may be taken
 * for new unless the proc still caches it (see sl_proc_set_evict_hook). */
void sl_proc_reset(sl_proc *w, sl_seen_set *out);

/* Called before the proc forgets its cache of seen positions, so the
 * caller can first make sure everything handed out is in the store. */
void sl_proc_set_evict_hook(sl_proc *w, void (*hook)(void *arg), void *arg);
/* A hint for an item a few places ahead of the one in work: bring the
 * memory its row-state lookup will touch into the CPU cache (its cache
 * bucket and known-set slot; with `entry`, the first cached row of that
 * bucket, which the bucket prefetched earlier names). Changes nothing. */
void sl_proc_prefetch(sl_proc *w, const sl_item *it, bool entry);
/* Before a delivery (items[order[from..to)]): read the rows it needs that
 * are neither cached nor known to be new with one store request, where the
 * store can (sl_store_ops.rows_get: MongoDB); nothing otherwise. 0, or -1
 * with err filled when the store failed. */
int sl_proc_preload(sl_proc *w, sl_item *const *items, const int *order, int from, int to,
                    sl_error *err);

sl_counters *sl_proc_counters(sl_proc *w);
/* Written records per topic, summed into `out` (topic -> count) by the caller. */
void sl_proc_topic_counts(sl_proc *w, void (*fn)(void *arg, const char *topic, uint64_t n),
                          void *arg);

#endif
