/*
 * jansson_baseline.c - benchmark baseline (b): parse and re-serialise every
 * line with a DOM JSON library, on all cores, keeping input order.
 *
 *     jansson_baseline [-v] [-t THREADS] INPUT OUTPUT     ('-' for stdin / stdout)
 *
 * What a straightforward multithreaded "decode, touch, encode" JSON-lines
 * processor costs: a reader thread cuts the input into batches of BATCH_LINES
 * lines, THREADS workers json_loadb() each line and json_dumpb() it back
 * (JSON_COMPACT), and the writer (the main thread) writes the batches in input
 * order. A line jansson cannot parse is copied unchanged and counted.
 *
 * Threads and ownership: a batch belongs to exactly one thread at a time
 * (reader -> work queue -> one worker -> done ring -> writer -> free list).
 * All queues live in one pipe_state protected by one mutex; they are touched once
 * per batch, not per line, so the lock is not hot. At most `window` batches
 * (4 per worker + 4, capped at RING) are in flight, which bounds memory and
 * the writer's reorder window.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK       (1u << 20)
#define BATCH_LINES 1024
#define RING        64

typedef struct batch {
    uint64_t seq;
    char *in; /* the lines, each followed by '\n' */
    size_t in_len, in_cap;
    size_t *off; /* start of each line in `in`; off[n] = in_len */
    size_t n;
    char *out;
    size_t out_len, out_cap;
    size_t bad;
    struct batch *next; /* free list / work queue link */
} batch;

typedef struct pipe_state {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* any change: work queued, batch done, slot freed */
    batch *work_head, *work_tail;
    batch *done[RING]; /* done[seq % RING] */
    batch *free_list;
    uint64_t next_seq; /* reader: next sequence number */
    uint64_t written;  /* writer: batches written so far */
    uint64_t total;    /* set by the reader at end of input */
    uint64_t window;   /* batches allowed in flight, <= RING */
    int eof;           /* reader finished; `total` is valid */
    int failed;        /* reader or allocation failure */
    FILE *in;
} pipe_state;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fputs("jansson_baseline: out of memory\n", stderr);
        exit(1);
    }
    return q;
}

static batch *batch_get(pipe_state *ps)
{
    batch *b;
    pthread_mutex_lock(&ps->mu);
    /* Wait for a free slot in the in-flight window. */
    while (ps->next_seq - ps->written >= ps->window)
        pthread_cond_wait(&ps->cond, &ps->mu);
    b = ps->free_list;
    if (b)
        ps->free_list = b->next;
    pthread_mutex_unlock(&ps->mu);
    if (!b) {
        b = xrealloc(NULL, sizeof *b);
        memset(b, 0, sizeof *b);
        b->off = xrealloc(NULL, (BATCH_LINES + 1) * sizeof *b->off);
    }
    b->in_len = b->n = b->out_len = b->bad = 0;
    b->next = NULL;
    return b;
}

static void batch_append(batch *b, const char *line, size_t len)
{
    if (b->in_len + len + 1 > b->in_cap) {
        size_t cap = b->in_cap ? b->in_cap : 1024 * 1024;
        while (b->in_len + len + 1 > cap)
            cap *= 2;
        b->in = xrealloc(b->in, cap);
        b->in_cap = cap;
    }
    b->off[b->n++] = b->in_len;
    memcpy(b->in + b->in_len, line, len);
    b->in_len += len;
    b->in[b->in_len++] = '\n';
}

static void submit(pipe_state *ps, batch *b)
{
    pthread_mutex_lock(&ps->mu);
    b->seq = ps->next_seq++;
    b->off[b->n] = b->in_len;
    if (ps->work_tail)
        ps->work_tail->next = b;
    else
        ps->work_head = b;
    ps->work_tail = b;
    pthread_cond_broadcast(&ps->cond);
    pthread_mutex_unlock(&ps->mu);
}

static void *reader_main(void *arg)
{
    pipe_state *ps = arg;
    size_t cap = CHUNK, have = 0;
    char *buf = xrealloc(NULL, cap);
    batch *b = batch_get(ps);
    int failed = 0;

    for (;;) {
        if (have == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        size_t n = fread(buf + have, 1, cap - have, ps->in);
        if (n == 0) {
            if (ferror(ps->in)) {
                fprintf(stderr, "jansson_baseline: read error: %s\n", strerror(errno));
                failed = 1;
            }
            break;
        }
        size_t end = have + n, start = 0;
        const char *nl = memchr(buf + have, '\n', n);
        while (nl) {
            size_t len = (size_t)(nl - (buf + start));
            batch_append(b, buf + start, len);
            if (b->n == BATCH_LINES) {
                submit(ps, b);
                b = batch_get(ps);
            }
            start += len + 1;
            nl = memchr(buf + start, '\n', end - start);
        }
        have = end - start;
        memmove(buf, buf + start, have);
    }
    if (have > 0 && !failed)
        batch_append(b, buf, have);
    if (b->n > 0)
        submit(ps, b);
    else {
        pthread_mutex_lock(&ps->mu);
        b->next = ps->free_list;
        ps->free_list = b;
        pthread_mutex_unlock(&ps->mu);
    }
    free(buf);

    pthread_mutex_lock(&ps->mu);
    ps->total = ps->next_seq;
    ps->eof = 1;
    ps->failed |= failed;
    pthread_cond_broadcast(&ps->cond);
    pthread_mutex_unlock(&ps->mu);
    return NULL;
}

static void out_reserve(batch *b, size_t more)
{
    if (b->out_len + more <= b->out_cap)
        return;
    size_t cap = b->out_cap ? b->out_cap : 1024 * 1024;
    while (b->out_len + more > cap)
        cap *= 2;
    b->out = xrealloc(b->out, cap);
    b->out_cap = cap;
}

static void process(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const char *line = b->in + b->off[i];
        size_t len = b->off[i + 1] - b->off[i] - 1; /* without '\n' */
        json_error_t jerr;
        json_t *doc = json_loadb(line, len, 0, &jerr);
        if (!doc) {
            b->bad++;
            out_reserve(b, len + 1);
            memcpy(b->out + b->out_len, line, len);
            b->out_len += len;
        } else {
            /* Compact output is rarely longer than the input; retry when it is. */
            size_t room = len + 64;
            out_reserve(b, room + 1);
            size_t need = json_dumpb(doc, b->out + b->out_len, room, JSON_COMPACT);
            if (need > room) {
                out_reserve(b, need + 1);
                need = json_dumpb(doc, b->out + b->out_len, need, JSON_COMPACT);
            }
            b->out_len += need;
            json_decref(doc);
        }
        b->out[b->out_len++] = '\n';
    }
}

static void *worker_main(void *arg)
{
    pipe_state *ps = arg;
    for (;;) {
        pthread_mutex_lock(&ps->mu);
        while (!ps->work_head && !ps->eof)
            pthread_cond_wait(&ps->cond, &ps->mu);
        batch *b = ps->work_head;
        if (!b) {
            pthread_mutex_unlock(&ps->mu);
            return NULL;
        }
        ps->work_head = b->next;
        if (!ps->work_head)
            ps->work_tail = NULL;
        pthread_mutex_unlock(&ps->mu);

        process(b);

        pthread_mutex_lock(&ps->mu);
        ps->done[b->seq % RING] = b;
        pthread_cond_broadcast(&ps->cond);
        pthread_mutex_unlock(&ps->mu);
    }
}

static int parse_threads(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 256)
        return -1;
    return (int)v;
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = ncpu > 0 ? (int)ncpu : 1;
    int verbose = 0, opt;
    while ((opt = getopt(argc, argv, "vt:")) != -1) {
        if (opt == 't' && (nthreads = parse_threads(optarg)) > 0)
            continue;
        if (opt == 'v') {
            verbose = 1;
            continue;
        }
        fprintf(stderr, "usage: jansson_baseline [-v] [-t THREADS] INPUT OUTPUT\n");
        return 2;
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: jansson_baseline [-v] [-t THREADS] INPUT OUTPUT\n");
        return 2;
    }
    const char *ipath = argv[optind], *opath = argv[optind + 1];
    int rc = 1, started = 0;
    pthread_t reader, workers[256];
    pipe_state ps;
    memset(&ps, 0, sizeof ps);
    pthread_mutex_init(&ps.mu, NULL);
    pthread_cond_init(&ps.cond, NULL);
    /* Enough to keep every worker busy while the writer drains; more only costs memory. */
    ps.window = (uint64_t)nthreads * 4 + 4 < RING ? (uint64_t)nthreads * 4 + 4 : RING;
    unsigned long long lines = 0, bad = 0;

    ps.in = strcmp(ipath, "-") == 0 ? stdin : fopen(ipath, "rb");
    FILE *out = strcmp(opath, "-") == 0 ? stdout : fopen(opath, "wb");
    if (!ps.in || !out) {
        fprintf(stderr, "jansson_baseline: %s: %s\n", !ps.in ? ipath : opath, strerror(errno));
        goto out;
    }
    for (; started < nthreads; started++)
        if (pthread_create(&workers[started], NULL, worker_main, &ps) != 0)
            break;
    if (started == 0 || pthread_create(&reader, NULL, reader_main, &ps) != 0) {
        fprintf(stderr, "jansson_baseline: cannot start threads\n");
        /* Let the started workers see end of input and leave. */
        pthread_mutex_lock(&ps.mu);
        ps.eof = 1;
        pthread_cond_broadcast(&ps.cond);
        pthread_mutex_unlock(&ps.mu);
        for (int i = 0; i < started; i++)
            pthread_join(workers[i], NULL);
        goto out;
    }

    /* The writer: take batches in sequence order from the done ring. */
    int write_failed = 0;
    for (;;) {
        pthread_mutex_lock(&ps.mu);
        uint64_t seq = ps.written;
        while (!ps.done[seq % RING] && !(ps.eof && seq >= ps.total))
            pthread_cond_wait(&ps.cond, &ps.mu);
        batch *b = ps.done[seq % RING];
        ps.done[seq % RING] = NULL;
        pthread_mutex_unlock(&ps.mu);
        if (!b)
            break;
        if (!write_failed && fwrite(b->out, 1, b->out_len, out) != b->out_len)
            write_failed = 1;
        lines += b->n;
        bad += b->bad;
        pthread_mutex_lock(&ps.mu);
        b->next = ps.free_list;
        ps.free_list = b;
        ps.written++;
        pthread_cond_broadcast(&ps.cond);
        pthread_mutex_unlock(&ps.mu);
    }
    pthread_join(reader, NULL);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i], NULL);
    if (fflush(out) != 0)
        write_failed = 1;
    if (write_failed)
        fprintf(stderr, "jansson_baseline: write error: %s\n", strerror(errno));
    if (verbose)
        fprintf(stderr, "%llu lines (%llu not JSON), %d workers\n", lines, bad, started);
    rc = write_failed || ps.failed ? 1 : 0;

out:
    if (ps.in && ps.in != stdin)
        fclose(ps.in);
    if (out && out != stdout && fclose(out) != 0)
        rc = 1;
    while (ps.free_list) {
        batch *b = ps.free_list;
        ps.free_list = b->next;
        free(b->in);
        free(b->out);
        free(b->off);
        free(b);
    }
    pthread_mutex_destroy(&ps.mu);
    pthread_cond_destroy(&ps.cond);
    return rc;
}
