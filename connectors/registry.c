/*
 * registry.c - pick a metadata-store backend from its URI; the "none" store.
 */
#include <string.h>

#include "store.h"

int sl_sqlite_store_open(sl_store *out, const char *path, sl_error *err);

static void *none_open(void *self, sl_error *err)
{
    return self;
}

static void none_close(void *sess)
{
}

static int none_get(void *sess, sl_str origin, sl_str table, sl_str key, sl_buf *pos, sl_error *err)
{
    return 0;
}

static int none_put(void *sess, const sl_seen *rows, size_t n, sl_error *err)
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

static void none_destroy(void *self)
{
}

static const sl_store_ops none_ops = {
    .scheme = "none",
    .session_open = none_open,
    .session_close = none_close,
    .seen_get = none_get,
    .seen_put = none_put,
    .input_get = none_input_get,
    .input_put = none_input_put,
    .progress_each = none_each,
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
        return sl_error_set(err, SL_ERR_USAGE,
                            "store %s: the MongoDB store is not part of this build yet; "
                            "use sqlite:PATH",
                            uri);
    return sl_error_set(err, SL_ERR_USAGE,
                        "unknown store '%s': expected sqlite:PATH or none (for example "
                        "--store sqlite:sluice.db)",
                        uri);
}
