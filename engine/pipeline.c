/*
 * pipeline.c - reader, workers, checkpoints.
 *
 * The reader only cuts the input into batches of raw lines: copying bytes is
 * all it does, so it is never the bottleneck. Workers take whole batches
 * from a shared queue in order and decode them (stage A) in parallel; then,
 * strictly in batch order (a turn counter), each hands every decoded item to
 * the worker that owns its row (a "delivery"); a worker runs stage B over
 * its deliveries first-in first-out. So one row's changes are decoded
 * anywhere but processed by one thread in input order.
 *
 * A store-writer thread records the processed positions of every worker,
 * once the sink has made their outputs safe. A batch goes back to the pool
 * when the last of its items has been through stage B and, with a store,
 * recorded; the pool has a fixed size, which bounds memory. A Kafka message
 * goes the same way as a record packed into the batch's bytes
 * (sl_record_pack): the reader copies it without looking inside, and the
 * worker's decode reads its key and value straight from the batch.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "pipeline.h"
#include "process.h"

typedef struct batch {
    /* filled by the reader */
    sl_buf bytes; /* the lines and packed records, back to back */
    size_t *off;  /* [cap + 1] message i is bytes[off[i] .. off[i] + len[i]) */
    size_t *len;
    bool *packed;       /* message i is a packed record (Kafka), not a line */
    const char **input; /* stream of each line (names owned by the engine) */
    int64_t *pos;
    int n, cap;
    uint64_t seq; /* batch number, in input order */
    /* per input stream in it, its smallest position: guarded by engine.mu */
    struct batch_in {
        struct input *in;
        int64_t min_pos;
    } * ins;
    int nins, capins;
    bool in_use; /* guarded by engine.mu */
    /* filled by the decoding worker */
    sl_item **items;
    int *order;          /* item indexes grouped by owner, input order within a group */
    int *start;          /* [nworkers + 1]: owner w's items are order[start[w] .. start[w+1]) */
    _Atomic int pending; /* items not yet through stage B */
    sl_program *prog;    /* what its items were decoded with (a reference) */
    struct batch *next;  /* free list / decode queue */
} batch;

typedef struct engine engine;

typedef struct delivery {
    batch *b;
} delivery;

/* A worker's processed positions waiting for the store writer. */
typedef struct to_store {
    sl_seen_set set;
    batch *b;
    int count; /* items of b that this set finishes */
    struct worker *w;
    struct to_store *next;
} to_store;

typedef struct worker {
    engine *e;
    int idx;
    pthread_t th;
    delivery *ring; /* guarded by engine.mu; as large as the pool */
    size_t head, count, cap;
    void *sess;
    sl_proc *proc;
    sl_json j;            /* stage A tokenizer */
    _Atomic int unstored; /* its sets queued for the store writer */
} worker;

/* One input stream (a file, or a Kafka partition) seen this run. */
typedef struct input {
    char *name;
    uint64_t fp;
    int64_t max_pos;   /* guarded by engine.mu: the newest position read */
    int64_t committed; /* everything up to here is recorded as done */
    int64_t lw;        /* scratch for checkpoint() */
    struct input *next;
} input;

struct engine {
    sl_program *prog; /* the current rules, a reference; guarded by mu */
    sl_input *src;
    sl_sink *sink;
    sl_store *store;
    const sl_run_opts *opts;
    int nworkers, bsize;

    pthread_mutex_t mu;
    pthread_cond_t pool_cv; /* a batch was freed */
    pthread_cond_t work_cv; /* a batch to decode, a delivery, a turn, or the end */
    pthread_cond_t done_cv; /* a thread finished */
    batch *batches;
    size_t nbatches;
    batch *free;
    batch *dq_head, *dq_tail; /* decode queue, in batch order */
    uint64_t next_batch_seq;  /* reader: the next batch's number */
    uint64_t delivered;       /* batches delivered so far (the turn counter) */
    worker *workers;
    pthread_t reader;
    bool reader_done; /* guarded by mu */
    int workers_done; /* guarded by mu */

    /* The store writer: one thread records every worker's positions, many
     * deliveries per transaction, off the workers' path. */
    bool has_writer;
    pthread_t writer;
    pthread_cond_t store_cv;     /* work for the writer, or a set stored */
    to_store *sq_head, *sq_tail; /* guarded by mu */
    bool writer_done;            /* guarded by mu */
    void *wr_sess;

    _Atomic bool stop_reading;
    _Atomic bool failed;
    sl_error fail_err; /* guarded by mu; first failure wins */

    _Atomic uint64_t resumed;
    input *inputs, *cur_input; /* guarded by mu */
    int64_t cur_pos;           /* guarded by mu: for the progress line */
    void *ck_sess;             /* the checkpoint's store session, under ck_mu */
    pthread_mutex_t ck_mu;     /* one checkpoint at a time (main thread, rebalances) */
    batch *rd_batch;           /* the reader's batch being filled (reader only) */
    size_t nfree;              /* guarded by mu: batches in the free list */
    void *rd_sess;             /* the reader's store session */
    /* The reader's stream of its last message and that message's position,
     * not yet published in the stream's max_pos (reader only; publish_read) */
    input *rd_in;
    int64_t rd_max;
};

static void fail(engine *e, const sl_error *err)
{
    pthread_mutex_lock(&e->mu);
    if (!atomic_load(&e->failed)) {
        e->fail_err = *err;
        atomic_store(&e->failed, true);
    }
    atomic_store(&e->stop_reading, true);
    pthread_cond_broadcast(&e->pool_cv);
    pthread_cond_broadcast(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
}

/* ---- batches -------------------------------------------------------------- */

static batch *acquire(engine *e)
{
    batch *b = NULL;

    pthread_mutex_lock(&e->mu);
    while (e->free == NULL && !atomic_load(&e->stop_reading))
        pthread_cond_wait(&e->pool_cv, &e->mu);
    if (e->free) {
        b = e->free;
        e->free = b->next;
        e->nfree--;
        b->next = NULL;
        b->in_use = true;
        b->n = 0;
        b->nins = 0;
        sl_buf_reset(&b->bytes);
    }
    pthread_mutex_unlock(&e->mu);
    return b;
}

static void release(engine *e, batch *b)
{
    if (b->prog) {
        sl_program_unref(b->prog);
        b->prog = NULL;
    }
    pthread_mutex_lock(&e->mu);
    b->in_use = false;
    b->n = 0;
    b->nins = 0;
    b->next = e->free;
    e->free = b;
    e->nfree++;
    pthread_cond_broadcast(&e->pool_cv);
    pthread_mutex_unlock(&e->mu);
}

/* Reader, under engine.mu: the newest position read from its current
 * stream becomes that stream's max_pos. Every message since it was last
 * published is in the batch being filled, which is in use and holds the
 * stream's smallest position of it: the checkpoint stays below them. */
static void publish_read(engine *e)
{
    if (e->rd_in == NULL)
        return;
    if (e->rd_max > e->rd_in->max_pos)
        e->rd_in->max_pos = e->rd_max;
    e->cur_input = e->rd_in;
    e->cur_pos = e->rd_max;
}

/* Reader: queue a filled batch for decoding (an empty one goes back). */
static void submit(engine *e, batch *b)
{
    if (b->n == 0) {
        release(e, b);
        return;
    }
    pthread_mutex_lock(&e->mu);
    publish_read(e);
    b->seq = e->next_batch_seq++;
    b->next = NULL;
    if (e->dq_tail)
        e->dq_tail->next = b;
    else
        e->dq_head = b;
    e->dq_tail = b;
    pthread_cond_broadcast(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
}

/* ---- workers -------------------------------------------------------------- */

/* Stage A over a whole batch, then group its items by owner. */
static void decode_batch(engine *e, worker *w, batch *b)
{
    int i, k, nw = e->nworkers;
    int *count = b->start; /* counts first, then prefix sums */

    for (k = 0; k <= nw; k++)
        count[k] = 0;
    pthread_mutex_lock(&e->mu);
    b->prog = sl_program_ref(e->prog);
    pthread_mutex_unlock(&e->mu);
    for (i = 0; i < b->n; i++) {
        sl_item *it = b->items[i];

        if (b->packed[i])
            sl_item_decode_record(it, b->prog, b->bytes.data + b->off[i], b->len[i], b->input[i],
                                  b->pos[i]);
        else
            sl_item_decode(it, b->prog, b->bytes.data + b->off[i], b->len[i], b->input[i],
                           b->pos[i], &w->j);
        count[it->hash % (uint64_t)nw + 1]++;
    }
    for (k = 0; k < nw; k++)
        count[k + 1] += count[k];
    /* stable placement: input order within each owner */
    {
        int fill[SL_MAX_WORKERS];

        for (k = 0; k < nw; k++)
            fill[k] = b->start[k];
        for (i = 0; i < b->n; i++)
            b->order[fill[b->items[i]->hash % (uint64_t)nw]++] = i;
    }
    atomic_store(&b->pending, b->n);
}

/* Stage B over this worker's items of one batch. */
static void process_delivery(engine *e, worker *w, batch *b)
{
    int from = b->start[w->idx], to = b->start[w->idx + 1], i;
    sl_error err;
    const sl_record *recs;
    size_t n;

    sl_error_clear(&err);
    if (!atomic_load(&e->failed)) {
        if (sl_proc_preload(w->proc, b->items, b->order, from, to, &err) != 0)
            goto failed;
        for (i = from; i < to; i++) {
            /* every row-state lookup misses the CPU cache: start the loads
             * of the next items' lookups early (buckets, then entries) */
            if (i + 8 < to)
                sl_proc_prefetch(w->proc, b->items[b->order[i + 8]], false);
            if (i + 4 < to)
                sl_proc_prefetch(w->proc, b->items[b->order[i + 4]], true);
            if (sl_proc_item(w->proc, b->items[b->order[i]], &err) != 0)
                goto failed;
        }
        recs = sl_proc_outputs(w->proc, &n);
        /* Outputs reach the operating system before the store records the
         * events as processed: a crash in between redoes them, never loses. */
        if (n && e->sink->ops->write(e->sink->self, recs, n, &err) != 0)
            goto failed;
        if (e->has_writer) {
            /* the batch is done when the writer has stored these */
            to_store *t = sl_xcalloc(1, sizeof(*t));

            sl_proc_reset(w->proc, &t->set);
            t->b = b;
            t->count = to - from;
            t->w = w;
            atomic_fetch_add(&w->unstored, 1);
            pthread_mutex_lock(&e->mu);
            if (e->sq_tail)
                e->sq_tail->next = t;
            else
                e->sq_head = t;
            e->sq_tail = t;
            pthread_cond_broadcast(&e->store_cv);
            pthread_mutex_unlock(&e->mu);
            return;
        }
        sl_proc_reset(w->proc, NULL);
    }
    goto done;
failed:
    fail(e, &err);
    sl_proc_reset(w->proc, NULL); /* forget the pending outputs */
done:
    if (atomic_fetch_sub(&b->pending, to - from) == to - from)
        release(e, b);
}

/* Evict hook: wait until everything this worker handed out is stored. */
static void wait_stored(void *arg)
{
    worker *w = arg;
    engine *e = w->e;

    pthread_mutex_lock(&e->mu);
    while (atomic_load(&w->unstored) > 0 && !e->writer_done)
        pthread_cond_wait(&e->store_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

static void *writer_main(void *arg)
{
    engine *e = arg;
    sl_seen *rows = NULL;
    sl_conflict_rec *confs = NULL;
    size_t cap = 0, ccap = 0;

    pthread_setname_np(pthread_self(), "sluice-store");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        to_store *list, *t, *next;
        size_t n = 0, nc = 0;
        sl_error err;

        while (e->sq_head == NULL && e->workers_done < e->nworkers)
            pthread_cond_wait(&e->store_cv, &e->mu);
        if (e->sq_head == NULL)
            break;
        list = e->sq_head;
        e->sq_head = e->sq_tail = NULL;
        pthread_mutex_unlock(&e->mu);

        /* one transaction for everything queued meanwhile */
        for (t = list; t; t = t->next) {
            if (n + t->set.n > cap) {
                cap = (n + t->set.n) * 2;
                rows = sl_xrealloc(rows, cap * sizeof(*rows));
            }
            if (t->set.n)
                memcpy(rows + n, t->set.rows, t->set.n * sizeof(*rows));
            n += t->set.n;
            if (nc + t->set.nconflicts > ccap) {
                ccap = (nc + t->set.nconflicts) * 2;
                confs = sl_xrealloc(confs, ccap * sizeof(*confs));
            }
            if (t->set.nconflicts)
                memcpy(confs + nc, t->set.conflicts, t->set.nconflicts * sizeof(*confs));
            nc += t->set.nconflicts;
        }
        sl_error_clear(&err);
        /* Only what the sink has made safe may be recorded as processed:
         * a change recorded but lost would never be redone. */
        while (n && !atomic_load(&e->failed)) {
            int r = e->sink->ops->flush(e->sink->self, false, &err);

            if (r < 0)
                fail(e, &err);
            if (r != 1)
                break;
        }
        if (n && !atomic_load(&e->failed) &&
            e->store->ops->seen_put(e->wr_sess, rows, n, confs, nc, &err) != 0)
            fail(e, &err);
        for (t = list; t; t = next) {
            next = t->next;
            if (atomic_fetch_sub(&t->b->pending, t->count) == t->count)
                release(e, t->b);
            atomic_fetch_sub(&t->w->unstored, 1);
            sl_seen_set_free(&t->set);
            free(t);
        }
        pthread_mutex_lock(&e->mu);
        pthread_cond_broadcast(&e->store_cv);
    }
    e->writer_done = true;
    pthread_cond_broadcast(&e->store_cv);
    pthread_cond_broadcast(&e->done_cv);
    pthread_mutex_unlock(&e->mu);
    free(rows);
    free(confs);
    return NULL;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    engine *e = w->e;
    char name[16];
    int k;

    snprintf(name, sizeof(name), "sluice-w%d", w->idx);
    pthread_setname_np(pthread_self(), name);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        batch *b;

        /* 1. own deliveries first: they free batches */
        if (w->count) {
            b = w->ring[w->head].b;
            w->head = (w->head + 1) % w->cap;
            w->count--;
            pthread_mutex_unlock(&e->mu);
            process_delivery(e, w, b);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        /* 2. a batch to decode */
        if (e->dq_head) {
            b = e->dq_head;
            e->dq_head = b->next;
            if (e->dq_head == NULL)
                e->dq_tail = NULL;
            pthread_mutex_unlock(&e->mu);
            decode_batch(e, w, b);
            pthread_mutex_lock(&e->mu);
            /* deliver in batch order; meanwhile keep processing our own */
            while (e->delivered != b->seq) {
                if (w->count) {
                    batch *own = w->ring[w->head].b;

                    w->head = (w->head + 1) % w->cap;
                    w->count--;
                    pthread_mutex_unlock(&e->mu);
                    process_delivery(e, w, own);
                    pthread_mutex_lock(&e->mu);
                    continue;
                }
                pthread_cond_wait(&e->work_cv, &e->mu);
            }
            for (k = 0; k < e->nworkers; k++) {
                worker *o = &e->workers[k];

                if (b->start[k + 1] > b->start[k]) {
                    o->ring[(o->head + o->count++) % o->cap].b = b;
                }
            }
            e->delivered++;
            pthread_cond_broadcast(&e->work_cv);
            continue;
        }
        /* 3. the end: the reader is done and every batch was delivered */
        if (e->reader_done && e->delivered == e->next_batch_seq)
            break;
        pthread_cond_wait(&e->work_cv, &e->mu);
    }
    e->workers_done++;
    pthread_cond_broadcast(&e->done_cv);
    pthread_cond_broadcast(&e->store_cv);
    pthread_cond_broadcast(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- reader --------------------------------------------------------------- */

static input *find_input(engine *e, const char *name)
{
    input *in;

    for (in = e->inputs; in; in = in->next)
        if (strcmp(in->name, name) == 0)
            return in;
    return NULL;
}

/* Append one message to the batch: a line as it is, a record (Kafka)
 * packed, its bytes copied unread: whether key and value are JSON is for
 * the worker's decode to find out (a dead letter then carries them as they
 * came). */
static void add_line(batch *b, const sl_msg *msg, const char *input_name)
{
    b->off[b->n] = b->bytes.len;
    b->packed[b->n] = !msg->is_line;
    if (msg->is_line)
        sl_buf_append(&b->bytes, msg->line, msg->len);
    else
        sl_record_pack(&msg->rec, &b->bytes);
    b->len[b->n] = b->bytes.len - b->off[b->n];
    b->input[b->n] = input_name;
    b->pos[b->n] = msg->pos;
    b->n++;
}

/* Under engine.mu: note that b holds position pos of stream in. */
static void note_input(batch *b, input *in, int64_t pos)
{
    int i;

    for (i = b->nins - 1; i >= 0; i--)
        if (b->ins[i].in == in)
            return; /* positions only grow within a stream */
    if (b->nins == b->capins) {
        b->capins = b->capins ? b->capins * 2 : 4;
        b->ins = sl_xrealloc(b->ins, (size_t)b->capins * sizeof(*b->ins));
    }
    b->ins[b->nins].in = in;
    b->ins[b->nins++].min_pos = pos;
}

static void *reader_main(void *arg)
{
    engine *e = arg;
    batch *b;
    sl_msg msg;
    sl_error err;
    const char *last_name = NULL;
    int64_t done = 0;
    int r;

    pthread_setname_np(pthread_self(), "sluice-reader");
    sl_error_clear(&err);
    while (!atomic_load(&e->stop_reading)) {
        input *in;
        bool same;

        r = e->src->ops->poll(e->src->self, &msg, 200, &err);
        b = e->rd_batch; /* a rebalance inside poll may have handed it over */
        if (r < 0) {
            fail(e, &err);
            break;
        }
        if (r == 0)
            break;
        if (r == 2) {
            /* input is idle: do not sit on what we hold */
            if (b) {
                submit(e, b);
                e->rd_batch = NULL;
            }
            continue;
        }
        if (msg.input != last_name) {
            /* a new input stream: where did an earlier run stop in it? */
            last_name = msg.input;
            done = -1; /* positions start at 0 (offsets) or 1 (lines) */
            if (msg.input_fp != 0 &&
                e->store->ops->input_get(e->rd_sess, msg.input, msg.input_fp, &done, &err) != 0) {
                fail(e, &err);
                break;
            }
        }
        if (msg.pos <= done) {
            atomic_fetch_add(&e->resumed, 1);
            continue;
        }
        if (b == NULL && (b = e->rd_batch = acquire(e)) == NULL)
            break; /* stopping: this line is not taken, the next run redoes it */
        in = e->rd_in;
        same = in != NULL && strcmp(in->name, msg.input) == 0;
        /* The stream of the last message, already noted in this batch,
         * needs no lock (the workers take the same one): its max_pos follows
         * when the batch is queued (publish_read). A new batch or another
         * stream is noted in the batch first, under the lock: the message
         * is in a batch in use before anyone can see max_pos. */
        if (!same || b->nins == 0 || b->ins[b->nins - 1].in != in) {
            pthread_mutex_lock(&e->mu);
            publish_read(e); /* the previous stream's */
            if (!same && (in = find_input(e, msg.input)) == NULL) {
                in = sl_xcalloc(1, sizeof(*in));
                in->name = sl_xstrdup(msg.input);
                in->fp = msg.input_fp;
                in->committed = msg.pos - 1 > done ? msg.pos - 1 : done;
                in->max_pos = in->committed;
                in->next = e->inputs;
                e->inputs = in;
            }
            note_input(b, in, msg.pos);
            e->rd_in = in;
            pthread_mutex_unlock(&e->mu);
        }
        e->rd_max = msg.pos;
        add_line(b, &msg, in->name);
        if (b->n == b->cap) {
            submit(e, b);
            e->rd_batch = NULL;
        }
    }
    if (e->rd_batch)
        submit(e, e->rd_batch);
    e->rd_batch = NULL;
    pthread_mutex_lock(&e->mu);
    e->reader_done = true;
    pthread_cond_broadcast(&e->done_cv);
    pthread_cond_broadcast(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- checkpoints ------------------------------------------------------------ */

/* Record, per input stream, up to where everything is processed: below the
 * smallest position of that stream still in a batch in use, or all it read.
 * Outputs are made durable (files) or acknowledged (Kafka) first. Returns 0,
 * or -1 when the sink, the store or the source failed for good; "not yet"
 * (the broker is away) is no failure: the next checkpoint tries again. A
 * source that did not take the commit ("not now": a consumer group that
 * refused it) gives 1, with err saying why when it is the last checkpoint. */
static int checkpoint_locked(engine *e, sl_error *err);

static int checkpoint(engine *e, sl_error *err)
{
    int rc;

    pthread_mutex_lock(&e->ck_mu);
    rc = checkpoint_locked(e, err);
    pthread_mutex_unlock(&e->ck_mu);
    return rc;
}

static int checkpoint_locked(engine *e, sl_error *err)
{
    size_t i;
    int k, r, rc = 0;
    input *in;
    struct upd {
        input *in;
        char *name;
        uint64_t fp;
        int64_t done;
    } *upd = NULL;
    size_t nupd = 0, cap = 0;

    pthread_mutex_lock(&e->mu);
    for (in = e->inputs; in; in = in->next)
        in->lw = INT64_MAX;
    for (i = 0; i < e->nbatches; i++) {
        batch *b = &e->batches[i];

        if (!b->in_use)
            continue;
        for (k = 0; k < b->nins; k++)
            if (b->ins[k].min_pos < b->ins[k].in->lw)
                b->ins[k].in->lw = b->ins[k].min_pos;
    }
    for (in = e->inputs; in; in = in->next) {
        int64_t done = in->lw == INT64_MAX ? in->max_pos : in->lw - 1;

        if (done <= in->committed || (in->fp == 0 && e->src->ops->commit == NULL))
            continue;
        if (nupd == cap) {
            cap = cap ? cap * 2 : 4;
            upd = sl_xrealloc(upd, cap * sizeof(*upd));
        }
        upd[nupd].in = in;
        upd[nupd].name = sl_xstrdup(in->name);
        upd[nupd].fp = in->fp;
        upd[nupd++].done = done;
    }
    pthread_mutex_unlock(&e->mu);
    if (nupd == 0)
        goto out;
    r = e->sink->ops->flush(e->sink->self, true, err);
    if (r != 0) {
        rc = r < 0 ? -1 : 0;
        goto out;
    }
    if (e->src->ops->commit) {
        const char **names = sl_xmalloc(nupd * sizeof(*names));
        int64_t *done = sl_xmalloc(nupd * sizeof(*done));

        for (i = 0; i < nupd; i++) {
            names[i] = upd[i].name;
            done[i] = upd[i].done;
        }
        r = e->src->ops->commit(e->src->self, names, done, nupd, err);
        free(names);
        free(done);
        if (r < 0) {
            rc = -1;
            goto out;
        }
        if (r == 1)
            rc = 1; /* the positions stay pending: committed again next time */
        if (r == 0) {
            pthread_mutex_lock(&e->mu);
            for (i = 0; i < nupd; i++)
                upd[i].in->committed = upd[i].done;
            pthread_mutex_unlock(&e->mu);
        }
        goto out;
    }
    for (i = 0; i < nupd; i++) {
        r = e->store->ops->input_put(e->ck_sess, upd[i].name, upd[i].fp, upd[i].done, err);
        if (r < 0) {
            rc = -1;
            goto out;
        }
        pthread_mutex_lock(&e->mu);
        upd[i].in->committed = upd[i].done;
        pthread_mutex_unlock(&e->mu);
    }
out:
    for (i = 0; i < nupd; i++)
        free(upd[i].name);
    free(upd);
    return rc;
}

/* A consumer-group rebalance is about to take input streams away (called on
 * the reader thread, inside poll): hand over the batch being filled, wait
 * until every batch is through, and checkpoint, so that the new owner of
 * those partitions starts where this process ended instead of redoing. */
static void release_inputs(void *arg)
{
    engine *e = arg;
    sl_error err;

    if (e->rd_batch) {
        submit(e, e->rd_batch);
        e->rd_batch = NULL;
    }
    pthread_mutex_lock(&e->mu);
    while (e->nfree < e->nbatches && !atomic_load(&e->failed))
        pthread_cond_wait(&e->pool_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    sl_error_clear(&err);
    if (checkpoint(e, &err) < 0)
        fail(e, &err);
}

/* ---- the run ---------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t sum_read(engine *e)
{
    uint64_t n = 0;
    int i;

    for (i = 0; i < e->nworkers; i++)
        n +=
            atomic_load_explicit(&sl_proc_counters(e->workers[i].proc)->read, memory_order_relaxed);
    return n;
}

static void draw_progress(engine *e, double t0, uint64_t *last_n, double *last_t)
{
    double t = now_s();
    uint64_t n = sum_read(e);
    double rate = t > *last_t ? (double)(n - *last_n) / (t - *last_t) : 0;
    char where[160] = "";

    pthread_mutex_lock(&e->mu);
    if (e->cur_input) {
        const char *name = strrchr(e->cur_input->name, '/');

        snprintf(where, sizeof(where), "%s:%lld", name ? name + 1 : e->cur_input->name,
                 (long long)e->cur_pos);
    }
    pthread_mutex_unlock(&e->mu);
    fprintf(stderr, "\r\033[K  %llu events  %.0f events/s  %.0fs  %s", (unsigned long long)n, rate,
            t - t0, where);
    fflush(stderr);
    *last_n = n;
    *last_t = t;
}

static void add_topic(void *arg, const char *topic, uint64_t n)
{
    sl_run_report *rep = arg;
    size_t i;

    for (i = 0; i < rep->ntopics; i++)
        if (strcmp(rep->topics[i].topic, topic) == 0) {
            rep->topics[i].n += n;
            return;
        }
    rep->topics = sl_xrealloc(rep->topics, (rep->ntopics + 1) * sizeof(*rep->topics));
    rep->topics[rep->ntopics].topic = sl_xstrdup(topic);
    rep->topics[rep->ntopics++].n = n;
}

static int topic_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_topic_count *)a)->topic, ((const sl_topic_count *)b)->topic);
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int sl_pipeline_run(sl_program *prog, sl_input *src, sl_sink *sink, sl_store *store,
                    const sl_run_opts *opts, sl_run_report *rep, sl_error *err)
{
    engine *e = sl_xcalloc(1, sizeof(*e));
    double t0 = now_s(), last_ck = t0, last_t = t0;
    uint64_t last_n = 0;
    sig_atomic_t reload_seen = opts->reload_seq ? *opts->reload_seq : 0;
    /* progress is kept by the store (files) or by the source (Kafka) */
    bool checkpoints = strcmp(store->ops->scheme, "none") != 0 || src->ops->commit != NULL;
    size_t i;
    int k, started = 0, rc = -1;
    bool reader_started = false;

    memset(rep, 0, sizeof(*rep));
    e->prog = sl_program_ref(prog);
    e->src = src;
    e->sink = sink;
    e->store = store;
    e->opts = opts;
    e->nworkers = opts->threads > 0 ? opts->threads : default_threads();
    e->bsize = opts->batch > 0 ? opts->batch : 256;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->pool_cv, NULL);
    pthread_cond_init(&e->work_cv, NULL);
    pthread_cond_init(&e->done_cv, NULL);
    pthread_cond_init(&e->store_cv, NULL);
    pthread_mutex_init(&e->ck_mu, NULL);
    e->has_writer = strcmp(store->ops->scheme, "none") != 0;

    e->ck_sess = store->ops->session_open(store->self, err);
    if (e->ck_sess == NULL)
        goto out;
    e->rd_sess = store->ops->session_open(store->self, err);
    if (e->rd_sess == NULL)
        goto out;
    e->nbatches = (size_t)e->nworkers * 4;
    e->batches = sl_xcalloc(e->nbatches, sizeof(*e->batches));
    for (i = 0; i < e->nbatches; i++) {
        batch *b = &e->batches[i];

        b->cap = e->bsize;
        b->off = sl_xcalloc((size_t)b->cap, sizeof(*b->off));
        b->len = sl_xcalloc((size_t)b->cap, sizeof(*b->len));
        b->packed = sl_xcalloc((size_t)b->cap, sizeof(*b->packed));
        b->input = sl_xcalloc((size_t)b->cap, sizeof(*b->input));
        b->pos = sl_xcalloc((size_t)b->cap, sizeof(*b->pos));
        b->order = sl_xcalloc((size_t)b->cap, sizeof(*b->order));
        b->start = sl_xcalloc((size_t)e->nworkers + 1, sizeof(*b->start));
        b->items = sl_xcalloc((size_t)b->cap, sizeof(*b->items));
        for (k = 0; k < b->cap; k++) {
            b->items[k] = sl_xmalloc(sizeof(sl_item));
            sl_item_init(b->items[k]);
        }
        b->next = e->free;
        e->free = b;
        e->nfree++;
    }
    e->workers = sl_xcalloc((size_t)e->nworkers, sizeof(*e->workers));
    for (k = 0; k < e->nworkers; k++) {
        worker *w = &e->workers[k];

        w->e = e;
        w->idx = k;
        w->cap = e->nbatches + 1;
        w->ring = sl_xcalloc(w->cap, sizeof(*w->ring));
        sl_json_init(&w->j);
        w->sess = store->ops->session_open(store->self, err);
        if (w->sess == NULL)
            goto out;
        /* the "none" store remembers nothing: no duplicate detection, no
         * consolidated view */
        w->proc = sl_proc_new(strcmp(store->ops->scheme, "none") ? store : NULL, w->sess);
        sl_proc_set_evict_hook(w->proc, wait_stored, w);
        if (opts->tombstone_ms > 0)
            sl_proc_set_tombstone_retention(w->proc, opts->tombstone_ms);
    }
    if (e->has_writer) {
        e->wr_sess = store->ops->session_open(store->self, err);
        if (e->wr_sess == NULL)
            goto out;
        if (pthread_create(&e->writer, NULL, writer_main, e) != 0) {
            e->has_writer = false;
            sl_error_set(err, SL_ERR_INTERNAL, "cannot start store thread: %s", strerror(errno));
            goto out;
        }
    }
    for (k = 0; k < e->nworkers; k++) {
        if (pthread_create(&e->workers[k].th, NULL, worker_main, &e->workers[k]) != 0) {
            sl_error_set(err, SL_ERR_INTERNAL, "cannot start worker thread: %s", strerror(errno));
            goto out;
        }
        started++;
    }
    if (checkpoints && src->ops->set_release_hook)
        src->ops->set_release_hook(src->self, release_inputs, e);
    if (pthread_create(&e->reader, NULL, reader_main, e) != 0) {
        sl_error_set(err, SL_ERR_INTERNAL, "cannot start reader thread: %s", strerror(errno));
        goto out;
    }
    reader_started = true;

    pthread_mutex_lock(&e->mu);
    while (
        !(e->reader_done && e->workers_done == e->nworkers && (!e->has_writer || e->writer_done))) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->done_cv, &e->mu, &ts);
        pthread_mutex_unlock(&e->mu);
        if (opts->stop && *opts->stop && !atomic_load(&e->stop_reading)) {
            rep->stopped = true;
            atomic_store(&e->stop_reading, true);
            pthread_mutex_lock(&e->mu);
            pthread_cond_broadcast(&e->pool_cv);
            pthread_cond_broadcast(&e->work_cv);
            pthread_mutex_unlock(&e->mu);
        }
        if (opts->reload_seq && *opts->reload_seq != reload_seen && opts->reload) {
            sl_program *np;

            reload_seen = *opts->reload_seq;
            if (opts->progress)
                fprintf(stderr, "\r\033[K");
            np = opts->reload(opts->reload_arg, e->prog);
            if (np) {
                sl_program *old;

                pthread_mutex_lock(&e->mu);
                old = e->prog;
                e->prog = np;
                pthread_mutex_unlock(&e->mu);
                sl_program_unref(old); /* batches still using it hold their own */
                rep->reloads++;
            }
        }
        if (opts->progress)
            draw_progress(e, t0, &last_n, &last_t);
        if (now_s() - last_ck >= 1.0 && checkpoints) {
            sl_error ck;

            if (checkpoint(e, &ck) < 0)
                fail(e, &ck);
            last_ck = now_s();
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    rc = 0;
out:
    if (rc != 0 && !reader_started) {
        /* startup failed: let the workers that run see the end */
        pthread_mutex_lock(&e->mu);
        atomic_store(&e->stop_reading, true);
        e->reader_done = true;
        pthread_cond_broadcast(&e->work_cv);
        pthread_mutex_unlock(&e->mu);
    }
    if (reader_started)
        pthread_join(e->reader, NULL);
    for (k = 0; k < started; k++)
        pthread_join(e->workers[k].th, NULL);
    if (e->has_writer) {
        /* no worker runs any more (some may never have started) */
        pthread_mutex_lock(&e->mu);
        e->workers_done = e->nworkers;
        pthread_cond_broadcast(&e->store_cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->writer, NULL);
    }
    /* the source outlives this run: it must not call back into it (and
     * now nobody polls it: its last commit may serve it itself) */
    if (src->ops->set_release_hook)
        src->ops->set_release_hook(src->self, NULL, NULL);
    if (rc == 0) {
        sl_error ck;
        int r = 0;

        sl_error_clear(&ck);
        if (checkpoints)
            r = checkpoint(e, &ck);
        /* The last commit was not taken (the group evicted this member and
         * did not give the partitions back in time): every output stands,
         * the next run redoes those inputs; the caller says so and exits
         * with its own status. */
        if (r == 1 && !atomic_load(&e->failed)) {
            rep->uncommitted = true;
            if (ck.msg[0] == '\0')
                sl_error_set(&ck, SL_ERR_IO, "%s: the input positions were not committed",
                             src->ops->name);
        }
        if (r != 0)
            fail(e, &ck);
        if (atomic_load(&e->failed)) {
            if (err)
                *err = e->fail_err;
            rc = -1;
        }
    }
    if (opts->progress)
        fprintf(stderr, "\r\033[K");
    rep->threads = e->nworkers;
    rep->resumed = atomic_load(&e->resumed);
    for (k = 0; e->workers && k < e->nworkers; k++) {
        worker *w = &e->workers[k];

        if (w->proc) {
            sl_counters *c = sl_proc_counters(w->proc);

            rep->read += c->read;
            rep->routed += c->routed;
            rep->written += c->written;
            rep->filtered += c->filtered;
            rep->unrouted += c->unrouted;
            rep->ignored += c->ignored;
            rep->dead += c->dead;
            rep->duplicate += c->duplicate;
            rep->skipped += c->skipped;
            rep->echo += c->echo;
            rep->same += c->same;
            rep->conflicts += c->conflicts;
            rep->manual += c->manual;
            rep->kept += c->kept;
            sl_proc_topic_counts(w->proc, add_topic, rep);
            sl_proc_free(w->proc);
        }
        if (w->sess) {
            rep->round_trips += store->ops->round_trips(w->sess);
            store->ops->session_close(w->sess);
        }
        free(w->ring);
        sl_json_free(&w->j);
    }
    if (rep->ntopics)
        qsort(rep->topics, rep->ntopics, sizeof(*rep->topics), topic_cmp);
    rep->seconds = now_s() - t0;
    for (i = 0; i < e->nbatches; i++) {
        batch *b = &e->batches[i];

        for (k = 0; k < b->cap; k++) {
            sl_item_free(b->items[k]);
            free(b->items[k]);
        }
        free(b->items);
        free(b->off);
        free(b->len);
        free(b->packed);
        free(b->input);
        free(b->pos);
        free(b->order);
        free(b->start);
        free(b->ins);
        sl_buf_free(&b->bytes);
        if (b->prog)
            sl_program_unref(b->prog);
    }
    while (e->inputs) {
        input *in = e->inputs;

        e->inputs = in->next;
        free(in->name);
        free(in);
    }
    if (e->ck_sess) {
        rep->round_trips += store->ops->round_trips(e->ck_sess);
        store->ops->session_close(e->ck_sess);
    }
    if (e->rd_sess) {
        rep->round_trips += store->ops->round_trips(e->rd_sess);
        store->ops->session_close(e->rd_sess);
    }
    if (e->wr_sess) {
        rep->round_trips += store->ops->round_trips(e->wr_sess);
        store->ops->session_close(e->wr_sess);
    }
    sl_program_unref(e->prog);
    free(e->batches);
    free(e->workers);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->pool_cv);
    pthread_cond_destroy(&e->work_cv);
    pthread_cond_destroy(&e->done_cv);
    pthread_cond_destroy(&e->store_cv);
    pthread_mutex_destroy(&e->ck_mu);
    free(e);
    return rc;
}

void sl_run_report_free(sl_run_report *rep)
{
    size_t i;

    for (i = 0; i < rep->ntopics; i++)
        free(rep->topics[i].topic);
    free(rep->topics);
    rep->topics = NULL;
    rep->ntopics = 0;
}
