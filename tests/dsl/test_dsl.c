/*
 * test_dsl.c - the rules language: lexer, parser, checker, compiler, explain.
 *
 * Run from the repository root (ctest does). Parts:
 *   - valid programs, checking the compiled sl_program field by field;
 *   - a table of invalid programs, each with the exact diagnostic expected;
 *   - table lookup (globs, specificity) and topic expansion tables;
 *   - expression formatting round trips;
 *   - golden files: tests/dsl/golden/NAME.rules compiled with
 *     sl_compile_files; NAME.explain holds the expected sl_program_explain
 *     text (absent when it must not compile) and NAME.err the expected
 *     sl_diags_format text (absent when there are no diagnostics).
 *     Regenerate them with   tests/dsl/regen-golden.sh   (it runs this
 *     program with SLUICE_REGEN_GOLDEN=1, which writes instead of comparing;
 *     review the diff before committing);
 *   - every ```rules block of docs/rules.md compiles (```rules-error blocks
 *     must fail), and the shipped rules/ files and the retail example compile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "dsl/program.h"

/* ---- helpers ---------------------------------------------------------------- */

typedef struct compiled {
    sl_program *p;
    sl_diags d;
    sl_buf text; /* formatted diagnostics */
} compiled;

static void compile(compiled *c, const char *src)
{
    memset(c, 0, sizeof *c);
    sl_diags_init(&c->d);
    c->p = sl_compile_text("t.rules", src, strlen(src), &c->d);
    sl_diags_format(&c->d, &c->text);
}

static void release(compiled *c)
{
    sl_program_unref(c->p);
    sl_diags_free(&c->d);
    sl_buf_free(&c->text);
}

static sl_program *must_compile(compiled *c, const char *src)
{
    compile(c, src);
    if (c->p == NULL)
        fail_msg("did not compile:\n%s\n--- diagnostics:\n%s", src, c->text.data);
    return c->p;
}

static int site(const sl_program *p, const char *name)
{
    int i = sl_program_site(p, name, strlen(name));

    if (i < 0)
        fail_msg("no site %s", name);
    return i;
}

static const sl_table *table(const sl_program *p, const char *pattern)
{
    for (size_t i = 0; i < p->ntables; i++)
        if (strcmp(p->tables[i].pattern, pattern) == 0)
            return &p->tables[i];
    fail_msg("no table block %s", pattern);
    return NULL;
}

/* "a,b,c" == names of the sites in s */
static void assert_set(const sl_program *p, const sl_siteset *s, const char *names)
{
    sl_buf b = SL_BUF_INIT;

    for (size_t i = 0; i < p->nsites; i++)
        if (sl_siteset_has(s, (int)i))
            sl_buf_printf(&b, "%s%s", b.len ? "," : "", p->sites[i].name);
    assert_string_equal(b.data ? b.data : "", names);
    sl_buf_free(&b);
}

/* "all", "all-email", or "id,name" */
static void assert_sel(const sl_colsel *s, const char *want)
{
    sl_buf b = SL_BUF_INIT;

    if (s->all) {
        sl_buf_puts(&b, "all");
        for (size_t i = 0; i < s->ndrop; i++)
            sl_buf_printf(&b, "-%s", s->drop[i]);
    } else {
        for (size_t i = 0; i < s->ncols; i++)
            sl_buf_printf(&b, "%s%s", i ? "," : "", s->cols[i]);
    }
    assert_string_equal(b.data ? b.data : "", want);
    sl_buf_free(&b);
}

static void assert_expr(const sl_expr *e, const char *want)
{
    sl_buf b = SL_BUF_INIT;

    sl_expr_format(e, &b);
    assert_string_equal(b.data, want);
    sl_buf_free(&b);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    sl_buf b = SL_BUF_INIT;
    char chunk[4096];
    size_t n;

    if (f == NULL)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_buf_append(&b, chunk, n);
    fclose(f);
    if (len)
        *len = b.len;
    return sl_buf_steal(&b, NULL);
}

#define SITES "site central hub priority 100;\nsite store_01, store_02, store_03;\n"

/* ---- valid programs ----------------------------------------------------------- */

static void test_sites(void **state)
{
    compiled c;
    const sl_program *p = must_compile(&c, "site central hub priority 100;\n"
                                           "site store_01, store_02 priority 5;\n"
                                           "site store_04 priority -1 source \"pg-store-04\";\n"
                                           "table t { route * -> *; }\n");

    (void)state;
    assert_int_equal(p->nsites, 4);
    assert_int_equal(p->hub, 0);
    assert_true(p->sites[0].hub);
    assert_false(p->sites[1].hub);
    assert_int_equal(p->sites[0].priority, 100);
    assert_int_equal(p->sites[2].priority, 5);
    assert_int_equal(p->sites[3].priority, -1);
    assert_string_equal(p->sites[1].source_name, "store_01");
    assert_string_equal(p->sites[3].source_name, "pg-store-04");
    assert_int_equal(sl_program_site(p, "store_04", 8), 3);
    assert_int_equal(sl_program_site(p, "pg-store-04", 11), 3); /* falls back to source */
    assert_int_equal(sl_program_site_by_source(p, "pg-store-04", 11), 3);
    assert_int_equal(sl_program_site_by_source(p, "store_04", 8), -1);
    assert_int_equal(sl_program_site_by_source(p, "store_01", 8), 1);
    assert_int_equal(sl_program_site(p, "store_0", 7), -1);
    assert_int_equal(p->sites[2].loc.line, 2);
    assert_int_equal(p->sites[2].loc.col, 16);
    assert_string_equal(p->sites[2].loc.file, "t.rules");
    assert_string_equal(p->topic_template, "sluice.{dest}.{schema}.{table}");
    assert_string_equal(p->dead_letter_topic, "sluice.dead");
    assert_int_equal(p->hold_timeout_ms, 60000);
    assert_int_equal(p->nlua, 0);
    assert_int_equal(p->nfiles, 1);
    assert_string_equal(p->files[0], "t.rules");
    release(&c);
}

static void test_routes(void **state)
{
    compiled c;
    const sl_program *p =
        must_compile(&c, SITES "group east = store_01, store_02;\n"
                               "table public.orders {\n"
                               "  route central -> store_*;\n"
                               "  route store_* -> *;\n"
                               "  route hub -> remotes where after.region = 'eu';\n"
                               "  route central -> site(after.store_id);\n"
                               "  route east -> central, store_03;\n"
                               "  route store_0? -> hub;\n"
                               "}\n");
    const sl_table *t = table(p, "public.orders");

    (void)state;
    assert_int_equal(t->nroutes, 6);
    assert_set(p, &t->routes[0].from, "central");
    assert_set(p, &t->routes[0].to, "store_01,store_02,store_03");
    assert_null(t->routes[0].to_expr);
    assert_null(t->routes[0].where);
    assert_set(p, &t->routes[1].from, "store_01,store_02,store_03");
    assert_set(p, &t->routes[1].to, "central,store_01,store_02,store_03");
    assert_set(p, &t->routes[2].from, "central");
    assert_set(p, &t->routes[2].to, "store_01,store_02,store_03");
    assert_non_null(t->routes[2].where);
    assert_expr(t->routes[2].where, "after.region = 'eu'");
    assert_set(p, &t->routes[3].to, "");
    assert_non_null(t->routes[3].to_expr);
    assert_int_equal(t->routes[3].to_expr->kind, SL_X_FIELD);
    assert_int_equal(t->routes[3].to_expr->sec, SL_SEC_AFTER);
    assert_string_equal(t->routes[3].to_expr->name, "store_id");
    assert_set(p, &t->routes[4].from, "store_01,store_02");
    assert_set(p, &t->routes[4].to, "central,store_03");
    assert_set(p, &t->routes[5].from, "store_01,store_02,store_03");
    assert_int_equal(t->routes[4].loc.line, 9);
    release(&c);
}

static void test_columns(void **state)
{
    compiled c;
    const sl_program *p = must_compile(&c, SITES "table public.customers {\n"
                                                 "  route * -> *;\n"
                                                 "  columns id, name, email, tier, updated_at;\n"
                                                 "  drop column email to store_*;\n"
                                                 "  columns id, name to store_03;\n"
                                                 "}\n"
                                                 "table public.products {\n"
                                                 "  route * -> *;\n"
                                                 "  drop columns cost, margin to remotes;\n"
                                                 "  drop column secret;\n"
                                                 "}\n");
    const sl_table *t = table(p, "public.customers");
    const sl_table *u = table(p, "public.products");

    (void)state;
    assert_sel(t->sel[site(p, "central")], "id,name,email,tier,updated_at");
    assert_sel(t->sel[site(p, "store_01")], "id,name,tier,updated_at");
    assert_sel(t->sel[site(p, "store_03")], "id,name");
    /* identical selections are one shared object */
    assert_ptr_equal(t->sel[site(p, "store_01")], t->sel[site(p, "store_02")]);
    assert_ptr_not_equal(t->sel[site(p, "store_01")], t->sel[site(p, "store_03")]);
    assert_sel(u->sel[site(p, "central")], "all-secret");
    assert_sel(u->sel[site(p, "store_02")], "all-cost-margin-secret");
    release(&c);
}

static void test_key_deps_conflicts(void **state)
{
    compiled c;
    const sl_program *p = must_compile(
        &c, SITES "lua \"examples/retail/hooks/retail.lua\";\n"
                  "hold timeout 90s;\n"
                  "table public.customers { route * -> *; on conflict lua merge_points; }\n"
                  "table public.orders {\n"
                  "  route * -> *;\n"
                  "  depends on public.customers (customer_id = id);\n"
                  "  on conflict prefer central;\n"
                  "  on delete conflict delete wins;\n"
                  "}\n"
                  "table public.order_lines {\n"
                  "  key (order_id, line_no);\n"
                  "  route * -> *;\n"
                  "  depends on public.orders (order_id = id, region = region) timeout 500ms;\n"
                  "  on conflict manual;\n"
                  "  on delete conflict update wins;\n"
                  "}\n"
                  "table public.inventory {\n"
                  "  key sku, store_id;\n"
                  "  route * -> *;\n"
                  "  on conflict merge { qty: delta; price: prefer store_02; updated_at: max;\n"
                  "                      low: min; *: latest }\n"
                  "}\n"
                  "table public.plain { route * -> *; }\n");
    const sl_table *cu = table(p, "public.customers"), *o = table(p, "public.orders");
    const sl_table *l = table(p, "public.order_lines"), *inv = table(p, "public.inventory");
    const sl_table *pl = table(p, "public.plain");

    (void)state;
    assert_int_equal(p->hold_timeout_ms, 90000);
    assert_int_equal(p->nlua, 1);
    assert_string_equal(p->lua_files[0], "examples/retail/hooks/retail.lua");
    assert_int_equal(cu->conflict.kind, SL_CONFLICT_LUA);
    assert_string_equal(cu->conflict.lua_fn, "merge_points");

    assert_int_equal(o->ndeps, 1);
    assert_string_equal(o->deps[0].parent, "public.customers");
    assert_ptr_equal(&p->tables[o->deps[0].parent_table], cu);
    assert_int_equal(o->deps[0].ncols, 1);
    assert_string_equal(o->deps[0].child_cols[0], "customer_id");
    assert_string_equal(o->deps[0].parent_cols[0], "id");
    assert_int_equal(o->deps[0].timeout_ms, 0);
    assert_int_equal(o->conflict.kind, SL_CONFLICT_PREFER);
    assert_int_equal(o->conflict.prefer_site, site(p, "central"));
    assert_int_equal(o->conflict.on_delete, SL_DELETE_WINS);
    assert_int_equal(o->nkey, 0);

    assert_int_equal(l->nkey, 2);
    assert_string_equal(l->key_cols[0], "order_id");
    assert_string_equal(l->key_cols[1], "line_no");
    assert_ptr_equal(&p->tables[l->deps[0].parent_table], o);
    assert_int_equal(l->deps[0].ncols, 2);
    assert_string_equal(l->deps[0].child_cols[1], "region");
    assert_int_equal(l->deps[0].timeout_ms, 500);
    assert_int_equal(l->conflict.kind, SL_CONFLICT_MANUAL);
    assert_int_equal(l->conflict.on_delete, SL_DELETE_UPDATE_WINS);

    assert_int_equal(inv->nkey, 2);
    assert_int_equal(inv->conflict.kind, SL_CONFLICT_MERGE);
    assert_int_equal(inv->conflict.ncols, 5);
    assert_string_equal(inv->conflict.cols[0].column, "qty");
    assert_int_equal(inv->conflict.cols[0].kind, SL_MERGE_DELTA);
    assert_int_equal(inv->conflict.cols[1].kind, SL_MERGE_PREFER);
    assert_int_equal(inv->conflict.cols[1].site, site(p, "store_02"));
    assert_int_equal(inv->conflict.cols[2].kind, SL_MERGE_MAX);
    assert_int_equal(inv->conflict.cols[3].kind, SL_MERGE_MIN);
    assert_string_equal(inv->conflict.cols[4].column, "*");
    assert_int_equal(inv->conflict.cols[4].kind, SL_MERGE_LATEST);

    assert_int_equal(pl->conflict.kind, SL_CONFLICT_LATEST);
    assert_int_equal(pl->conflict.on_delete, SL_DELETE_LATEST);
    assert_null(pl->where);
    release(&c);
}

/* `detect conflicts by before | version;`, and the words it made keywords
 * still working as table and column names. */
static void test_detect_conflicts(void **state)
{
    compiled c;
    const sl_program *p = must_compile(
        &c, SITES "table public.detect {\n"
                  "  key (version);\n"
                  "  columns version, before, by, detect, conflicts, id;\n"
                  "  drop column before to store_01;\n"
                  "  route * -> * where after.version > 1 AND before.before IS NOT NULL;\n"
                  "  detect conflicts by before;\n"
                  "  on conflict merge { version: max; by: prefer store_02; *: latest; }\n"
                  "}\n"
                  "table version.before {\n"
                  "  route * -> *;\n"
                  "  depends on public.detect (by = version);\n"
                  "  DETECT Conflicts BY Version;\n"
                  "}\n"
                  "table public.plain { route * -> *; on conflict manual; }\n");
    const sl_table *d = table(p, "public.detect"), *v = table(p, "version.before");
    const sl_table *pl = table(p, "public.plain");
    sl_buf b = SL_BUF_INIT;

    (void)state;
    assert_true(d->conflict.detect_before);
    assert_false(v->conflict.detect_before);
    assert_false(pl->conflict.detect_before);
    /* The detection mode does not change the resolution policy. */
    assert_int_equal(d->conflict.kind, SL_CONFLICT_MERGE);
    assert_int_equal(v->conflict.kind, SL_CONFLICT_LATEST);
    assert_int_equal(pl->conflict.kind, SL_CONFLICT_MANUAL);

    assert_int_equal(d->nkey, 1);
    assert_string_equal(d->key_cols[0], "version");
    assert_sel(d->sel[site(p, "central")], "version,before,by,detect,conflicts,id");
    assert_sel(d->sel[site(p, "store_01")], "version,by,detect,conflicts,id");
    assert_expr(d->routes[0].where, "after.version > 1 AND before.before IS NOT NULL");
    assert_string_equal(d->conflict.cols[0].column, "version");
    assert_string_equal(d->conflict.cols[1].column, "by");
    assert_int_equal(d->conflict.cols[1].site, site(p, "store_02"));
    assert_int_equal(v->ndeps, 1);
    assert_string_equal(v->deps[0].child_cols[0], "by");
    assert_string_equal(v->deps[0].parent_cols[0], "version");

    sl_program_explain(p, &b);
    assert_non_null(strstr(b.data, "table public.detect\n"));
    assert_non_null(strstr(b.data, "  detect conflicts: by before image (events without a full "
                                   "before: by version)\n  on conflict: merge per column\n"));
    assert_non_null(strstr(b.data, "  detect conflicts: by version (default)\n"
                                   "  on conflict: manual"));
    sl_buf_free(&b);
    release(&c);
}

static void test_where_and_types(void **state)
{
    compiled c;
    const sl_program *p = must_compile(
        &c, SITES "table t {\n"
                  "  route * -> *;\n"
                  "  where after.qty * 2 > 10;\n"
                  "  WHERE After.\"Order Id\" = 'it''s' OR op IN ('c', 'u');\n"
                  "  where NOT length(upper(after.name)) < 3 AND after.x IS NOT NULL;\n"
                  "}\n");
    const sl_table *t = table(p, "t");
    const sl_expr *w = t->where;

    (void)state;
    assert_non_null(w);
    assert_int_equal(w->kind, SL_X_AND);
    assert_int_equal(w->type, SL_T_BOOL);
    assert_int_equal(w->a->kind, SL_X_AND);
    assert_int_equal(w->a->a->kind, SL_X_CMP);
    assert_int_equal(w->a->a->op, SL_CMP_GT);
    assert_int_equal(w->a->a->a->kind, SL_X_ARITH);
    assert_int_equal(w->a->a->a->type, SL_T_NUMBER);
    assert_int_equal(w->a->b->kind, SL_X_OR);
    assert_string_equal(w->a->b->a->a->name, "Order Id");
    assert_int_equal(w->a->b->a->b->lit.type, SL_V_STRING);
    assert_int_equal(w->a->b->a->b->lit.u.s.len, 4);
    assert_memory_equal(w->a->b->a->b->lit.u.s.p, "it's", 4);
    assert_int_equal(w->b->b->kind, SL_X_ISNULL);
    assert_true(w->b->b->negated);
    assert_int_equal(w->b->a->kind, SL_X_NOT);
    assert_int_equal(w->b->a->a->a->kind, SL_X_CALL);
    assert_int_equal(w->b->a->a->a->op, SL_FN_LENGTH);
    assert_int_equal(w->b->a->a->a->nargs, 1);
    assert_int_equal(w->b->a->a->a->args[0]->op, SL_FN_UPPER);
    assert_expr(w, "after.qty * 2 > 10 AND (after.\"Order Id\" = 'it''s' OR op IN ('c', 'u')) "
                   "AND (NOT length(upper(after.name)) < 3 AND after.x IS NOT NULL)");
    assert_int_equal(w->a->a->loc.line, 5);
    assert_int_equal(w->a->a->loc.col, 9);
    release(&c);
}

static void test_settings_and_version(void **state)
{
    compiled c;
    const char *src = "# a comment\nSITE central HUB; site a;\n"
                      "topic 'x.{dest}.{origin}.{db}.{table}';\n"
                      "dead letters \"dl\";\n"
                      "hold timeout 2h;\n"
                      "table t { Route * -> *; topic \"t.{table}\"; }\n"
                      "table u { route * -> *; }\n";
    const sl_program *p = must_compile(&c, src);
    char want[17];

    (void)state;
    snprintf(want, sizeof want, "%016llx",
             (unsigned long long)sl_hash64(src, strlen(src), SL_HASH_SEED));
    assert_string_equal(p->version, want);
    assert_string_equal(p->topic_template, "x.{dest}.{origin}.{db}.{table}");
    assert_string_equal(p->dead_letter_topic, "dl");
    assert_int_equal(p->hold_timeout_ms, 7200000);
    assert_string_equal(table(p, "t")->topic, "t.{table}");
    assert_string_equal(table(p, "u")->topic, "x.{dest}.{origin}.{db}.{table}");
    /* refcounting: a second reference keeps it alive after one unref */
    assert_ptr_equal(sl_program_ref(c.p), c.p);
    sl_program_unref(c.p);
    assert_string_equal(p->dead_letter_topic, "dl");
    release(&c);
}

static void test_durations(void **state)
{
    static const struct {
        const char *d;
        int64_t ms;
    } cases[] = {{"500ms", 500},   {"30s", 30000}, {"5m", 300000}, {"2h", 7200000},
                 {"1d", 86400000}, {"1S", 1000},   {"10MS", 10}};

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        compiled c;
        char src[200];

        snprintf(src, sizeof src, "site h hub; site r; hold timeout %s; table t { route * -> *; }",
                 cases[i].d);
        must_compile(&c, src);
        assert_int_equal(c.p->hold_timeout_ms, cases[i].ms);
        release(&c);
    }
}

static void test_multi_file(void **state)
{
    const char *paths[] = {"tests/dsl/data/sites.rules", "tests/dsl/data/tables.rules"};
    sl_diags d;
    sl_buf b = SL_BUF_INIT;
    sl_program *p;
    char *t0, *t1;
    size_t l0, l1;
    char want[17];

    (void)state;
    sl_diags_init(&d);
    p = sl_compile_files(paths, 2, &d);
    sl_diags_format(&d, &b);
    if (p == NULL)
        fail_msg("%s", b.data);
    assert_int_equal(p->nfiles, 2);
    assert_string_equal(p->files[1], "tests/dsl/data/tables.rules");
    assert_int_equal(p->nsites, 3);
    assert_string_equal(table(p, "public.orders")->loc.file, "tests/dsl/data/tables.rules");
    assert_string_equal(p->sites[0].loc.file, "tests/dsl/data/sites.rules");
    /* the version hashes both files, in order */
    t0 = slurp(paths[0], &l0);
    t1 = slurp(paths[1], &l1);
    snprintf(want, sizeof want, "%016llx",
             (unsigned long long)sl_hash64(t1, l1, sl_hash64(t0, l0, SL_HASH_SEED)));
    assert_string_equal(p->version, want);
    free(t0);
    free(t1);
    sl_program_unref(p);
    sl_buf_free(&b);
    sl_diags_free(&d);

    /* a missing file is an error, not a crash */
    sl_diags_init(&d);
    paths[1] = "tests/dsl/data/missing.rules";
    assert_null(sl_compile_files(paths, 2, &d));
    sl_diags_format(&d, &b);
    assert_non_null(strstr(b.data, "tests/dsl/data/missing.rules: error: cannot read rule file"));
    sl_buf_free(&b);
    sl_diags_free(&d);
}

/* ---- table lookup ------------------------------------------------------------------ */

static void test_find_table(void **state)
{
    static const struct {
        const char *schema, *table, *want; /* want NULL: no block */
    } cases[] = {
        {"public", "orders", "public.orders"},
        {"public", "order_lines", "public.order_*"},
        {"public", "order_x", "public.order_?"},
        {"sales", "orders", "*.orders"},
        {"inventory", "orders", "*.orders"}, /* MySQL: db as the schema */
        {"public", "customers", "public.*"},
        {"public", "tmp_1", "public.tmp_*"},
        {"x", "audit", "audit"},
        {"", "audit", "audit"},
        {"x", "y", "*.*"},
    };
    compiled c;
    const sl_program *p = must_compile(&c, "site h hub; site r;\n"
                                           "table *.* { route * -> *; }\n"
                                           "table public.* { route * -> *; }\n"
                                           "table public.order_? { route * -> *; }\n"
                                           "table public.order_* { route * -> *; }\n"
                                           "table *.orders { route * -> *; }\n"
                                           "table public.orders { route * -> *; }\n"
                                           "table audit { route * -> *; }\n"
                                           "ignore table public.tmp_*;\n");

    (void)state;
    /* exact names first, then globs by specificity, ties by declaration */
    assert_string_equal(p->tables[0].pattern, "public.orders");
    assert_false(p->tables[0].is_glob);
    /* equal specificity: the one declared first */
    assert_string_equal(p->tables[1].pattern, "public.order_?");
    assert_string_equal(p->tables[2].pattern, "public.order_*");
    assert_string_equal(p->tables[p->ntables - 1].pattern, "*.*");
    for (size_t i = 1; i < p->ntables; i++) {
        assert_true(p->tables[i].is_glob);
        assert_true(p->tables[i].specificity <= p->tables[i - 1].specificity || i == 1);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const sl_table *t = sl_program_find_table(p, cases[i].schema, strlen(cases[i].schema),
                                                  cases[i].table, strlen(cases[i].table));

        if (t == NULL)
            fail_msg("%s.%s: no block", cases[i].schema, cases[i].table);
        assert_string_equal(t->pattern, cases[i].want);
    }
    assert_true(sl_program_find_table(p, "public", 6, "tmp_1", 5)->ignored);
    release(&c);

    must_compile(&c, "site h hub; site r; table public.a { route * -> *; }");
    assert_null(sl_program_find_table(c.p, "public", 6, "b", 1));
    assert_null(sl_program_find_table(c.p, "other", 5, "a", 1));
    assert_non_null(sl_program_find_table(c.p, "public", 6, "a", 1));
    release(&c);
}

static void test_topics(void **state)
{
    static const struct {
        const char *table, *dest, *origin, *schema, *tbl, *want;
    } cases[] = {
        {"public.a", "store_01", "central", "public", "a", "sluice.store_01.public.a"},
        {"public.b", "central", "store_02", "public", "b", "b.central.store_02.public.public.b"},
        {"shop.c", "store_01", NULL, "shop", "c", "c-c-shop-"},
    };
    compiled c;
    const sl_program *p = must_compile(
        &c, "site central hub; site store_01, store_02;\n"
            "table public.a { route * -> *; }\n"
            "table public.b { route * -> *; topic 'b.{dest}.{origin}.{schema}.{db}.{table}'; }\n"
            "table shop.c { route * -> *; topic 'c-{table}-{schema}-{origin}'; }\n");

    (void)state;
    (void)p;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_buf out = SL_BUF_INIT;
        sl_str schema = {cases[i].schema, strlen(cases[i].schema)};
        sl_str tbl = {cases[i].tbl, strlen(cases[i].tbl)};

        sl_program_topic(c.p, table(c.p, cases[i].table), cases[i].dest, cases[i].origin, schema,
                         tbl, &out);
        assert_string_equal(out.data, cases[i].want);
        sl_buf_free(&out);
    }
    release(&c);
}

/* ---- expression formatting ---------------------------------------------------------- */

static void test_format_roundtrip(void **state)
{
    static const char *const exprs[] = {
        "after.a = 1",
        "after.a = 1 AND after.b = 2 OR after.c = 3",
        "after.a = 1 AND (after.b = 2 OR after.c = 3)",
        "NOT (after.a = 1 OR after.b = 2)",
        "(after.a + 2) * 3 - -after.b / 4 % 5 > 1.5",
        "after.a - (after.b - after.c) = 0",
        "after.s || '-' || lower(after.t) LIKE 'x%'",
        "after.s NOT LIKE '%''q'",
        "after.n NOT IN (1, 2.25, 3e+20) AND after.m IN ('a')",
        "before.x IS NULL OR row.y IS NOT NULL",
        "coalesce(after.a, before.a, 'z') = substr(key.id, 1, 2)",
        "source.ts_ms >= 100 AND origin <> 'central' AND op = 'd'",
        "starts_with(after.a, 'x') AND ends_with(after.a, 'y') AND contains(after.a, 'z')",
        "abs(after.delta) > 0 AND length(trim(after.n)) = 0 AND upper(after.c) = 'X'",
        "after.flag = true OR after.flag = false",
        "after.\"odd name\" <> ''",
    };

    (void)state;
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        compiled c, c2;
        sl_buf src = SL_BUF_INIT, once = SL_BUF_INIT, src2 = SL_BUF_INIT, twice = SL_BUF_INIT;

        sl_buf_printf(&src, "site h hub; site r; table t { route * -> *; where %s; }", exprs[i]);
        must_compile(&c, src.data);
        sl_expr_format(c.p->tables[0].where, &once);
        /* re-parse what was printed: same text again */
        sl_buf_printf(&src2, "site h hub; site r; table t { route * -> *; where %s; }", once.data);
        must_compile(&c2, src2.data);
        sl_expr_format(c2.p->tables[0].where, &twice);
        assert_string_equal(once.data, twice.data);
        assert_string_equal(once.data, exprs[i]);
        release(&c);
        release(&c2);
        sl_buf_free(&src);
        sl_buf_free(&once);
        sl_buf_free(&src2);
        sl_buf_free(&twice);
    }
}

/* ---- diagnostics table ------------------------------------------------------------ */

/* Each case: a rule set and one diagnostic that must appear in the formatted
 * output, as "line:col: severity: message". fails=false: it must compile
 * (the diagnostic is a warning). */
static const struct errcase {
    const char *name;
    const char *text;
    const char *want;
    bool fails;
} errcases[] = {
    /* syntax and lexical */
    {"missing semicolon", SITES "table t {\n  route * -> *\n}\n",
     "4:15: error: missing ';' at the end of the statement", true},
    {"missing semicolon at eol", SITES "lua 'x.lua'\nsite a;\n",
     "3:12: error: missing ';' at the end of the statement", true},
    {"unexpected token", SITES "site a b;\n",
     "3:8: error: unexpected name 'b', expecting 'hub', 'priority', 'source', ';' or ','", true},
    {"unterminated string", SITES "table t { where after.a = 'abc;\n}\n",
     "3:27: error: unterminated string", true},
    {"bad character", SITES "table t { route * -> @; }\n", "3:22: error: unexpected character '@'",
     true},
    {"space in glob", SITES "table t { route store_ * -> *; }\n",
     "3:23: error: unexpected space inside the name 'store_ *'", true},
    {"end of file", SITES "table t { route * -> *;\n", "3:24: error: unexpected end of file", true},
    {"bad merge strategy", SITES "table t { route * -> *; on conflict merge { a: newest; } }\n",
     "3:48: error: unexpected name 'newest', expecting 'delta', 'latest', 'max', 'min' or 'prefer'",
     true},
    {"integer too large", SITES "table t { route * -> *; where after.a = 99999999999999999999; }\n",
     "3:41: error: integer '99999999999999999999' is too large", true},
    {"several syntax errors", SITES "site a b;\ntable t { route * -> *\n}\n",
     "4:23: error: missing ';' at the end of the statement", true},
    /* sites and groups */
    {"unknown site", SITES "table t {\n    route central -> store_9;\n}\n",
     "4:22: error: unknown site or group 'store_9'; did you mean 'store_01'?", true},
    {"glob matches nothing", SITES "table t { route central -> shop_*; }\n",
     "3:28: error: site pattern 'shop_*' matches no site", true},
    {"unknown group member", SITES "group east = store_01, estore;\n",
     "3:24: error: unknown site or group 'estore'", true},
    {"unknown site in columns to", SITES "table t { route * -> *; columns a to nowhere; }\n",
     "3:38: error: unknown site or group 'nowhere'", true},
    {"unknown site in drop to", SITES "table t { route * -> *; drop column a to stores; }\n",
     "3:42: error: unknown site or group 'stores'", true},
    {"no hub", "site a, b;\ntable t { route * -> *; }\n", "1:1: error: no hub site", true},
    {"no sites", "table t { route * -> *; }\n", "1:1: error: no sites declared", true},
    {"two hubs", "site a hub;\nsite b hub;\n",
     "2:8: error: a second hub 'b': 'a' is already the hub", true},
    {"duplicate site", SITES "site store_02;\n", "3:6: error: duplicate site 'store_02'", true},
    {"duplicate site note", SITES "site store_02;\n", "2:16: note: the first declaration is here",
     true},
    {"duplicate group", SITES "group g = store_01;\ngroup g = store_02;\n",
     "4:7: error: duplicate group 'g'", true},
    {"group named like a site", SITES "group store_01 = store_02;\n",
     "3:7: error: group 'store_01' has the name of a site", true},
    {"reserved site name", SITES "site remotes;\n",
     "3:6: error: 'remotes' is a predefined group and cannot name a site", true},
    {"duplicate source name", SITES "site x source 'store_01';\n",
     "3:6: error: sites 'store_01' and 'x' have the same source name 'store_01'", true},
    /* tables */
    {"duplicate table", SITES "table t { route * -> *; }\ntable t { route * -> *; }\n",
     "4:7: error: duplicate table block for 't'", true},
    {"declared and ignored",
     SITES "table public.t { route * -> *; }\nignore table public.x, public.t;\n",
     "4:24: error: table 'public.t' is both declared and ignored", true},
    {"no route warning", SITES "table public.t { where after.a = 1; }\n",
     "3:7: warning: table public.t has no route: changes of this table go nowhere", false},
    {"route to origin only", SITES "table t { route store_01 -> store_01; }\n",
     "3:11: error: route has no possible destination", true},
    {"route hub to hub", SITES "table t { route hub -> central; }\n",
     "3:11: error: route has no possible destination", true},
    /* columns */
    {"unknown column in where",
     SITES "table public.orders {\n  route * -> *;\n  columns id, status;\n  where after.statu = "
           "'x';\n}\n",
     "6:9: error: unknown column 'statu' in public.orders (not in its columns list); did you mean "
     "'status'?",
     true},
    {"unknown column in route",
     SITES "table t { columns id; route central -> site(after.store_id); }\n",
     "3:45: error: unknown column 'store_id' in t", true},
    {"unknown column in route where",
     SITES "table t { columns id; route * -> * where before.x = 1; }\n",
     "3:42: error: unknown column 'x' in t", true},
    {"unknown column in key", SITES "table t { route * -> *; columns id; key (sku); }\n",
     "3:42: error: unknown column 'sku' in t", true},
    {"unknown column in merge",
     SITES "table t { route * -> *; columns id, qty; on conflict merge { qtty: delta; } }\n",
     "3:62: error: unknown column 'qtty' in t (not in its columns list); did you mean 'qty'?",
     true},
    {"unknown child column",
     SITES
     "table p { route * -> *; }\ntable t { route * -> *; columns id; depends on p (pid = id); }\n",
     "4:51: error: unknown column 'pid' in t", true},
    {"unknown parent column",
     SITES "table p { route * -> *; columns id; }\ntable t { route * -> *; depends on p (pid = "
           "ident); }\n",
     "4:45: error: unknown column 'ident' in p", true},
    {"unknown column in columns to",
     SITES "table t { route * -> *; columns id, a; columns id, b to store_01; }\n",
     "3:52: error: unknown column 'b' in t", true},
    {"filter on a dropped column is fine",
     SITES "table t { route * -> *; columns id, secret; drop column secret to *; where "
           "after.secret = 'x'; }\n",
     "", false},
    {"merge on dropped column",
     SITES "table t { route * -> *; drop column qty to *; on conflict merge { qty: delta; } }\n",
     "3:67: error: merge strategy for column 'qty', which no destination receives", true},
    {"drop key column", SITES "table t { route * -> *; key (id); drop column id to store_01; }\n",
     "3:47: error: cannot drop key column 'id'", true},
    {"columns leave out key",
     SITES "table t { route * -> *; key (id); columns name to store_01; }\n",
     "3:35: error: columns list leaves out key column 'id'", true},
    {"column listed twice", SITES "table t { route * -> *; columns a, b, a; }\n",
     "3:39: error: column 'a' is listed twice", true},
    {"key column in expression", SITES "table t { route * -> *; key (id); where key.sku = 'x'; }\n",
     "3:41: error: 'sku' is not a key column of t", true},
    /* dependencies */
    {"depends on nothing", SITES "table t { route * -> *; depends on public.orders (a = b); }\n",
     "3:36: error: depends on 'public.orders', which has no table block", true},
    {"depends on ignored",
     SITES "ignore table p;\ntable t { route * -> *; depends on p (a = b); }\n",
     "4:36: error: depends on 'p', which is ignored", true},
    {"dependency cycle",
     SITES "table a { route * -> *; depends on b (x = y); }\ntable b { route * -> *; depends on c "
           "(x = y); }\ntable c { route * -> *; depends on a (x = y); }\n",
     "error: dependency cycle: a -> b -> c -> a", true},
    {"self dependency", SITES "table a { route * -> *; depends on a (parent = id); }\n",
     "3:25: error: dependency cycle: a -> a", true},
    /* conflicts */
    {"lua without file", SITES "table t { route * -> *; on conflict lua merge_points; }\n",
     "3:41: error: on conflict lua 'merge_points' needs a lua file", true},
    {"lua file missing", SITES "lua \"hooks/nope.lua\";\n",
     "3:5: error: cannot read lua file 'hooks/nope.lua'", true},
    {"prefer unknown site", SITES "table t { route * -> *; on conflict prefer centrl; }\n",
     "3:44: error: unknown site 'centrl'; did you mean 'central'?", true},
    {"merge prefer unknown site",
     SITES "table t { route * -> *; on conflict merge { a: prefer hq; } }\n",
     "3:55: error: unknown site 'hq'", true},
    {"merge column twice",
     SITES "table t { route * -> *; on conflict merge { *: max; *: min; } }\n",
     "3:53: error: merge strategy for '*' is given twice", true},
    {"duplicate on conflict",
     SITES "table t { route * -> *; on conflict latest; on conflict manual; }\n",
     "3:45: error: duplicate on conflict in table t", true},
    {"duplicate on delete",
     SITES "table t { route * -> *; on delete conflict latest; on delete conflict delete wins; }\n",
     "3:52: error: duplicate on delete conflict in table t", true},
    {"duplicate detect conflicts",
     SITES "table t { route * -> *; detect conflicts by before; detect conflicts by version; }\n",
     "3:53: error: duplicate detect conflicts in table t", true},
    {"duplicate detect conflicts note",
     SITES "table t { route * -> *; detect conflicts by before; detect conflicts by before; }\n",
     "3:25: note: the first detect conflicts is here", true},
    {"unknown detection mode", SITES "table t { route * -> *; detect conflicts by image; }\n",
     "3:45: error: unexpected name 'image', expecting 'before' or 'version'", true},
    {"detect conflict without s", SITES "table t { route * -> *; detect conflict by before; }\n",
     "3:32: error: unexpected 'conflict', expecting 'conflicts'", true},
    {"detect conflicts in an ignored table",
     SITES "ignore table t;\ntable t { route * -> *; detect conflicts by before; }\n",
     "table 't' is both declared and ignored", true},
    {"bare keyword name", SITES "table t { route * -> *; where version > 1; }\n",
     "3:31: error: unknown name 'version': write after.version, before.version or "
     "row.version",
     true},
    {"duplicate key", SITES "table t { route * -> *; key (a); key (b); }\n",
     "3:34: error: duplicate key in table t", true},
    /* topics and settings */
    {"unknown placeholder", SITES "topic \"sluice.{dst}.{table}\";\n",
     "3:15: error: unknown placeholder '{dst}' in topic template", true},
    {"unknown placeholder in table", SITES "table t { route * -> *; topic 'x.{tabel}'; }\n",
     "3:34: error: unknown placeholder '{tabel}' in topic template (known: {dest} {origin} "
     "{schema} {table} {db}); did you mean 'table'?",
     true},
    {"unclosed placeholder", SITES "topic 'x.{dest';\n",
     "3:10: error: unclosed '{' in topic template", true},
    {"duplicate table topic", SITES "table t { route * -> *; topic 'a'; topic 'b'; }\n",
     "3:36: error: duplicate topic in table t", true},
    {"duplicate program topic", SITES "topic 'a';\ntopic 'b';\n",
     "4:1: error: duplicate topic template", true},
    {"duplicate hold timeout", SITES "hold timeout 1s;\nhold timeout 2s;\n",
     "4:1: error: duplicate hold timeout", true},
    {"duplicate dead letters", SITES "dead letters 'a';\ndead letters 'b';\n",
     "4:1: error: duplicate dead letters destination", true},
    /* expressions */
    {"and with a string", SITES "table t { route * -> *; where after.a = 1 AND 'x'; }\n",
     "3:47: error: AND needs a boolean, got a string", true},
    {"string plus number", SITES "table t { route * -> *; where 'a' + 1 > 0; }\n",
     "3:31: error: '+' needs a number, got a string", true},
    {"bad op letter", SITES "table t { route * -> *; where op = 'x'; }\n",
     "3:36: error: op is one of 'c', 'u', 'd', 'r', 't', never 'x'", true},
    {"bad op letter in list", SITES "table t { route * -> *; where op in ('c', 'insert'); }\n",
     "3:43: error: op is one of 'c', 'u', 'd', 'r', 't', never 'insert'", true},
    {"like on a number", SITES "table t { route * -> *; where 5 like 'a%'; }\n",
     "3:31: error: LIKE needs a string, got a number", true},
    {"compare string number", SITES "table t { route * -> *; where 'a' < 1; }\n",
     "3:31: error: cannot compare a string with a number", true},
    {"where not boolean", SITES "table t { route * -> *; where after.a || 'x'; }\n",
     "3:31: error: where needs a boolean, got a string", true},
    {"not on a number", SITES "table t { route * -> *; where NOT 1; }\n",
     "3:35: error: NOT needs a boolean, got a number", true},
    {"arity", SITES "table t { route * -> *; where lower('a', 'b') = 'a'; }\n",
     "3:31: error: lower() takes 1 argument, got 2", true},
    {"arity range", SITES "table t { route * -> *; where substr(after.a) = 'a'; }\n",
     "3:31: error: substr() takes 2 or 3 arguments, got 1", true},
    {"arity coalesce", SITES "table t { route * -> *; where coalesce() = 'a'; }\n",
     "3:31: error: coalesce() takes at least 1 argument, got 0", true},
    {"function argument type", SITES "table t { route * -> *; where abs('x') > 1; }\n",
     "3:35: error: argument 1 of abs() needs a number, got a string", true},
    {"unknown function", SITES "table t { route * -> *; where lowr(after.a) = 'a'; }\n",
     "3:31: error: unknown function 'lowr'; did you mean 'lower'?", true},
    {"bare name", SITES "table t { route * -> *; where status = 'x'; }\n",
     "3:31: error: unknown name 'status': write after.status, before.status or row.status", true},
    {"unknown source field", SITES "table t { route * -> *; where source.ts_mss > 0; }\n",
     "3:31: error: unknown source field 'ts_mss'; did you mean 'ts_ms'?", true},
    {"null comparison warning", SITES "table t { route * -> *; where after.a = null; }\n",
     "3:31: warning: a comparison with null is never true: use IS NULL", false},
    {"site() needs a string", SITES "table t { route central -> site(1 = 1); }\n",
     "3:33: error: site() needs a string, got a boolean", true},
};

static void test_errors(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof errcases / sizeof errcases[0]; i++) {
        const struct errcase *e = &errcases[i];
        const char *text;
        compiled c;

        compile(&c, e->text);
        text = c.text.data ? c.text.data : "";
        if ((c.p == NULL) != e->fails) {
            print_error("case '%s': expected %s\n%s\n", e->name, e->fails ? "failure" : "success",
                        text);
            failures++;
        } else if (e->want[0] == '\0' ? c.text.len != 0 : strstr(text, e->want) == NULL) {
            print_error("case '%s': want \"%s\" in:\n%s\n", e->name, e->want,
                        c.text.len ? text : "(no diagnostics)\n");
            failures++;
        }
        release(&c);
    }
    if (failures)
        fail_msg("%d diagnostic case(s) failed", failures);
}

/* The caret line of one diagnostic, as a user sees it. */
static void test_caret_format(void **state)
{
    compiled c;

    (void)state;
    compile(&c, SITES "table public.orders {\n\troute central -> store_9;\n}\n");
    assert_string_equal(c.text.data,
                        "t.rules:4:19: error: unknown site or group 'store_9'; did you mean "
                        "'store_01'?\n"
                        "    4 | \troute central -> store_9;\n"
                        "      | \t                 ^~~~~~~\n");
    release(&c);
}

/* ---- golden files ------------------------------------------------------------------ */

static bool regen(void)
{
    const char *v = getenv("SLUICE_REGEN_GOLDEN");

    return v && *v && strcmp(v, "0") != 0;
}

static void write_or_remove(const char *path, const sl_buf *b)
{
    FILE *f;

    if (b->len == 0) {
        remove(path);
        return;
    }
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(b->data, 1, b->len, f);
    fclose(f);
}

static void compare_file(const char *path, const sl_buf *got, int *failures)
{
    char *want = slurp(path, NULL);
    const char *g = got->data ? got->data : "";

    if (want == NULL && got->len == 0)
        return;
    if (want == NULL || strcmp(want, g) != 0) {
        print_error("golden mismatch: %s\n--- expected:\n%s--- got:\n%s", path,
                    want ? want : "(no file)\n", g);
        (*failures)++;
    }
    free(want);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden(void **state)
{
    const char *dir = "tests/dsl/golden";
    DIR *dp = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;
    int failures = 0;

    (void)state;
    assert_non_null(dp);
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);

        if (l > 6 && strcmp(de->d_name + l - 6, ".rules") == 0) {
            names = realloc(names, (n + 1) * sizeof *names);
            names[n++] = strndup(de->d_name, l - 6);
        }
    }
    closedir(dp);
    qsort(names, n, sizeof *names, cmp_str);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++) {
        char rules[512], explain[512], err[512];
        const char *paths[1] = {rules};
        sl_diags d;
        sl_buf out = SL_BUF_INIT, diag = SL_BUF_INIT;
        sl_program *p;

        snprintf(rules, sizeof rules, "%s/%s.rules", dir, names[i]);
        snprintf(explain, sizeof explain, "%s/%s.explain", dir, names[i]);
        snprintf(err, sizeof err, "%s/%s.err", dir, names[i]);
        sl_diags_init(&d);
        p = sl_compile_files(paths, 1, &d);
        if (p)
            sl_program_explain(p, &out);
        sl_diags_format(&d, &diag);
        if (regen()) {
            write_or_remove(explain, &out);
            write_or_remove(err, &diag);
        } else {
            compare_file(explain, &out, &failures);
            compare_file(err, &diag, &failures);
        }
        sl_program_unref(p);
        sl_diags_free(&d);
        sl_buf_free(&out);
        sl_buf_free(&diag);
        free(names[i]);
    }
    free(names);
    if (failures)
        fail_msg("%d golden file(s) differ; if the change is intended, run "
                 "tests/dsl/regen-golden.sh and review the diff",
                 failures);
}

/* ---- docs and shipped rule files --------------------------------------------------- */

/* Examples without a `site` statement get these sites, so the docs can show
 * one table block at a time. */
#define DOC_PRELUDE "site central hub priority 100; site store_01, store_02, store_03;\n"

static void test_docs_examples(void **state)
{
    size_t len;
    char *md = slurp("docs/rules.md", &len);
    char *line, *next;
    int lineno = 0, start = 0, nblocks = 0, nerror_blocks = 0;
    bool in = false, expect_fail = false;
    sl_buf block = SL_BUF_INIT;
    int failures = 0;

    (void)state;
    assert_non_null(md);
    for (line = md; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        if (!in && (strcmp(line, "```rules") == 0 || strcmp(line, "```rules-error") == 0)) {
            in = true;
            expect_fail = strcmp(line, "```rules-error") == 0;
            start = lineno;
            sl_buf_reset(&block);
            continue;
        }
        if (in && strcmp(line, "```") == 0) {
            sl_buf src = SL_BUF_INIT, diag = SL_BUF_INIT;
            sl_diags d;
            sl_program *p;
            char name[64];

            in = false;
            nblocks++;
            nerror_blocks += expect_fail;
            if (block.data == NULL ||
                (strncmp(block.data, "site ", 5) != 0 && !strstr(block.data, "\nsite ")))
                sl_buf_puts(&src, DOC_PRELUDE);
            sl_buf_append(&src, block.data ? block.data : "", block.len);
            /* The name's directory (docs/) is where lua paths resolve from. */
            snprintf(name, sizeof name, "docs/rules.md");
            sl_diags_init(&d);
            p = sl_compile_text(name, src.data, src.len, &d);
            sl_diags_format(&d, &diag);
            if (expect_fail && p != NULL) {
                print_error("docs/rules.md:%d: this rules-error block compiles:\n%s", start,
                            src.data);
                failures++;
            } else if (!expect_fail && p == NULL) {
                print_error("docs/rules.md:%d: this rules block does not compile:\n%s\n%s", start,
                            src.data, diag.data);
                failures++;
            }
            sl_program_unref(p);
            sl_diags_free(&d);
            sl_buf_free(&src);
            sl_buf_free(&diag);
            continue;
        }
        if (in) {
            sl_buf_puts(&block, line);
            sl_buf_putc(&block, '\n');
        }
    }
    assert_false(in);
    assert_true(nblocks >= 10);
    assert_true(nerror_blocks >= 3);
    sl_buf_free(&block);
    free(md);
    if (failures)
        fail_msg("%d docs example(s) wrong", failures);
}

static void test_shipped_rules(void **state)
{
    static const char *const files[] = {"rules/hub-and-spoke.rules", "rules/hub-only.rules",
                                        "examples/retail/retail.rules"};

    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        sl_diags d;
        sl_buf b = SL_BUF_INIT;
        sl_program *p;

        sl_diags_init(&d);
        p = sl_compile_files(&files[i], 1, &d);
        sl_diags_format(&d, &b);
        if (p == NULL || d.n != 0)
            fail_msg("%s:\n%s", files[i], b.data ? b.data : "");
        sl_program_unref(p);
        sl_buf_free(&b);
        sl_diags_free(&d);
    }
}

static void test_retail(void **state)
{
    const char *path = "examples/retail/retail.rules";
    sl_diags d;
    sl_program *p;
    const sl_table *cu, *pr, *o, *ol, *inv;
    int central, s1, s3;

    (void)state;
    sl_diags_init(&d);
    p = sl_compile_files(&path, 1, &d);
    assert_non_null(p);
    assert_int_equal(d.n, 0);
    central = site(p, "central");
    s1 = site(p, "store_01");
    s3 = site(p, "store_03");
    assert_int_equal(p->hub, central);
    assert_int_equal(p->nsites, 4);
    assert_int_equal(sl_program_site_by_source(p, "store_02", 8), site(p, "store_02"));
    assert_string_equal(p->lua_files[0], "examples/retail/hooks/retail.lua");
    assert_true(sl_program_find_table(p, "public", 6, "sessions", 8)->ignored);
    assert_null(sl_program_find_table(p, "public", 6, "unknown", 7));

    cu = sl_program_find_table(p, "public", 6, "customers", 9);
    pr = sl_program_find_table(p, "public", 6, "products", 8);
    o = sl_program_find_table(p, "public", 6, "orders", 6);
    ol = sl_program_find_table(p, "public", 6, "order_lines", 11);
    inv = sl_program_find_table(p, "public", 6, "inventory", 9);
    assert_non_null(cu);
    assert_non_null(pr);
    assert_non_null(o);
    assert_non_null(ol);
    assert_non_null(inv);

    /* customers: email stays at the hub, lua merge */
    assert_sel(cu->sel[central], "id,name,email,tier,home_store,points,updated_at");
    assert_sel(cu->sel[s1], "id,name,tier,home_store,points,updated_at");
    assert_int_equal(cu->conflict.kind, SL_CONFLICT_LUA);
    assert_string_equal(cu->conflict.lua_fn, "merge_points");
    assert_non_null(cu->routes[0].to_expr);
    assert_non_null(cu->routes[0].where);

    /* products: per-destination columns, prefer central, delete wins */
    assert_sel(pr->sel[central], "all");
    assert_sel(pr->sel[s3], "sku,name,category,price,active");
    assert_int_equal(pr->conflict.kind, SL_CONFLICT_PREFER);
    assert_int_equal(pr->conflict.prefer_site, central);
    assert_int_equal(pr->conflict.on_delete, SL_DELETE_WINS);
    assert_string_equal(pr->topic, "sluice.{dest}.catalog.{table}");
    assert_set(p, &pr->routes[0].to, "store_01,store_02,store_03");

    /* orders: drafts filtered, owner store by content, after customers */
    assert_expr(o->where, "row.status <> 'draft'");
    assert_set(p, &o->routes[0].from, "central");
    assert_expr(o->routes[0].to_expr, "row.store_id");
    assert_set(p, &o->routes[1].from, "store_01,store_02,store_03");
    assert_set(p, &o->routes[1].to, "central");
    assert_ptr_equal(&p->tables[o->deps[0].parent_table], cu);
    assert_string_equal(o->deps[0].child_cols[0], "customer_id");
    assert_string_equal(o->deps[0].parent_cols[0], "id");
    assert_int_equal(o->conflict.on_delete, SL_DELETE_UPDATE_WINS);

    /* order_lines: composite key, after orders, manual */
    assert_int_equal(ol->nkey, 2);
    assert_ptr_equal(&p->tables[ol->deps[0].parent_table], o);
    assert_int_equal(ol->deps[0].timeout_ms, 30000);
    assert_int_equal(ol->conflict.kind, SL_CONFLICT_MANUAL);

    /* inventory: merge {qty: delta; price: prefer central; *: latest} */
    assert_int_equal(inv->conflict.kind, SL_CONFLICT_MERGE);
    assert_int_equal(inv->conflict.ncols, 3);
    assert_int_equal(inv->conflict.cols[0].kind, SL_MERGE_DELTA);
    assert_int_equal(inv->conflict.cols[1].site, central);
    assert_string_equal(inv->conflict.cols[2].column, "*");
    sl_program_unref(p);
    sl_diags_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sites),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_columns),
        cmocka_unit_test(test_key_deps_conflicts),
        cmocka_unit_test(test_detect_conflicts),
        cmocka_unit_test(test_where_and_types),
        cmocka_unit_test(test_settings_and_version),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_multi_file),
        cmocka_unit_test(test_find_table),
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_caret_format),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_docs_examples),
        cmocka_unit_test(test_shipped_rules),
        cmocka_unit_test(test_retail),
    };

    if (regen())
        cmocka_set_test_filter("test_golden");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
