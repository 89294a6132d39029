/*
 * test_write.c - sl_event_write_value: the output value per destination.
 * Jansson is the independent judge of what the output means.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static json_t *jparse(const char *p, size_t n)
{
    json_error_t jerr;
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY, &jerr);

    if (v == NULL)
        print_error("jansson: %s at %d: %.*s\n", jerr.text, jerr.position, (int)n, p);
    assert_non_null(v);
    return v;
}

/* Decode fixture `file` and write it through sel. Returns the output value. */
static char *write_fixture(sl_event *ev, const char *file, const char *topic, const sl_colsel *sel,
                           char **input, size_t *inlen)
{
    sl_record rec;
    sl_error err;
    sl_buf out = SL_BUF_INIT;
    size_t n;

    *input = fixture_read(file, inlen);
    assert_non_null(*input);
    record_make(&rec, topic, NULL, 0, *input, *inlen);
    assert_int_equal(sl_event_decode(ev, &rec, &err), 0);
    sl_event_write_value(ev, sel, &out);
    /* an output value is always one line */
    assert_null(memchr(out.data, '\n', out.len));
    assert_null(memchr(out.data, '\r', out.len));
    return sl_buf_steal(&out, &n);
}

/* The names of an object's members, comma-joined, in document order. */
static void member_names(const char *text, const char *path0, const char *path1, char *buf,
                         size_t cap)
{
    sl_json j;
    sl_error err;
    int t = 0, k;
    size_t n = 0;

    sl_json_init(&j);
    assert_int_equal(sl_json_parse(&j, text, strlen(text), &err), 0);
    if (path0)
        t = sl_json_get(&j, t, path0, strlen(path0));
    if (path1)
        t = sl_json_get(&j, t, path1, strlen(path1));
    assert_true(t >= 0);
    buf[0] = '\0';
    for (k = sl_json_first(&j, t); k >= 0; k = sl_json_next_member(&j, k)) {
        sl_str s = sl_json_raw(&j, k);

        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", n ? "," : "", (int)s.len - 2, s.p + 1);
    }
    sl_json_free(&j);
}

/* The "field" names of schema.fields[i].fields, comma-joined. */
static void schema_fields(json_t *root, size_t i, char *buf, size_t cap)
{
    json_t *f = json_object_get(
        json_array_get(json_object_get(json_object_get(root, "schema"), "fields"), i), "fields");
    size_t k, n = 0;

    assert_non_null(f);
    buf[0] = '\0';
    for (k = 0; k < json_array_size(f); k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "",
                              json_string_value(json_object_get(json_array_get(f, k), "field")));
}

static void assert_same(json_t *a, json_t *b, const char *what)
{
    if (!json_equal(a, b))
        print_error("%s differs\n", what);
    assert_true(json_equal(a, b));
}

/* NULL selection: every fixture comes out meaning exactly what went in, and
 * decodes to the same event. */
static void test_write_all(void **state)
{
    static const char *const files[][2] = {
        {"postgresql-create-with-schema.value.json", NULL},
        {"postgresql-update.value.json", NULL},
        {"postgresql-delete.value.json", NULL},
        {"postgresql-truncate.value.json", NULL},
        {"postgresql-message.value.json", NULL},
        {"postgresql-transaction-begin.value.json", NULL},
        {"postgresql-transaction-end.value.json", NULL},
        {"postgresql-transaction-enriched-create.value.json", "a.b.c"},
        {"mysql-create-with-schema.value.json", NULL},
        {"mysql-update.value.json", NULL},
        {"mysql-delete.value.json", NULL},
        {"mysql-truncate.value.json", NULL},
        {"mysql-schema-change.value.json", NULL},
        {"mysql-snapshot-read-with-schema.value.json", NULL},
        {"mysql-transaction-end.value.json", NULL},
        {"sqlserver-create-with-schema.value.json", NULL},
        {"sqlserver-update.value.json", NULL},
        {"sqlserver-delete.value.json", NULL},
        {"sqlserver-schema-change.value.json", NULL},
        {"sqlserver-transaction-end.value.json", NULL},
        {"oracle-truncate.value.json", NULL},
        {"incremental-snapshot-read.value.json", "a.b.c"},
        {"event-flattening-update.value.json", "a.b.c"},
        {"event-flattening-delete-rewrite.value.json", "a.b.c"},
        {"postgresql-tombstone.value.json", NULL},
    };
    sl_event ev, ev2;
    size_t i;

    (void)state;
    sl_event_init(&ev);
    sl_event_init(&ev2);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *in, *out;
        size_t inlen;
        json_t *a, *b;
        sl_record rec;
        sl_error err;

        out = write_fixture(&ev, files[i][0], files[i][1], NULL, &in, &inlen);
        a = jparse(in, inlen);
        b = jparse(out, strlen(out));
        assert_same(a, b, files[i][0]);
        record_make(&rec, files[i][1], NULL, 0, out, strlen(out));
        assert_int_equal(sl_event_decode(&ev2, &rec, &err), 0);
        assert_int_equal(ev2.kind, ev.kind);
        assert_int_equal(ev2.op, ev.op);
        assert_int_equal(ev2.enveloped, ev.enveloped);
        assert_true(ev2.table.len == ev.table.len &&
                    memcmp(ev2.table.p, ev.table.p, ev.table.len) == 0);
        assert_true(ev2.position.len == ev.position.len &&
                    memcmp(ev2.position.p, ev.position.p, ev.position.len) == 0);
        json_decref(a);
        json_decref(b);
        free(in);
        free(out);
    }
    sl_event_free(&ev);
    sl_event_free(&ev2);
}

/* An enveloped create reduced to some columns: rows and schema agree. */
static void test_write_enveloped(void **state)
{
    static const char *const id_email[] = {"id", "email"};
    static const char *const email_id[] = {"email", "id"};
    static const char *const drops[] = {"email", "last_name"};
    static const char *const some[] = {"id", "first_name", "email"};
    static const char *const drop_first[] = {"first_name"};
    static const struct {
        sl_colsel sel;
        const char *want; /* columns, in output order */
    } cases[] = {
        {{false, id_email, 2, NULL, 0}, "id,email"},
        {{false, email_id, 2, NULL, 0}, "id,email"}, /* input order, not selection order */
        {{true, NULL, 0, drops, 2}, "id,first_name"},
        {{false, some, 3, drop_first, 1}, "id,email"},
        {{true, NULL, 0, NULL, 0}, "id,first_name,last_name,email"},
        {{false, NULL, 0, NULL, 0}, ""},
    };
    static const char *const files[] = {
        "mysql-create-with-schema.value.json",
        "postgresql-create-with-schema.value.json",
        "sqlserver-create-with-schema.value.json",
    };
    sl_event ev;
    size_t f, i;

    (void)state;
    sl_event_init(&ev);
    for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char *in, *out, names[256];
            size_t inlen;
            json_t *a, *b, *pa, *pb;

            out = write_fixture(&ev, files[f], NULL, &cases[i].sel, &in, &inlen);
            a = jparse(in, inlen);
            b = jparse(out, strlen(out));
            pa = json_object_get(a, "payload");
            pb = json_object_get(b, "payload");
            /* the row, in order */
            member_names(out, "payload", "after", names, sizeof(names));
            assert_string_equal(names, cases[i].want);
            assert_true(json_is_null(json_object_get(pb, "before")));
            /* the values are the input's */
            {
                const char *key;
                json_t *v;

                json_object_foreach(json_object_get(pb, "after"), key, v)
                    assert_same(v, json_object_get(json_object_get(pa, "after"), key), key);
            }
            /* the schema's before and after field lists match the row */
            schema_fields(b, 0, names, sizeof(names));
            assert_string_equal(names, cases[i].want);
            schema_fields(b, 1, names, sizeof(names));
            assert_string_equal(names, cases[i].want);
            /* everything else is untouched */
            assert_same(json_array_get(json_object_get(json_object_get(a, "schema"), "fields"), 2),
                        json_array_get(json_object_get(json_object_get(b, "schema"), "fields"), 2),
                        "source schema");
            assert_same(json_object_get(json_object_get(a, "schema"), "name"),
                        json_object_get(json_object_get(b, "schema"), "name"), "schema name");
            assert_same(json_object_get(pa, "source"), json_object_get(pb, "source"), "source");
            assert_same(json_object_get(pa, "op"), json_object_get(pb, "op"), "op");
            assert_same(json_object_get(pa, "ts_ms"), json_object_get(pb, "ts_ms"), "ts_ms");
            assert_int_equal(json_object_size(pa), json_object_size(pb));
            json_decref(a);
            json_decref(b);
            free(in);
            free(out);
        }
    }
    sl_event_free(&ev);
}

/* Bare events: before and after both reduced; untouched parts byte for byte. */
static void test_write_bare(void **state)
{
    static const char *const id_first[] = {"id", "first_name"};
    static const char *const x_only[] = {"x"};
    static const char *const drop_x[] = {"x"};
    const sl_colsel sel = {false, id_first, 2, NULL, 0};
    sl_event ev;
    sl_record rec;
    sl_error err;
    sl_buf out = SL_BUF_INIT;
    char *in, *o;
    size_t inlen;
    json_t *a, *b;
    static const struct {
        const char *in;
        sl_colsel sel;
        const char *want;
    } exact[] = {
        /* single-line input: rewritten parts compact, the rest byte for byte */
        {"{\"before\": {\"id\": 1, \"x\": \"a b\"}, \"after\": {\"id\": 1, \"x\": \"c\\u0064\"}, "
         "\"source\": {\"table\": \"t\", \"lsn\": 5}, \"op\": \"u\", \"ts_ms\": 7}",
         {false, x_only, 1, NULL, 0},
         "{\"before\":{\"x\":\"a b\"},\"after\":{\"x\":\"c\\u0064\"},\"source\":{\"table\": "
         "\"t\", \"lsn\": 5},\"op\":\"u\",\"ts_ms\":7}"},
        {"{\"op\":\"c\",\"before\":null,\"after\":{\"id\":1,\"x\":2.50,\"y\":[1, 2]},"
         "\"source\":{\"table\":\"t\"}}",
         {true, NULL, 0, drop_x, 1},
         "{\"op\":\"c\",\"before\":null,\"after\":{\"id\":1,\"y\":[1, 2]},"
         "\"source\":{\"table\":\"t\"}}"},
        /* escaped column names are matched unescaped and copied as written */
        {"{\"op\":\"c\",\"after\":{\"\\u0078\":1,\"id\":2},\"source\":{\"table\":\"t\"}}",
         {false, x_only, 1, NULL, 0},
         "{\"op\":\"c\",\"after\":{\"\\u0078\":1},\"source\":{\"table\":\"t\"}}"},
        /* duplicate columns are both kept */
        {"{\"op\":\"c\",\"after\":{\"x\":1,\"x\":2},\"source\":{\"table\":\"t\"}}",
         {false, x_only, 1, NULL, 0},
         "{\"op\":\"c\",\"after\":{\"x\":1,\"x\":2},\"source\":{\"table\":\"t\"}}"},
        /* a compact input with a NULL selection is reproduced exactly */
        {"{\"op\":\"c\",\"after\":{\"x\":1},\"source\":{\"table\":\"t\",\"a\":[1,{}]}}",
         {true, NULL, 0, NULL, 0},
         "{\"op\":\"c\",\"after\":{\"x\":1},\"source\":{\"table\":\"t\",\"a\":[1,{}]}}"},
        /* a flattened row keeps the SMT fields */
        {"{\"id\":1,\"x\":2,\"__op\":\"u\",\"__table\":\"t\"}",
         {true, NULL, 0, drop_x, 1},
         "{\"id\":1,\"__op\":\"u\",\"__table\":\"t\"}"},
        /* a flattened enveloped row: the top-level schema list follows the row */
        {"{\"schema\":{\"type\":\"struct\",\"fields\":[{\"field\":\"id\"},{\"field\":\"x\"},"
         "{\"field\":\"__table\"}]},\"payload\":{\"id\":1,\"x\":2,\"__table\":\"t\"}}",
         {true, NULL, 0, drop_x, 1},
         "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"field\":\"id\"},"
         "{\"field\":\"__table\"}]},\"payload\":{\"id\":1,\"__table\":\"t\"}}"},
    };
    size_t i;

    (void)state;
    sl_event_init(&ev);
    o = write_fixture(&ev, "postgresql-update.value.json", NULL, &sel, &in, &inlen);
    assert_string_equal(
        o, "{\"before\":{\"id\":1},\"after\":{\"id\":1,\"first_name\":\"Anne Marie\"},"
           "\"source\":{\"version\":\"3.7.0.Alpha2\",\"connector\":\"postgresql\",\"name\":"
           "\"PostgreSQL_server\",\"ts_ms\":1559033904863,\"ts_us\":1559033904863769,\"ts_ns\":"
           "1559033904863769000,\"snapshot\":false,\"db\":\"postgres\",\"schema\":\"public\","
           "\"table\":\"customers\",\"txId\":556,\"lsn\":24023128,\"xmin\":null},\"op\":\"u\","
           "\"ts_ms\":1465584025523,\"ts_us\":1465584025523514,\"ts_ns\":1465584025523514964}");
    a = jparse(in, inlen);
    b = jparse(o, strlen(o));
    assert_same(json_object_get(a, "source"), json_object_get(b, "source"), "source");
    json_decref(a);
    json_decref(b);
    free(in);
    free(o);

    /* flattened fixture from the docs */
    {
        static const char *const pk[] = {"pk"};
        const sl_colsel pks = {false, pk, 1, NULL, 0};

        o = write_fixture(&ev, "event-flattening-delete-rewrite.value.json", "a.b.c", &pks, &in,
                          &inlen);
        assert_string_equal(o, "{\"pk\":2,\"__deleted\":\"true\"}");
        free(in);
        free(o);
    }

    for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        record_make(&rec, NULL, NULL, 0, exact[i].in, strlen(exact[i].in));
        assert_int_equal(sl_event_decode(&ev, &rec, &err), 0);
        sl_buf_reset(&out);
        sl_event_write_value(&ev, &exact[i].sel, &out);
        if (strcmp(out.data, exact[i].want) != 0)
            print_error("case %zu:\n got %s\nwant %s\n", i, out.data, exact[i].want);
        assert_string_equal(out.data, exact[i].want);
    }

    /* tombstones without bytes are written as null */
    record_make(&rec, "a.b.c", "{\"id\":1}", 8, NULL, 0);
    assert_int_equal(sl_event_decode(&ev, &rec, &err), 0);
    sl_buf_reset(&out);
    sl_event_write_value(&ev, NULL, &out);
    assert_string_equal(out.data, "null");
    sl_buf_free(&out);
    sl_event_free(&ev);
}

/* The row image and its hash: the image's hash is the one sl_event_row_hash
 * gives for all columns and sl_image_hash gives for the image text; column
 * order, spacing and escaping change neither the hash nor (apart from the
 * order) the image. */
static void test_row_image_hash(void **state)
{
    static const struct {
        const char *value, *image;
    } rows[] = {
        {"{\"op\":\"c\",\"before\":null,\"after\":{\"id\":1,\"n\":\"a\"}}",
         "{\"id\":1,\"n\":\"a\"}"},
        {"{\"op\":\"c\",\"before\":null,\"after\":{ \"n\" : \"\\u0061\", \"id\" : 1 }}",
         "{\"n\":\"a\",\"id\":1}"},
        {"{\"op\":\"u\",\"before\":null,\"after\":{\"id\":1,\"n\":\"a\",\"o\":{\"x\": [1, 2]}}}",
         "{\"id\":1,\"n\":\"a\",\"o\":{\"x\":[1,2]}}"},
        {"{\"id\":1,\"n\":\"a\",\"__op\":\"c\",\"__deleted\":\"false\"}", "{\"id\":1,\"n\":\"a\"}"},
        /* compact, but not its own image: an escape, one blank */
        {"{\"op\":\"c\",\"before\":null,\"after\":{\"id\":1,\"n\":\"\\u0061\"}}",
         "{\"id\":1,\"n\":\"a\"}"},
        {"{\"op\":\"c\",\"before\":null,\"after\":{\"id\":1,\"n\":\"a\" }}",
         "{\"id\":1,\"n\":\"a\"}"},
        {"{\"op\":\"d\",\"before\":{\"id\":1,\"n\":\"a\"},\"after\":null}", NULL},
    };
    uint64_t first = 0;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sl_event ev;
        sl_record rec;
        sl_error err;
        sl_buf img = SL_BUF_INIT, scratch = SL_BUF_INIT;
        sl_json j;
        uint64_t h = 0;
        int has;

        sl_event_init(&ev);
        record_make(&rec, "a.public.t", "{\"id\":1}", 8, rows[i].value, strlen(rows[i].value));
        assert_int_equal(sl_event_decode(&ev, &rec, &err), 0);
        has = sl_event_row_image(&ev, &img, &h);
        assert_int_equal(h, sl_event_row_hash(&ev, NULL, &scratch));
        if (rows[i].image == NULL) {
            assert_int_equal(has, 0);
            assert_int_equal(img.len, 0);
            assert_true(h == SL_EVENT_HASH_DELETED);
        } else {
            assert_int_equal(has, 1);
            assert_string_equal(img.data, rows[i].image);
            sl_json_init(&j);
            assert_int_equal(sl_json_parse(&j, img.data, img.len, &err), 0);
            assert_int_equal(h, sl_image_hash(&j, NULL, &scratch));
            sl_json_free(&j);
            /* the other rows are row 0 written otherwise; row 2 has one more column */
            if (i == 0)
                first = h;
            else if (i == 2)
                assert_int_not_equal(h, first);
            else
                assert_int_equal(h, first);
        }
        sl_buf_free(&img);
        sl_buf_free(&scratch);
        sl_event_free(&ev);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_all),
        cmocka_unit_test(test_write_enveloped),
        cmocka_unit_test(test_write_bare),
        cmocka_unit_test(test_row_image_hash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
