/*
 * harness.c - what the engine tests that run the `sluice` binary share:
 * a scratch directory, shell commands, and JSON-lines outputs read back
 * and looked into by dotted path (harness.h).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"

char dir[PATH_MAX];
const char *bin;

int harness_setup(const char *name)
{
    char tmpl[PATH_MAX];

    bin = getenv("SLUICE_BINARY");
    if (bin == NULL)
        bin = "build/sluice";
    snprintf(tmpl, sizeof(tmpl), "/tmp/sluice-%s-XXXXXX", name);
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(dir, sizeof(dir), "%s", tmpl);
    return 0;
}

void harness_teardown(void)
{
    if (getenv("SLUICE_KEEP_TMP") == NULL)
        sh("rm -rf '%s'", dir);
}

char *path(const char *name)
{
    static char bufs[8][PATH_MAX + 256];
    static int next;
    char *p = bufs[next++ % 8];

    snprintf(p, PATH_MAX + 256, "%s/%s", dir, name);
    return p;
}

void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "r");
    sl_buf b = SL_BUF_INIT;
    char chunk[65536];
    size_t n;

    if (f == NULL) {
        if (len)
            *len = 0;
        return sl_xstrdup("");
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sl_buf_append(&b, chunk, n);
    fclose(f);
    if (b.data == NULL) {
        /* an empty file (an output not written yet): no bytes */
        if (len)
            *len = 0;
        return sl_xstrdup("");
    }
    return sl_buf_steal(&b, len);
}

jfile load(const char *p)
{
    jfile f = {NULL, 0};
    size_t len;
    char *all = slurp(p, &len), *s = all, *nl;
    sl_error err;

    while (s < all + len) {
        nl = memchr(s, '\n', (size_t)(all + len - s));
        if (nl == NULL)
            nl = all + len;
        f.v = sl_xrealloc(f.v, (f.n + 1) * sizeof(*f.v));
        f.v[f.n].text = sl_xstrndup(s, (size_t)(nl - s));
        sl_json_init(&f.v[f.n].j);
        if (sl_json_parse(&f.v[f.n].j, f.v[f.n].text, strlen(f.v[f.n].text), &err) != 0)
            fail_msg("%s line %zu is not JSON: %s\n%s", p, f.n + 1, err.msg, f.v[f.n].text);
        f.n++;
        s = nl + 1;
    }
    free(all);
    return f;
}

void unload(jfile *f)
{
    size_t i;

    for (i = 0; i < f->n; i++) {
        sl_json_free(&f->v[i].j);
        free(f->v[i].text);
    }
    free(f->v);
    f->v = NULL;
    f->n = 0;
}

/* Token at a dotted path ("value.after.a"), or -1. "\\." is a dot inside a
 * name ("headers.sluice\\.version"). */
int jat(const sl_json *j, const char *dotted)
{
    char part[128];
    const char *s = dotted;
    size_t n;
    int t = 0;

    while (t >= 0 && *s) {
        n = 0;
        while (*s && *s != '.' && n + 1 < sizeof(part)) {
            if (s[0] == '\\' && s[1] == '.')
                s++;
            part[n++] = *s++;
        }
        part[n] = '\0';
        t = sl_json_get(j, t, part, n);
        if (*s == '.')
            s++;
    }
    return t;
}

/* Raw JSON text at a path, "<absent>" when missing. */
const char *jraw(const jline *l, const char *dotted)
{
    static char buf[8][1024];
    static int next;
    char *b = buf[next++ % 8];
    int t = jat(&l->j, dotted);
    sl_str r;

    if (t < 0)
        return "<absent>";
    r = sl_json_raw(&l->j, t);
    snprintf(b, 1024, "%.*s", (int)r.len, r.p);
    return b;
}

long stat_of(const char *stats_path, const char *name)
{
    size_t len;
    char *s = slurp(stats_path, &len);
    sl_json j;
    sl_error err;
    long v = -1;
    int t;

    sl_json_init(&j);
    if (sl_json_parse(&j, s, len, &err) == 0 && (t = sl_json_get(&j, 0, name, strlen(name))) >= 0)
        v = strtol(j.src + j.tok[t].start, NULL, 10);
    sl_json_free(&j);
    free(s);
    return v;
}
