/*
 * store.h - the metadata store.
 *
 * What sluice must remember between runs: for every replicated row, the
 * newest source position seen from each origin (so a change is never applied
 * twice), per origin and source partition the newest position processed, and
 * per input stream how far it was read. Later the consolidated view lives
 * here too.
 *
 * The store handle is shared; each worker opens its own session (its own
 * connection) and uses it from that thread only. Backends: SQLite (the
 * embedded default) and, later, MongoDB.
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../common/value.h"

#define SL_STORE_DEFAULT_URI "sqlite:sluice.db"

/* One processed change, as recorded in a batch. */
typedef struct sl_seen {
    sl_str origin;    /* site name */
    sl_str table;     /* "schema.table" */
    sl_str key;       /* canonical key JSON */
    sl_str position;  /* encoded, memcmp-ordered */
    sl_str partition; /* source partition */
} sl_seen;

typedef struct sl_store_ops {
    const char *scheme;
    void *(*session_open)(void *self, sl_error *err);
    void (*session_close)(void *sess);
    /* Newest position seen for the row: 1 and *pos filled, 0 when none. */
    int (*seen_get)(void *sess, sl_str origin, sl_str table, sl_str key, sl_buf *pos,
                    sl_error *err);
    /* Record a batch atomically (one transaction): rows and partition progress. */
    int (*seen_put)(void *sess, const sl_seen *rows, size_t n, sl_error *err);
    /* How many lines (or the offset) of an input stream are done. */
    int (*input_get)(void *sess, const char *input, uint64_t fp, int64_t *done, sl_error *err);
    int (*input_put)(void *sess, const char *input, uint64_t fp, int64_t done, sl_error *err);
    /* Per origin + partition: newest position processed (for status). The
     * callback gets each row; stop by returning non-zero. */
    int (*progress_each)(void *sess,
                         int (*fn)(void *arg, const char *origin, const char *partition,
                                   const char *position, int64_t events),
                         void *arg, sl_error *err);
    void (*destroy)(void *self);
} sl_store_ops;

typedef struct sl_store {
    const sl_store_ops *ops;
    void *self;
} sl_store;

/* Open by URI: "sqlite:PATH" (file created if missing) or "none" (no state:
 * nothing is remembered; every run processes everything). */
int sl_store_open(sl_store *st, const char *uri, sl_error *err);

static inline void sl_store_destroy(sl_store *st)
{
    if (st->ops)
        st->ops->destroy(st->self);
    st->ops = NULL;
}

#endif
