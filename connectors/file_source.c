/*
 * file_source.c - JSON lines from files, a directory of files, or stdin.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source.h"

#define CHUNK    (1 << 20)
#define FP_BYTES 4096

typedef struct file_source {
    char **paths; /* owned; resolved paths, or "-" */
    size_t npaths, next_path;
    int fd;         /* current input, -1 between inputs */
    char *cur_name; /* borrowed from paths */
    uint64_t cur_fp;
    int64_t lineno;
    char *buf; /* read buffer */
    size_t cap, start, end;
    int eof;
    int is_regular; /* regular files never block; pipes and ttys may */
} file_source;

static uint64_t fingerprint(int fd)
{
    char b[FP_BYTES];
    ssize_t n = pread(fd, b, sizeof(b), 0);

    if (n <= 0)
        return 0;
    return sl_hash64(b, (size_t)n, SL_HASH_SEED) | 1;
}

static int open_next(file_source *fs, sl_error *err)
{
    const char *p;

    while (fs->next_path < fs->npaths) {
        p = fs->paths[fs->next_path++];
        if (strcmp(p, "-") == 0) {
            fs->fd = STDIN_FILENO;
            fs->cur_fp = 0;
        } else {
            fs->fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fs->fd < 0)
                return sl_error_set(err, SL_ERR_IO, "cannot open input %s: %s", p, strerror(errno));
            fs->cur_fp = fingerprint(fs->fd);
        }
        {
            struct stat st;

            fs->is_regular = fstat(fs->fd, &st) == 0 && S_ISREG(st.st_mode);
        }
        fs->cur_name = (char *)p;
        fs->lineno = 0;
        fs->start = fs->end = 0;
        fs->eof = 0;
        return 1;
    }
    return 0;
}

static void close_cur(file_source *fs)
{
    if (fs->fd > STDIN_FILENO)
        close(fs->fd);
    fs->fd = -1;
}

/* Make room and read more bytes; returns bytes read, 0 at EOF, -1 on error. */
static ssize_t fill(file_source *fs, sl_error *err)
{
    ssize_t n;

    if (fs->start > 0) {
        memmove(fs->buf, fs->buf + fs->start, fs->end - fs->start);
        fs->end -= fs->start;
        fs->start = 0;
    }
    if (fs->end == fs->cap) {
        fs->cap *= 2;
        fs->buf = sl_xrealloc(fs->buf, fs->cap);
    }
    do
        n = read(fs->fd, fs->buf + fs->end, fs->cap - fs->end);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return sl_error_set(err, SL_ERR_IO, "read %s: %s", fs->cur_name, strerror(errno));
    fs->end += (size_t)n;
    return n;
}

static int fs_poll(void *self, sl_msg *msg, int timeout_ms, sl_error *err)
{
    file_source *fs = self;
    char *nl;
    size_t len;
    ssize_t n;
    int r;

    for (;;) {
        if (fs->fd < 0) {
            r = open_next(fs, err);
            if (r <= 0)
                return r;
        }
        nl = memchr(fs->buf + fs->start, '\n', fs->end - fs->start);
        if (nl == NULL && !fs->eof) {
            if (!fs->is_regular) {
                struct pollfd pfd = {.fd = fs->fd, .events = POLLIN};

                if (poll(&pfd, 1, timeout_ms) == 0)
                    return 2; /* let the engine flush what it holds */
            }
            n = fill(fs, err);
            if (n < 0)
                return -1;
            if (n == 0)
                fs->eof = 1;
            continue;
        }
        if (nl == NULL && fs->start == fs->end) {
            close_cur(fs);
            continue;
        }
        len = nl ? (size_t)(nl - (fs->buf + fs->start)) : fs->end - fs->start;
        memset(msg, 0, sizeof(*msg));
        msg->is_line = true;
        msg->line = fs->buf + fs->start;
        msg->len = len;
        msg->input = fs->cur_name;
        msg->input_fp = fs->cur_fp;
        msg->pos = ++fs->lineno;
        fs->start += len + (nl ? 1 : 0);
        return 1;
    }
}

static bool fs_finite(void *self)
{
    return true;
}

static void fs_destroy(void *self)
{
    file_source *fs = self;
    size_t i;

    if (fs == NULL)
        return;
    close_cur(fs);
    for (i = 0; i < fs->npaths; i++)
        free(fs->paths[i]);
    free(fs->paths);
    free(fs->buf);
    free(fs);
}

static const sl_input_ops file_source_ops = {
    .name = "files",
    .poll = fs_poll,
    .finite = fs_finite,
    .destroy = fs_destroy,
};

static void add_path(file_source *fs, const char *p)
{
    fs->paths = sl_xrealloc(fs->paths, (fs->npaths + 1) * sizeof(*fs->paths));
    fs->paths[fs->npaths++] = sl_xstrdup(p);
}

static int skip_dirent(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int sl_input_open_files(sl_input *src, const char *path, sl_error *err)
{
    file_source *fs = sl_xcalloc(1, sizeof(*fs));
    struct dirent **ents = NULL;
    char real[PATH_MAX], full[PATH_MAX * 2];
    struct stat st;
    int n = 0, i, rc = -1;

    fs->fd = -1;
    fs->cap = CHUNK;
    fs->buf = sl_xmalloc(fs->cap);
    if (strcmp(path, "-") == 0) {
        add_path(fs, "-");
        goto ok;
    }
    if (realpath(path, real) == NULL || stat(real, &st) != 0) {
        sl_error_set(err, SL_ERR_IO, "cannot open input %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        add_path(fs, real);
        goto ok;
    }
    n = scandir(real, &ents, skip_dirent, alphasort);
    if (n < 0) {
        sl_error_set(err, SL_ERR_IO, "cannot list input directory %s: %s", path, strerror(errno));
        goto out;
    }
    for (i = 0; i < n; i++) {
        snprintf(full, sizeof(full), "%s/%s", real, ents[i]->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            add_path(fs, full);
    }
    if (fs->npaths == 0) {
        sl_error_set(err, SL_ERR_IO, "input directory %s holds no files", path);
        goto out;
    }
ok:
    src->ops = &file_source_ops;
    src->self = fs;
    fs = NULL;
    rc = 0;
out:
    for (i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    fs_destroy(fs);
    return rc;
}
