/*
 * test_engine.c - `sluice run` end to end: real files in, real files out, a
 * real SQLite store. Outputs are checked record by record, field by field.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "connectors/store.h"
#include "engine/json.h"
#include "harness.h"

/* ---- helpers ---------------------------------------------------------------- */

/* The line whose value.after.id (or before.id) equals id. */
static const jline *by_id(const jfile *f, const char *id)
{
    size_t i;

    for (i = 0; i < f->n; i++)
        if (strcmp(jraw(&f->v[i], "value.after.id"), id) == 0 ||
            (strcmp(jraw(&f->v[i], "value.after"), "null") == 0 &&
             strcmp(jraw(&f->v[i], "value.before.id"), id) == 0))
            return &f->v[i];
    return NULL;
}

static size_t count_lines(const char *p)
{
    size_t len, n = 0, i;
    char *s = slurp(p, &len);

    for (i = 0; i < len; i++)
        n += s[i] == '\n';
    free(s);
    return n;
}

/* A Debezium PostgreSQL change event (bare value, no schema). */
static void pg_event(sl_buf *b, const char *site, const char *table, char op, long lsn,
                     const char *before, const char *after)
{
    sl_buf_printf(b,
                  "{\"before\":%s,\"after\":%s,\"source\":{\"version\":\"2.7.4.Final\","
                  "\"connector\":\"postgresql\",\"name\":\"%s\",\"ts_ms\":%ld,"
                  "\"snapshot\":\"false\",\"db\":\"retail\",\"sequence\":null,"
                  "\"schema\":\"public\",\"table\":\"%s\",\"txId\":%ld,\"lsn\":%ld,"
                  "\"xmin\":null},\"op\":\"%c\",\"ts_ms\":%ld}\n",
                  before ? before : "null", after ? after : "null", site, 1700000000000L + lsn,
                  table, 500 + lsn, lsn, op, 1700000000100L + lsn);
}

static const char rules[] = "site central hub priority 100;\n"
                            "site store_01, store_02;\n"
                            "table public.customers {\n"
                            "    key (id);\n"
                            "    columns id, name, email, tier;\n"
                            "    drop column email to store_*;\n"
                            "    route central -> store_*;\n"
                            "    route store_* -> *;\n"
                            "}\n"
                            "table public.orders {\n"
                            "    key (id);\n"
                            "    where after.status <> 'draft';\n"
                            "    route central -> site(after.store_id);\n"
                            "    route store_* -> central;\n"
                            "}\n"
                            "ignore table public.sessions;\n";

/* The mixed input of the first tests: 13 lines, their fates in comments. */
static void mixed_input(sl_buf *b)
{
    /* 1: central customer -> both stores, without email and secret */
    pg_event(b, "central", "customers", 'c', 100, NULL,
             "{\"id\":1,\"name\":\"Ann\",\"email\":\"ann@example.com\",\"tier\":\"gold\","
             "\"secret\":\"x\"}");
    /* 2: store_01 customer -> central (with email) and store_02 (without) */
    pg_event(b, "store_01", "customers", 'u', 200,
             "{\"id\":2,\"name\":\"Bo\",\"email\":\"bo@example.com\",\"tier\":\"bronze\"}",
             "{\"id\":2,\"name\":\"Bo\",\"email\":\"bo@example.com\",\"tier\":\"silver\","
             "\"secret\":\"y\"}");
    /* 3: central order for store_02 -> store_02 only */
    pg_event(b, "central", "orders", 'c', 101, NULL,
             "{\"id\":10,\"store_id\":\"store_02\",\"status\":\"placed\",\"total\":12.5}");
    /* 4: a draft: filtered */
    pg_event(b, "central", "orders", 'c', 102, NULL,
             "{\"id\":11,\"store_id\":\"store_01\",\"status\":\"draft\",\"total\":1}");
    /* 5: store order -> central */
    pg_event(b, "store_01", "orders", 'u', 201,
             "{\"id\":12,\"store_id\":\"store_01\",\"status\":\"placed\",\"total\":3}",
             "{\"id\":12,\"store_id\":\"store_01\",\"status\":\"paid\",\"total\":3}");
    /* 6: ignored table */
    pg_event(b, "central", "sessions", 'c', 103, NULL, "{\"id\":\"s1\"}");
    /* 7: routed to a site that does not exist: dead letter */
    pg_event(b, "central", "orders", 'c', 104, NULL,
             "{\"id\":13,\"store_id\":\"store_99\",\"status\":\"placed\",\"total\":2}");
    /* 8: malformed JSON */
    sl_buf_puts(b, "{\"before\": {\"id\": 1,\n");
    /* 9: a table without rules */
    pg_event(b, "central", "widgets", 'c', 105, NULL, "{\"id\":1}");
    /* 10: an unknown op */
    pg_event(b, "central", "orders", 'x', 106, NULL, "{\"id\":14,\"status\":\"placed\"}");
    /* 11: status of the wrong type for the filter */
    pg_event(b, "central", "orders", 'c', 107, NULL,
             "{\"id\":15,\"store_id\":\"store_01\",\"status\":5,\"total\":2}");
    /* 12: an origin that is not a site */
    pg_event(b, "store_77", "orders", 'c', 300, NULL,
             "{\"id\":16,\"store_id\":\"store_01\",\"status\":\"placed\",\"total\":2}");
    /* 13: central deletes order 10 (full before image) -> store_02 */
    pg_event(b, "central", "orders", 'd', 108,
             "{\"id\":10,\"store_id\":\"store_02\",\"status\":\"placed\",\"total\":12.5}", NULL);
}

static int setup(void **state)
{
    (void)state;
    return harness_setup("engine");
}

static int teardown(void **state)
{
    (void)state;
    harness_teardown();
    return 0;
}

/* ---- filter, selection, routing, dead letters ------------------------------ */

static void run_mixed(void)
{
    sl_buf in = SL_BUF_INIT;

    write_file(path("t.rules"), rules);
    mixed_input(&in);
    write_file(path("mixed.jsonl"), in.data);
    sl_buf_free(&in);
    assert_int_equal(sh("'%s' run --quiet --threads 2 --input '%s' --output '%s' --store "
                        "sqlite:'%s' --stats '%s' '%s'",
                        bin, path("mixed.jsonl"), path("out"), path("state.db"),
                        path("stats1.json"), path("t.rules")),
                     0);
}

static void test_routing_selection(void **state)
{
    jfile s1, s2, c;
    const jline *l;

    (void)state;
    run_mixed();
    assert_int_equal(stat_of(path("stats1.json"), "read"), 13);
    assert_int_equal(stat_of(path("stats1.json"), "routed"), 5);
    assert_int_equal(stat_of(path("stats1.json"), "written"), 7);
    assert_int_equal(stat_of(path("stats1.json"), "filtered"), 1);
    assert_int_equal(stat_of(path("stats1.json"), "ignored"), 1);
    assert_int_equal(stat_of(path("stats1.json"), "dead_letters"), 6);

    /* customers at store_01: only customer 1 (customer 2 came from store_01 itself) */
    s1 = load(path("out/sluice.store_01.public.customers.jsonl"));
    assert_int_equal(s1.n, 1);
    l = &s1.v[0];
    assert_string_equal(jraw(l, "topic"), "\"sluice.store_01.public.customers\"");
    assert_string_equal(jraw(l, "value.after.id"), "1");
    assert_string_equal(jraw(l, "value.after.name"), "\"Ann\"");
    assert_string_equal(jraw(l, "value.after.tier"), "\"gold\"");
    assert_string_equal(jraw(l, "value.after.email"), "<absent>");  /* dropped for stores */
    assert_string_equal(jraw(l, "value.after.secret"), "<absent>"); /* not selected */
    assert_string_equal(jraw(l, "value.op"), "\"c\"");
    assert_string_equal(jraw(l, "value.source.name"), "\"central\"");
    assert_string_equal(jraw(l, "value.source.lsn"), "100");
    assert_string_equal(jraw(l, "value.before"), "null");
    assert_int_not_equal(strstr(l->text, "\"sluice.origin\":\"central\""), NULL);
    assert_int_not_equal(strstr(l->text, "\"key\":{\"id\":1}"), NULL);
    unload(&s1);

    /* customers at store_02: customer 1 from central and customer 2 from store_01 */
    s2 = load(path("out/sluice.store_02.public.customers.jsonl"));
    assert_int_equal(s2.n, 2);
    l = by_id(&s2, "2");
    assert_non_null(l);
    assert_string_equal(jraw(l, "value.after.tier"), "\"silver\"");
    assert_string_equal(jraw(l, "value.before.tier"), "\"bronze\"");
    assert_string_equal(jraw(l, "value.before.email"), "<absent>");
    assert_string_equal(jraw(l, "value.after.email"), "<absent>");
    assert_int_not_equal(strstr(l->text, "\"sluice.origin\":\"store_01\""), NULL);
    unload(&s2);

    /* customers at central: customer 2, email kept, secret not selected */
    c = load(path("out/sluice.central.public.customers.jsonl"));
    assert_int_equal(c.n, 1);
    assert_string_equal(jraw(&c.v[0], "value.after.email"), "\"bo@example.com\"");
    assert_string_equal(jraw(&c.v[0], "value.after.secret"), "<absent>");
    unload(&c);

    /* orders: order 10 and its delete only to store_02; order 12 to central */
    s2 = load(path("out/sluice.store_02.public.orders.jsonl"));
    assert_int_equal(s2.n, 2);
    assert_string_equal(jraw(&s2.v[0], "value.after.id"), "10");
    assert_string_equal(jraw(&s2.v[0], "value.after.total"), "12.5");
    assert_string_equal(jraw(&s2.v[1], "value.op"), "\"d\"");
    assert_string_equal(jraw(&s2.v[1], "value.before.id"), "10");
    unload(&s2);
    c = load(path("out/sluice.central.public.orders.jsonl"));
    assert_int_equal(c.n, 1);
    assert_string_equal(jraw(&c.v[0], "value.after.status"), "\"paid\"");
    assert_string_equal(jraw(&c.v[0], "value.before.status"), "\"placed\"");
    unload(&c);
    assert_int_equal(count_lines(path("out/sluice.store_01.public.orders.jsonl")), 0);
}

static void test_dead_letters(void **state)
{
    jfile d;
    size_t i;
    static const struct {
        int line;
        const char *reason;
    } want[] = {
        {7, "'store_99' is not a declared site"},
        {8, "offset"},
        {9, "no rules for table public.widgets"},
        {10, "op 'x'"},
        {11, "cannot compare number 5 with string 'draft'"},
        {12, "unknown origin site 'store_77'"},
    };

    (void)state;
    d = load(path("out/sluice.dead.jsonl"));
    assert_int_equal(d.n, 6);
    for (i = 0; i < d.n; i++) {
        char where[PATH_MAX + 32];
        const jline *l = &d.v[i];
        size_t k;
        bool found = false;

        for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
            snprintf(where, sizeof(where), "\"%s:%d\"", path("mixed.jsonl"), want[k].line);
            if (strstr(l->text, where + 1) == NULL)
                continue;
            found = true;
            if (strstr(l->text, want[k].reason) == NULL)
                fail_msg("dead letter for line %d lacks reason '%s':\n%s", want[k].line,
                         want[k].reason, l->text);
        }
        if (!found)
            fail_msg("unexpected dead letter:\n%s", l->text);
        /* the original bytes are kept */
        assert_string_not_equal(jraw(l, "value"), "<absent>");
    }
    /* the malformed line is kept verbatim, as a string */
    for (i = 0; i < d.n; i++)
        if (strstr(d.v[i].text, "\"value\":\"{\\\"before\\\": {\\\"id\\\": 1,\"") != NULL)
            break;
    if (i == d.n)
        fail_msg("malformed line not kept verbatim");
    unload(&d);
}

/* ---- garbage in: every byte kept ----------------------------------------------- */

static int b64val(char c)
{
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(tab, c);

    return c && p ? (int)(p - tab) : -1;
}

static void b64decode(const char *s, size_t n, sl_buf *out)
{
    size_t i;
    unsigned v = 0;
    int bits = 0;

    for (i = 0; i < n && s[i] != '='; i++) {
        v = v << 6 | (unsigned)b64val(s[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sl_buf_putc(out, (char)((v >> bits) & 0xff));
        }
    }
}

/* Random bytes as input: every line becomes a dead letter (or is blank), and
 * each dead letter holds the line's exact bytes - as JSON text, a JSON
 * string, or base64 when they are not UTF-8. */
static void test_garbage_kept_exactly(void **state)
{
    sl_buf in = SL_BUF_INIT, got = SL_BUF_INIT;
    jfile d;
    size_t i, len, nlines = 0, blank = 0;
    char **lines, *all, *s;
    unsigned x = 2463534242u;

    (void)state;
    for (i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        sl_buf_putc(&in, (char)(x & 0xff));
    }
    write_file(path("garbage.bin"), "");
    {
        FILE *f = fopen(path("garbage.bin"), "wb");

        assert_int_equal(fwrite(in.data, 1, in.len, f), in.len);
        fclose(f);
    }
    assert_int_equal(sh("'%s' run --quiet --store none --input '%s' --output '%s' --stats '%s' "
                        "'%s'",
                        bin, path("garbage.bin"), path("gout"), path("gstats.json"),
                        path("t.rules")),
                     0);
    /* split the input as sluice does: on \n, last line without one */
    all = in.data;
    len = in.len;
    lines = sl_xcalloc(len + 1, sizeof(*lines));
    for (s = all; s <= all + len;) {
        char *nl = memchr(s, '\n', (size_t)(all + len - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(all + len - s);

        if (nl == NULL && n == 0)
            break;
        lines[nlines++] = s;
        blank += n == 0;
        s += n + 1;
    }
    d = load(path("gout/sluice.dead.jsonl"));
    assert_int_equal(d.n + blank, nlines);
    assert_int_equal(stat_of(path("gstats.json"), "dead_letters"), (long)d.n);
    for (i = 0; i < d.n; i++) {
        const jline *l = &d.v[i];
        int h = sl_json_get(&l->j, sl_json_get(&l->j, 0, "headers", 7), "sluice.input", 12);
        int t = jat(&l->j, "value");
        sl_buf where = SL_BUF_INIT;
        long ln;
        size_t want_len;

        assert_true(h >= 0);
        sl_json_unescape(&l->j, h, &where);
        ln = strtol(strrchr(where.data, ':') + 1, NULL, 10);
        sl_buf_free(&where);
        assert_true(ln >= 1 && (size_t)ln <= nlines);
        sl_buf_reset(&got);
        if (strstr(l->text, "\"sluice.value.encoding\":\"base64\"")) {
            sl_str r = sl_json_raw(&l->j, t);

            b64decode(r.p + 1, r.len - 2, &got);
        } else if (l->j.tok[t].type == SL_J_STRING) {
            sl_json_unescape(&l->j, t, &got);
        } else {
            sl_str r = sl_json_raw(&l->j, t);

            sl_buf_append(&got, r.p, r.len);
        }
        want_len = (size_t)ln < nlines ? (size_t)(lines[ln] - lines[ln - 1] - 1)
                                       : (size_t)(all + len - lines[ln - 1]);
        if (got.len != want_len || memcmp(got.data, lines[ln - 1], want_len) != 0)
            fail_msg("dead letter for line %ld does not hold its exact bytes", ln);
    }
    unload(&d);
    free(lines);
    sl_buf_free(&in);
    sl_buf_free(&got);
}

/* ---- reruns ----------------------------------------------------------------- */

static void test_rerun_writes_nothing(void **state)
{
    size_t before_dead = count_lines(path("out/sluice.dead.jsonl"));
    size_t before_s2 = count_lines(path("out/sluice.store_02.public.customers.jsonl"));

    (void)state;
    assert_int_equal(sh("'%s' run --quiet --input '%s' --output '%s' --store sqlite:'%s' "
                        "--stats '%s' '%s'",
                        bin, path("mixed.jsonl"), path("out"), path("state.db"),
                        path("stats2.json"), path("t.rules")),
                     0);
    assert_int_equal(stat_of(path("stats2.json"), "written"), 0);
    assert_int_equal(stat_of(path("stats2.json"), "dead_letters"), 0);
    assert_int_equal(stat_of(path("stats2.json"), "resumed"), 13);
    assert_int_equal(count_lines(path("out/sluice.dead.jsonl")), before_dead);
    assert_int_equal(count_lines(path("out/sluice.store_02.public.customers.jsonl")), before_s2);

    /* The same changes again under another file name (a re-delivery): the
     * per-row source positions recognise every one. */
    assert_int_equal(sh("grep -v store_99 '%s' | grep '\"op\":\"[cud]\"' | grep -v widgets | "
                        "grep -v store_77 | grep -v '\"status\":5' > '%s'",
                        path("mixed.jsonl"), path("again.jsonl")),
                     0);
    assert_int_equal(sh("'%s' run --quiet --input '%s' --output '%s' --store sqlite:'%s' "
                        "--stats '%s' '%s'",
                        bin, path("again.jsonl"), path("out"), path("state.db"),
                        path("stats3.json"), path("t.rules")),
                     0);
    /* lines 1-6 and 13: six changes seen before (the draft too) and one of
     * an ignored table */
    assert_int_equal(stat_of(path("stats3.json"), "read"), 7);
    assert_int_equal(stat_of(path("stats3.json"), "written"), 0);
    assert_int_equal(stat_of(path("stats3.json"), "duplicates"), 6);
    assert_int_equal(stat_of(path("stats3.json"), "ignored"), 1);

    /* A newer change to a known row is not a duplicate. */
    {
        sl_buf in = SL_BUF_INIT;
        jfile s1;

        pg_event(&in, "central", "customers", 'u', 400,
                 "{\"id\":1,\"name\":\"Ann\",\"email\":\"ann@example.com\",\"tier\":\"gold\"}",
                 "{\"id\":1,\"name\":\"Ann\",\"email\":\"ann@example.com\",\"tier\":\"platinum\"}");
        /* and an older one is */
        pg_event(&in, "central", "customers", 'u', 50, "{\"id\":1,\"name\":\"Ann\",\"tier\":\"x\"}",
                 "{\"id\":1,\"name\":\"Ann\",\"tier\":\"stale\"}");
        write_file(path("newer.jsonl"), in.data);
        sl_buf_free(&in);
        assert_int_equal(sh("'%s' run --quiet --input '%s' --output '%s' --store sqlite:'%s' "
                            "--stats '%s' '%s'",
                            bin, path("newer.jsonl"), path("out"), path("state.db"),
                            path("stats4.json"), path("t.rules")),
                         0);
        assert_int_equal(stat_of(path("stats4.json"), "written"), 2);
        assert_int_equal(stat_of(path("stats4.json"), "duplicates"), 1);
        s1 = load(path("out/sluice.store_01.public.customers.jsonl"));
        assert_int_equal(s1.n, 2);
        assert_string_equal(jraw(&s1.v[1], "value.after.tier"), "\"platinum\"");
        unload(&s1);
    }
}

/* ---- the schema envelope ---------------------------------------------------- */

static void test_schema_envelope(void **state)
{
    static const char ev[] =
        "{\"schema\":{\"type\":\"struct\",\"fields\":["
        "{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,\"field\":\"id\"},"
        "{\"type\":\"string\",\"optional\":true,\"field\":\"name\"},"
        "{\"type\":\"string\",\"optional\":true,\"field\":\"email\"},"
        "{\"type\":\"string\",\"optional\":true,\"field\":\"tier\"}],"
        "\"optional\":true,\"name\":\"central.public.customers.Value\",\"field\":\"before\"},"
        "{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,\"field\":\"id\"},"
        "{\"type\":\"string\",\"optional\":true,\"field\":\"name\"},"
        "{\"type\":\"string\",\"optional\":true,\"field\":\"email\"},"
        "{\"type\":\"string\",\"optional\":true,\"field\":\"tier\"}],"
        "\"optional\":true,\"name\":\"central.public.customers.Value\",\"field\":\"after\"},"
        "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":"
        "\"name\"}],"
        "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\",\"field\":"
        "\"source\"},"
        "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"}],"
        "\"optional\":false,\"name\":\"central.public.customers.Envelope\"},"
        "\"payload\":{\"before\":null,\"after\":{\"id\":5,\"name\":\"Cy\",\"email\":\"cy@x.org\","
        "\"tier\":\"gold\"},\"source\":{\"connector\":\"postgresql\",\"name\":\"central\","
        "\"ts_ms\":1,\"db\":\"retail\",\"schema\":\"public\",\"table\":\"customers\",\"lsn\":900},"
        "\"op\":\"c\",\"ts_ms\":2}}\n";
    jfile f;
    const jline *l;
    int t, fld, inner, e;
    char names[256];

    (void)state;
    write_file(path("env.jsonl"), ev);
    assert_int_equal(sh("'%s' run --quiet --input '%s' --output '%s' --store none '%s'", bin,
                        path("env.jsonl"), path("envout"), path("t.rules")),
                     0);
    f = load(path("envout/sluice.store_01.public.customers.jsonl"));
    assert_int_equal(f.n, 1);
    l = &f.v[0];
    assert_string_equal(jraw(l, "value.payload.after.name"), "\"Cy\"");
    assert_string_equal(jraw(l, "value.payload.after.email"), "<absent>");
    /* the schema's after struct lists exactly the columns kept */
    t = jat(&l->j, "value.schema.fields");
    assert_true(t >= 0);
    names[0] = '\0';
    for (fld = sl_json_elem_first(&l->j, t); fld >= 0; fld = sl_json_elem_next(&l->j, t, fld)) {
        int fname = sl_json_get(&l->j, fld, "field", 5);

        if (fname < 0 || !sl_json_str_eq(&l->j, fname, "after", 5))
            continue;
        inner = sl_json_get(&l->j, fld, "fields", 6);
        for (e = sl_json_elem_first(&l->j, inner); e >= 0; e = sl_json_elem_next(&l->j, inner, e)) {
            sl_str r = sl_json_raw(&l->j, sl_json_get(&l->j, e, "field", 5));

            strncat(names, r.p, r.len);
            strcat(names, " ");
        }
    }
    assert_string_equal(names, "\"id\" \"name\" \"tier\" ");
    unload(&f);
}

/* ---- threads: per-key order ------------------------------------------------ */

static const char order_rules[] = "site central hub;\nsite store_01;\n"
                                  "table public.items { key (id); route central -> store_01; }\n";

static void make_sequence(const char *file, int nkeys, int per_key)
{
    sl_buf in = SL_BUF_INIT;
    FILE *f = fopen(file, "w");
    long lsn = 1;
    int i, k;

    assert_non_null(f);
    for (i = 0; i < per_key; i++)
        for (k = 0; k < nkeys; k++) {
            char after[128];

            /* interleave keys unevenly so batches mix them */
            snprintf(after, sizeof(after), "{\"id\":%d,\"seq\":%d,\"pad\":\"%0*d\"}",
                     (k * 7919 + i) % nkeys, i, (k % 5) * 10 + 1, 0);
            sl_buf_reset(&in);
            pg_event(&in, "central", "items", i == 0 ? 'c' : 'u', lsn++, NULL, after);
            fputs(in.data, f);
        }
    fclose(f);
    sl_buf_free(&in);
}

/* Every key's seq values, in output order, must be 0, 1, 2, ... exactly once
 * each (when exact) or at least once, never out of order (when !exact). */
static void check_sequence(const char *file, int nkeys, int per_key, bool exact, size_t *dups)
{
    jfile f = load(file);
    int *next = sl_xcalloc((size_t)nkeys, sizeof(int));
    size_t i;
    int k;

    *dups = 0;
    for (i = 0; i < f.n; i++) {
        int id = atoi(jraw(&f.v[i], "value.after.id"));
        int seq = atoi(jraw(&f.v[i], "value.after.seq"));

        assert_true(id >= 0 && id < nkeys);
        if (seq == next[id]) {
            next[id]++;
        } else if (!exact && seq < next[id]) {
            (*dups)++; /* a redo after kill -9: an older copy, then it continues */
        } else {
            fail_msg("key %d: seq %d arrived when %d was expected (line %zu)", id, seq, next[id],
                     i + 1);
        }
    }
    for (k = 0; k < nkeys; k++)
        if (next[k] != per_key)
            fail_msg("key %d: %d of %d changes arrived", k, next[k], per_key);
    free(next);
    unload(&f);
}

static void test_order_with_threads(void **state)
{
    size_t dups;

    (void)state;
    write_file(path("order.rules"), order_rules);
    make_sequence(path("seq.jsonl"), 97, 200);
    assert_int_equal(sh("'%s' run --quiet --threads 4 --batch 7 --input '%s' --output '%s' "
                        "--store sqlite:'%s' '%s'",
                        bin, path("seq.jsonl"), path("seqout"), path("seq.db"),
                        path("order.rules")),
                     0);
    check_sequence(path("seqout/sluice.store_01.public.items.jsonl"), 97, 200, true, &dups);
}

/* Many rows: the cache of seen positions has long bucket chains, and every
 * change must still be compared with its own row's position (a mix-up drops
 * changes as "duplicates": this test caught exactly that). */
/* Changes per key in the stop tests (500 keys): 200 by default, fewer under
 * the slow sanitizers (SLUICE_TEST_PER_KEY). */
static int per_key(void)
{
    const char *s = getenv("SLUICE_TEST_PER_KEY");

    return s && atoi(s) > 0 ? atoi(s) : 200;
}

/* Like two Kafka partitions read in turns: even rows' rounds 0-2, then odd
 * rows' rounds 0-4, then even rows' rounds 3-4. Positions rise per row, not
 * across rows: an odd row's last position is higher than an even row's next
 * one. */
static void make_chunked(const char *file, int nkeys)
{
    static const int parity[] = {0, 1, 0}, from[] = {0, 0, 3}, to[] = {3, 5, 5};
    sl_buf in = SL_BUF_INIT;
    FILE *f = fopen(file, "w");
    int c, i, k;

    assert_non_null(f);
    for (c = 0; c < 3; c++)
        for (i = from[c]; i < to[c]; i++)
            for (k = parity[c]; k < nkeys; k += 2) {
                char after[96];

                snprintf(after, sizeof(after), "{\"id\":%d,\"seq\":%d}", k, i);
                sl_buf_reset(&in);
                pg_event(&in, "central", "items", i == 0 ? 'c' : 'u', (long)i * nkeys + k + 1, NULL,
                         after);
                fputs(in.data, f);
            }
    fclose(f);
    sl_buf_free(&in);
}

static void test_many_rows_none_lost(void **state)
{
    int nkeys = 100 * per_key(); /* 20,000 rows; fewer under the sanitizers */
    size_t dups;

    (void)state;
    make_chunked(path("many.jsonl"), nkeys);
    assert_int_equal(sh("'%s' run --quiet --input '%s' --output '%s' --store sqlite:'%s' "
                        "--stats '%s' '%s'",
                        bin, path("many.jsonl"), path("manyout"), path("many.db"),
                        path("many.json"), path("order.rules")),
                     0);
    assert_int_equal(stat_of(path("many.json"), "duplicates"), 0);
    check_sequence(path("manyout/sluice.store_01.public.items.jsonl"), nkeys, 5, true, &dups);
    assert_int_equal(dups, 0);
}

/* A directory is one input stream per file; with small batches, a batch
 * holds the end of one stream and the start of the next. The reader makes
 * a stream's newest position visible to checkpoints when it queues a batch
 * (not per line): after a clean end every stream must be recorded done to
 * its last line, so that a rerun reads none of them again. */
static int run_streams(const char *stats)
{
    return sh("'%s' run --quiet --threads 2 --batch 16 --input '%s' --output '%s' "
              "--store sqlite:'%s' --stats '%s' '%s'",
              bin, path("streams"), path("streamsout"), path("streams.db"), path(stats),
              path("order.rules"));
}

static void test_rerun_streams(void **state)
{
    (void)state;
    assert_int_equal(mkdir(path("streams"), 0700), 0);
    make_sequence(path("streams/a.jsonl"), 37, 1);
    make_sequence(path("streams/b.jsonl"), 50, 2);
    make_sequence(path("streams/c.jsonl"), 5, 1);
    assert_int_equal(run_streams("streams1.json"), 0);
    assert_int_equal(stat_of(path("streams1.json"), "read"), 142);
    assert_int_equal(run_streams("streams2.json"), 0);
    assert_int_equal(stat_of(path("streams2.json"), "resumed"), 142);
    assert_int_equal(stat_of(path("streams2.json"), "read"), 0);
    assert_int_equal(stat_of(path("streams2.json"), "written"), 0);
}

/* ---- stopping: SIGTERM drains, kill -9 loses nothing ------------------------ */

static pid_t start_run(const char *input, const char *out, const char *db, const char *stats)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);

        dup2(fd, STDERR_FILENO);
        execl(bin, bin, "run", "--quiet", "--threads", "2", "--batch", "64", "--input", input,
              "--output", out, "--store", db, "--stats", stats, path("order.rules"), (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* SIGTERM while events are still flowing (the input is a FIFO that never
 * ends): sluice drains what it took, checkpoints and exits 0; a second run
 * over the whole file then writes everything else, nothing twice. */
static void test_sigterm_drains(void **state)
{
    char db[PATH_MAX + 16];
    pid_t pid;
    int st, fd, pk = per_key();
    size_t dups, len, half, off = 0;
    char *all;

    (void)state;
    make_sequence(path("big.jsonl"), 500, pk);
    all = slurp(path("big.jsonl"), &len);
    half = len / 2;
    while (half < len && all[half - 1] != '\n')
        half++;
    assert_int_equal(mkfifo(path("fifo"), 0600), 0);
    snprintf(db, sizeof(db), "sqlite:%s", path("term.db"));
    pid = start_run(path("fifo"), path("termout"), db, path("term1.json"));
    fd = open(path("fifo"), O_WRONLY);
    assert_true(fd >= 0);
    while (off < half) {
        ssize_t n = write(fd, all + off, half - off);

        assert_true(n > 0);
        off += (size_t)n;
    }
    sleep_ms(500);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(fd);
    free(all);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(stat_of(path("term1.json"), "stopped"), 1);
    assert_true(stat_of(path("term1.json"), "read") > 0);
    /* the second run reads the regular file: every change of the first half
     * that the first run finished is recognised by its source position */
    pid = start_run(path("big.jsonl"), path("termout"), db, path("term2.json"));
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(stat_of(path("term2.json"), "duplicates"),
                     stat_of(path("term1.json"), "read"));
    check_sequence(path("termout/sluice.store_01.public.items.jsonl"), 500, pk, true, &dups);
    assert_int_equal(dups, 0);
}

static void test_kill9_loses_nothing(void **state)
{
    char db[PATH_MAX + 16];
    pid_t pid;
    int st, round;
    size_t dups;

    (void)state;
    snprintf(db, sizeof(db), "sqlite:%s", path("kill.db"));
    srand(12345);
    for (round = 0; round < 4; round++) {
        pid = start_run(path("big.jsonl"), path("killout"), db, path("kill.json"));
        sleep_ms(100 + rand() % 400);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    pid = start_run(path("big.jsonl"), path("killout"), db, path("kill.json"));
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    /* at least once, in order per key; redone changes are few and counted */
    check_sequence(path("killout/sluice.store_01.public.items.jsonl"), 500, per_key(), false,
                   &dups);
    print_message("kill -9 x4: %zu of %d changes written twice\n", dups, 500 * per_key());
    /* A crash can only repeat changes whose outputs were written but whose
     * positions had not reached the store: at most the batches in flight,
     * the pool of 4 per worker (2) of 64 lines, per kill (4). */
    assert_true(dups <= 4 * (4 * 2) * 64);
}

/* ---- SIGHUP: reload rules without a restart ---------------------------------- */

static bool wait_for(bool (*cond)(const char *, long), const char *file, long arg)
{
    int i;

    for (i = 0; i < 300; i++) { /* 30 s */
        if (cond(file, arg))
            return true;
        sleep_ms(100);
    }
    return false;
}

static bool has_lines(const char *file, long n)
{
    return (long)count_lines(file) >= n;
}

static bool has_text(const char *file, long which)
{
    size_t len;
    char *s = slurp(file, &len);
    bool found = strstr(s, which ? "reload failed" : "rules reloaded") != NULL;

    free(s);
    return found;
}

static void feed(int fd, int from, int to)
{
    sl_buf in = SL_BUF_INIT;
    int i;

    for (i = from; i < to; i++) {
        char after[64];

        snprintf(after, sizeof(after), "{\"id\":%d,\"seq\":0}", i);
        pg_event(&in, "central", "items", 'c', 1000 + i, NULL, after);
    }
    assert_int_equal(write(fd, in.data, in.len), (ssize_t)in.len);
    sl_buf_free(&in);
}

static void test_sighup_reload(void **state)
{
    static const char v1[] = "site central hub;\nsite store_01, store_02;\n"
                             "table public.items { key (id); route central -> store_01; }\n";
    static const char v2[] = "site central hub;\nsite store_01, store_02;\n"
                             "table public.items { key (id); route central -> store_02; }\n";
    static const char broken[] = "site central hub;\ntable public.items { route central -> ; }\n";
    pid_t pid;
    int fd, st;
    jfile f;

    (void)state;
    write_file(path("hup.rules"), v1);
    assert_int_equal(mkfifo(path("hupfifo"), 0600), 0);
    pid = fork();
    if (pid == 0) {
        int err = open(path("hup.err"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

        dup2(err, STDERR_FILENO);
        execl(bin, bin, "run", "--store", "none", "--input", path("hupfifo"), "--output",
              path("hupout"), "--stats", path("hup.json"), path("hup.rules"), (char *)NULL);
        _exit(127);
    }
    fd = open(path("hupfifo"), O_WRONLY);
    assert_true(fd >= 0);
    feed(fd, 0, 100);
    assert_true(wait_for(has_lines, path("hupout/sluice.store_01.public.items.jsonl"), 100));

    write_file(path("hup.rules"), v2);
    kill(pid, SIGHUP);
    assert_true(wait_for(has_text, path("hup.err"), 0));
    feed(fd, 100, 200);
    assert_true(wait_for(has_lines, path("hupout/sluice.store_02.public.items.jsonl"), 100));

    /* a broken file is refused with its diagnostics; the running rules stay */
    write_file(path("hup.rules"), broken);
    kill(pid, SIGHUP);
    assert_true(wait_for(has_text, path("hup.err"), 1));
    feed(fd, 200, 300);
    assert_true(wait_for(has_lines, path("hupout/sluice.store_02.public.items.jsonl"), 200));

    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(fd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(stat_of(path("hup.json"), "reloads"), 1);
    assert_int_equal(count_lines(path("hupout/sluice.store_01.public.items.jsonl")), 100);
    /* exactly rows 100..299 went to store_02 (rows of different keys may
     * interleave: order is kept per key) */
    f = load(path("hupout/sluice.store_02.public.items.jsonl"));
    assert_int_equal(f.n, 200);
    {
        int seen[300] = {0};
        size_t i;

        for (i = 0; i < f.n; i++) {
            int id = atoi(jraw(&f.v[i], "value.after.id"));

            assert_true(id >= 100 && id < 300);
            assert_int_equal(seen[id]++, 0);
        }
    }
    unload(&f);
    {
        size_t len;
        char *err = slurp(path("hup.err"), &len);

        assert_non_null(strstr(err, "hup.rules:2:"));
        free(err);
    }
}

/* A running sluice leaves no /dev/shm/mongoc-PID behind, even when killed
 * with -9: libmongoc makes that counters file when it initialises (before
 * main), and a later process given the same pid would find it and print a
 * warning. */
static void test_no_shm_leftover(void **state)
{
    char shm[64];
    pid_t pid;
    int fd, st;

    (void)state;
    write_file(path("shm.rules"), "site central hub;\nsite store_01;\n"
                                  "table public.items { key (id); route central -> store_01; }\n");
    assert_int_equal(mkfifo(path("shmfifo"), 0600), 0);
    pid = fork();
    if (pid == 0) {
        execl(bin, bin, "run", "--store", "none", "--input", path("shmfifo"), "--output",
              path("shmout"), path("shm.rules"), (char *)NULL);
        _exit(127);
    }
    fd = open(path("shmfifo"), O_WRONLY);
    assert_true(fd >= 0);
    feed(fd, 0, 10);
    assert_true(wait_for(has_lines, path("shmout/sluice.store_01.public.items.jsonl"), 10));
    snprintf(shm, sizeof(shm), "/dev/shm/mongoc-%u", (unsigned)pid);
    assert_int_not_equal(access(shm, F_OK), 0);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(fd);
    assert_true(WIFSIGNALED(st));
    assert_int_not_equal(access(shm, F_OK), 0);
}

/* ---- the command line -------------------------------------------------------- */

/* ---- the consolidated view through the binary: echoes, conflicts, strategies -- */

static const char conflict_rules[] =
    "site central hub priority 100;\nsite s1, s2;\n"
    "lua \"hook.lua\";\n"
    "topic \"o.{dest}.{table}\";\n"
    "table public.t_latest { key (id); route * -> *; }\n"
    "table public.t_manual { key (id); route * -> *; on conflict manual; }\n"
    "table public.t_pts { key (id); route * -> *; on conflict lua addpts; }\n"
    "table public.t_before { key (id); route * -> *; detect conflicts by before; }\n";

static const char conflict_lua[] =
    "function addpts(base, current, incoming, ctx)\n"
    "  if incoming.pts < 0 then error('negative points from ' .. ctx.incoming_site) end\n"
    "  local row = {}\n"
    "  for k, v in pairs(current) do row[k] = v end\n"
    "  row.pts = current.pts + incoming.pts - ((base and base.pts) or 0)\n"
    "  return row\n"
    "end\n";

/* The sluice.version headers of a topic file, in order ("1,2,3"). */
static void versions_of(const char *file, char *out, size_t n)
{
    jfile f = load(file);
    size_t i, len = 0;

    out[0] = '\0';
    for (i = 0; i < f.n && len + 8 < n; i++) {
        const char *h = jraw(&f.v[i], "headers.sluice\\.version"); /* a JSON string */

        len += (size_t)snprintf(out + len, n - len, "%s%.*s", i ? "," : "",
                                (int)(strlen(h) >= 2 ? strlen(h) - 2 : 0), h + 1);
    }
    unload(&f);
}

static void test_conflicts(void **state)
{
    sl_buf in = SL_BUF_INIT;
    char v[256];
    jfile f;
    size_t len;
    char *out;

    write_file(path("c.rules"), conflict_rules);
    write_file(path("hook.lua"), conflict_lua);
    /* pg_event: source ts_ms = 1700000000000 + lsn */
    pg_event(&in, "s1", "t_latest", 'c', 10, NULL, "{\"id\":1,\"a\":\"x\"}");
    pg_event(&in, "s2", "t_latest", 'c', 20, NULL, "{\"id\":1,\"a\":\"x\"}");      /* echo */
    pg_event(&in, "central", "t_latest", 'c', 25, NULL, "{\"id\":1,\"a\":\"x\"}"); /* echo */
    pg_event(&in, "s1", "t_latest", 'u', 40, NULL, "{\"id\":1,\"a\":\"s1\"}");     /* v2 */
    /* s2 changed it without having seen v2, earlier: loses */
    pg_event(&in, "s2", "t_latest", 'u', 35, NULL, "{\"id\":1,\"a\":\"s2\"}");
    /* again, later: wins; v2 still in flight to s2, so v3 is sent behind it */
    pg_event(&in, "s2", "t_latest", 'u', 50, NULL, "{\"id\":1,\"a\":\"s2b\"}");
    pg_event(&in, "s2", "t_latest", 'u', 50, NULL, "{\"id\":1,\"a\":\"s2b\"}"); /* duplicate */
    pg_event(&in, "s1", "t_manual", 'c', 60, NULL, "{\"id\":2,\"a\":\"s1\"}");
    pg_event(&in, "s2", "t_manual", 'c', 61, NULL, "{\"id\":2,\"a\":\"s2\"}");
    pg_event(&in, "s1", "t_pts", 'c', 70, NULL, "{\"id\":3,\"pts\":10}");
    pg_event(&in, "s2", "t_pts", 'c', 71, NULL, "{\"id\":3,\"pts\":5}");
    pg_event(&in, "s1", "t_pts", 'c', 80, NULL, "{\"id\":4,\"pts\":2}");
    pg_event(&in, "s2", "t_pts", 'c', 81, NULL, "{\"id\":4,\"pts\":-1}");
    /* detect by before: s2 changed the row from what the hub holds (no
     * conflict, though s2 never acknowledged it); s1 changed it from an
     * older content (a conflict) */
    pg_event(&in, "s1", "t_before", 'c', 90, NULL, "{\"id\":5,\"a\":\"x\"}");
    pg_event(&in, "s2", "t_before", 'u', 91, "{\"id\":5,\"a\":\"x\"}", "{\"id\":5,\"a\":\"y\"}");
    pg_event(&in, "s1", "t_before", 'u', 92, "{\"id\":5,\"a\":\"x\"}", "{\"id\":5,\"a\":\"z\"}");
    write_file(path("c.jsonl"), in.data);
    sl_buf_free(&in);

    assert_int_equal(sh("'%s' run -q --threads 2 --input '%s' --output '%s' --store 'sqlite:%s' "
                        "--stats '%s' '%s'",
                        bin, path("c.jsonl"), path("cout"), path("c.db"), path("c.stats"),
                        path("c.rules")),
                     0);
    /* t_latest: every version reaches every site that does not hold it */
    versions_of(path("cout/o.central.t_latest.jsonl"), v, sizeof(v));
    assert_string_equal(v, "1,2,3");
    versions_of(path("cout/o.s2.t_latest.jsonl"), v, sizeof(v));
    assert_string_equal(v, "1,2,3");
    versions_of(path("cout/o.s1.t_latest.jsonl"), v, sizeof(v));
    assert_string_equal(v, "3");
    f = load(path("cout/o.s1.t_latest.jsonl"));
    assert_string_equal(jraw(&f.v[0], "value.after.a"), "\"s2b\"");
    assert_string_equal(jraw(&f.v[0], "headers.sluice\\.origin"), "\"s2\"");
    unload(&f);
    assert_int_equal(stat_of(path("c.stats"), "echoes"), 2);
    assert_int_equal(stat_of(path("c.stats"), "duplicates"), 1);
    assert_int_equal(stat_of(path("c.stats"), "conflicts"), 6);
    assert_int_equal(sh("'%s' conflicts --store 'sqlite:%s' --table public.t_before --json > '%s'",
                        bin, path("c.db"), path("bef.jsonl")),
                     0);
    f = load(path("bef.jsonl"));
    assert_int_equal(f.n, 1);
    assert_string_equal(jraw(&f.v[0], "site_incoming"), "\"s1\"");
    assert_string_equal(jraw(&f.v[0], "current.a"), "\"y\"");
    assert_string_equal(jraw(&f.v[0], "result.a"), "\"z\""); /* latest: s1's change is newer */
    unload(&f);
    assert_int_equal(stat_of(path("c.stats"), "manual"), 2);

    /* the operator's view */
    assert_int_equal(sh("'%s' conflicts --store 'sqlite:%s' --status open --json > '%s'", bin,
                        path("c.db"), path("open.jsonl")),
                     0);
    f = load(path("open.jsonl"));
    assert_int_equal(f.n, 2);
    out = slurp(path("open.jsonl"), &len);
    assert_non_null(strstr(out, "\"table\":\"public.t_manual\""));
    assert_non_null(strstr(out, "negative points from s2"));
    free(out);
    unload(&f);
    /* the Lua merge: both sites' points count, and s2 gets the merged row too */
    f = load(path("cout/o.s2.t_pts.jsonl"));
    {
        size_t i, merged = 0;

        /* rows 3 and 4 may be on different workers: find row 3's version 2 */
        for (i = 0; i < f.n; i++)
            if (strcmp(jraw(&f.v[i], "value.after.id"), "3") == 0 &&
                strcmp(jraw(&f.v[i], "headers.sluice\\.version"), "\"2\"") == 0) {
                assert_string_equal(jraw(&f.v[i], "value.after.pts"), "15");
                merged++;
            }
        assert_int_equal(merged, 1);
    }
    unload(&f);
    assert_int_equal(sh("'%s' conflicts --store 'sqlite:%s' --table public.t_latest --site s2 "
                        "--json > '%s'",
                        bin, path("c.db"), path("lat.jsonl")),
                     0);
    f = load(path("lat.jsonl"));
    assert_int_equal(f.n, 2);
    /* s2's first change lost to s1's, its second won */
    {
        const char *r0 = jraw(&f.v[0], "result.a"), *r1 = jraw(&f.v[1], "result.a");

        assert_true((strcmp(r0, "\"s1\"") == 0 && strcmp(r1, "\"s2b\"") == 0) ||
                    (strcmp(r0, "\"s2b\"") == 0 && strcmp(r1, "\"s1\"") == 0));
        assert_string_equal(jraw(&f.v[0], "strategy"), "\"latest\"");
    }
    unload(&f);
    /* the row's state as the store has it: s2's second change is the
     * current version, and every site holds it or has it in flight */
    assert_int_equal(sh("'%s' rows --store 'sqlite:%s' --table public.t_latest > '%s' 2>/dev/null",
                        bin, path("c.db"), path("rows.jsonl")),
                     0);
    f = load(path("rows.jsonl"));
    {
        size_t i, found = 0;

        for (i = 0; i < f.n; i++) {
            assert_string_equal(jraw(&f.v[i], "table"), "\"public.t_latest\"");
            if (strcmp(jraw(&f.v[i], "state.row.a"), "\"s2b\"") == 0) {
                assert_string_equal(jraw(&f.v[i], "state.writer"), "\"s2\"");
                assert_string_equal(jraw(&f.v[i], "state.deleted"), "false");
                found++;
            }
        }
        assert_int_equal(found, 1);
    }
    unload(&f);
    /* --limit: that many rows at most, and their count on stderr */
    assert_int_equal(sh("'%s' rows --store 'sqlite:%s' --limit 1 > '%s' 2> '%s'", bin, path("c.db"),
                        path("rows1.jsonl"), path("rows1.err")),
                     0);
    f = load(path("rows1.jsonl"));
    assert_int_equal(f.n, 1);
    unload(&f);
    {
        char *e = slurp(path("rows1.err"), NULL);

        assert_string_equal(e, "1 row\n");
        free(e);
    }
    /* a damaged document: its row says what is wrong, the others still list */
    {
        sl_store st = {0};
        sl_error err = {0};
        char uri[600];
        void *sess;
        sl_seen bad = {0};

        snprintf(uri, sizeof(uri), "sqlite:%s", path("c.db"));
        assert_int_equal(sl_store_open(&st, uri, &err), 0);
        sess = st.ops->session_open(st.self, &err);
        assert_non_null(sess);
        bad.table = (sl_str){"public.t_latest", 15};
        bad.key = (sl_str){"{\"id\":999}", 10};
        bad.doc = (sl_str){"\x00\x53\x03\x7f", 4};
        assert_int_equal(st.ops->seen_put(sess, &bad, 1, NULL, 0, &err), 0);
        st.ops->session_close(sess);
        sl_store_destroy(&st);
    }
    assert_int_equal(sh("'%s' rows --store 'sqlite:%s' --table public.t_latest > '%s' 2>/dev/null",
                        bin, path("c.db"), path("rows2.jsonl")),
                     0);
    f = load(path("rows2.jsonl"));
    {
        size_t i, damaged = 0, fine = 0;

        for (i = 0; i < f.n; i++) {
            if (strcmp(jraw(&f.v[i], "key.id"), "999") == 0) {
                assert_true(jraw(&f.v[i], "error")[0] == '"');
                assert_null(strstr(f.v[i].text, "\"state\""));
                damaged++;
            } else {
                assert_string_not_equal(jraw(&f.v[i], "state.version"), "<absent>");
                fine++;
            }
        }
        assert_int_equal(damaged, 1);
        assert_true(fine >= 1);
    }
    unload(&f);
    assert_int_equal(sh("'%s' rows --store 'sqlite:%s' --bogus 2>/dev/null", bin, path("c.db")), 2);
    assert_int_equal(
        sh("'%s' conflicts decide nosuchid --store 'sqlite:%s' 2>/dev/null", bin, path("c.db")), 1);
    /* a rule naming a Lua function the files do not define is rejected */
    write_file(path("nofn.rules"), "site central hub;\nsite s1;\nlua \"hook.lua\";\n"
                                   "table public.x { key (id); route * -> *; "
                                   "on conflict lua nosuchfn; }\n");
    assert_int_equal(sh("'%s' check '%s' 2>'%s'", bin, path("nofn.rules"), path("nofn.txt")), 1);
    out = slurp(path("nofn.txt"), &len);
    assert_non_null(strstr(out, "nofn.rules:4:"));
    assert_non_null(strstr(out, "no function 'nosuchfn'"));
    free(out);
}

static void test_cli(void **state)
{
    size_t len;
    char *out;

    (void)state;
    write_file(path("bad.rules"),
               "site central hub;\ntable public.t { route central -> nowhere; }\n");
    assert_int_equal(sh("'%s' check '%s' 2>'%s'", bin, path("bad.rules"), path("err.txt")), 1);
    out = slurp(path("err.txt"), &len);
    assert_non_null(strstr(out, "bad.rules:2:"));
    assert_non_null(strstr(out, "error:"));
    assert_non_null(strstr(out, "^"));
    free(out);
    assert_int_equal(sh("'%s' check '%s' >/dev/null", bin, path("t.rules")), 0);
    assert_int_equal(sh("'%s' explain '%s' >'%s'", bin, path("t.rules"), path("explain.txt")), 0);
    out = slurp(path("explain.txt"), &len);
    assert_non_null(strstr(out, "public.orders"));
    free(out);
    /* a bad rules file stops `run` before it reads anything */
    assert_int_equal(sh("'%s' run --store none --input '%s' '%s' 2>/dev/null", bin,
                        path("mixed.jsonl"), path("bad.rules")),
                     1);
    assert_int_equal(sh("'%s' run --store none 2>/dev/null", bin), 2);
    assert_int_equal(sh("'%s' run --bogus '%s' 2>/dev/null", bin, path("t.rules")), 2);
    assert_int_equal(sh("'%s' run --threads 0 '%s' 2>/dev/null", bin, path("t.rules")), 2);
    assert_int_equal(sh("'%s' frobnicate 2>/dev/null", bin), 2);
    assert_int_equal(sh("'%s' run --store none --input /nonexistent/x.jsonl '%s' 2>'%s'", bin,
                        path("t.rules"), path("err2.txt")),
                     1);
    out = slurp(path("err2.txt"), &len);
    assert_non_null(strstr(out, "cannot open input /nonexistent/x.jsonl"));
    free(out);
    /* an unreachable MongoDB store: a runtime error (1) that says so */
    assert_int_equal(sh("'%s' run --store 'mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=500' "
                        "--input '%s' '%s' 2>'%s'",
                        bin, path("mixed.jsonl"), path("t.rules"), path("err3.txt")),
                     1);
    out = slurp(path("err3.txt"), &len);
    assert_non_null(strstr(out, "MongoDB"));
    free(out);
    /* `sluice test`: one verdict per line, nothing written */
    assert_int_equal(sh("'%s' test --input '%s' '%s' > '%s'", bin, path("mixed.jsonl"),
                        path("t.rules"), path("verdicts.txt")),
                     0);
    out = slurp(path("verdicts.txt"), &len);
    assert_non_null(strstr(out, "mixed.jsonl:1  public.customers {\"id\":1}  from central: "
                                "routed -> store_01, store_02\n"));
    assert_non_null(strstr(out, "mixed.jsonl:4  public.orders {\"id\":11}  from central: "
                                "filtered (where)\n"));
    assert_non_null(strstr(out, "mixed.jsonl:6  public.sessions"));
    assert_non_null(strstr(out, "ignored (ignore table)\n"));
    assert_non_null(strstr(out, "mixed.jsonl:7  public.orders {\"id\":13}  from central: dead "
                                "letter: "));
    assert_non_null(strstr(out, "mixed.jsonl:13  public.orders {\"id\":10}  from central: "
                                "routed -> store_02\n"));
    free(out);
    /* stdin to stdout */
    assert_int_equal(sh("'%s' run --quiet --store none '%s' < '%s' > '%s'", bin, path("t.rules"),
                        path("mixed.jsonl"), path("stdout.jsonl")),
                     0);
    assert_int_equal(count_lines(path("stdout.jsonl")), 7 + 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_selection),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_garbage_kept_exactly),
        cmocka_unit_test(test_rerun_writes_nothing),
        cmocka_unit_test(test_schema_envelope),
        cmocka_unit_test(test_order_with_threads),
        cmocka_unit_test(test_many_rows_none_lost),
        cmocka_unit_test(test_rerun_streams),
        cmocka_unit_test(test_sigterm_drains),
        cmocka_unit_test(test_kill9_loses_nothing),
        cmocka_unit_test(test_sighup_reload),
        cmocka_unit_test(test_no_shm_leftover),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_cli),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
