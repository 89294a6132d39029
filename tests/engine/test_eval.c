/*
 * test_eval.c - the rule-expression interpreter, table-driven: each case is
 * a `where` condition and an event, and what the condition must decide.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dsl/program.h"
#include "engine/eval.h"
#include "engine/event.h"

enum { PASS, REJECT, ERROR };

typedef struct ecase {
    const char *where;
    const char *event; /* a bare Debezium value; NULL = the default one below */
    int expect;
    const char *msg; /* ERROR: a fragment of the message */
} ecase;

static const char default_event[] =
    "{\"before\":{\"id\":7,\"status\":\"draft\",\"total\":10.5,\"name\":\"Ann\"},"
    "\"after\":{\"id\":7,\"status\":\"placed\",\"total\":12.25,\"name\":\"Ann \\\"A\\\" Lee\","
    "\"qty\":3,\"note\":null,\"flag\":true,\"amount\":\"19.90\",\"store\":\"store_02\","
    "\"tags\":[1,2]},"
    "\"source\":{\"version\":\"2.7.4.Final\",\"connector\":\"postgresql\",\"name\":\"store_02\","
    "\"ts_ms\":1700000000000,\"snapshot\":\"false\",\"db\":\"retail\",\"schema\":\"public\","
    "\"table\":\"orders\",\"txId\":5,\"lsn\":1000},\"op\":\"u\",\"ts_ms\":1700000000100}";

static const char delete_event[] =
    "{\"before\":{\"id\":7,\"status\":\"paid\",\"store\":\"store_01\"},\"after\":null,"
    "\"source\":{\"connector\":\"postgresql\",\"name\":\"central\",\"ts_ms\":1,\"db\":\"retail\","
    "\"schema\":\"public\",\"table\":\"orders\",\"lsn\":2000},\"op\":\"d\",\"ts_ms\":2}";

static const ecase cases[] = {
    {"after.status = 'placed'", NULL, PASS, NULL},
    {"after.status <> 'placed'", NULL, REJECT, NULL},
    {"after.status != 'draft'", NULL, PASS, NULL},
    {"before.status = 'draft' AND after.status = 'placed'", NULL, PASS, NULL},
    {"after.status IN ('paid', 'placed')", NULL, PASS, NULL},
    {"after.status NOT IN ('paid', 'placed')", NULL, REJECT, NULL},
    {"after.total > 12", NULL, PASS, NULL},
    {"after.total >= 12.25 AND after.total <= 12.25", NULL, PASS, NULL},
    {"after.qty * 2 + 1 = 7", NULL, PASS, NULL},
    {"after.qty % 2 = 1", NULL, PASS, NULL},
    {"-after.qty < 0", NULL, PASS, NULL},
    {"after.amount > 19", NULL, PASS, NULL}, /* numeric string vs number */
    {"after.amount + 0.1 > 19.95", NULL, PASS, NULL},
    {"after.note IS NULL", NULL, PASS, NULL},
    {"after.missing IS NULL", NULL, PASS, NULL},
    {"after.note IS NOT NULL", NULL, REJECT, NULL},
    {"after.note = 'x'", NULL, REJECT, NULL},       /* NULL rejects */
    {"NOT (after.note = 'x')", NULL, REJECT, NULL}, /* still NULL */
    {"after.note = 'x' OR after.qty = 3", NULL, PASS, NULL},
    {"after.flag = true", NULL, PASS, NULL},
    {"after.flag", NULL, PASS, NULL},
    {"NOT after.flag", NULL, REJECT, NULL},
    {"after.name LIKE 'Ann%'", NULL, PASS, NULL},
    {"after.name LIKE '%\"A\"%'", NULL, PASS, NULL}, /* unescaped JSON string */
    {"after.name LIKE 'A_n %'", NULL, PASS, NULL},
    {"after.name NOT LIKE 'Bob%'", NULL, PASS, NULL},
    {"lower(after.status) = 'placed' AND upper(after.status) = 'PLACED'", NULL, PASS, NULL},
    {"length(after.status) = 6", NULL, PASS, NULL},
    {"substr(after.store, 7) = '02'", NULL, PASS, NULL},
    {"substr(after.store, 1, 5) = 'store'", NULL, PASS, NULL},
    {"trim('  x ') = 'x'", NULL, PASS, NULL},
    {"coalesce(after.note, after.status) = 'placed'", NULL, PASS, NULL},
    {"starts_with(after.store, 'store_') AND ends_with(after.store, '02')", NULL, PASS, NULL},
    {"contains(after.name, 'Lee')", NULL, PASS, NULL},
    {"abs(0 - after.qty) = 3", NULL, PASS, NULL},
    {"after.status || '-' || after.qty = 'placed-3'", NULL, PASS, NULL},
    {"op = 'u'", NULL, PASS, NULL},
    {"op IN ('c', 'r')", NULL, REJECT, NULL},
    {"origin = 'store_02'", NULL, PASS, NULL},
    {"source.table = 'orders' AND source.lsn = 1000", NULL, PASS, NULL},
    {"source.db = 'retail'", NULL, PASS, NULL},
    {"row.status = 'placed'", NULL, PASS, NULL},
    /* deletes: row.* and after.* read the last known image (before) */
    {"row.status = 'paid'", delete_event, PASS, NULL},
    {"after.status = 'paid'", delete_event, PASS, NULL},
    {"op = 'd' AND origin = 'central'", delete_event, PASS, NULL},
    /* runtime type errors: the engine dead-letters the event with this message */
    {"after.status > 3", NULL, ERROR, "cannot compare string 'placed' with number 3"},
    {"after.flag < true", NULL, ERROR, "cannot compare"},
    {"after.status + 1 = 2", NULL, ERROR, "cannot apply '+'"},
    {"after.qty / 0 = 1", NULL, ERROR, "division by zero"},
    {"after.qty = 3 AND after.status", NULL, ERROR, "expected a boolean"},
    {"after.qty LIKE '3'", NULL, ERROR, "LIKE needs strings"},
    {"lower(after.qty) = '3'", NULL, ERROR, "lower() expects a string"},
    {"after.tags = 1", NULL, ERROR, "cannot compare"},
};

static sl_program *compile_where(const char *where, sl_buf *diag)
{
    char text[2048];
    sl_diags d;
    sl_program *p;

    snprintf(text, sizeof(text),
             "site central hub;\nsite store_01, store_02;\n"
             "table public.orders {\n    where %s;\n    route * -> *;\n}\n",
             where);
    sl_diags_init(&d);
    p = sl_compile_text("eval.rules", text, strlen(text), &d);
    sl_diags_format(&d, diag);
    sl_diags_free(&d);
    return p;
}

static void test_cases(void **state)
{
    size_t i;
    int failures = 0;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const ecase *c = &cases[i];
        const char *evtext = c->event ? c->event : default_event;
        sl_buf diag = SL_BUF_INIT;
        sl_program *p = compile_where(c->where, &diag);
        sl_record rec;
        sl_event ev;
        sl_pool arena;
        sl_eval_ctx ctx;
        sl_error err;
        const sl_table *t;
        bool pass = false;
        int rc, got;

        if (p == NULL) {
            print_error("case %zu: `%s` did not compile:\n%s", i, c->where, diag.data);
            failures++;
            sl_buf_free(&diag);
            continue;
        }
        memset(&rec, 0, sizeof(rec));
        rec.partition = -1;
        rec.offset = -1;
        rec.value = evtext;
        rec.value_len = strlen(evtext);
        sl_event_init(&ev);
        assert_int_equal(sl_event_decode(&ev, &rec, &err), 0);
        t = sl_program_find_table(p, "public", 6, "orders", 6);
        assert_non_null(t);
        assert_non_null(t->where);
        sl_pool_init(&arena);
        ctx.ev = &ev;
        ctx.origin = ev.origin;
        ctx.arena = &arena;
        ctx.last_row = NULL;
        sl_error_clear(&err);
        rc = sl_eval_pred(t->where, &ctx, &pass, &err);
        got = rc != 0 ? ERROR : pass ? PASS : REJECT;
        if (got != c->expect) {
            print_error("case %zu: `%s`: expected %s, got %s (%s)\n", i, c->where,
                        c->expect == PASS     ? "pass"
                        : c->expect == REJECT ? "reject"
                                              : "error",
                        got == PASS     ? "pass"
                        : got == REJECT ? "reject"
                                        : "error",
                        err.msg);
            failures++;
        } else if (got == ERROR && strstr(err.msg, c->msg) == NULL) {
            print_error("case %zu: `%s`: message '%s' lacks '%s'\n", i, c->where, err.msg, c->msg);
            failures++;
        } else if (got == ERROR && strstr(err.msg, "eval.rules:4:") == NULL) {
            print_error("case %zu: message '%s' lacks the rule location\n", i, err.msg);
            failures++;
        }
        sl_pool_free(&arena);
        sl_event_free(&ev);
        sl_program_unref(p);
        sl_buf_free(&diag);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
