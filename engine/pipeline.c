/*
 * pipeline.c - reader, workers, checkpoints.
 */
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
    sl_item **items; /* swapped with the reader's spare item, never copied */
    int n;
    bool in_use;        /* guarded by engine.mu */
    uint64_t first_seq; /* no item in it has a smaller sequence number */
    struct batch *next_free;
} batch;

typedef struct engine engine;

typedef struct worker {
    engine *e;
    int idx;
    pthread_t th;
    pthread_cond_t cv;
    batch **ring; /* guarded by engine.mu */
    size_t head, count, cap;
    bool end;
    void *sess;
    sl_proc *proc;
} worker;

/* One input stream seen this run: maps sequence numbers to its positions. */
typedef struct input {
    char *name;
    uint64_t fp;
    uint64_t seq_start;
    int64_t pos_start;
    uint64_t last_seq; /* guarded by engine.mu */
    int64_t committed;
    struct input *next;
} input;

struct engine {
    const sl_program *prog;
    sl_input *src;
    sl_sink *sink;
    sl_store *store;
    const sl_run_opts *opts;
    int nworkers, bsize;

    pthread_mutex_t mu;
    pthread_cond_t pool_cv, done_cv;
    batch *batches;
    size_t nbatches;
    batch *free;
    worker *workers;
    pthread_t reader;
    bool reader_done; /* guarded by mu */
    int workers_done; /* guarded by mu */

    _Atomic bool stop_reading;
    _Atomic bool failed;
    sl_error fail_err; /* guarded by mu; first failure wins */

    _Atomic uint64_t next_seq;
    _Atomic uint64_t resumed;
    input *inputs, *cur_input; /* guarded by mu */
    int64_t cur_pos;           /* guarded by mu: for the progress line */
    void *ck_sess;             /* the checkpointing (calling) thread's store session */
    void *rd_sess;             /* the reader's store session */
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
        e->free = b->next_free;
        b->in_use = true;
        b->n = 0;
        b->first_seq = atomic_load(&e->next_seq);
    }
    pthread_mutex_unlock(&e->mu);
    return b;
}

static void release(engine *e, batch *b)
{
    pthread_mutex_lock(&e->mu);
    b->in_use = false;
    b->n = 0;
    b->next_free = e->free;
    e->free = b;
    pthread_cond_signal(&e->pool_cv);
    pthread_mutex_unlock(&e->mu);
}

/* Hand a batch (or NULL: end of input) to a worker. The ring is as large
 * as the pool, so this never waits. */
static void push(engine *e, worker *w, batch *b)
{
    pthread_mutex_lock(&e->mu);
    if (b == NULL)
        w->end = true;
    else
        w->ring[(w->head + w->count++) % w->cap] = b;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&e->mu);
}

static batch *pop(engine *e, worker *w)
{
    batch *b = NULL;

    pthread_mutex_lock(&e->mu);
    while (w->count == 0 && !w->end)
        pthread_cond_wait(&w->cv, &e->mu);
    if (w->count) {
        b = w->ring[w->head];
        w->head = (w->head + 1) % w->cap;
        w->count--;
    }
    pthread_mutex_unlock(&e->mu);
    return b;
}

/* ---- workers -------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    worker *w = arg;
    engine *e = w->e;
    batch *b;
    sl_error err;
    int i;

    sl_error_clear(&err);
    while ((b = pop(e, w)) != NULL) {
        const sl_record *recs;
        size_t n;

        if (atomic_load(&e->failed)) {
            release(e, b); /* drain without processing: nothing is committed */
            continue;
        }
        for (i = 0; i < b->n; i++)
            if (sl_proc_item(w->proc, b->items[i], &err) != 0)
                goto failed;
        recs = sl_proc_outputs(w->proc, &n);
        /* Outputs reach the operating system before the store records the
         * events as processed: a crash in between redoes them, never loses. */
        if ((n && e->sink->ops->write(e->sink->self, recs, n, &err) != 0) ||
            e->sink->ops->flush(e->sink->self, false, &err) != 0)
            goto failed;
        if (sl_proc_commit(w->proc, &err) != 0)
            goto failed;
        release(e, b);
        continue;
    failed:
        fail(e, &err);
        sl_proc_commit(w->proc, NULL); /* forget the pending outputs */
        release(e, b);
    }
    pthread_mutex_lock(&e->mu);
    e->workers_done++;
    pthread_cond_broadcast(&e->done_cv);
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

static void *reader_main(void *arg)
{
    engine *e = arg;
    batch **fill = sl_xcalloc((size_t)e->nworkers, sizeof(*fill));
    sl_item *spare = sl_xmalloc(sizeof(*spare)), *t;
    sl_json j;
    sl_msg msg;
    sl_error err;
    const char *last_name = NULL;
    int64_t done = 0;
    int r, k;

    sl_item_init(spare);
    sl_json_init(&j);
    sl_error_clear(&err);
    while (!atomic_load(&e->stop_reading)) {
        batch *b;
        int wi;

        r = e->src->ops->poll(e->src->self, &msg, 200, &err);
        if (r < 0) {
            fail(e, &err);
            break;
        }
        if (r == 0)
            break;
        if (r == 2) {
            /* input is idle: do not sit on what we hold */
            for (k = 0; k < e->nworkers; k++)
                if (fill[k] && fill[k]->n) {
                    push(e, &e->workers[k], fill[k]);
                    fill[k] = NULL;
                }
            continue;
        }
        if (msg.input != last_name) {
            /* a new input stream: where did an earlier run stop in it? */
            last_name = msg.input;
            done = 0;
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
        sl_item_decode(spare, e->prog, msg.line, msg.len, msg.input, msg.pos, &j);
        wi = (int)(spare->hash % (uint64_t)e->nworkers);
        if (fill[wi] == NULL && (fill[wi] = acquire(e)) == NULL)
            break; /* stopping: this message is not taken, the next run redoes it */
        b = fill[wi];
        t = b->items[b->n];
        b->items[b->n++] = spare;
        spare = t;
        pthread_mutex_lock(&e->mu);
        {
            input *in = e->cur_input;
            uint64_t seq = atomic_load(&e->next_seq);

            if (in == NULL || strcmp(in->name, msg.input) != 0) {
                in = find_input(e, msg.input);
                if (in == NULL) {
                    in = sl_xcalloc(1, sizeof(*in));
                    in->name = sl_xstrdup(msg.input);
                    in->fp = msg.input_fp;
                    in->seq_start = seq;
                    in->pos_start = msg.pos;
                    in->committed = done;
                    in->next = e->inputs;
                    e->inputs = in;
                }
                e->cur_input = in;
            }
            in->last_seq = seq;
            e->cur_pos = msg.pos;
            atomic_store(&e->next_seq, seq + 1);
        }
        pthread_mutex_unlock(&e->mu);
        if (b->n == e->bsize) {
            push(e, &e->workers[wi], b);
            fill[wi] = NULL;
        }
    }
    for (k = 0; k < e->nworkers; k++) {
        if (fill[k]) {
            if (fill[k]->n)
                push(e, &e->workers[k], fill[k]);
            else
                release(e, fill[k]);
        }
        push(e, &e->workers[k], NULL);
    }
    sl_item_free(spare);
    free(spare);
    sl_json_free(&j);
    free(fill);
    pthread_mutex_lock(&e->mu);
    e->reader_done = true;
    pthread_cond_broadcast(&e->done_cv);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- checkpoints ------------------------------------------------------------ */

/* Record, per input stream, how many lines are completely processed: every
 * message with a sequence number below the low-water mark is. */
static int checkpoint(engine *e, sl_error *err)
{
    uint64_t lw;
    size_t i;
    input *in;
    int rc = 0;
    struct upd {
        char *name;
        uint64_t fp;
        int64_t done;
    } *upd = NULL;
    size_t nupd = 0, cap = 0;

    pthread_mutex_lock(&e->mu);
    lw = atomic_load(&e->next_seq);
    for (i = 0; i < e->nbatches; i++)
        if (e->batches[i].in_use && e->batches[i].first_seq < lw)
            lw = e->batches[i].first_seq;
    for (in = e->inputs; in; in = in->next) {
        int64_t done;

        if (in->fp == 0 || lw == 0 || lw - 1 < in->seq_start)
            continue;
        done = in->pos_start +
               (int64_t)((lw - 1 < in->last_seq ? lw - 1 : in->last_seq) - in->seq_start);
        if (done <= in->committed)
            continue;
        if (nupd == cap) {
            cap = cap ? cap * 2 : 4;
            upd = sl_xrealloc(upd, cap * sizeof(*upd));
        }
        upd[nupd].name = sl_xstrdup(in->name);
        upd[nupd].fp = in->fp;
        upd[nupd++].done = done;
        in->committed = done;
    }
    pthread_mutex_unlock(&e->mu);
    if (nupd == 0)
        goto out;
    /* outputs of everything below the mark are durable before we say so */
    if (e->sink->ops->flush(e->sink->self, true, err) != 0) {
        rc = -1;
        goto out;
    }
    for (i = 0; i < nupd; i++)
        if (e->store->ops->input_put(e->ck_sess, upd[i].name, upd[i].fp, upd[i].done, err) != 0) {
            rc = -1;
            goto out;
        }
out:
    for (i = 0; i < nupd; i++)
        free(upd[i].name);
    free(upd);
    return rc;
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

int sl_pipeline_run(const sl_program *prog, sl_input *src, sl_sink *sink, sl_store *store,
                    const sl_run_opts *opts, sl_run_report *rep, sl_error *err)
{
    engine *e = sl_xcalloc(1, sizeof(*e));
    double t0 = now_s(), last_ck = t0, last_t = t0;
    uint64_t last_n = 0;
    size_t i;
    int k, started = 0, rc = -1;
    bool reader_started = false;

    memset(rep, 0, sizeof(*rep));
    e->prog = prog;
    e->src = src;
    e->sink = sink;
    e->store = store;
    e->opts = opts;
    e->nworkers = opts->threads > 0 ? opts->threads : default_threads();
    e->bsize = opts->batch > 0 ? opts->batch : 256;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->pool_cv, NULL);
    pthread_cond_init(&e->done_cv, NULL);

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

        b->items = sl_xcalloc((size_t)e->bsize, sizeof(*b->items));
        for (k = 0; k < e->bsize; k++) {
            b->items[k] = sl_xmalloc(sizeof(sl_item));
            sl_item_init(b->items[k]);
        }
        b->next_free = e->free;
        e->free = b;
    }
    e->workers = sl_xcalloc((size_t)e->nworkers, sizeof(*e->workers));
    for (k = 0; k < e->nworkers; k++) {
        worker *w = &e->workers[k];

        w->e = e;
        w->idx = k;
        w->cap = e->nbatches + 1;
        w->ring = sl_xcalloc(w->cap, sizeof(*w->ring));
        pthread_cond_init(&w->cv, NULL);
        w->sess = store->ops->session_open(store->self, err);
        if (w->sess == NULL)
            goto out;
        /* the "none" store remembers nothing: no duplicate detection */
        w->proc = sl_proc_new(prog, strcmp(store->ops->scheme, "none") ? store : NULL, w->sess);
    }
    for (k = 0; k < e->nworkers; k++) {
        if (pthread_create(&e->workers[k].th, NULL, worker_main, &e->workers[k]) != 0) {
            sl_error_set(err, SL_ERR_INTERNAL, "cannot start worker thread: %s", strerror(errno));
            goto out;
        }
        started++;
    }
    if (pthread_create(&e->reader, NULL, reader_main, e) != 0) {
        sl_error_set(err, SL_ERR_INTERNAL, "cannot start reader thread: %s", strerror(errno));
        goto out;
    }
    reader_started = true;

    pthread_mutex_lock(&e->mu);
    while (!(e->reader_done && e->workers_done == e->nworkers)) {
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
            pthread_mutex_unlock(&e->mu);
        }
        if (opts->progress)
            draw_progress(e, t0, &last_n, &last_t);
        if (now_s() - last_ck >= 1.0) {
            sl_error ck;

            if (checkpoint(e, &ck) != 0)
                fail(e, &ck);
            last_ck = now_s();
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    rc = 0;
out:
    if (rc != 0) {
        /* startup failed: stop whatever runs */
        atomic_store(&e->stop_reading, true);
        for (k = 0; k < started; k++)
            if (!reader_started)
                push(e, &e->workers[k], NULL);
    }
    if (reader_started)
        pthread_join(e->reader, NULL);
    for (k = 0; k < started; k++)
        pthread_join(e->workers[k].th, NULL);
    if (rc == 0) {
        sl_error ck;

        if (checkpoint(e, &ck) != 0)
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
            sl_proc_topic_counts(w->proc, add_topic, rep);
            sl_proc_free(w->proc);
        }
        if (w->sess)
            store->ops->session_close(w->sess);
        free(w->ring);
        pthread_cond_destroy(&w->cv);
    }
    if (rep->ntopics)
        qsort(rep->topics, rep->ntopics, sizeof(*rep->topics), topic_cmp);
    rep->seconds = now_s() - t0;
    for (i = 0; i < e->nbatches; i++) {
        for (k = 0; k < e->bsize; k++) {
            sl_item_free(e->batches[i].items[k]);
            free(e->batches[i].items[k]);
        }
        free(e->batches[i].items);
    }
    while (e->inputs) {
        input *in = e->inputs;

        e->inputs = in->next;
        free(in->name);
        free(in);
    }
    if (e->ck_sess)
        store->ops->session_close(e->ck_sess);
    if (e->rd_sess)
        store->ops->session_close(e->rd_sess);
    free(e->batches);
    free(e->workers);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->pool_cv);
    pthread_cond_destroy(&e->done_cv);
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
