/*
 * explain.c - print a compiled program, and expressions as rule text.
 *
 * The listing is what `sluice explain` shows an operator: every decision the
 * rules make, with groups and globs already expanded to site names.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- expressions --------------------------------------------------------------- */

enum { P_OR = 1, P_AND, P_NOT, P_CMP, P_CONCAT, P_ADD, P_MUL, P_NEG, P_PRIMARY };

static int prec(const sl_expr *e)
{
    switch (e->kind) {
    case SL_X_OR:
        return P_OR;
    case SL_X_AND:
        return P_AND;
    case SL_X_NOT:
        return P_NOT;
    case SL_X_CMP:
    case SL_X_IN:
    case SL_X_LIKE:
    case SL_X_ISNULL:
        return P_CMP;
    case SL_X_CONCAT:
        return P_CONCAT;
    case SL_X_ARITH:
        return e->op == SL_AR_ADD || e->op == SL_AR_SUB ? P_ADD : P_MUL;
    case SL_X_NEG:
        return P_NEG;
    default:
        return P_PRIMARY;
    }
}

static bool plain_name(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static void quoted(sl_buf *out, const char *s, size_t n, char q)
{
    sl_buf_putc(out, q);
    for (size_t i = 0; i < n; i++) {
        sl_buf_putc(out, s[i]);
        if (s[i] == q)
            sl_buf_putc(out, q);
    }
    sl_buf_putc(out, q);
}

static void format_double(double d, sl_buf *out)
{
    char tmp[64];

    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof tmp, "%.17g", d);
    /* Keep it a decimal literal when read back. */
    if (strpbrk(tmp, ".eEn") == NULL)
        strcat(tmp, ".0");
    sl_buf_puts(out, tmp);
}

static void fmt(const sl_expr *e, int min, sl_buf *out);

static void fmt_list(const sl_expr *const *v, size_t n, sl_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            sl_buf_puts(out, ", ");
        fmt(v[i], 0, out);
    }
}

static void fmt_body(const sl_expr *e, sl_buf *out)
{
    static const char *const cmp[] = {"=", "<>", "<", "<=", ">", ">="};
    static const char *const arith[] = {"+", "-", "*", "/", "%"};
    static const char *const fns[] = {"lower",    "upper",       "length",    "substr",   "trim",
                                      "coalesce", "starts_with", "ends_with", "contains", "abs"};
    static const char *const secs[] = {"before", "after", "row", "source", "key"};
    int p = prec(e);

    switch (e->kind) {
    case SL_X_LITERAL:
        switch (e->lit.type) {
        case SL_V_NULL:
            sl_buf_puts(out, "null");
            break;
        case SL_V_BOOL:
            sl_buf_puts(out, e->lit.u.b ? "true" : "false");
            break;
        case SL_V_INT:
            sl_buf_printf(out, "%" PRId64, e->lit.u.i);
            break;
        case SL_V_DOUBLE:
            format_double(e->lit.u.d, out);
            break;
        default:
            quoted(out, e->lit.u.s.p, e->lit.u.s.len, '\'');
            break;
        }
        break;
    case SL_X_OP:
        sl_buf_puts(out, "op");
        break;
    case SL_X_ORIGIN:
        sl_buf_puts(out, "origin");
        break;
    case SL_X_FIELD:
        sl_buf_printf(out, "%s.", secs[e->sec]);
        if (plain_name(e->name, e->name_len))
            sl_buf_append(out, e->name, e->name_len);
        else
            quoted(out, e->name, e->name_len, '"');
        break;
    case SL_X_NOT:
        sl_buf_puts(out, "NOT ");
        fmt(e->a, P_NOT, out);
        break;
    case SL_X_NEG:
        sl_buf_puts(out, "-");
        fmt(e->a, P_NEG, out);
        break;
    case SL_X_AND:
    case SL_X_OR:
        fmt(e->a, p, out);
        sl_buf_puts(out, e->kind == SL_X_AND ? " AND " : " OR ");
        fmt(e->b, p + 1, out);
        break;
    case SL_X_CMP:
        fmt(e->a, p + 1, out);
        sl_buf_printf(out, " %s ", cmp[e->op]);
        fmt(e->b, p + 1, out);
        break;
    case SL_X_ARITH:
    case SL_X_CONCAT:
        fmt(e->a, p, out);
        sl_buf_printf(out, " %s ", e->kind == SL_X_CONCAT ? "||" : arith[e->op]);
        fmt(e->b, p + 1, out);
        break;
    case SL_X_LIKE:
        fmt(e->a, p + 1, out);
        sl_buf_puts(out, e->negated ? " NOT LIKE " : " LIKE ");
        fmt(e->b, p + 1, out);
        break;
    case SL_X_IN:
        fmt(e->a, p + 1, out);
        sl_buf_puts(out, e->negated ? " NOT IN (" : " IN (");
        fmt_list(e->args, e->nargs, out);
        sl_buf_putc(out, ')');
        break;
    case SL_X_ISNULL:
        fmt(e->a, p + 1, out);
        sl_buf_puts(out, e->negated ? " IS NOT NULL" : " IS NULL");
        break;
    case SL_X_CALL:
        sl_buf_printf(out, "%s(", e->op >= 0 && e->op <= SL_FN_ABS ? fns[e->op] : "?");
        fmt_list(e->args, e->nargs, out);
        sl_buf_putc(out, ')');
        break;
    }
}

/* Parenthesise only where the grammar's precedence needs it. */
static void fmt(const sl_expr *e, int min, sl_buf *out)
{
    bool paren = prec(e) < min;

    if (paren)
        sl_buf_putc(out, '(');
    fmt_body(e, out);
    if (paren)
        sl_buf_putc(out, ')');
}

void sl_expr_format(const sl_expr *e, sl_buf *out)
{
    if (e == NULL) {
        sl_buf_puts(out, "true");
        return;
    }
    fmt(e, 0, out);
}

/* ---- program listing ------------------------------------------------------------- */

void sl_format_duration(int64_t ms, sl_buf *out)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};

    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms != 0 && ms % units[i].ms == 0) {
            sl_buf_printf(out, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    sl_buf_printf(out, "%" PRId64 "ms", ms);
}

static bool set_is_all(const sl_program *p, const sl_siteset *s)
{
    for (size_t i = 0; i < p->nsites; i++)
        if (!sl_siteset_has(s, (int)i))
            return false;
    return true;
}

static void put_set(const sl_program *p, const sl_siteset *s, sl_buf *out)
{
    bool first = true;

    for (size_t i = 0; i < p->nsites; i++) {
        if (!sl_siteset_has(s, (int)i))
            continue;
        sl_buf_printf(out, "%s%s", first ? "" : ", ", p->sites[i].name);
        first = false;
    }
    if (first)
        sl_buf_puts(out, "(no site)");
}

static void put_strv(const char *const *v, size_t n, sl_buf *out)
{
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(out, "%s%s", i ? ", " : "", v[i]);
}

static void put_sel(const sl_colsel *s, sl_buf *out)
{
    if (s->all) {
        sl_buf_puts(out, "all columns");
        if (s->ndrop) {
            sl_buf_puts(out, " except ");
            put_strv(s->drop, s->ndrop, out);
        }
        return;
    }
    if (s->ncols == 0)
        sl_buf_puts(out, "(no columns)");
    put_strv(s->cols, s->ncols, out);
}

static const char *merge_name(sl_merge_kind k)
{
    switch (k) {
    case SL_MERGE_LATEST:
        return "latest";
    case SL_MERGE_MAX:
        return "max";
    case SL_MERGE_MIN:
        return "min";
    case SL_MERGE_DELTA:
        return "delta";
    case SL_MERGE_PREFER:
        return "prefer";
    }
    return "?";
}

static void put_conflict(const sl_program *p, const sl_conflict *c, sl_buf *out)
{
    static const char *const del[] = {"latest", "delete wins", "update wins"};

    if (c->detect_before)
        sl_buf_puts(out, "  detect conflicts: by before image "
                         "(events without a full before: by version)\n");
    else
        sl_buf_puts(out, "  detect conflicts: by version (default)\n");
    sl_buf_puts(out, "  on conflict: ");
    switch (c->kind) {
    case SL_CONFLICT_LATEST:
        sl_buf_puts(out, "latest (highest source ts_ms; ties: site priority, then name)");
        break;
    case SL_CONFLICT_PREFER:
        sl_buf_printf(out, "prefer %s (otherwise latest)",
                      c->prefer_site >= 0 ? p->sites[c->prefer_site].name : "?");
        break;
    case SL_CONFLICT_MERGE:
        sl_buf_puts(out, "merge per column");
        for (size_t i = 0; i < c->ncols; i++) {
            const sl_merge_col *m = &c->cols[i];

            sl_buf_printf(out, "\n    %s: %s", m->column, merge_name(m->kind));
            if (m->kind == SL_MERGE_PREFER)
                sl_buf_printf(out, " %s", m->site >= 0 ? p->sites[m->site].name : "?");
        }
        break;
    case SL_CONFLICT_LUA:
        sl_buf_printf(out, "lua function %s", c->lua_fn);
        break;
    case SL_CONFLICT_MANUAL:
        sl_buf_puts(out, "manual (keep the current version, park the conflict)");
        break;
    }
    sl_buf_printf(out, "\n  on delete conflict: %s\n",
                  c->on_delete <= SL_DELETE_UPDATE_WINS ? del[c->on_delete] : "?");
}

static void put_table(const sl_program *p, const sl_table *t, sl_buf *out)
{
    if (t->ignored) {
        sl_buf_printf(out, "\nignore table %s%s\n", t->pattern, t->is_glob ? " (pattern)" : "");
        return;
    }
    sl_buf_printf(out, "\ntable %s", t->pattern);
    if (t->is_glob)
        sl_buf_printf(out, " (pattern, specificity %d)", t->specificity);
    sl_buf_putc(out, '\n');

    sl_buf_puts(out, "  key: ");
    if (t->nkey)
        put_strv(t->key_cols, t->nkey, out);
    else
        sl_buf_puts(out, "the record key");
    sl_buf_puts(out, "\n  filter: ");
    if (t->where)
        sl_expr_format(t->where, out);
    else
        sl_buf_puts(out, "every change");
    sl_buf_putc(out, '\n');

    sl_buf_puts(out, "  routes:");
    if (t->nroutes == 0)
        sl_buf_puts(out, " none (changes go nowhere)");
    sl_buf_putc(out, '\n');
    for (size_t i = 0; i < t->nroutes; i++) {
        const sl_route *r = &t->routes[i];

        sl_buf_puts(out, "    from ");
        put_set(p, &r->from, out);
        sl_buf_puts(out, " to ");
        if (r->to_expr) {
            sl_buf_puts(out, "the site named by ");
            sl_expr_format(r->to_expr, out);
        } else {
            if (set_is_all(p, &r->to))
                sl_buf_puts(out, "every site: ");
            put_set(p, &r->to, out);
        }
        if (r->where) {
            sl_buf_puts(out, " when ");
            sl_expr_format(r->where, out);
        }
        sl_buf_putc(out, '\n');
    }
    if (t->nroutes)
        sl_buf_puts(out, "    (a change never goes back to its origin)\n");

    sl_buf_puts(out, "  columns:\n");
    for (size_t i = 0; i < p->nsites; i++) {
        bool seen = false;

        /* One line per distinct selection, naming the sites that share it. */
        for (size_t j = 0; j < i; j++)
            if (t->sel[j] == t->sel[i])
                seen = true;
        if (seen)
            continue;
        sl_buf_puts(out, "    ");
        for (size_t j = i, first = 1; j < p->nsites; j++)
            if (t->sel[j] == t->sel[i]) {
                sl_buf_printf(out, "%s%s", first ? "" : ", ", p->sites[j].name);
                first = 0;
            }
        sl_buf_puts(out, ": ");
        put_sel(t->sel[i], out);
        sl_buf_putc(out, '\n');
    }

    for (size_t i = 0; i < t->ndeps; i++) {
        const sl_dep *d = &t->deps[i];

        sl_buf_printf(out, "  depends on %s (", d->parent);
        for (size_t k = 0; k < d->ncols; k++)
            sl_buf_printf(out, "%s%s = %s", k ? ", " : "", d->child_cols[k], d->parent_cols[k]);
        sl_buf_puts(out, ") timeout ");
        sl_format_duration(d->timeout_ms ? d->timeout_ms : p->hold_timeout_ms, out);
        if (d->timeout_ms == 0)
            sl_buf_puts(out, " (default)");
        sl_buf_putc(out, '\n');
    }
    put_conflict(p, &t->conflict, out);
    sl_buf_printf(out, "  topic: %s\n", t->topic ? t->topic : p->topic_template);
}

void sl_program_explain(const sl_program *p, sl_buf *out)
{
    const sl_program_impl *impl = (const sl_program_impl *)p;

    sl_buf_printf(out, "rules version %s\n", p->version);
    sl_buf_puts(out, "files:\n");
    for (size_t i = 0; i < p->nfiles; i++)
        sl_buf_printf(out, "  %s\n", p->files[i]);
    sl_buf_puts(out, "sites:\n");
    for (size_t i = 0; i < p->nsites; i++) {
        const sl_site *s = &p->sites[i];

        sl_buf_printf(out, "  %-12s %-6s priority %d", s->name, s->hub ? "hub" : "remote",
                      s->priority);
        if (strcmp(s->source_name, s->name) != 0)
            sl_buf_printf(out, "  source \"%s\"", s->source_name);
        sl_buf_putc(out, '\n');
    }
    if (impl->ngroups) {
        sl_buf_puts(out, "groups:\n");
        for (size_t i = 0; i < impl->ngroups; i++) {
            sl_buf_printf(out, "  %s = ", impl->group_names[i]);
            put_set(p, &impl->group_sets[i], out);
            sl_buf_putc(out, '\n');
        }
    }
    sl_buf_printf(out, "topic template: %s\n", p->topic_template);
    sl_buf_printf(out, "dead letters: %s\n", p->dead_letter_topic);
    sl_buf_puts(out, "hold timeout: ");
    sl_format_duration(p->hold_timeout_ms, out);
    sl_buf_putc(out, '\n');
    if (p->nlua) {
        sl_buf_puts(out, "lua files:\n");
        for (size_t i = 0; i < p->nlua; i++)
            sl_buf_printf(out, "  %s\n", p->lua_files[i]);
    }
    sl_buf_puts(out, "tables, in matching order (no match: dead letter \"no rules for table\"):\n");
    for (size_t i = 0; i < p->ntables; i++)
        sl_buf_printf(out, "  %s%s\n", p->tables[i].pattern,
                      p->tables[i].ignored ? " (ignored)" : "");
    for (size_t i = 0; i < p->ntables; i++)
        put_table(p, &p->tables[i], out);
}
