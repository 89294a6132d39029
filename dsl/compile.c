/*
 * compile.c - turn a checked rule set into an immutable sl_program.
 *
 * Everything the program points to lives in one arena owned by the program,
 * so sl_program_unref frees it with a walk over a few blocks. Nothing here
 * reports errors: the checker has already refused whatever could fail.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- arena ------------------------------------------------------------------- */

struct sl_arena_block {
    sl_arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *sl_arena_alloc(sl_arena *a, size_t n)
{
    sl_arena_block *b = a->head;
    size_t align = sizeof(max_align_t);
    void *p;

    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > 16384 ? n : 16384;

        b = sl_xmalloc(sizeof *b + cap);
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *sl_arena_strdup(sl_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *p = sl_arena_alloc(a, n + 1);

    memcpy(p, s, n + 1);
    return p;
}

void sl_arena_free(sl_arena *a)
{
    sl_arena_block *b = a->head, *next;

    for (; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

/* ---- compiler state ------------------------------------------------------------- */

typedef struct compiler {
    const sl_sema *s;
    sl_program_impl *impl;
    sl_arena *a;
    const char *const *names; /* the diagnostics' file names, mapped to ... */
    const char *const *files; /* ... the program's copies */
    size_t nfiles;
} compiler;

static sl_loc map_loc(const compiler *c, sl_loc loc)
{
    for (size_t i = 0; i < c->nfiles; i++)
        if (loc.file == c->names[i]) {
            loc.file = c->files[i];
            return loc;
        }
    loc.file = NULL;
    return loc;
}

static const char *const *strv(compiler *c, const ast_ids *l, size_t *n)
{
    const char **v;

    *n = l ? l->n : 0;
    if (*n == 0)
        return NULL;
    v = sl_arena_alloc(c->a, *n * sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = sl_arena_strdup(c->a, l->v[i].s);
    return v;
}

static const sl_expr *cexpr(compiler *c, const ast_expr *e)
{
    sl_expr *x;

    if (e == NULL)
        return NULL;
    x = sl_arena_alloc(c->a, sizeof *x);
    x->kind = (sl_xkind)e->kind;
    x->type = e->type;
    x->op = e->op;
    x->negated = e->negated;
    x->loc = map_loc(c, e->loc);
    x->lit = e->lit;
    if (e->lit.type == SL_V_STRING && e->kind == SL_X_LITERAL) {
        char *p = sl_arena_alloc(c->a, e->lit.u.s.len + 1);

        memcpy(p, e->lit.u.s.p, e->lit.u.s.len);
        x->lit.u.s.p = p;
    }
    x->sec = e->sec;
    if (e->name && e->kind == SL_X_FIELD) {
        x->name = sl_arena_strdup(c->a, e->name);
        x->name_len = strlen(e->name);
    }
    x->a = cexpr(c, e->a);
    x->b = cexpr(c, e->b);
    if (e->args && e->args->n) {
        const sl_expr **args = sl_arena_alloc(c->a, e->args->n * sizeof *args);

        for (size_t i = 0; i < e->args->n; i++)
            args[i] = cexpr(c, e->args->v[i]);
        x->args = args;
        x->nargs = e->args->n;
    }
    return x;
}

/* ---- tables --------------------------------------------------------------------- */

static bool strv_equal(const char *const *a, size_t na, const char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* The selections made so far, so identical ones are shared. */
typedef struct selpool {
    sl_colsel **v;
    size_t n;
} selpool;

static const sl_colsel *intern_sel(compiler *c, selpool *pool, const sl_sel_tmp *t)
{
    sl_colsel *sel;
    const char **cols, **drop;

    for (size_t i = 0; i < pool->n; i++) {
        const sl_colsel *o = pool->v[i];

        if (o->all == t->all && strv_equal(o->cols, o->ncols, t->cols, t->ncols) &&
            strv_equal(o->drop, o->ndrop, t->drop, t->ndrop))
            return o;
    }
    sel = sl_arena_alloc(c->a, sizeof *sel);
    sel->all = t->all;
    cols = t->ncols ? sl_arena_alloc(c->a, t->ncols * sizeof *cols) : NULL;
    for (size_t i = 0; i < t->ncols; i++)
        cols[i] = sl_arena_strdup(c->a, t->cols[i]);
    drop = t->ndrop ? sl_arena_alloc(c->a, t->ndrop * sizeof *drop) : NULL;
    for (size_t i = 0; i < t->ndrop; i++)
        drop[i] = sl_arena_strdup(c->a, t->drop[i]);
    sel->cols = cols;
    sel->ncols = t->ncols;
    sel->drop = drop;
    sel->ndrop = t->ndrop;
    pool->v = sl_xrealloc(pool->v, (pool->n + 1) * sizeof *pool->v);
    pool->v[pool->n++] = sel;
    return sel;
}

static void compile_conflict(compiler *c, const sl_sema_table *st, sl_conflict *cf)
{
    const ast_tstmt *k = st->conflict;

    cf->kind = SL_CONFLICT_LATEST;
    cf->prefer_site = -1;
    cf->on_delete = st->ondelete ? (sl_delete_policy)st->ondelete->policy : SL_DELETE_LATEST;
    cf->detect_before = st->detect != NULL && st->detect->policy != 0;
    if (k == NULL) {
        cf->loc = map_loc(c, st->pat->loc);
        return;
    }
    cf->kind = (sl_conflict_kind)k->policy;
    cf->loc = map_loc(c, k->loc);
    if (k->policy == SL_CONFLICT_PREFER)
        cf->prefer_site = k->site_index;
    if (k->policy == SL_CONFLICT_LUA)
        cf->lua_fn = sl_arena_strdup(c->a, k->target.s);
    if (k->nmerge) {
        sl_merge_col *m = sl_arena_alloc(c->a, k->nmerge * sizeof *m);

        for (size_t i = 0; i < k->nmerge; i++) {
            m[i].column = sl_arena_strdup(c->a, k->merge[i].col.s);
            m[i].kind = (sl_merge_kind)k->merge[i].kind;
            m[i].site = k->merge[i].site_index;
            m[i].loc = map_loc(c, k->merge[i].loc);
        }
        cf->cols = m;
        cf->ncols = k->nmerge;
    }
}

static void compile_table(compiler *c, const sl_sema_table *st, sl_table *t)
{
    const sl_sema *s = c->s;
    const sl_colsel **sel;
    sl_route *routes;
    sl_dep *deps;
    size_t nroutes = 0, ndeps = 0;
    sl_expr *where = NULL;
    selpool pool = {NULL, 0};

    t->pattern = sl_arena_strdup(c->a, st->pat->s);
    t->is_glob = st->is_glob;
    t->ignored = st->ignored;
    t->specificity = st->spec;
    t->loc = map_loc(c, st->pat->loc);
    t->topic = c->impl->pub.topic_template;
    t->conflict.kind = SL_CONFLICT_LATEST;
    t->conflict.prefer_site = -1;
    if (st->ignored)
        return;

    for (const ast_tstmt *k = st->st->body; k; k = k->next) {
        if (k->kind == AST_T_ROUTE)
            nroutes++;
        if (k->kind == AST_T_DEPENDS)
            ndeps++;
    }
    routes = nroutes ? sl_arena_alloc(c->a, nroutes * sizeof *routes) : NULL;
    deps = ndeps ? sl_arena_alloc(c->a, ndeps * sizeof *deps) : NULL;
    nroutes = ndeps = 0;
    for (const ast_tstmt *k = st->st->body; k; k = k->next) {
        switch (k->kind) {
        case AST_T_WHERE:
            /* Several `where`s are ANDed, in the order written. */
            if (where == NULL) {
                where = (sl_expr *)cexpr(c, k->expr);
            } else {
                sl_expr *and = sl_arena_alloc(c->a, sizeof *and);

                and->kind = SL_X_AND;
                and->type = SL_T_BOOL;
                and->loc = where->loc;
                and->a = where;
                and->b = cexpr(c, k->expr);
                where = and;
            }
            break;
        case AST_T_ROUTE: {
            sl_route *r = &routes[nroutes++];

            r->from = *k->from_set;
            if (k->to_set)
                r->to = *k->to_set;
            r->to_expr = cexpr(c, k->to_expr);
            r->where = cexpr(c, k->expr);
            r->loc = map_loc(c, k->loc);
            break;
        }
        case AST_T_DEPENDS: {
            sl_dep *d = &deps[ndeps++];
            size_t n;

            d->parent = sl_arena_strdup(c->a, k->target.s);
            d->parent_table = s->tables[k->parent].final_index;
            d->child_cols = strv(c, k->cols, &d->ncols);
            d->parent_cols = strv(c, k->pcols, &n);
            d->timeout_ms = k->ms;
            d->loc = map_loc(c, k->loc);
            break;
        }
        default:
            break;
        }
    }
    t->where = where;
    t->routes = routes;
    t->nroutes = nroutes;
    t->deps = deps;
    t->ndeps = ndeps;
    if (st->key)
        t->key_cols = strv(c, st->key->cols, &t->nkey);
    if (st->topic)
        t->topic = sl_arena_strdup(c->a, st->topic->target.s);
    compile_conflict(c, st, &t->conflict);

    sel = sl_arena_alloc(c->a, (s->nsites ? s->nsites : 1) * sizeof *sel);
    for (size_t i = 0; i < s->nsites; i++) {
        sl_sel_tmp tmp;

        sl_sema_selection(s, st, (int)i, &tmp);
        sel[i] = intern_sel(c, &pool, &tmp);
        sl_sel_tmp_free(&tmp);
    }
    t->sel = sel;
    free(pool.v);
}

/* Exact names first, by name; then globs, most specific first, ties in
 * declaration order (the sort is stable on the declaration index). */
static int table_order(const void *pa, const void *pb, const sl_sema *s)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    const sl_sema_table *ta = &s->tables[a], *tb = &s->tables[b];

    if (ta->is_glob != tb->is_glob)
        return ta->is_glob ? 1 : -1;
    if (!ta->is_glob) {
        int c = strcmp(ta->pat->s, tb->pat->s);

        if (c)
            return c;
    } else if (ta->spec != tb->spec) {
        return ta->spec > tb->spec ? -1 : 1;
    }
    return a < b ? -1 : a > b;
}

static void sort_tables(const sl_sema *s, int *order)
{
    /* Insertion sort: rule sets have tens of tables, and this keeps it stable
     * without a comparison context that qsort lacks. */
    for (size_t i = 0; i < s->ntables; i++)
        order[i] = (int)i;
    for (size_t i = 1; i < s->ntables; i++) {
        int v = order[i];
        size_t j = i;

        while (j > 0 && table_order(&order[j - 1], &v, s) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

sl_program *sl_compile_sema(sl_sema *s, const char *const *names, const char *const *texts,
                            const size_t *lens, size_t nfiles)
{
    sl_program_impl *impl = sl_xcalloc(1, sizeof *impl);
    sl_program *p = &impl->pub;
    compiler c;
    const char **files;
    sl_site *sites;
    sl_table *tables;
    int *order, *split;
    uint64_t h = SL_HASH_SEED;

    atomic_init(&impl->refs, 1);
    memset(&c, 0, sizeof c);
    c.s = s;
    c.impl = impl;
    c.a = &impl->arena;
    c.names = names;
    c.nfiles = nfiles;

    files = sl_arena_alloc(c.a, (nfiles ? nfiles : 1) * sizeof *files);
    for (size_t i = 0; i < nfiles; i++) {
        files[i] = sl_arena_strdup(c.a, names[i]);
        h = sl_hash64(texts[i], lens[i], h);
    }
    c.files = files;
    p->files = files;
    p->nfiles = nfiles;
    snprintf(p->version, sizeof p->version, "%016llx", (unsigned long long)h);

    sites = sl_arena_alloc(c.a, (s->nsites ? s->nsites : 1) * sizeof *sites);
    for (size_t i = 0; i < s->nsites; i++) {
        sites[i] = s->sites[i];
        sites[i].name = sl_arena_strdup(c.a, s->sites[i].name);
        sites[i].source_name = sl_arena_strdup(c.a, s->sites[i].source_name);
        sites[i].loc = map_loc(&c, s->sites[i].loc);
    }
    p->sites = sites;
    p->nsites = s->nsites;
    p->hub = s->hub;

    if (s->ngroups) {
        const char **gn = sl_arena_alloc(c.a, s->ngroups * sizeof *gn);
        sl_siteset *gs = sl_arena_alloc(c.a, s->ngroups * sizeof *gs);

        for (size_t i = 0; i < s->ngroups; i++) {
            gn[i] = sl_arena_strdup(c.a, s->groups[i].name->s);
            gs[i] = s->groups[i].set;
        }
        impl->group_names = gn;
        impl->group_sets = gs;
        impl->ngroups = s->ngroups;
    }

    p->topic_template =
        sl_arena_strdup(c.a, s->topic ? s->topic->s : "sluice.{dest}.{schema}.{table}");
    p->dead_letter_topic = sl_arena_strdup(c.a, s->dead ? s->dead->s : "sluice.dead");
    p->hold_timeout_ms = s->hold_ms;
    if (s->nlua) {
        const char **lua = sl_arena_alloc(c.a, s->nlua * sizeof *lua);

        for (size_t i = 0; i < s->nlua; i++)
            lua[i] = sl_arena_strdup(c.a, s->lua[i]);
        p->lua_files = lua;
        p->nlua = s->nlua;
    }

    order = sl_xcalloc(s->ntables + 1, sizeof *order);
    sort_tables(s, order);
    for (size_t i = 0; i < s->ntables; i++)
        s->tables[order[i]].final_index /* for dependencies */ = (int)i;
    tables = sl_arena_alloc(c.a, (s->ntables ? s->ntables : 1) * sizeof *tables);
    split = sl_arena_alloc(c.a, (s->ntables ? s->ntables : 1) * sizeof *split);
    for (size_t i = 0; i < s->ntables; i++) {
        compile_table(&c, &s->tables[order[i]], &tables[i]);
        split[i] = s->tables[order[i]].pat->split;
    }
    free(order);
    p->tables = tables;
    p->ntables = s->ntables;
    impl->split = split;
    return p;
}
