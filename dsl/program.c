/*
 * program.c - compile entry points and lookups on a compiled program.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool read_file(const char *path, sl_buf *out, int *err)
{
    FILE *f = fopen(path, "rb");
    char chunk[8192];
    size_t n;
    bool ok = true;

    if (f == NULL) {
        *err = errno;
        return false;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_buf_append(out, chunk, n);
    if (ferror(f)) {
        *err = errno ? errno : EIO;
        ok = false;
    }
    fclose(f);
    return ok;
}

/* Parse every source registered in d from index `first`, check, compile. */
static sl_program *compile_sources(sl_diags *d, size_t first, size_t nfiles)
{
    ast_rules rules = {NULL, NULL};
    sl_sema sema;
    sl_program *p = NULL;
    const char **names = sl_xcalloc(nfiles + 1, sizeof *names);
    const char **texts = sl_xcalloc(nfiles + 1, sizeof *texts);
    size_t *lens = sl_xcalloc(nfiles + 1, sizeof *lens);
    size_t errors = d->nerrors;

    memset(&sema, 0, sizeof sema);
    for (size_t i = 0; i < nfiles; i++) {
        const sl_source *src = &d->src[first + i];

        names[i] = src->name;
        texts[i] = src->text;
        lens[i] = src->len;
        sl_ast_parse(d, src->name, src->text, src->len, &rules);
    }
    /* Checking a tree with holes in it mostly reports the holes again. */
    if (d->nerrors > errors)
        goto out;
    sl_check(&rules, d, &sema);
    if (d->nerrors > errors)
        goto out;
    p = sl_compile_sema(&sema, names, texts, lens, nfiles);
out:
    sl_sema_free(&sema);
    sl_ast_rules_free(&rules);
    free(names);
    free(texts);
    free(lens);
    return p;
}

sl_program *sl_compile_files(const char *const *paths, size_t npaths, sl_diags *diags)
{
    sl_diags local;
    sl_diags *d = diags;
    size_t first, errors;
    sl_program *p = NULL;

    if (d == NULL) {
        sl_diags_init(&local);
        d = &local;
    }
    first = d->nsrc;
    errors = d->nerrors;
    if (npaths == 0) {
        sl_loc none = {NULL, 0, 0, 0, 0};

        sl_diags_add(d, SL_SEV_ERROR, none, "no rule files given");
        goto out;
    }
    for (size_t i = 0; i < npaths; i++) {
        sl_buf b = SL_BUF_INIT;
        int err = 0;

        if (!read_file(paths[i], &b, &err)) {
            sl_loc loc = {NULL, 0, 0, 0, 0};

            loc.file = sl_diags_add_source(d, paths[i], "", 0);
            sl_diags_add(d, SL_SEV_ERROR, loc, "cannot read rule file: %s", strerror(err));
        } else {
            sl_diags_add_source(d, paths[i], b.data ? b.data : "", b.len);
        }
        sl_buf_free(&b);
    }
    if (d->nerrors > errors)
        goto out;
    p = compile_sources(d, first, npaths);
out:
    if (d == &local)
        sl_diags_free(&local);
    return p;
}

sl_program *sl_compile_text(const char *name, const char *text, size_t len, sl_diags *diags)
{
    sl_diags local;
    sl_diags *d = diags;
    size_t first;
    sl_program *p;

    if (d == NULL) {
        sl_diags_init(&local);
        d = &local;
    }
    first = d->nsrc;
    sl_diags_add_source(d, name ? name : "<rules>", text ? text : "", text ? len : 0);
    p = compile_sources(d, first, 1);
    if (d == &local)
        sl_diags_free(&local);
    return p;
}

sl_program *sl_program_ref(sl_program *p)
{
    if (p)
        atomic_fetch_add_explicit(&((sl_program_impl *)p)->refs, 1, memory_order_relaxed);
    return p;
}

void sl_program_unref(sl_program *p)
{
    sl_program_impl *impl = (sl_program_impl *)p;

    if (p == NULL)
        return;
    /* acq_rel: the last owner must see every other thread's reads finished. */
    if (atomic_fetch_sub_explicit(&impl->refs, 1, memory_order_acq_rel) != 1)
        return;
    sl_arena_free(&impl->arena);
    free(impl);
}

const sl_table *sl_program_find_table(const sl_program *p, const char *schema, size_t schema_len,
                                      const char *table, size_t table_len)
{
    const sl_program_impl *impl = (const sl_program_impl *)p;

    if (p == NULL || table == NULL)
        return NULL;
    if (schema == NULL)
        schema_len = 0;
    for (size_t i = 0; i < p->ntables; i++)
        if (sl_table_match(p->tables[i].pattern, impl->split[i], schema ? schema : "", schema_len,
                           table, table_len))
            return &p->tables[i];
    return NULL;
}

static bool eq(const char *a, const char *b, size_t blen)
{
    return strlen(a) == blen && memcmp(a, b, blen) == 0;
}

int sl_program_site(const sl_program *p, const char *name, size_t len)
{
    if (p == NULL || name == NULL)
        return -1;
    for (size_t i = 0; i < p->nsites; i++)
        if (eq(p->sites[i].name, name, len))
            return (int)i;
    for (size_t i = 0; i < p->nsites; i++)
        if (eq(p->sites[i].source_name, name, len))
            return (int)i;
    return -1;
}

int sl_program_site_by_source(const sl_program *p, const char *source_name, size_t len)
{
    if (p == NULL || source_name == NULL)
        return -1;
    for (size_t i = 0; i < p->nsites; i++)
        if (eq(p->sites[i].source_name, source_name, len))
            return (int)i;
    return -1;
}

void sl_program_topic(const sl_program *p, const sl_table *t, const char *dest, const char *origin,
                      sl_str schema, sl_str table, sl_buf *out)
{
    const char *tpl = t && t->topic ? t->topic : p->topic_template;

    for (const char *c = tpl; *c; c++) {
        const char *close;
        size_t n;

        if (*c != '{' || (close = strchr(c, '}')) == NULL) {
            sl_buf_putc(out, *c);
            continue;
        }
        n = (size_t)(close - c - 1);
        if (n == 4 && memcmp(c + 1, "dest", 4) == 0)
            sl_buf_puts(out, dest ? dest : "");
        else if (n == 6 && memcmp(c + 1, "origin", 6) == 0)
            sl_buf_puts(out, origin ? origin : "");
        /* The engine passes source.schema, or source.db where there is no
         * schema (MySQL), so {schema} and {db} expand to the same value. */
        else if ((n == 6 && memcmp(c + 1, "schema", 6) == 0) ||
                 (n == 2 && memcmp(c + 1, "db", 2) == 0))
            sl_buf_append(out, schema.p ? schema.p : "", schema.p ? schema.len : 0);
        else if (n == 5 && memcmp(c + 1, "table", 5) == 0)
            sl_buf_append(out, table.p ? table.p : "", table.p ? table.len : 0);
        else {
            sl_buf_append(out, c, n + 2); /* unknown: the checker refuses these */
        }
        c = close;
    }
}
