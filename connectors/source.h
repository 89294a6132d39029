/*
 * source.h - where input messages come from.
 *
 * A source hands the engine one message at a time, on the reader thread only:
 * either a raw line (file and stdin sources: the engine parses it with
 * sl_record_parse_line on a worker) or an already split record (Kafka: the
 * reader copies it packed, sl_record_pack, and a worker decodes its key and
 * value where they lie). The bytes are borrowed until the next poll; the
 * reader copies them.
 *
 * Progress: every message names its input stream (a file's real path, "-",
 * or a topic) and its position in it (line number, or Kafka offset), so the
 * engine can resume where it stopped.
 */
#ifndef SL_SOURCE_H
#define SL_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/error.h"
#include "../engine/event.h"

typedef struct sl_msg {
    bool is_line;     /* true: `line` holds one input line (no newline) */
    const char *line; /* borrowed */
    size_t len;
    sl_record rec;     /* !is_line: a split record, borrowed */
    const char *input; /* stream name, borrowed, stable until the next input starts */
    uint64_t input_fp; /* fingerprint of the stream's start (0 when unknown) */
    int64_t pos;       /* 1-based line number, or offset */
} sl_msg;

typedef struct sl_input_ops {
    const char *name;
    /* 1: *msg filled; 0: end of input; 2: nothing arrived within timeout_ms
     * (pipes and streams); -1: error (err filled; the engine stops reading). */
    int (*poll)(void *self, sl_msg *msg, int timeout_ms, sl_error *err);
    /* True when the source ends (files), false for endless streams. */
    bool (*finite)(void *self);
    /* Record that every message of input stream inputs[i] up to and
     * including position done[i] is processed and its outputs acknowledged,
     * for i < n, in one go. NULL for sources whose progress the metadata
     * store keeps (files); Kafka commits the consumer group's offsets.
     * Called from the checkpointing thread. 0, 1 (not now: try later), -1. */
    int (*commit)(void *self, const char *const *inputs, const int64_t *done, size_t n,
                  sl_error *err);
    /* Optional: `fn(arg)` is called on the polling thread before the source
     * gives up input streams (a consumer-group rebalance), so the engine can
     * finish what it holds of them and commit first. */
    void (*set_release_hook)(void *self, void (*fn)(void *arg), void *arg);
    void (*destroy)(void *self);
} sl_input_ops;

typedef struct sl_input {
    const sl_input_ops *ops;
    void *self;
} sl_input;

/* Files: a path to a file, a directory (its regular files, in name order,
 * hidden files skipped), or "-" for stdin. Returns 0 or -1 with err. */
int sl_input_open_files(sl_input *src, const char *path, sl_error *err);

static inline void sl_input_destroy(sl_input *src)
{
    if (src->ops)
        src->ops->destroy(src->self);
    src->ops = NULL;
}

#endif
