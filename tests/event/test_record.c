/*
 * test_record.c - the JSON-lines record format: bare values, wrappers, kcat -J,
 * tombstones, BOM and CRLF, malformed lines, and writing lines back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define UPDATE                                                                                     \
    "{\"op\":\"u\",\"before\":{\"id\":1},\"after\":{\"id\":1,\"n\":\"x\"},\"source\":{\"name\":"   \
    "\"pg1\",\"table\":\"orders\",\"schema\":\"public\",\"lsn\":10}}"

typedef struct hdr {
    const char *name, *value; /* value NULL: a null header value */
} hdr;

static const struct line_case {
    const char *line;
    size_t len; /* 0: strlen */
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key;   /* NULL: no key */
    const char *value; /* NULL: tombstone */
    hdr headers[4];
} line_cases[] = {
    /* a bare value: the whole line */
    {UPDATE, 0, "", -1, -1, NULL, UPDATE, {{NULL, NULL}}},
    {"  " UPDATE "  ", 0, "", -1, -1, NULL, "  " UPDATE "  ", {{NULL, NULL}}},
    /* a bare value mentioning "topic" in a column is still bare */
    {"{\"op\":\"c\",\"after\":{\"topic\":\"x\"},\"source\":{\"table\":\"t\"}}",
     0,
     "",
     -1,
     -1,
     NULL,
     "{\"op\":\"c\",\"after\":{\"topic\":\"x\"},\"source\":{\"table\":\"t\"}}",
     {{NULL, NULL}}},
    /* BOM and CRLF are not part of the value */
    {"\xef\xbb\xbf" UPDATE "\r\n", 0, "", -1, -1, NULL, UPDATE, {{NULL, NULL}}},
    {UPDATE "\n", 0, "", -1, -1, NULL, UPDATE, {{NULL, NULL}}},
    /* a wrapper with embedded JSON */
    {"{\"topic\":\"pg1.public.orders\",\"partition\":3,\"offset\":42,\"key\":{\"id\": 1},"
     "\"value\":" UPDATE ",\"headers\":{\"h1\":\"v1\",\"h2\":null,\"h\\u00e9\":\"a\\\"b\"}}",
     0,
     "pg1.public.orders",
     3,
     42,
     "{\"id\": 1}",
     UPDATE,
     {{"h1", "v1"}, {"h2", NULL}, {"h\xc3\xa9", "a\"b"}, {NULL, NULL}}},
    /* key and value as strings holding JSON */
    {"{\"topic\":\"t\",\"key\":\"{\\\"id\\\":1}\",\"value\":\"{\\\"op\\\":\\\"c\\\"}\"}",
     0,
     "t",
     -1,
     -1,
     "{\"id\":1}",
     "{\"op\":\"c\"}",
     {{NULL, NULL}}},
    /* kcat -J: payload, header array, extra members */
    {"{\"topic\":\"dbserver1.inventory.customers\",\"partition\":0,\"offset\":5,\"tstype\":"
     "\"create\",\"ts\":1700000000000,\"broker\":1,\"headers\":[\"origin\",\"site1\",\"x\","
     "\"\"],\"key\":\"{\\\"id\\\":1001}\",\"payload\":\"{\\\"id\\\":1001,\\\"__op\\\":\\\"u\\\"}"
     "\"}",
     0,
     "dbserver1.inventory.customers",
     0,
     5,
     "{\"id\":1001}",
     "{\"id\":1001,\"__op\":\"u\"}",
     {{"origin", "site1"}, {"x", ""}, {NULL, NULL}}},
    /* tombstones */
    {"{\"topic\":\"t\",\"partition\":1,\"offset\":7,\"key\":{\"id\":1},\"value\":null}",
     0,
     "t",
     1,
     7,
     "{\"id\":1}",
     NULL,
     {{NULL, NULL}}},
    {"{\"topic\":\"t\",\"key\":\"{\\\"id\\\":1}\",\"payload\":null}",
     0,
     "t",
     -1,
     -1,
     "{\"id\":1}",
     NULL,
     {{NULL, NULL}}},
    /* null key, null headers, null partition */
    {"{\"topic\":\"t\",\"partition\":null,\"key\":null,\"value\":{},\"headers\":null}",
     0,
     "t",
     -1,
     -1,
     NULL,
     "{}",
     {{NULL, NULL}}},
    /* an escaped "topic" key still makes a wrapper */
    {"{\"t\\u006fpic\":\"x\",\"value\":{}}", 0, "x", -1, -1, NULL, "{}", {{NULL, NULL}}},
    /* the "topic" member last: found though it is near the end of the line */
    {"{\"value\":{},\"topic\":\"x\"}", 0, "x", -1, -1, NULL, "{}", {{NULL, NULL}}},
    /* a non-object line is a bare value (decode rejects it later) */
    {"[1,\"topic\"]", 0, "", -1, -1, NULL, "[1,\"topic\"]", {{NULL, NULL}}},
};

static void test_lines(void **state)
{
    sl_json j;
    sl_buf scratch = SL_BUF_INIT;
    size_t i, h;

    (void)state;
    sl_json_init(&j);
    for (i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const struct line_case *c = &line_cases[i];
        sl_record rec;
        sl_error err;
        int rc;

        memset(&rec, 0, sizeof(rec));
        rec.where.p = "in.json:3";
        rec.where.len = 9;
        sl_buf_reset(&scratch);
        rc = sl_record_parse_line(&rec, c->line, c->len ? c->len : strlen(c->line), &j, &scratch,
                                  &err);
        if (rc != 0)
            print_error("case %zu: %s\n", i, err.msg);
        assert_int_equal(rc, 0);
        assert_true(str_is(rec.where, "in.json:3")); /* the caller's location is kept */
        if (!str_is(rec.topic, c->topic))
            print_error("case %zu: topic '%.*s'\n", i, (int)rec.topic.len, rec.topic.p);
        assert_true(str_is(rec.topic, c->topic));
        assert_int_equal(rec.partition, c->partition);
        assert_true(rec.offset == c->offset);
        if (c->key) {
            assert_non_null(rec.key);
            assert_int_equal(rec.key_len, strlen(c->key));
            assert_memory_equal(rec.key, c->key, rec.key_len);
        } else {
            assert_null(rec.key);
        }
        if (c->value) {
            assert_non_null(rec.value);
            if (rec.value_len != strlen(c->value) || memcmp(rec.value, c->value, rec.value_len))
                print_error("case %zu: value '%.*s'\n", i, (int)rec.value_len, rec.value);
            assert_int_equal(rec.value_len, strlen(c->value));
            assert_memory_equal(rec.value, c->value, rec.value_len);
        } else {
            assert_null(rec.value);
        }
        for (h = 0; c->headers[h].name; h++) {
            assert_true(h < rec.nheaders);
            assert_true(str_is(rec.headers[h].name, c->headers[h].name));
            assert_int_equal(rec.headers[h].null_value, c->headers[h].value == NULL);
            if (c->headers[h].value)
                assert_true(str_is(rec.headers[h].value, c->headers[h].value));
        }
        assert_int_equal(rec.nheaders, h);
    }
    sl_buf_free(&scratch);
    sl_json_free(&j);
}

static const struct bad_line {
    const char *line;
    const char *msg;
} bad_lines[] = {
    {"", "empty line"},
    {"  \r\n", "empty line"},
    {"\xef\xbb\xbf", "empty line"},
    {"{\"topic\":\"t\",\"value\":{}", "line is not valid JSON: offset 23: unexpected end"},
    {"{\"topic\":\"t\",\"value\":{},}", "trailing comma"},
    {"{\"topic\":1,\"value\":{}}", "wrapper \"topic\" must be a string"},
    {"{\"topic\":\"t\",\"partition\":\"1\",\"value\":{}}",
     "wrapper \"partition\" must be an integer"},
    {"{\"topic\":\"t\",\"partition\":1.5,\"value\":{}}",
     "wrapper \"partition\" must be an integer"},
    {"{\"topic\":\"t\",\"partition\":4294967296,\"value\":{}}", "\"partition\" must be an integer"},
    {"{\"topic\":\"t\",\"offset\":-2,\"value\":{}}", "wrapper \"offset\" must be an integer"},
    {"{\"topic\":\"t\"}", "wrapper line has no \"value\""},
    {"{\"topic\":\"t\",\"value\":{},\"headers\":\"h\"}",
     "\"headers\" must be an object or an array"},
    {"{\"topic\":\"t\",\"value\":{},\"headers\":[\"a\"]}", "name, value pairs"},
    {"{\"topic\":\"t\",\"value\":{},\"headers\":[1,\"a\"]}", "a header name must be a string"},
};

static void test_bad_lines(void **state)
{
    sl_json j;
    sl_buf scratch = SL_BUF_INIT, many = SL_BUF_INIT;
    sl_record rec;
    sl_error err;
    size_t i;

    (void)state;
    sl_json_init(&j);
    for (i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        int rc;

        memset(&rec, 0, sizeof(rec));
        sl_error_clear(&err);
        rc = sl_record_parse_line(&rec, bad_lines[i].line, strlen(bad_lines[i].line), &j, &scratch,
                                  &err);
        if (rc == 0 || strstr(err.msg, bad_lines[i].msg) == NULL)
            print_error("case %zu: rc %d '%s', want '%s'\n", i, rc, err.msg, bad_lines[i].msg);
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, SL_ERR_PARSE);
        assert_non_null(strstr(err.msg, bad_lines[i].msg));
    }
    /* more headers than a record holds */
    sl_buf_puts(&many, "{\"topic\":\"t\",\"value\":{},\"headers\":{");
    for (i = 0; i <= SL_MAX_HEADERS; i++)
        sl_buf_printf(&many, "%s\"h%zu\":\"v\"", i ? "," : "", i);
    sl_buf_puts(&many, "}}");
    memset(&rec, 0, sizeof(rec));
    assert_int_equal(sl_record_parse_line(&rec, many.data, many.len, &j, &scratch, &err), -1);
    assert_non_null(strstr(err.msg, "more than 32 headers"));
    sl_buf_free(&many);
    sl_buf_free(&scratch);
    sl_json_free(&j);
}

/* write_line -> parse_line gives the record back. */
static void test_write_line(void **state)
{
    sl_record rec, back;
    sl_buf out = SL_BUF_INIT, scratch = SL_BUF_INIT;
    sl_json j;
    sl_error err;

    (void)state;
    sl_json_init(&j);
    memset(&rec, 0, sizeof(rec));
    rec.topic.p = "sluice.site2.public.orders";
    rec.topic.len = strlen(rec.topic.p);
    rec.partition = 2;
    rec.offset = 99;
    rec.key = "{\"id\":1}";
    rec.key_len = 8;
    rec.value = UPDATE;
    rec.value_len = strlen(UPDATE);
    rec.headers[0].name.p = "sluice.origin";
    rec.headers[0].name.len = 13;
    rec.headers[0].value.p = "si\"te1";
    rec.headers[0].value.len = 6;
    rec.headers[1].name.p = "n";
    rec.headers[1].name.len = 1;
    rec.headers[1].null_value = true;
    rec.nheaders = 2;

    sl_record_write_line(&rec, true, true, &out);
    assert_string_equal(out.data, "{\"topic\":\"sluice.site2.public.orders\",\"partition\":2,"
                                  "\"offset\":99,\"key\":{\"id\":1},\"value\":" UPDATE
                                  ",\"headers\":{\"sluice.origin\":\"si\\\"te1\",\"n\":null}}");
    memset(&back, 0, sizeof(back));
    assert_int_equal(sl_record_parse_line(&back, out.data, out.len, &j, &scratch, &err), 0);
    assert_true(str_is(back.topic, "sluice.site2.public.orders"));
    assert_int_equal(back.partition, 2);
    assert_true(back.offset == 99);
    assert_int_equal(back.key_len, 8);
    assert_memory_equal(back.key, "{\"id\":1}", 8);
    assert_int_equal(back.value_len, strlen(UPDATE));
    assert_int_equal(back.nheaders, 2);
    assert_true(str_is(back.headers[0].value, "si\"te1"));
    assert_true(back.headers[1].null_value);

    /* unknown partition/offset are omitted; a non-JSON key is a string; a tombstone is null */
    rec.partition = -1;
    rec.offset = -1;
    rec.key = "plain \"key\"";
    rec.key_len = strlen(rec.key);
    rec.value = NULL;
    rec.nheaders = 0;
    sl_buf_reset(&out);
    sl_record_write_line(&rec, false, true, &out);
    assert_string_equal(out.data, "{\"topic\":\"sluice.site2.public.orders\",\"key\":\"plain "
                                  "\\\"key\\\"\",\"value\":null,\"headers\":{}}");
    memset(&back, 0, sizeof(back));
    assert_int_equal(sl_record_parse_line(&back, out.data, out.len, &j, &scratch, &err), 0);
    assert_null(back.value);
    assert_int_equal(back.partition, -1);
    assert_int_equal(back.key_len, strlen("plain \"key\""));
    assert_memory_equal(back.key, "plain \"key\"", back.key_len);
    sl_buf_free(&out);
    sl_buf_free(&scratch);
    sl_json_free(&j);
}

/* Lines through to decoded events. */
static void test_line_to_event(void **state)
{
    static const char kcat[] =
        "{\"topic\":\"dbserver1.inventory.customers\",\"partition\":0,\"offset\":5,"
        "\"headers\":[],\"key\":\"{\\\"id\\\":1001}\",\"payload\":\"{\\\"id\\\":1001,"
        "\\\"name\\\":\\\"a\\\\u00e9\\\"}\"}\r\n";
    sl_json j;
    sl_buf scratch = SL_BUF_INIT, key = SL_BUF_INIT;
    sl_record rec;
    sl_event ev;
    sl_error err;
    sl_value v;

    (void)state;
    sl_json_init(&j);
    sl_event_init(&ev);
    memset(&rec, 0, sizeof(rec));
    assert_int_equal(sl_record_parse_line(&rec, kcat, strlen(kcat), &j, &scratch, &err), 0);
    assert_int_equal(sl_event_decode(&ev, &rec, &err), 0);
    assert_true(ev.flattened);
    assert_true(str_is(ev.table, "customers"));
    assert_true(str_is(ev.schema, "inventory"));
    assert_true(str_is(ev.origin, "dbserver1"));
    assert_int_equal(sl_event_column(&ev, SL_SEC_ROW, "name", 4, &v), 1);
    assert_true(v.type == SL_V_STRING && str_is(v.u.s, "a\xc3\xa9"));
    assert_int_equal(sl_event_key(&ev, NULL, 0, &key, &err), 0);
    assert_string_equal(key.data, "{\"id\":1001}");

    /* a bare line with broken JSON passes parse_line and fails in decode */
    memset(&rec, 0, sizeof(rec));
    assert_int_equal(sl_record_parse_line(&rec, "{\"op\":", 6, &j, &scratch, &err), 0);
    assert_int_equal(sl_event_decode(&ev, &rec, &err), -1);
    assert_int_equal(err.code, SL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "value is not valid JSON: offset 6"));
    sl_buf_free(&key);
    sl_buf_free(&scratch);
    sl_event_free(&ev);
    sl_json_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_write_line),
        cmocka_unit_test(test_line_to_event),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
