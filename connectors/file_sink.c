/*
 * file_sink.c - one JSON-lines file per destination topic, or stdout.
 *
 * Workers hand over a batch's records; under one mutex they are rendered
 * per topic and each topic's lines are appended with a single write(2).
 * Files are opened in append mode: like a Kafka topic, an output file is a
 * log that successive runs add to.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink.h"

typedef struct topic_file {
    char *topic;
    int fd;
    int group;           /* in a write call, under the lock: its group of lines; -1 */
    pthread_mutex_t wmu; /* one write(2) series at a time on this file */
    struct topic_file *next;
} topic_file;

#define NBUCKETS 256

typedef struct file_sink {
    pthread_mutex_t mu;
    char *dir; /* NULL: stdout */
    topic_file *buckets[NBUCKETS];
    topic_file out; /* stdout */
} file_sink;

/* A crash can leave the last line of a file half written: it was never
 * recorded as done, so it will be written again; cut the torn part off so
 * the file stays one JSON document per line. */
static int trim_torn_tail(int fd, const char *path, sl_error *err)
{
    struct stat st;
    char buf[4096];
    off_t end, pos;
    ssize_t n, i;

    if (fstat(fd, &st) != 0)
        return sl_error_set(err, SL_ERR_IO, "stat %s: %s", path, strerror(errno));
    end = st.st_size;
    if (end == 0)
        return 0;
    if (pread(fd, buf, 1, end - 1) == 1 && buf[0] == '\n')
        return 0;
    pos = end;
    while (pos > 0) {
        off_t from = pos > (off_t)sizeof(buf) ? pos - (off_t)sizeof(buf) : 0;

        n = pread(fd, buf, (size_t)(pos - from), from);
        if (n <= 0)
            return sl_error_set(err, SL_ERR_IO, "read %s: %s", path, strerror(errno));
        for (i = n - 1; i >= 0; i--)
            if (buf[i] == '\n')
                break;
        if (i >= 0) {
            pos = from + i + 1;
            break;
        }
        pos = from;
    }
    if (ftruncate(fd, pos) != 0)
        return sl_error_set(err, SL_ERR_IO, "truncate %s: %s", path, strerror(errno));
    return 0;
}

static topic_file *topic_for(file_sink *fs, sl_str topic, sl_error *err)
{
    uint64_t h = sl_hash64(topic.p, topic.len, SL_HASH_SEED);
    topic_file *tf;
    sl_buf path = SL_BUF_INIT;
    size_t i;
    int fd;

    for (tf = fs->buckets[h % NBUCKETS]; tf; tf = tf->next)
        if (strlen(tf->topic) == topic.len && memcmp(tf->topic, topic.p, topic.len) == 0)
            return tf;
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
    fd = open(path.data, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        sl_error_set(err, SL_ERR_IO, "cannot open output %s: %s", path.data, strerror(errno));
        sl_buf_free(&path);
        return NULL;
    }
    if (trim_torn_tail(fd, path.data, err) != 0) {
        close(fd);
        sl_buf_free(&path);
        return NULL;
    }
    tf = sl_xcalloc(1, sizeof(*tf));
    tf->group = -1;
    pthread_mutex_init(&tf->wmu, NULL);
    tf->fd = fd;
    tf->topic = sl_xstrndup(topic.p, topic.len);
    tf->next = fs->buckets[h % NBUCKETS];
    fs->buckets[h % NBUCKETS] = tf;
    sl_buf_free(&path);
    return tf;
}

static int write_all(int fd, const char *p, size_t n, const char *what, sl_error *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return sl_error_set(err, SL_ERR_IO, "write %s: %s", what,
                                w < 0 ? strerror(errno) : "nothing written");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* About the bytes of rec's line (sl_record_write_line): its parts and
 * their punctuation; escapes can make it longer (the buffer then grows). */
static size_t line_room(const sl_record *rec)
{
    size_t n = 64 + rec->topic.len + rec->key_len + rec->value_len, h;

    for (h = 0; h < rec->nheaders; h++)
        n += 8 + rec->headers[h].name.len + rec->headers[h].value.len;
    return n;
}

/* Lines are rendered per topic, then each topic's lines go out in one
 * write(2): whole lines reach the operating system together. Finding the
 * files holds the sink's lock; each file's writes hold that file's own lock
 * (a short write is followed by the rest before anyone else writes there),
 * so workers render, and write different files, at the same time. Files
 * are never closed while the sink lives, so their descriptors stay valid
 * meanwhile. */
static int fsk_write(void *self, const sl_record *recs, size_t n, sl_error *err)
{
    file_sink *fs = self;
    struct group {
        topic_file *tf;
        sl_buf lines;
        size_t need; /* about the bytes of its lines: reserved once */
    } *g = NULL;     /* one per topic written */
    size_t *gi = sl_xmalloc((n ? n : 1) * sizeof(*gi));
    size_t i, ng = 0, capg = 0;
    int rc = 0;

    pthread_mutex_lock(&fs->mu);
    for (i = 0; i < n && rc == 0; i++) {
        topic_file *tf = fs->dir ? topic_for(fs, recs[i].topic, err) : &fs->out;

        if (tf == NULL) {
            rc = -1;
            break;
        }
        if (tf->group < 0) {
            if (ng == capg) {
                capg = capg ? capg * 2 : 8;
                g = sl_xrealloc(g, capg * sizeof(*g));
            }
            memset(&g[ng], 0, sizeof(*g));
            tf->group = (int)ng;
            g[ng++].tf = tf;
        }
        gi[i] = (size_t)tf->group;
    }
    for (i = 0; i < ng; i++)
        g[i].tf->group = -1;
    pthread_mutex_unlock(&fs->mu);
    if (rc != 0)
        goto out;
    for (i = 0; i < n; i++)
        g[gi[i]].need += line_room(&recs[i]);
    for (i = 0; i < ng; i++)
        sl_buf_reserve(&g[i].lines, g[i].need);
    for (i = 0; i < n; i++) {
        sl_record_write_line(&recs[i], true, true, &g[gi[i]].lines);
        sl_buf_putc(&g[gi[i]].lines, '\n');
    }
    for (i = 0; i < ng && rc == 0; i++) {
        pthread_mutex_lock(&g[i].tf->wmu);
        rc = write_all(g[i].tf->fd, g[i].lines.data, g[i].lines.len, g[i].tf->topic, err);
        pthread_mutex_unlock(&g[i].tf->wmu);
    }
out:
    for (i = 0; i < ng; i++)
        sl_buf_free(&g[i].lines);
    free(g);
    free(gi);
    return rc;
}

static int fsk_flush(void *self, bool sync, sl_error *err)
{
    file_sink *fs = self;
    topic_file *tf;
    int *fds = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    int b, rc = 0;

    if (!sync || fs->dir == NULL)
        return 0; /* every write already reached the operating system */
    /* Collect the files under the lock, sync them without it: writers go on
     * while the disk catches up. Topic files are never closed while the sink
     * lives, so the descriptors stay valid. */
    pthread_mutex_lock(&fs->mu);
    for (b = 0; b < NBUCKETS; b++)
        for (tf = fs->buckets[b]; tf; tf = tf->next) {
            if (n == cap) {
                cap = cap ? cap * 2 : 32;
                fds = sl_xrealloc(fds, cap * sizeof(*fds));
                names = sl_xrealloc(names, cap * sizeof(*names));
            }
            fds[n] = tf->fd;
            names[n++] = tf->topic;
        }
    pthread_mutex_unlock(&fs->mu);
    for (i = 0; i < n; i++)
        if (fdatasync(fds[i]) != 0) {
            rc = sl_error_set(err, SL_ERR_IO, "sync output %s: %s", names[i], strerror(errno));
            break;
        }
    free(fds);
    free(names);
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
            close(tf->fd);
            pthread_mutex_destroy(&tf->wmu);
            free(tf->topic);
            free(tf);
        }
    free(fs->out.topic);
    pthread_mutex_destroy(&fs->out.wmu);
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
    fs->out.fd = STDOUT_FILENO;
    fs->out.group = -1;
    pthread_mutex_init(&fs->out.wmu, NULL);
    fs->out.topic = sl_xstrdup("stdout");
    sink->ops = &file_sink_ops;
    sink->self = fs;
    return 0;
}
