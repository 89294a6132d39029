/*
 * ast.c - builders and destructors for the rule syntax tree.
 *
 * Builders take ownership of the pointers they are given; the free functions
 * accept NULL so error paths in the grammar can call them unconditionally.
 */
#include "ast.h"

#include <stdlib.h>
#include <string.h>

ast_id sl_ast_id(char *s, sl_loc loc)
{
    ast_id id;

    memset(&id, 0, sizeof id);
    id.s = s;
    id.loc = loc;
    id.split = -1;
    return id;
}

ast_id sl_ast_id_quoted(char *s, sl_loc loc)
{
    ast_id id = sl_ast_id(s, loc);

    id.quoted = true;
    return id;
}

ast_id sl_ast_id_none(void)
{
    sl_loc none = {NULL, 0, 0, 0, 0};

    return sl_ast_id(NULL, none);
}

ast_id sl_ast_id_join(sl_diags *d, ast_id a, ast_id b)
{
    size_t la = strlen(a.s), lb = strlen(b.s);
    char *s;

    /* Globs are written without spaces: `store_*`, not `store_ *`. */
    if (a.loc.end_line != b.loc.line || a.loc.end_col != b.loc.col) {
        sl_loc gap = a.loc;

        gap.line = a.loc.end_line;
        gap.col = a.loc.end_col;
        gap.end_line = b.loc.line;
        gap.end_col = b.loc.col;
        if (gap.end_line != gap.line)
            gap.end_col = gap.col + 1;
        sl_diags_add(d, SL_SEV_ERROR, gap, "unexpected space inside the name '%s %s'", a.s, b.s);
    }
    s = sl_xmalloc(la + lb + 1);
    memcpy(s, a.s, la);
    memcpy(s + la, b.s, lb + 1);
    free(a.s);
    free(b.s);
    a.s = s;
    a.loc.end_line = b.loc.end_line;
    a.loc.end_col = b.loc.end_col;
    a.quoted = a.quoted || b.quoted;
    return a;
}

ast_id sl_ast_id_dotted(ast_id a, ast_id b)
{
    size_t la = strlen(a.s), lb = strlen(b.s);
    char *s = sl_xmalloc(la + lb + 2);

    memcpy(s, a.s, la);
    s[la] = '.';
    memcpy(s + la + 1, b.s, lb + 1);
    free(a.s);
    free(b.s);
    a.s = s;
    a.split = (int)la;
    a.loc.end_line = b.loc.end_line;
    a.loc.end_col = b.loc.end_col;
    return a;
}

ast_ids *sl_ast_ids_new(ast_id first)
{
    ast_ids *l = sl_xcalloc(1, sizeof *l);

    return sl_ast_ids_add(l, first);
}

ast_ids *sl_ast_ids_add(ast_ids *l, ast_id id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->v = sl_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = id;
    return l;
}

void sl_ast_ids_free(ast_ids *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].s);
    free(l->v);
    free(l);
}

/* ---- expressions ----------------------------------------------------------- */

static ast_expr *expr_new(int kind, sl_loc loc)
{
    ast_expr *e = sl_xcalloc(1, sizeof *e);

    e->kind = kind;
    e->loc = loc;
    e->type = SL_T_ANY;
    return e;
}

ast_expr *sl_ast_lit_int(int64_t v, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_LITERAL, loc);

    e->lit.type = SL_V_INT;
    e->lit.u.i = v;
    return e;
}

ast_expr *sl_ast_lit_num(double v, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_LITERAL, loc);

    e->lit.type = SL_V_DOUBLE;
    e->lit.u.d = v;
    return e;
}

ast_expr *sl_ast_lit_str(char *s, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_LITERAL, loc);

    e->str = s;
    e->lit.type = SL_V_STRING;
    e->lit.u.s.p = s;
    e->lit.u.s.len = strlen(s);
    return e;
}

ast_expr *sl_ast_lit_bool(bool v, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_LITERAL, loc);

    e->lit.type = SL_V_BOOL;
    e->lit.u.b = v;
    return e;
}

ast_expr *sl_ast_lit_null(sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_LITERAL, loc);

    e->lit.type = SL_V_NULL;
    return e;
}

ast_expr *sl_ast_field(sl_section sec, char *name, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_FIELD, loc);

    e->sec = sec;
    e->name = name;
    return e;
}

ast_expr *sl_ast_leaf(int kind, sl_loc loc)
{
    return expr_new(kind, loc);
}

ast_expr *sl_ast_name(char *name, sl_loc loc)
{
    ast_expr *e = expr_new(AST_X_NAME, loc);

    e->name = name;
    return e;
}

static void deepen(ast_expr *e, const ast_expr *child)
{
    if (child && child->depth + 1 > e->depth)
        e->depth = child->depth + 1;
}

ast_expr *sl_ast_unary(int kind, ast_expr *a, sl_loc loc)
{
    ast_expr *e = expr_new(kind, loc);

    e->a = a;
    deepen(e, a);
    return e;
}

ast_expr *sl_ast_binary(int kind, int op, ast_expr *a, ast_expr *b, sl_loc loc)
{
    ast_expr *e = expr_new(kind, loc);

    e->op = op;
    e->a = a;
    e->b = b;
    deepen(e, a);
    deepen(e, b);
    return e;
}

ast_expr *sl_ast_like(ast_expr *a, ast_expr *b, bool negated, sl_loc loc)
{
    ast_expr *e = sl_ast_binary(SL_X_LIKE, 0, a, b, loc);

    e->negated = negated;
    return e;
}

ast_expr *sl_ast_in(ast_expr *a, ast_exprs *list, bool negated, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_IN, loc);

    e->a = a;
    e->args = list;
    e->negated = negated;
    deepen(e, a);
    for (size_t i = 0; i < list->n; i++)
        deepen(e, list->v[i]);
    return e;
}

ast_expr *sl_ast_isnull(ast_expr *a, bool negated, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_ISNULL, loc);

    e->a = a;
    e->negated = negated;
    deepen(e, a);
    return e;
}

ast_expr *sl_ast_call(char *name, ast_exprs *args, sl_loc loc)
{
    ast_expr *e = expr_new(SL_X_CALL, loc);

    e->name = name;
    e->args = args ? args : sl_xcalloc(1, sizeof *args);
    for (size_t i = 0; i < e->args->n; i++)
        deepen(e, e->args->v[i]);
    return e;
}

ast_exprs *sl_ast_exprs_new(ast_expr *first)
{
    ast_exprs *l = sl_xcalloc(1, sizeof *l);

    return sl_ast_exprs_add(l, first);
}

ast_exprs *sl_ast_exprs_add(ast_exprs *l, ast_expr *e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->v = sl_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = e;
    return l;
}

void sl_ast_exprs_free(ast_exprs *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        sl_ast_expr_free(l->v[i]);
    free(l->v);
    free(l);
}

void sl_ast_expr_free(ast_expr *e)
{
    /* Left operands are followed in a loop: `a + a + a ...` builds a tree
     * as deep as the input is long, and recursion could exhaust the stack.
     * Right-hand nesting is bounded by the parser's stack. */
    while (e != NULL) {
        ast_expr *next = e->a;

        sl_ast_expr_free(e->b);
        sl_ast_exprs_free(e->args);
        free(e->str);
        free(e->name);
        free(e);
        e = next;
    }
}

/* ---- table statements ---------------------------------------------------------- */

ast_tstmt *sl_ast_tstmt(ast_tkind kind, sl_loc loc)
{
    ast_tstmt *t = sl_xcalloc(1, sizeof *t);

    t->kind = kind;
    t->loc = loc;
    t->target.split = -1;
    t->parent = -1;
    t->site_index = -1;
    return t;
}

ast_tstmt *sl_ast_t_cols(ast_tkind kind, ast_ids *cols, ast_ids *to, sl_loc loc)
{
    ast_tstmt *t = sl_ast_tstmt(kind, loc);

    t->cols = cols;
    t->to = to;
    return t;
}

ast_tstmt *sl_ast_t_where(ast_expr *e, sl_loc loc)
{
    ast_tstmt *t = sl_ast_tstmt(AST_T_WHERE, loc);

    t->expr = e;
    return t;
}

ast_tstmt *sl_ast_t_route(ast_ids *from, ast_ids *to, ast_expr *to_expr, ast_expr *where,
                          sl_loc loc)
{
    ast_tstmt *t = sl_ast_tstmt(AST_T_ROUTE, loc);

    t->from = from;
    t->to = to;
    t->to_expr = to_expr;
    t->expr = where;
    return t;
}

ast_tstmt *sl_ast_t_deppair(ast_tstmt *t, ast_id child, ast_id parent)
{
    if (t == NULL) {
        t = sl_ast_tstmt(AST_T_DEPENDS, child.loc);
        t->cols = sl_xcalloc(1, sizeof *t->cols);
        t->pcols = sl_xcalloc(1, sizeof *t->pcols);
    }
    sl_ast_ids_add(t->cols, child);
    sl_ast_ids_add(t->pcols, parent);
    return t;
}

ast_tstmt *sl_ast_t_depends(ast_tstmt *pairs, ast_id parent, int64_t ms, sl_loc loc)
{
    pairs->target = parent;
    pairs->ms = ms;
    pairs->loc = loc;
    return pairs;
}

ast_tstmt *sl_ast_t_conflict(int kind, ast_id target, sl_loc loc)
{
    ast_tstmt *t = sl_ast_tstmt(AST_T_CONFLICT, loc);

    t->policy = kind;
    t->target = target;
    return t;
}

ast_merge *sl_ast_merge(ast_id col, int kind, ast_id site, sl_loc loc)
{
    ast_merge *m = sl_xcalloc(1, sizeof *m);

    m->col = col;
    m->kind = kind;
    m->site = site;
    m->site_index = -1;
    m->loc = loc;
    return m;
}

void sl_ast_merge_free(ast_merge *m)
{
    if (m == NULL)
        return;
    free(m->col.s);
    free(m->site.s);
    free(m);
}

ast_tstmt *sl_ast_t_merge_add(ast_tstmt *t, ast_merge *m)
{
    if (t->nmerge == t->mcap) {
        t->mcap = t->mcap ? t->mcap * 2 : 4;
        t->merge = sl_xrealloc(t->merge, t->mcap * sizeof *t->merge);
    }
    /* The item is copied by value; its strings move with it. */
    t->merge[t->nmerge++] = *m;
    free(m);
    return t;
}

ast_tstmt *sl_ast_t_ondelete(int policy, sl_loc loc)
{
    ast_tstmt *t = sl_ast_tstmt(AST_T_ONDELETE, loc);

    t->policy = policy;
    return t;
}

ast_tstmt *sl_ast_t_detect(bool by_before, sl_loc loc)
{
    ast_tstmt *t = sl_ast_tstmt(AST_T_DETECT, loc);

    t->policy = by_before;
    return t;
}

ast_tstmt *sl_ast_t_topic(ast_id s, sl_loc loc)
{
    ast_tstmt *t = sl_ast_tstmt(AST_T_TOPIC, loc);

    t->target = s;
    return t;
}

ast_tstmt *sl_ast_t_loc(ast_tstmt *t, sl_loc loc)
{
    t->loc = loc;
    return t;
}

void sl_ast_tstmt_free(ast_tstmt *t)
{
    if (t == NULL)
        return;
    sl_ast_ids_free(t->cols);
    sl_ast_ids_free(t->pcols);
    sl_ast_ids_free(t->from);
    sl_ast_ids_free(t->to);
    sl_ast_expr_free(t->expr);
    sl_ast_expr_free(t->to_expr);
    free(t->target.s);
    for (size_t i = 0; i < t->nmerge; i++) {
        free(t->merge[i].col.s);
        free(t->merge[i].site.s);
    }
    free(t->merge);
    free(t->from_set);
    free(t->to_set);
    free(t);
}

/* ---- top-level statements ------------------------------------------------------ */

ast_stmt *sl_ast_stmt(ast_skind kind, sl_loc loc)
{
    ast_stmt *s = sl_xcalloc(1, sizeof *s);

    s->kind = kind;
    s->loc = loc;
    s->name.split = -1;
    return s;
}

ast_siteopts *sl_ast_siteopts(void)
{
    ast_siteopts *o = sl_xcalloc(1, sizeof *o);

    o->source.split = -1;
    return o;
}

ast_siteopts *sl_ast_siteopts_hub(ast_siteopts *o, sl_loc loc)
{
    o->hub = true;
    o->hub_loc = loc;
    return o;
}

ast_siteopts *sl_ast_siteopts_prio(ast_siteopts *o, int64_t prio, sl_loc loc)
{
    o->has_prio = true;
    o->prio = prio;
    o->prio_loc = loc;
    return o;
}

ast_siteopts *sl_ast_siteopts_source(ast_siteopts *o, ast_id source)
{
    free(o->source.s);
    o->source = source;
    return o;
}

void sl_ast_siteopts_free(ast_siteopts *o)
{
    if (o == NULL)
        return;
    free(o->source.s);
    free(o);
}

ast_stmt *sl_ast_s_site(ast_ids *names, ast_siteopts *opts, sl_loc loc)
{
    ast_stmt *s = sl_ast_stmt(AST_SITE, loc);

    s->names = names;
    s->opts = *opts;
    free(opts);
    return s;
}

ast_stmt *sl_ast_s_names(ast_skind kind, ast_id name, ast_ids *names, sl_loc loc)
{
    ast_stmt *s = sl_ast_stmt(kind, loc);

    s->name = name;
    s->names = names;
    return s;
}

ast_stmt *sl_ast_s_string(ast_skind kind, ast_id str, sl_loc loc)
{
    ast_stmt *s = sl_ast_stmt(kind, loc);

    s->name = str;
    return s;
}

ast_stmt *sl_ast_s_hold(int64_t ms, sl_loc loc)
{
    ast_stmt *s = sl_ast_stmt(AST_HOLD, loc);

    s->ms = ms;
    return s;
}

ast_stmt *sl_ast_s_table(ast_id pattern, sl_loc loc)
{
    ast_stmt *s = sl_ast_stmt(AST_TABLE, loc);

    s->name = pattern;
    return s;
}

ast_stmt *sl_ast_s_table_add(ast_stmt *t, ast_tstmt *st)
{
    if (st == NULL)
        return t;
    if (t->body_tail)
        t->body_tail->next = st;
    else
        t->body = st;
    t->body_tail = st;
    return t;
}

ast_stmt *sl_ast_s_loc(ast_stmt *s, sl_loc loc)
{
    s->loc = loc;
    return s;
}

void sl_ast_stmt_free(ast_stmt *s)
{
    ast_tstmt *t, *next;

    if (s == NULL)
        return;
    sl_ast_ids_free(s->names);
    free(s->name.s);
    free(s->opts.source.s);
    for (t = s->body; t; t = next) {
        next = t->next;
        sl_ast_tstmt_free(t);
    }
    free(s);
}

void sl_ast_rules_add(ast_rules *r, ast_stmt *s)
{
    if (s == NULL)
        return;
    if (r->tail)
        r->tail->next = s;
    else
        r->head = s;
    r->tail = s;
}

void sl_ast_rules_free(ast_rules *r)
{
    ast_stmt *s, *next;

    for (s = r->head; s; s = next) {
        next = s->next;
        sl_ast_stmt_free(s);
    }
    r->head = r->tail = NULL;
}
