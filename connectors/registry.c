/*
 * registry.c - pick a metadata-store backend from its URI; the "none" store.
 */
#include <string.h>

#include "store.h"

int sl_sqlite_store_open(sl_store *out, const char *path, sl_error *err);
int sl_mongo_store_open(sl_store *out, const char *uri, sl_error *err);

/* The "none" store remembers nothing: every row is unknown, every query
 * is empty, every write is accepted and forgotten. */

static void *none_open(void *self, sl_error *err)
{
    return self;
}

static void none_close(void *sess)
{
}

static int none_row_get(void *sess, sl_str table, sl_str key, sl_buf *doc, sl_error *err)
{
    return 0;
}

static int none_put(void *sess, const sl_seen *rows, size_t n, const sl_conflict_rec *conflicts,
                    size_t nconflicts, sl_error *err)
{
    return 0;
}

static int none_conflicts_each(void *sess, const sl_conflict_filter *f, size_t limit,
                               int (*fn)(void *arg, const sl_conflict_rec *c), void *arg,
                               sl_error *err)
{
    return 0;
}

static int none_decide(void *sess, sl_str id, sl_str status, sl_str result, sl_error *err)
{
    return 0;
}

static int none_rows_each(void *sess, const char *table,
                          int (*fn)(void *arg, sl_str table, sl_str key, sl_str doc), void *arg,
                          sl_error *err)
{
    return 0;
}

static int none_input_get(void *sess, const char *input, uint64_t fp, int64_t *done, sl_error *err)
{
    *done = 0;
    return 0;
}

static int none_input_put(void *sess, const char *input, uint64_t fp, int64_t done, sl_error *err)
{
    return 0;
}

static int none_each(void *sess,
                     int (*fn)(void *arg, const char *origin, const char *partition,
                               const char *position, int64_t events),
                     void *arg, sl_error *err)
{
    return 0;
}

static uint64_t none_round_trips(void *sess)
{
    return 0;
}

static void none_destroy(void *self)
{
}

static const sl_store_ops none_ops = {
    .scheme = "none",
    .session_open = none_open,
    .session_close = none_close,
    .row_get = none_row_get,
    .seen_put = none_put,
    .conflicts_each = none_conflicts_each,
    .conflict_decide = none_decide,
    .rows_each = none_rows_each,
    .input_get = none_input_get,
    .input_put = none_input_put,
    .progress_each = none_each,
    .round_trips = none_round_trips,
    .destroy = none_destroy,
};

/* The "none" store hands out a non-NULL session pointer. */
static char none_self;

int sl_store_open(sl_store *st, const char *uri, sl_error *err)
{
    if (strcmp(uri, "none") == 0) {
        st->ops = &none_ops;
        st->self = &none_self;
        return 0;
    }
    if (strncmp(uri, "sqlite:", 7) == 0)
        return sl_sqlite_store_open(st, uri + 7 + (strncmp(uri + 7, "//", 2) == 0 ? 2 : 0), err);
    if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0)
        return sl_mongo_store_open(st, uri, err);
    return sl_error_set(err, SL_ERR_USAGE,
                        "unknown store '%s': expected sqlite:PATH, mongodb://HOST[:PORT][/DB] "
                        "or none (for example --store sqlite:sluice.db)",
                        uri);
}
