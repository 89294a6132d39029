/*
 * check.c - resolve names and types over the syntax tree.
 *
 * Runs after a clean parse. Every problem is reported at the location of the
 * node that caused it and checking goes on, so one run shows every error.
 * The checker annotates the tree (expression types, resolved functions, site
 * sets of routes and column statements, parent tables) for compile.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/match.h"
#include "internal.h"

/* ---- small helpers ---------------------------------------------------------- */

bool sl_is_glob(const char *s)
{
    return strpbrk(s, "*?") != NULL;
}

bool sl_glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
    return sl_wildcard_match(pat, plen, s, slen, '*', '?');
}

bool sl_table_match(const char *pat, int split, const char *schema, size_t schema_len,
                    const char *table, size_t table_len)
{
    if (split < 0)
        return sl_glob_match(pat, strlen(pat), table, table_len);
    return sl_glob_match(pat, (size_t)split, schema, schema_len) &&
           sl_glob_match(pat + split + 1, strlen(pat + split + 1), table, table_len);
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65], prev, tmp;

    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev + (a[i - 1] != b[j - 1]);

            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

const char *sl_hint(const char *name, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1, len = strlen(name);
    size_t limit = len <= 3 ? 1 : len <= 7 ? 2 : 3;

    for (size_t i = 0; i < n; i++) {
        size_t dist = edit_distance(name, cands[i]);

        if (dist > 0 && dist <= limit && dist < bestd) {
            best = cands[i];
            bestd = dist;
        }
    }
    return best;
}

/* "did you mean 'x'?" suffix, or "". */
static const char *hint_text(char *buf, size_t size, const char *name, const char *const *cands,
                             size_t n)
{
    const char *h = sl_hint(name, cands, n);

    if (h == NULL)
        return "";
    snprintf(buf, size, "; did you mean '%s'?", h);
    return buf;
}

/* The note that follows a "duplicate" error. */
static void note_first(sl_diags *d, sl_loc loc, const char *what)
{
    sl_diags_add(d, SL_SEV_NOTE, loc, "%s is here", what);
}

/* ---- checker state -------------------------------------------------------------- */

typedef struct checker {
    sl_diags *d;
    sl_sema *s;
    /* the table block being checked */
    const sl_sema_table *t;
} checker;

#define ERR(cx, loc, ...) sl_diags_add((cx)->d, SL_SEV_ERROR, (loc), __VA_ARGS__)

static int find_site(const sl_sema *s, const char *name)
{
    for (size_t i = 0; i < s->nsites; i++)
        if (strcmp(s->sites[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_group(const sl_sema *s, const char *name)
{
    for (size_t i = 0; i < s->ngroups; i++)
        if (strcmp(s->groups[i].name->s, name) == 0)
            return (int)i;
    return -1;
}

/* Names a user might have meant: sites, groups and the predefined groups. */
static const char **site_names(const sl_sema *s, bool with_groups, size_t *n)
{
    const char **v = sl_xcalloc(s->nsites + s->ngroups + 2, sizeof *v);
    size_t k = 0;

    for (size_t i = 0; i < s->nsites; i++)
        v[k++] = s->sites[i].name;
    if (with_groups) {
        for (size_t i = 0; i < s->ngroups; i++)
            v[k++] = s->groups[i].name->s;
        v[k++] = "hub";
        v[k++] = "remotes";
    }
    *n = k;
    return v;
}

static void unknown_site(checker *cx, const ast_id *id, bool with_groups)
{
    size_t n;
    const char **names = site_names(cx->s, with_groups, &n);
    char hb[128];

    ERR(cx, id->loc, "unknown site %s'%s'%s", with_groups ? "or group " : "", id->s,
        hint_text(hb, sizeof hb, id->s, names, n));
    free(names);
}

static bool resolve_group(checker *cx, int g);

/* One site reference into `set`; false (and reported) when it resolves to nothing. */
static bool resolve_ref(checker *cx, const ast_id *id, sl_siteset *set)
{
    const sl_sema *s = cx->s;
    int i;

    if (strcmp(id->s, "*") == 0 && !id->quoted) {
        for (size_t k = 0; k < s->nsites; k++)
            sl_siteset_add(set, (int)k);
        return s->nsites > 0;
    }
    if (strcmp(id->s, "hub") == 0 && !id->quoted) {
        if (s->hub >= 0)
            sl_siteset_add(set, s->hub);
        return s->hub >= 0;
    }
    if (strcmp(id->s, "remotes") == 0 && !id->quoted) {
        bool any = false;

        for (size_t k = 0; k < s->nsites; k++)
            if (!s->sites[k].hub) {
                sl_siteset_add(set, (int)k);
                any = true;
            }
        if (!any)
            ERR(cx, id->loc, "'remotes' is empty: every site is the hub");
        return any;
    }
    if (sl_is_glob(id->s)) {
        bool any = false;

        for (size_t k = 0; k < s->nsites; k++)
            if (sl_glob_match(id->s, strlen(id->s), s->sites[k].name, strlen(s->sites[k].name))) {
                sl_siteset_add(set, (int)k);
                any = true;
            }
        if (!any)
            ERR(cx, id->loc, "site pattern '%s' matches no site", id->s);
        return any;
    }
    if ((i = find_site(s, id->s)) >= 0) {
        sl_siteset_add(set, i);
        return true;
    }
    if ((i = find_group(s, id->s)) >= 0) {
        if (!resolve_group(cx, i))
            return false;
        for (size_t w = 0; w < SL_MAX_SITES / 64; w++)
            set->w[w] |= s->groups[i].set.w[w];
        return true;
    }
    unknown_site(cx, id, true);
    return false;
}

static bool resolve_refs(checker *cx, const ast_ids *l, sl_siteset **out)
{
    bool ok = true;

    *out = sl_xcalloc(1, sizeof **out);
    for (size_t i = 0; i < l->n; i++)
        if (!resolve_ref(cx, &l->v[i], *out))
            ok = false;
    return ok;
}

static bool resolve_group(checker *cx, int g)
{
    sl_sema_group *gr = &cx->s->groups[g];
    bool ok = true;

    if (gr->state == 2)
        return true;
    if (gr->state == 1) {
        ERR(cx, gr->name->loc, "group '%s' contains itself", gr->name->s);
        return false;
    }
    gr->state = 1;
    for (size_t i = 0; i < gr->st->names->n; i++)
        if (!resolve_ref(cx, &gr->st->names->v[i], &gr->set))
            ok = false;
    gr->state = 2;
    return ok;
}

/* ---- sites, groups, program settings --------------------------------------------- */

static bool reserved_site_name(checker *cx, const ast_id *id, const char *what)
{
    if (strcmp(id->s, "hub") == 0 || strcmp(id->s, "remotes") == 0 || strcmp(id->s, "*") == 0) {
        ERR(cx, id->loc, "'%s' is a predefined group and cannot name a %s", id->s, what);
        return true;
    }
    if (sl_is_glob(id->s)) {
        ERR(cx, id->loc, "a %s name cannot contain '*' or '?'", what);
        return true;
    }
    if (id->s[0] == '\0') {
        ERR(cx, id->loc, "a %s name cannot be empty", what);
        return true;
    }
    return false;
}

static void check_sites(checker *cx, ast_rules *r)
{
    sl_sema *s = cx->s;
    size_t cap = 0;
    const ast_stmt *first = NULL;

    s->hub = -1;
    for (ast_stmt *st = r->head; st; st = st->next) {
        if (st->kind != AST_SITE)
            continue;
        if (first == NULL)
            first = st;
        if (st->opts.source.s && st->names->n > 1)
            ERR(cx, st->opts.source.loc, "a source name belongs to one site, not %zu",
                st->names->n);
        if (st->opts.has_prio && (st->opts.prio > 1000000000 || st->opts.prio < -1000000000))
            ERR(cx, st->opts.prio_loc, "priority %lld is out of range (-1000000000..1000000000)",
                (long long)st->opts.prio);
        for (size_t i = 0; i < st->names->n; i++) {
            const ast_id *id = &st->names->v[i];
            int dup;
            sl_site *site;

            if (reserved_site_name(cx, id, "site"))
                continue;
            if ((dup = find_site(s, id->s)) >= 0) {
                ERR(cx, id->loc, "duplicate site '%s'", id->s);
                note_first(cx->d, s->sites[dup].loc, "the first declaration");
                continue;
            }
            if (s->nsites == SL_MAX_SITES) {
                ERR(cx, id->loc, "too many sites (at most %d)", SL_MAX_SITES);
                continue;
            }
            if (s->nsites == cap) {
                cap = cap ? cap * 2 : 8;
                s->sites = sl_xrealloc(s->sites, cap * sizeof *s->sites);
            }
            site = &s->sites[s->nsites];
            memset(site, 0, sizeof *site);
            site->name = id->s;
            site->source_name = st->opts.source.s ? st->opts.source.s : id->s;
            site->priority = st->opts.has_prio ? (int)st->opts.prio : 0;
            site->loc = id->loc;
            if (st->opts.hub) {
                if (s->hub >= 0) {
                    ERR(cx, st->opts.hub_loc, "a second hub '%s': '%s' is already the hub", id->s,
                        s->sites[s->hub].name);
                    note_first(cx->d, s->sites[s->hub].loc, "the hub");
                } else {
                    site->hub = true;
                    s->hub = (int)s->nsites;
                }
            }
            s->nsites++;
        }
    }
    for (size_t i = 0; i < s->nsites; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->sites[i].source_name, s->sites[j].source_name) == 0)
                ERR(cx, s->sites[i].loc, "sites '%s' and '%s' have the same source name '%s'",
                    s->sites[j].name, s->sites[i].name, s->sites[i].source_name);
    if (s->hub < 0) {
        sl_loc loc = {NULL, 1, 1, 1, 1};

        if (first)
            loc = first->loc;
        else if (r->head)
            loc.file = r->head->loc.file;
        ERR(cx, loc, "%s",
            first ? "no hub site: mark one site as the hub (site NAME hub;)"
                  : "no sites declared: a rule set needs a hub (site NAME hub;)");
    }
}

static void check_groups(checker *cx, ast_rules *r)
{
    sl_sema *s = cx->s;
    size_t cap = 0;

    for (ast_stmt *st = r->head; st; st = st->next) {
        int dup;

        if (st->kind != AST_GROUP)
            continue;
        if (reserved_site_name(cx, &st->name, "group"))
            continue;
        if ((dup = find_group(s, st->name.s)) >= 0) {
            ERR(cx, st->name.loc, "duplicate group '%s'", st->name.s);
            note_first(cx->d, s->groups[dup].name->loc, "the first declaration");
            continue;
        }
        if ((dup = find_site(s, st->name.s)) >= 0) {
            ERR(cx, st->name.loc, "group '%s' has the name of a site", st->name.s);
            continue;
        }
        if (s->ngroups == cap) {
            cap = cap ? cap * 2 : 4;
            s->groups = sl_xrealloc(s->groups, cap * sizeof *s->groups);
        }
        memset(&s->groups[s->ngroups], 0, sizeof s->groups[0]);
        s->groups[s->ngroups].name = &st->name;
        s->groups[s->ngroups].st = st;
        s->ngroups++;
    }
    for (size_t i = 0; i < s->ngroups; i++)
        resolve_group(cx, (int)i);
}

/* Placeholders a topic template may use. */
static void check_template(checker *cx, const ast_id *id)
{
    static const char *const known[] = {"dest", "origin", "schema", "table", "db"};
    const char *s = id->s;

    if (s[0] == '\0') {
        ERR(cx, id->loc, "the topic template is empty");
        return;
    }
    for (const char *p = s; *p; p++) {
        const char *close;
        size_t n;
        bool ok = false;
        sl_loc loc = id->loc;

        if (*p != '{')
            continue;
        /* The template text starts one column after the opening quote. */
        loc.col = id->loc.col + 1 + (int)(p - s);
        loc.end_line = loc.line;
        close = strchr(p, '}');
        if (close == NULL) {
            loc.end_col = loc.col + 1;
            ERR(cx, loc, "unclosed '{' in topic template");
            return;
        }
        n = (size_t)(close - p - 1);
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strlen(known[k]) == n && strncmp(known[k], p + 1, n) == 0)
                ok = true;
        if (!ok) {
            char hb[128], word[64];

            snprintf(word, sizeof word, "%.*s", (int)(n < 60 ? n : 60), p + 1);
            loc.end_col = loc.col + (int)n + 2;
            ERR(cx, loc,
                "unknown placeholder '{%s}' in topic template (known: {dest} {origin} "
                "{schema} {table} {db})%s",
                word, hint_text(hb, sizeof hb, word, known, sizeof known / sizeof known[0]));
        }
        p = close;
    }
}

static char *resolve_path(const char *rules_file, const char *path)
{
    const char *slash;
    size_t dl;
    char *out;

    if (path[0] == '/' || rules_file == NULL || (slash = strrchr(rules_file, '/')) == NULL)
        return sl_xstrdup(path);
    dl = (size_t)(slash - rules_file);
    out = sl_xmalloc(dl + strlen(path) + 2);
    memcpy(out, rules_file, dl);
    out[dl] = '/';
    strcpy(out + dl + 1, path);
    return out;
}

static void check_settings(checker *cx, ast_rules *r)
{
    sl_sema *s = cx->s;
    const ast_stmt *hold = NULL;

    s->hold_ms = 60000;
    for (ast_stmt *st = r->head; st; st = st->next) {
        switch (st->kind) {
        case AST_TOPIC:
            if (s->topic) {
                ERR(cx, st->loc, "duplicate topic template");
                note_first(cx->d, s->topic->loc, "the first topic template");
                break;
            }
            s->topic = &st->name;
            check_template(cx, &st->name);
            break;
        case AST_DEAD:
            if (s->dead) {
                ERR(cx, st->loc, "duplicate dead letters destination");
                note_first(cx->d, s->dead->loc, "the first dead letters destination");
                break;
            }
            s->dead = &st->name;
            if (st->name.s[0] == '\0')
                ERR(cx, st->name.loc, "the dead letters destination is empty");
            break;
        case AST_HOLD:
            if (hold) {
                ERR(cx, st->loc, "duplicate hold timeout");
                note_first(cx->d, hold->loc, "the first hold timeout");
                break;
            }
            hold = st;
            if (st->ms <= 0)
                ERR(cx, st->loc, "the hold timeout must be longer than 0");
            s->hold_ms = st->ms;
            break;
        case AST_LUA: {
            char *path = resolve_path(st->loc.file, st->name.s);
            FILE *f = fopen(path, "r");

            if (f == NULL) {
                ERR(cx, st->name.loc, "cannot read lua file '%s': %s", path, strerror(errno));
                free(path);
                break;
            }
            fclose(f);
            s->lua = sl_xrealloc(s->lua, (s->nlua + 1) * sizeof *s->lua);
            s->lua[s->nlua++] = path;
            break;
        }
        default:
            break;
        }
    }
}

/* ---- tables ------------------------------------------------------------------- */

static int pattern_spec(const char *p)
{
    int n = 0;

    for (; *p; p++)
        if (*p != '*' && *p != '?' && *p != '.')
            n++;
    return n;
}

static void add_table(sl_sema *s, size_t *cap, const ast_stmt *st, const ast_id *pat)
{
    sl_sema_table *t;

    if (s->ntables == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        s->tables = sl_xrealloc(s->tables, *cap * sizeof *s->tables);
    }
    t = &s->tables[s->ntables++];
    memset(t, 0, sizeof *t);
    t->st = st;
    t->pat = pat;
    t->ignored = st->kind == AST_IGNORE;
    t->is_glob = sl_is_glob(pat->s) || pat->split < 0;
    t->spec = pattern_spec(pat->s);
    t->final_index = -1;
    if (t->ignored)
        t->st = NULL;
}

static void collect_tables(checker *cx, ast_rules *r)
{
    sl_sema *s = cx->s;
    size_t cap = 0;

    for (ast_stmt *st = r->head; st; st = st->next) {
        const ast_id *pats = st->kind == AST_TABLE ? &st->name : NULL;
        size_t npats = 1;

        if (st->kind == AST_IGNORE) {
            pats = st->names->v;
            npats = st->names->n;
        } else if (st->kind != AST_TABLE) {
            continue;
        }
        for (size_t i = 0; i < npats; i++) {
            const ast_id *pat = &pats[i];
            bool skip = false;

            if (pat->s[0] == '\0' ||
                (pat->split >= 0 && (pat->split == 0 || pat->s[pat->split + 1] == '\0'))) {
                ERR(cx, pat->loc, "empty name in table pattern '%s'", pat->s);
                continue;
            }
            for (size_t k = 0; k < s->ntables && !skip; k++) {
                const sl_sema_table *o = &s->tables[k];

                if (strcmp(o->pat->s, pat->s) != 0)
                    continue;
                skip = true;
                if (o->ignored && st->kind == AST_IGNORE) {
                    sl_diags_add(cx->d, SL_SEV_WARNING, pat->loc, "table '%s' is ignored twice",
                                 pat->s);
                } else if (o->ignored || st->kind == AST_IGNORE) {
                    ERR(cx, pat->loc, "table '%s' is both declared and ignored", pat->s);
                    note_first(cx->d, o->pat->loc, "the other one");
                } else {
                    ERR(cx, pat->loc, "duplicate table block for '%s'", pat->s);
                    note_first(cx->d, o->pat->loc, "the first block");
                }
            }
            if (!skip)
                add_table(s, &cap, st, pat);
        }
    }
}

/* Table blocks a `depends on` names: the exact pattern, else the block that
 * would govern that table. */
static int find_parent(const sl_sema *s, const ast_id *pat)
{
    int best = -1;

    for (size_t i = 0; i < s->ntables; i++)
        if (strcmp(s->tables[i].pat->s, pat->s) == 0)
            return (int)i;
    if (sl_is_glob(pat->s) || pat->split < 0)
        return -1;
    for (size_t i = 0; i < s->ntables; i++) {
        const sl_sema_table *t = &s->tables[i];

        if (!t->is_glob ||
            !sl_table_match(t->pat->s, t->pat->split, pat->s, (size_t)pat->split,
                            pat->s + pat->split + 1, strlen(pat->s + pat->split + 1)))
            continue;
        if (best < 0 || t->spec > s->tables[best].spec)
            best = (int)i;
    }
    return best;
}

static bool ids_has(const ast_ids *l, const char *name)
{
    if (l == NULL)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].s, name) == 0)
            return true;
    return false;
}

/* A column named in table cx->t; only checked when the block has a
 * `columns` list for every destination. */
static bool check_col(checker *cx, const sl_sema_table *t, const char *name, sl_loc loc)
{
    const ast_ids *known = t->cols ? t->cols->cols : NULL;
    char hb[128];
    const char **cands;

    if (known == NULL || ids_has(known, name))
        return true;
    cands = sl_xcalloc(known->n + 1, sizeof *cands);
    for (size_t i = 0; i < known->n; i++)
        cands[i] = known->v[i].s;
    ERR(cx, loc, "unknown column '%s' in %s (not in its columns list)%s", name, t->pat->s,
        hint_text(hb, sizeof hb, name, cands, known->n));
    free(cands);
    return false;
}

static void check_dup_names(checker *cx, const ast_ids *l, const char *what)
{
    for (size_t i = 0; i < l->n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(l->v[i].s, l->v[j].s) == 0) {
                ERR(cx, l->v[i].loc, "%s '%s' is listed twice", what, l->v[i].s);
                break;
            }
}

/* ---- expressions ---------------------------------------------------------------- */

static const char *type_name(sl_type t)
{
    switch (t) {
    case SL_T_BOOL:
        return "boolean";
    case SL_T_NUMBER:
        return "number";
    case SL_T_STRING:
        return "string";
    case SL_T_NULL:
        return "null";
    case SL_T_ANY:
        break;
    }
    return "value";
}

static const char *const source_fields[] = {
    "name",
    "db",
    "schema",
    "table",
    "ts_ms",
    "ts_us",
    "ts_ns",
    "snapshot",
    "connector",
    "version",
    "lsn",
    "txId",
    "xmin",
    "sequence",
    "file",
    "pos",
    "row",
    "gtid",
    "server_id",
    "thread",
    "query",
    "change_lsn",
    "commit_lsn",
    "event_serial_no",
    "scn",
    "commit_scn",
    "txid",
    "ssn",
    "redo_thread",
    "user_name",
    "rs_id",
    "redo_sql",
    "row_id",
    "collection",
    "ord",
    "h",
    "tord",
    "stxnid",
    "lcr_position",
    "cluster",
    "connector_name",
    "sequence_id",
};

static const struct fninfo {
    const char *name;
    sl_fn fn;
    int min, max; /* max -1: any number */
    sl_type arg;  /* expected type of every argument (ANY: no check) */
    sl_type result;
} functions[] = {
    {"lower", SL_FN_LOWER, 1, 1, SL_T_STRING, SL_T_STRING},
    {"upper", SL_FN_UPPER, 1, 1, SL_T_STRING, SL_T_STRING},
    {"length", SL_FN_LENGTH, 1, 1, SL_T_STRING, SL_T_NUMBER},
    {"substr", SL_FN_SUBSTR, 2, 3, SL_T_ANY, SL_T_STRING},
    {"trim", SL_FN_TRIM, 1, 1, SL_T_STRING, SL_T_STRING},
    {"coalesce", SL_FN_COALESCE, 1, -1, SL_T_ANY, SL_T_ANY},
    {"starts_with", SL_FN_STARTS, 2, 2, SL_T_STRING, SL_T_BOOL},
    {"ends_with", SL_FN_ENDS, 2, 2, SL_T_STRING, SL_T_BOOL},
    {"contains", SL_FN_CONTAINS, 2, 2, SL_T_STRING, SL_T_BOOL},
    {"abs", SL_FN_ABS, 1, 1, SL_T_NUMBER, SL_T_NUMBER},
};

static sl_type xcheck(checker *cx, ast_expr *e);

static bool known_type(sl_type t)
{
    return t != SL_T_ANY && t != SL_T_NULL;
}

static void need(checker *cx, const ast_expr *e, sl_type t, sl_type want, const char *what)
{
    if (known_type(t) && t != want)
        ERR(cx, e->loc, "%s needs a %s, got a %s", what, type_name(want), type_name(t));
}

/* `op = 'x'`: the event op is one of c u d r t. */
static void check_op_literal(checker *cx, const ast_expr *a, const ast_expr *b)
{
    const ast_expr *lit = NULL;

    if (a->kind == SL_X_OP && b->kind == SL_X_LITERAL)
        lit = b;
    else if (b->kind == SL_X_OP && a->kind == SL_X_LITERAL)
        lit = a;
    if (lit == NULL || lit->lit.type != SL_V_STRING)
        return;
    if (lit->lit.u.s.len != 1 || strchr("cudrt", lit->lit.u.s.p[0]) == NULL)
        ERR(cx, lit->loc, "op is one of 'c', 'u', 'd', 'r', 't', never '%s'", lit->str);
}

static void check_compare(checker *cx, const ast_expr *e, const ast_expr *a, sl_type ta,
                          const ast_expr *b, sl_type tb)
{
    if (known_type(ta) && known_type(tb) && ta != tb)
        ERR(cx, e->loc, "cannot compare a %s with a %s", type_name(ta), type_name(tb));
    check_op_literal(cx, a, b);
}

static sl_type check_call(checker *cx, ast_expr *e)
{
    const struct fninfo *f = NULL;
    sl_type result;

    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
        if (strcmp(functions[i].name, e->name) == 0)
            f = &functions[i];
    for (size_t i = 0; i < e->args->n; i++)
        (void)xcheck(cx, e->args->v[i]);
    if (f == NULL) {
        const char *names[sizeof functions / sizeof functions[0]];
        char hb[128];

        for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
            names[i] = functions[i].name;
        ERR(cx, e->loc, "unknown function '%s'%s", e->name,
            hint_text(hb, sizeof hb, e->name, names, sizeof names / sizeof names[0]));
        return SL_T_ANY;
    }
    e->op = (int)f->fn;
    if ((int)e->args->n < f->min || (f->max >= 0 && (int)e->args->n > f->max)) {
        if (f->max < 0)
            ERR(cx, e->loc, "%s() takes at least %d argument%s, got %zu", f->name, f->min,
                f->min == 1 ? "" : "s", e->args->n);
        else if (f->min == f->max)
            ERR(cx, e->loc, "%s() takes %d argument%s, got %zu", f->name, f->min,
                f->min == 1 ? "" : "s", e->args->n);
        else
            ERR(cx, e->loc, "%s() takes %d or %d arguments, got %zu", f->name, f->min, f->max,
                e->args->n);
        return f->result;
    }
    result = f->result;
    for (size_t i = 0; i < e->args->n; i++) {
        sl_type t = e->args->v[i]->type;
        char what[64];

        snprintf(what, sizeof what, "argument %zu of %s()", i + 1, f->name);
        if (f->fn == SL_FN_SUBSTR)
            need(cx, e->args->v[i], t, i == 0 ? SL_T_STRING : SL_T_NUMBER, what);
        else if (f->arg != SL_T_ANY)
            need(cx, e->args->v[i], t, f->arg, what);
        if (f->fn == SL_FN_COALESCE && result == SL_T_ANY && known_type(t))
            result = t;
    }
    return result;
}

static sl_type xcheck_kind(checker *cx, ast_expr *e)
{
    sl_type ta, tb;

    switch (e->kind) {
    case SL_X_LITERAL:
        switch (e->lit.type) {
        case SL_V_BOOL:
            return SL_T_BOOL;
        case SL_V_INT:
        case SL_V_DOUBLE:
            return SL_T_NUMBER;
        case SL_V_STRING:
            return SL_T_STRING;
        default:
            return SL_T_NULL;
        }
    case SL_X_OP:
    case SL_X_ORIGIN:
        return SL_T_STRING;
    case SL_X_FIELD:
        if (e->sec == SL_SEC_SOURCE) {
            size_t n = sizeof source_fields / sizeof source_fields[0];
            bool ok = false;
            char hb[128];

            for (size_t i = 0; i < n; i++)
                if (strcmp(source_fields[i], e->name) == 0)
                    ok = true;
            if (!ok)
                ERR(cx, e->loc, "unknown source field '%s'%s", e->name,
                    hint_text(hb, sizeof hb, e->name, source_fields, n));
        } else if (e->sec == SL_SEC_KEY) {
            if (cx->t->key && !ids_has(cx->t->key->cols, e->name))
                ERR(cx, e->loc, "'%s' is not a key column of %s", e->name, cx->t->pat->s);
        } else {
            check_col(cx, cx->t, e->name, e->loc);
        }
        return SL_T_ANY;
    case AST_X_NAME:
        ERR(cx, e->loc,
            "unknown name '%s': write after.%s, before.%s or row.%s for a column, "
            "'...' for a string",
            e->name, e->name, e->name, e->name);
        return SL_T_ANY;
    case SL_X_NOT:
        need(cx, e->a, xcheck(cx, e->a), SL_T_BOOL, "NOT");
        return SL_T_BOOL;
    case SL_X_NEG:
        need(cx, e->a, xcheck(cx, e->a), SL_T_NUMBER, "unary '-'");
        return SL_T_NUMBER;
    case SL_X_AND:
    case SL_X_OR:
        need(cx, e->a, xcheck(cx, e->a), SL_T_BOOL, e->kind == SL_X_AND ? "AND" : "OR");
        need(cx, e->b, xcheck(cx, e->b), SL_T_BOOL, e->kind == SL_X_AND ? "AND" : "OR");
        return SL_T_BOOL;
    case SL_X_CMP:
        ta = xcheck(cx, e->a);
        tb = xcheck(cx, e->b);
        check_compare(cx, e, e->a, ta, e->b, tb);
        if ((ta == SL_T_NULL || tb == SL_T_NULL) && (e->op == SL_CMP_EQ || e->op == SL_CMP_NE))
            sl_diags_add(cx->d, SL_SEV_WARNING, e->loc,
                         "a comparison with null is never true: use IS %sNULL",
                         e->op == SL_CMP_NE ? "NOT " : "");
        return SL_T_BOOL;
    case SL_X_ARITH: {
        static const char *const ops[] = {"'+'", "'-'", "'*'", "'/'", "'%'"};

        need(cx, e->a, xcheck(cx, e->a), SL_T_NUMBER, ops[e->op]);
        need(cx, e->b, xcheck(cx, e->b), SL_T_NUMBER, ops[e->op]);
        return SL_T_NUMBER;
    }
    case SL_X_CONCAT:
        (void)xcheck(cx, e->a);
        (void)xcheck(cx, e->b);
        return SL_T_STRING;
    case SL_X_LIKE:
        need(cx, e->a, xcheck(cx, e->a), SL_T_STRING, "LIKE");
        need(cx, e->b, xcheck(cx, e->b), SL_T_STRING, "the LIKE pattern");
        return SL_T_BOOL;
    case SL_X_IN:
        ta = xcheck(cx, e->a);
        for (size_t i = 0; i < e->args->n; i++) {
            tb = xcheck(cx, e->args->v[i]);
            check_compare(cx, e->args->v[i], e->a, ta, e->args->v[i], tb);
        }
        return SL_T_BOOL;
    case SL_X_ISNULL:
        (void)xcheck(cx, e->a);
        return SL_T_BOOL;
    case SL_X_CALL:
        return check_call(cx, e);
    }
    return SL_T_ANY;
}

static sl_type xcheck(checker *cx, ast_expr *e)
{
    e->type = xcheck_kind(cx, e);
    return e->type;
}

/* A whole expression in a statement: depth first, then types. */
static void check_root(checker *cx, ast_expr *e, sl_type want, const char *what)
{
    sl_type t;

    if (e->depth > SL_MAX_EXPR_DEPTH) {
        ERR(cx, e->loc, "expression is nested too deeply (more than %d levels)", SL_MAX_EXPR_DEPTH);
        return;
    }
    t = xcheck(cx, e);
    if (known_type(t) && t != want)
        ERR(cx, e->loc, "%s needs a %s, got a %s", what, type_name(want), type_name(t));
}

/* ---- one table block -------------------------------------------------------------- */

static void singleton(checker *cx, const ast_tstmt **slot, const ast_tstmt *st, const char *what)
{
    if (*slot) {
        char first[96];

        ERR(cx, st->loc, "duplicate %s in table %s", what, cx->t->pat->s);
        snprintf(first, sizeof first, "the first %s", what);
        note_first(cx->d, (*slot)->loc, first);
        return;
    }
    *slot = st;
}

static void check_route(checker *cx, ast_tstmt *st)
{
    bool from_ok = resolve_refs(cx, st->from, &st->from_set);
    bool to_ok = true;

    if (st->to)
        to_ok = resolve_refs(cx, st->to, &st->to_set);
    if (st->to_expr)
        check_root(cx, st->to_expr, SL_T_STRING, "site()");
    if (st->expr)
        check_root(cx, st->expr, SL_T_BOOL, "a route condition");
    if (st->to && from_ok && to_ok) {
        bool possible = false;

        /* A change never goes back to its origin through a route. */
        for (size_t f = 0; f < cx->s->nsites && !possible; f++) {
            if (!sl_siteset_has(st->from_set, (int)f))
                continue;
            for (size_t t = 0; t < cx->s->nsites && !possible; t++)
                if ((int)t != (int)f && sl_siteset_has(st->to_set, (int)t))
                    possible = true;
        }
        if (!possible)
            ERR(cx, st->loc,
                "route has no possible destination: changes never go back to the site they "
                "came from");
    }
}

static void check_depends(checker *cx, ast_tstmt *st)
{
    const sl_sema *s = cx->s;
    int p = find_parent(s, &st->target);

    for (size_t i = 0; i < st->cols->n; i++)
        check_col(cx, cx->t, st->cols->v[i].s, st->cols->v[i].loc);
    if (p < 0) {
        const char **cands = sl_xcalloc(s->ntables + 1, sizeof *cands);
        char hb[160];

        for (size_t i = 0; i < s->ntables; i++)
            cands[i] = s->tables[i].pat->s;
        ERR(cx, st->target.loc, "depends on '%s', which has no table block%s", st->target.s,
            hint_text(hb, sizeof hb, st->target.s, cands, s->ntables));
        free(cands);
        return;
    }
    if (s->tables[p].ignored) {
        ERR(cx, st->target.loc, "depends on '%s', which is ignored", st->target.s);
        return;
    }
    st->parent = p;
    for (size_t i = 0; i < st->pcols->n; i++)
        check_col(cx, &s->tables[p], st->pcols->v[i].s, st->pcols->v[i].loc);
}

static void check_conflict(checker *cx, ast_tstmt *st)
{
    const sl_sema *s = cx->s;

    if (st->policy == SL_CONFLICT_PREFER) {
        st->site_index = find_site(s, st->target.s);
        if (st->site_index < 0)
            unknown_site(cx, &st->target, false);
    } else if (st->policy == SL_CONFLICT_LUA && s->nlua == 0) {
        ERR(cx, st->target.loc,
            "on conflict lua '%s' needs a lua file: declare one with lua \"FILE.lua\";",
            st->target.s);
    }
    if (st->policy == SL_CONFLICT_MERGE && st->nmerge == 0)
        ERR(cx, st->loc, "merge needs at least one column strategy");
    for (size_t i = 0; i < st->nmerge; i++) {
        ast_merge *m = &st->merge[i];

        if (m->kind == SL_MERGE_PREFER) {
            m->site_index = find_site(s, m->site.s);
            if (m->site_index < 0)
                unknown_site(cx, &m->site, false);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(st->merge[j].col.s, m->col.s) == 0) {
                ERR(cx, m->col.loc, "merge strategy for '%s' is given twice", m->col.s);
                break;
            }
        if (strcmp(m->col.s, "*") != 0)
            check_col(cx, cx->t, m->col.s, m->col.loc);
    }
}

static bool sel_has(const sl_sel_tmp *sel, const char *col)
{
    const char *const *v = sel->all ? sel->drop : sel->cols;
    size_t n = sel->all ? sel->ndrop : sel->ncols;

    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], col) == 0)
            return !sel->all;
    return sel->all;
}

/* Checks that need the per-destination selections. */
static void check_selections(checker *cx, sl_sema_table *t)
{
    const sl_sema *s = cx->s;

    if (t->conflict == NULL)
        return;
    for (size_t i = 0; i < t->conflict->nmerge; i++) {
        const ast_merge *m = &t->conflict->merge[i];
        bool replicated = false;

        if (strcmp(m->col.s, "*") == 0)
            continue;
        if (t->cols && !ids_has(t->cols->cols, m->col.s))
            continue; /* already reported as an unknown column */
        for (size_t k = 0; k < s->nsites && !replicated; k++) {
            sl_sel_tmp sel;

            sl_sema_selection(s, t, (int)k, &sel);
            replicated = sel_has(&sel, m->col.s);
            sl_sel_tmp_free(&sel);
        }
        if (!replicated)
            ERR(cx, m->col.loc, "merge strategy for column '%s', which no destination receives",
                m->col.s);
    }
}

static void check_table(checker *cx, sl_sema_table *t)
{
    bool has_route = false;

    cx->t = t;
    /* First the statements that others depend on. */
    for (ast_tstmt *st = t->st->body; st; st = st->next) {
        switch (st->kind) {
        case AST_T_KEY:
            singleton(cx, &t->key, st, "key");
            check_dup_names(cx, st->cols, "key column");
            break;
        case AST_T_COLUMNS:
            check_dup_names(cx, st->cols, "column");
            if (st->to == NULL)
                singleton(cx, &t->cols, st, "columns list for every destination");
            break;
        case AST_T_CONFLICT:
            singleton(cx, &t->conflict, st, "on conflict");
            break;
        case AST_T_ONDELETE:
            singleton(cx, &t->ondelete, st, "on delete conflict");
            break;
        case AST_T_DETECT:
            singleton(cx, &t->detect, st, "detect conflicts");
            break;
        case AST_T_TOPIC:
            singleton(cx, &t->topic, st, "topic");
            check_template(cx, &st->target);
            break;
        default:
            break;
        }
    }
    for (ast_tstmt *st = t->st->body; st; st = st->next) {
        switch (st->kind) {
        case AST_T_KEY:
            if (st == t->key)
                for (size_t i = 0; i < st->cols->n; i++)
                    check_col(cx, t, st->cols->v[i].s, st->cols->v[i].loc);
            break;
        case AST_T_WHERE:
            check_root(cx, st->expr, SL_T_BOOL, "where");
            break;
        case AST_T_ROUTE:
            has_route = true;
            check_route(cx, st);
            break;
        case AST_T_COLUMNS:
        case AST_T_DROP:
            if (st->to)
                resolve_refs(cx, st->to, &st->to_set);
            if (st->kind == AST_T_DROP || st != t->cols)
                for (size_t i = 0; i < st->cols->n; i++)
                    check_col(cx, t, st->cols->v[i].s, st->cols->v[i].loc);
            if (t->key == NULL)
                break;
            for (size_t i = 0; i < t->key->cols->n; i++) {
                const ast_id *k = &t->key->cols->v[i];

                if (st->kind == AST_T_DROP && ids_has(st->cols, k->s)) {
                    for (size_t j = 0; j < st->cols->n; j++)
                        if (strcmp(st->cols->v[j].s, k->s) == 0)
                            ERR(cx, st->cols->v[j].loc, "cannot drop key column '%s'", k->s);
                } else if (st->kind == AST_T_COLUMNS && st != t->cols && !ids_has(st->cols, k->s)) {
                    /* (the general list is checked at the key: unknown column) */
                    ERR(cx, st->loc, "columns list leaves out key column '%s'", k->s);
                }
            }
            break;
        case AST_T_DEPENDS:
            check_depends(cx, st);
            break;
        case AST_T_CONFLICT:
            if (st == t->conflict)
                check_conflict(cx, st);
            break;
        default:
            break;
        }
    }
    check_selections(cx, t);
    if (!has_route)
        sl_diags_add(cx->d, SL_SEV_WARNING, t->pat->loc,
                     "table %s has no route: changes of this table go nowhere", t->pat->s);
}

/* ---- dependency cycles ------------------------------------------------------------- */

static void report_cycle(checker *cx, int *stack, size_t depth, int start, const ast_tstmt *edge)
{
    sl_buf b = SL_BUF_INIT;
    size_t i = 0;

    while (i < depth && stack[i] != start)
        i++;
    for (; i < depth; i++)
        sl_buf_printf(&b, "%s -> ", cx->s->tables[stack[i]].pat->s);
    sl_buf_puts(&b, cx->s->tables[start].pat->s);
    ERR(cx, edge->loc, "dependency cycle: %s", b.data);
    sl_buf_free(&b);
}

static void dfs(checker *cx, int v, int *color, int *stack, size_t depth)
{
    const sl_sema_table *t = &cx->s->tables[v];

    color[v] = 1;
    stack[depth] = v;
    for (const ast_tstmt *st = t->st->body; st; st = st->next) {
        if (st->kind != AST_T_DEPENDS || st->parent < 0)
            continue;
        if (color[st->parent] == 1)
            report_cycle(cx, stack, depth + 1, st->parent, st);
        else if (color[st->parent] == 0)
            dfs(cx, st->parent, color, stack, depth + 1);
    }
    color[v] = 2;
}

static void check_cycles(checker *cx)
{
    size_t n = cx->s->ntables;
    int *color = sl_xcalloc(n + 1, sizeof *color);
    int *stack = sl_xcalloc(n + 1, sizeof *stack);

    for (size_t i = 0; i < n; i++)
        if (!cx->s->tables[i].ignored && color[i] == 0)
            dfs(cx, (int)i, color, stack, 0);
    free(color);
    free(stack);
}

/* Diagnostics in reading order (file, line, column) rather than pass order;
 * a note stays after the message it belongs to. */
static int file_rank(const sl_diags *d, const char *file)
{
    for (size_t i = 0; i < d->nsrc; i++)
        if (d->src[i].name == file)
            return (int)i;
    return -1;
}

static bool diag_before(const sl_diags *d, const sl_diag *a, const sl_diag *b)
{
    int fa = file_rank(d, a->loc.file), fb = file_rank(d, b->loc.file);

    if (fa != fb)
        return fa < fb;
    if (a->loc.line != b->loc.line)
        return a->loc.line < b->loc.line;
    return a->loc.col < b->loc.col;
}

static void sort_diags(sl_diags *d, size_t first)
{
    size_t n = d->n - first, ngroups = 0, k = 0;
    size_t *start;
    sl_diag *out;

    if (n < 2)
        return;
    start = sl_xcalloc(n, sizeof *start);
    out = sl_xcalloc(n, sizeof *out);

    for (size_t i = first; i < d->n; i++)
        if (d->v[i].sev != SL_SEV_NOTE || i == first)
            start[ngroups++] = i;
    /* Insertion sort of the group heads keeps equal positions in pass order. */
    for (size_t i = 1; i < ngroups; i++) {
        size_t v = start[i], j = i;

        while (j > 0 && diag_before(d, &d->v[v], &d->v[start[j - 1]])) {
            start[j] = start[j - 1];
            j--;
        }
        start[j] = v;
    }
    for (size_t g = 0; g < ngroups; g++) {
        size_t i = start[g];

        do
            out[k++] = d->v[i++];
        while (i < d->n && d->v[i].sev == SL_SEV_NOTE);
    }
    memcpy(d->v + first, out, n * sizeof *out);
    free(start);
    free(out);
}

/* ---- entry points --------------------------------------------------------------- */

size_t sl_check(ast_rules *r, sl_diags *d, sl_sema *s)
{
    checker cx;
    size_t before = d->nerrors, first = d->n;

    memset(s, 0, sizeof *s);
    memset(&cx, 0, sizeof cx);
    cx.d = d;
    cx.s = s;
    check_sites(&cx, r);
    check_groups(&cx, r);
    check_settings(&cx, r);
    collect_tables(&cx, r);
    for (size_t i = 0; i < s->ntables; i++)
        if (!s->tables[i].ignored)
            check_table(&cx, &s->tables[i]);
    check_cycles(&cx);
    sort_diags(d, first);
    return d->nerrors - before;
}

void sl_sema_free(sl_sema *s)
{
    free(s->sites);
    free(s->groups);
    free(s->tables);
    for (size_t i = 0; i < s->nlua; i++)
        free(s->lua[i]);
    free(s->lua);
    memset(s, 0, sizeof *s);
}

static void sel_add(const char ***v, size_t *n, const char *col)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], col) == 0)
            return;
    *v = sl_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = col;
}

void sl_sema_selection(const sl_sema *s, const sl_sema_table *t, int site, sl_sel_tmp *out)
{
    const ast_tstmt *chosen = t->cols;

    (void)s;
    memset(out, 0, sizeof *out);
    /* The last `columns ... to` naming this site wins over the general list. */
    for (const ast_tstmt *st = t->st->body; st; st = st->next)
        if (st->kind == AST_T_COLUMNS && st->to_set && sl_siteset_has(st->to_set, site))
            chosen = st;
    for (const ast_tstmt *st = t->st->body; st; st = st->next) {
        if (st->kind != AST_T_DROP || (st->to && !(st->to_set && sl_siteset_has(st->to_set, site))))
            continue;
        for (size_t i = 0; i < st->cols->n; i++)
            sel_add(&out->drop, &out->ndrop, st->cols->v[i].s);
    }
    if (chosen == NULL) {
        out->all = true;
        return;
    }
    /* An explicit list: apply the drops now, so `drop` only qualifies "all". */
    for (size_t i = 0; i < chosen->cols->n; i++) {
        bool dropped = false;

        for (size_t k = 0; k < out->ndrop; k++)
            if (strcmp(out->drop[k], chosen->cols->v[i].s) == 0)
                dropped = true;
        if (!dropped)
            sel_add(&out->cols, &out->ncols, chosen->cols->v[i].s);
    }
    free(out->drop);
    out->drop = NULL;
    out->ndrop = 0;
}

void sl_sel_tmp_free(sl_sel_tmp *t)
{
    free(t->cols);
    free(t->drop);
    memset(t, 0, sizeof *t);
}
