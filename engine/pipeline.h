/*
 * pipeline.h - the running engine: reader -> workers -> sink.
 *
 * Threads (docs/architecture.md has the whole picture):
 *   - the caller's thread runs sl_pipeline_run: it starts the others, draws
 *     the progress line, checkpoints input progress once a second, and
 *     turns a stop request into a clean drain;
 *   - one reader thread polls the source and cuts the input into batches of
 *     raw lines (or Kafka records, copied packed: sl_record_pack);
 *   - N worker threads decode whole batches in parallel (stage A), deliver
 *     each decoded item, in batch order, to the worker that owns
 *     hash(table, key), and process their deliveries in order (stage B):
 *     write the outputs to the sink, then hand the processed positions to
 *   - one store-writer thread (not with the "none" store), which records
 *     them, many deliveries per transaction, once the sink has made those
 *     outputs safe (written, or acknowledged by the broker).
 * Batches come from a fixed pool: when every batch is in use the reader
 * waits, so memory stays flat whatever the input size.
 */
#ifndef SL_PIPELINE_H
#define SL_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../connectors/sink.h"
#include "../connectors/source.h"
#include "../connectors/store.h"
#include "../dsl/program.h"

#define SL_MAX_WORKERS 256

typedef struct sl_run_opts {
    int threads;                       /* workers; <= 0: the number of cores */
    int batch;                         /* messages per batch; <= 0: 256 */
    bool progress;                     /* draw a progress line on stderr */
    const volatile sig_atomic_t *stop; /* set by a signal handler: drain and stop */
    /* Hot reload: when *reload_seq changes (a SIGHUP handler increments it),
     * reload() is called on the calling thread; it returns a new program
     * (one reference, handed over) or NULL to keep the current one (it has
     * told the user why). Batches decoded after the swap use the new
     * program; batches in flight finish with the one they started with. */
    const volatile sig_atomic_t *reload_seq;
    sl_program *(*reload)(void *arg, const sl_program *current);
    void *reload_arg;
    int64_t tombstone_ms; /* tombstone retention; 0: the default (7 days) */
} sl_run_opts;

typedef struct sl_topic_count {
    char *topic;
    uint64_t n;
} sl_topic_count;

typedef struct sl_run_report {
    uint64_t read, routed, written, filtered, unrouted, ignored, dead, duplicate, skipped;
    uint64_t echo, same, conflicts, manual, kept; /* the consolidated view (with a store) */
    uint64_t round_trips; /* requests to the store's server (0: an embedded store) */
    uint64_t resumed;     /* input lines skipped because an earlier run finished them */
    double seconds;
    int threads;
    bool stopped;           /* ended by a stop request before the input ended */
    bool uncommitted;       /* the last checkpoint's commit was refused (Kafka: the group
                             * evicted this member); outputs stand, the next run redoes */
    int reloads;            /* rule reloads (SIGHUP) that took effect */
    sl_topic_count *topics; /* owned; sorted by topic */
    size_t ntopics;
} sl_run_report;

/* Run until the source ends (or a stop request), then drain and checkpoint.
 * Borrowed: everything (the pipeline takes its own references to prog).
 * Returns 0, or -1 with err when the sink or the store failed (what was
 * processed up to then is checkpointed). */
int sl_pipeline_run(sl_program *prog, sl_input *src, sl_sink *sink, sl_store *store,
                    const sl_run_opts *opts, sl_run_report *rep, sl_error *err);

void sl_run_report_free(sl_run_report *rep);

#endif
