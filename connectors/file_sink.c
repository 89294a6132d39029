/*
 * file_sink.c - one JSON-lines file per destination topic, or stdout.
 *
 * Workers render their lines without a lock, then append them under one
 * mutex. Files are opened in append mode: like a Kafka topic, an output file
 * is a log that successive runs add to.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink.h"

typedef struct topic_file {
    char *topic;
    FILE *f;
    struct topic_file *next;
} topic_file;

#define NBUCKETS 256

typedef struct file_sink {
    pthread_mutex_t mu;
    char *dir; /* NULL: stdout */
    topic_file *buckets[NBUCKETS];
} file_sink;

static FILE *topic_stream(file_sink *fs, sl_str topic, sl_error *err)
{
    uint64_t h = sl_hash64(topic.p, topic.len, SL_HASH_SEED);
    topic_file *tf;
    sl_buf path = SL_BUF_INIT;
    size_t i;

    for (tf = fs->buckets[h % NBUCKETS]; tf; tf = tf->next)
        if (strlen(tf->topic) == topic.len && memcmp(tf->topic, topic.p, topic.len) == 0)
            return tf->f;
    sl_buf_printf(&path, "%s/", fs->dir);
    for (i = 0; i < topic.len; i++) {
        char c = topic.p[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        sl_buf_putc(&path, ok && !(i == 0 && c == '.') ? c : '_');
    }
    if (topic.len == 0)
        sl_buf_puts(&path, "_");
    sl_buf_puts(&path, ".jsonl");
    tf = sl_xcalloc(1, sizeof(*tf));
    tf->f = fopen(path.data, "ae");
    if (tf->f == NULL) {
        sl_error_set(err, SL_ERR_IO, "cannot open output %s: %s", path.data, strerror(errno));
        free(tf);
        sl_buf_free(&path);
        return NULL;
    }
    setvbuf(tf->f, NULL, _IOFBF, 1 << 16);
    tf->topic = sl_xstrndup(topic.p, topic.len);
    tf->next = fs->buckets[h % NBUCKETS];
    fs->buckets[h % NBUCKETS] = tf;
    sl_buf_free(&path);
    return tf->f;
}

static int fsk_write(void *self, const sl_record *recs, size_t n, sl_error *err)
{
    file_sink *fs = self;
    sl_buf lines = SL_BUF_INIT;
    size_t *ends = sl_xmalloc((n ? n : 1) * sizeof(*ends));
    size_t i, start = 0;
    int rc = 0;

    for (i = 0; i < n; i++) {
        sl_record_write_line(&recs[i], true, true, &lines);
        sl_buf_putc(&lines, '\n');
        ends[i] = lines.len;
    }
    pthread_mutex_lock(&fs->mu);
    for (i = 0; i < n; i++) {
        FILE *f = fs->dir ? topic_stream(fs, recs[i].topic, err) : stdout;

        if (f == NULL || fwrite(lines.data + start, 1, ends[i] - start, f) != ends[i] - start) {
            if (f != NULL)
                sl_error_set(err, SL_ERR_IO, "write failed: %s", strerror(errno));
            rc = -1;
            break;
        }
        start = ends[i];
    }
    pthread_mutex_unlock(&fs->mu);
    free(ends);
    sl_buf_free(&lines);
    return rc;
}

static int fsk_flush(void *self, bool sync, sl_error *err)
{
    file_sink *fs = self;
    topic_file *tf;
    int i, rc = 0;

    pthread_mutex_lock(&fs->mu);
    if (fs->dir == NULL) {
        if (fflush(stdout) != 0)
            rc = sl_error_set(err, SL_ERR_IO, "flush stdout: %s", strerror(errno));
        goto out;
    }
    for (i = 0; i < NBUCKETS; i++)
        for (tf = fs->buckets[i]; tf; tf = tf->next) {
            if (fflush(tf->f) != 0 || (sync && fdatasync(fileno(tf->f)) != 0)) {
                rc =
                    sl_error_set(err, SL_ERR_IO, "flush output %s: %s", tf->topic, strerror(errno));
                goto out;
            }
        }
out:
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static void fsk_destroy(void *self)
{
    file_sink *fs = self;
    topic_file *tf, *next;
    int i;

    if (fs == NULL)
        return;
    for (i = 0; i < NBUCKETS; i++)
        for (tf = fs->buckets[i]; tf; tf = next) {
            next = tf->next;
            fclose(tf->f);
            free(tf->topic);
            free(tf);
        }
    if (fs->dir == NULL)
        fflush(stdout);
    pthread_mutex_destroy(&fs->mu);
    free(fs->dir);
    free(fs);
}

static const sl_sink_ops file_sink_ops = {
    .name = "files",
    .write = fsk_write,
    .flush = fsk_flush,
    .destroy = fsk_destroy,
};

/* mkdir -p */
static int make_dirs(const char *dir, sl_error *err)
{
    char *p = sl_xstrdup(dir), *s;
    int rc = 0;

    for (s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rc = sl_error_set(err, SL_ERR_IO, "cannot create %s: %s", p, strerror(errno));
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        rc = sl_error_set(err, SL_ERR_IO, "cannot create output directory %s: %s", p,
                          strerror(errno));
out:
    free(p);
    return rc;
}

int sl_sink_open_files(sl_sink *sink, const char *dir, sl_error *err)
{
    file_sink *fs;

    if (strcmp(dir, "-") != 0 && make_dirs(dir, err) != 0)
        return -1;
    fs = sl_xcalloc(1, sizeof(*fs));
    pthread_mutex_init(&fs->mu, NULL);
    fs->dir = strcmp(dir, "-") == 0 ? NULL : sl_xstrdup(dir);
    sink->ops = &file_sink_ops;
    sink->self = fs;
    return 0;
}
