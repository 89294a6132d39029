/*
 * sink.h - where results go.
 *
 * Worker threads call write() concurrently; a sink serialises what it must.
 * Records handed to write() are borrowed for the call. Records of one call
 * for one topic are written in the order given, so per-key order is kept
 * (a key is always handled by one worker).
 */
#ifndef SL_SINK_H
#define SL_SINK_H

#include <stdbool.h>

#include "../common/error.h"
#include "../engine/event.h"

typedef struct sl_sink_ops {
    const char *name;
    int (*write)(void *self, const sl_record *recs, size_t n, sl_error *err);
    /* Make everything written so far safe: against a crash of this process
     * (files: already, once write() returned; Kafka: the broker acknowledged
     * it), and with sync also against a crash of the machine (files:
     * fdatasync). The engine records changes as processed only after this.
     * Returns 0 done, 1 not yet (the destination is unreachable for now: try
     * again later), -1 failed for good (err filled). */
    int (*flush)(void *self, bool sync, sl_error *err);
    void (*destroy)(void *self);
} sl_sink_ops;

typedef struct sl_sink {
    const sl_sink_ops *ops;
    void *self;
} sl_sink;

/* One JSON-lines file per topic in directory `dir` (created if missing;
 * files are appended to: a topic is a log), or every record to stdout when
 * dir is "-". File names are the topic with '/' replaced, plus ".jsonl". */
int sl_sink_open_files(sl_sink *sink, const char *dir, sl_error *err);

static inline void sl_sink_destroy(sl_sink *sink)
{
    if (sink->ops)
        sink->ops->destroy(sink->self);
    sink->ops = NULL;
}

#endif
