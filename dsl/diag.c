/*
 * diag.c - collect compiler diagnostics and format them with a caret.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_diags_init(sl_diags *d)
{
    memset(d, 0, sizeof *d);
}

void sl_diags_free(sl_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].msg);
    free(d->v);
    for (size_t i = 0; i < d->nsrc; i++) {
        free(d->src[i].name);
        free(d->src[i].text);
    }
    free(d->src);
    memset(d, 0, sizeof *d);
}

const char *sl_diags_add_source(sl_diags *d, const char *name, const char *text, size_t len)
{
    sl_source *s;

    d->src = sl_xrealloc(d->src, (d->nsrc + 1) * sizeof *d->src);
    s = &d->src[d->nsrc++];
    s->name = sl_xstrdup(name);
    s->text = sl_xmalloc(len + 1);
    if (len)
        memcpy(s->text, text, len);
    s->text[len] = '\0';
    s->len = len;
    return s->name;
}

void sl_diags_add(sl_diags *d, sl_severity sev, sl_loc loc, const char *fmt, ...)
{
    va_list ap;
    sl_buf b = SL_BUF_INIT;
    char tmp[512];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof tmp) {
        /* Long message (a dependency cycle through many tables): format again. */
        sl_buf_reserve(&b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b.data, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b.len = (size_t)n;
    } else {
        sl_buf_puts(&b, n > 0 ? tmp : "");
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->v = sl_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n].sev = sev;
    d->v[d->n].loc = loc;
    d->v[d->n].msg = sl_buf_steal(&b, NULL);
    d->n++;
    if (sev == SL_SEV_ERROR)
        d->nerrors++;
}

static const sl_source *find_source(const sl_diags *d, const char *file)
{
    if (file == NULL)
        return NULL;
    for (size_t i = 0; i < d->nsrc; i++)
        if (d->src[i].name == file)
            return &d->src[i];
    for (size_t i = 0; i < d->nsrc; i++)
        if (strcmp(d->src[i].name, file) == 0)
            return &d->src[i];
    return NULL;
}

/* The text of 1-based line `line`, without its end of line; false if absent. */
static bool source_line(const sl_source *s, int line, const char **p, size_t *len)
{
    const char *t = s->text, *end = s->text + s->len;
    int l = 1;

    while (l < line) {
        const char *nl = memchr(t, '\n', (size_t)(end - t));

        if (nl == NULL)
            return false;
        t = nl + 1;
        l++;
    }
    if (t == end && line > 1)
        return false;
    *p = t;
    *len = 0;
    while (t + *len < end && t[*len] != '\n')
        (*len)++;
    if (*len > 0 && t[*len - 1] == '\r')
        (*len)--;
    return true;
}

static const char *sev_name(sl_severity s)
{
    switch (s) {
    case SL_SEV_ERROR:
        return "error";
    case SL_SEV_WARNING:
        return "warning";
    case SL_SEV_NOTE:
        return "note";
    }
    return "error";
}

static void format_one(const sl_diags *d, const sl_diag *g, sl_buf *out)
{
    const sl_source *src = find_source(d, g->loc.file);
    const char *lp;
    size_t ll, col, width;

    if (g->loc.file && g->loc.line > 0)
        sl_buf_printf(out, "%s:%d:%d: ", g->loc.file, g->loc.line, g->loc.col);
    else if (g->loc.file)
        sl_buf_printf(out, "%s: ", g->loc.file);
    sl_buf_printf(out, "%s: %s\n", sev_name(g->sev), g->msg);
    if (src == NULL || g->loc.line <= 0 || !source_line(src, g->loc.line, &lp, &ll))
        return;

    col = g->loc.col > 0 ? (size_t)g->loc.col - 1 : 0;
    if (col > ll)
        col = ll;
    if (g->loc.end_line == g->loc.line && g->loc.end_col > g->loc.col)
        width = (size_t)(g->loc.end_col - g->loc.col);
    else if (g->loc.end_line > g->loc.line)
        width = ll > col ? ll - col : 1;
    else
        width = 1;
    if (col + width > ll && ll > col)
        width = ll - col;
    if (width == 0)
        width = 1;

    sl_buf_printf(out, "%5d | ", g->loc.line);
    sl_buf_append(out, lp, ll);
    sl_buf_puts(out, "\n      | ");
    /* Keep the source's tabs so the caret lines up in any tab width. */
    for (size_t i = 0; i < col; i++)
        sl_buf_putc(out, lp[i] == '\t' ? '\t' : ' ');
    sl_buf_putc(out, '^');
    for (size_t i = 1; i < width; i++)
        sl_buf_putc(out, '~');
    sl_buf_putc(out, '\n');
}

void sl_diags_format(const sl_diags *d, sl_buf *out)
{
    for (size_t i = 0; i < d->n; i++)
        format_one(d, &d->v[i], out);
}
