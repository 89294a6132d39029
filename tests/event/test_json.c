/*
 * test_json.c - the JSON tokenizer: strictness, token layout, lookups,
 * unescaping, numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"

/* ---- documents that must parse --------------------------------------------- */

static const struct valid_case {
    const char *text;
    sl_jtype root;
    uint32_t ntok;
} valid_cases[] = {
    {"{}", SL_J_OBJECT, 1},
    {"[]", SL_J_ARRAY, 1},
    {" \t\r\n{ } \n", SL_J_OBJECT, 1},
    {"0", SL_J_NUMBER, 1},
    {"-0", SL_J_NUMBER, 1},
    {"-12.5e+3", SL_J_NUMBER, 1},
    {"1E-7", SL_J_NUMBER, 1},
    {"0.0", SL_J_NUMBER, 1},
    {"true", SL_J_TRUE, 1},
    {"false", SL_J_FALSE, 1},
    {"null", SL_J_NULL, 1},
    {"\"\"", SL_J_STRING, 1},
    {"\"plain ascii text longer than eight bytes\"", SL_J_STRING, 1},
    {"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", SL_J_STRING, 1}, /* 2, 3, 4 byte UTF-8 */
    {"\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"", SL_J_STRING, 1},
    {"\"\x7f\"", SL_J_STRING, 1}, /* DEL is not a control character in JSON */
    {"[1,[2,[3]],{\"a\":{}}]", SL_J_ARRAY, 9},
    {"{\"a\":1,\"a\":2}", SL_J_OBJECT, 5},
    {"[ 1 , 2 , 3 ]", SL_J_ARRAY, 4},
    {"{\"k\" : [ true , false , null ] }", SL_J_OBJECT, 6},
};

static void test_valid(void **state)
{
    size_t i;
    sl_json j;
    sl_error err;

    (void)state;
    sl_json_init(&j);
    for (i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *c = &valid_cases[i];
        int rc = sl_json_parse(&j, c->text, strlen(c->text), &err);

        if (rc != 0)
            print_error("case %zu %s: %s\n", i, c->text, err.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(j.tok[0].type, c->root);
        assert_int_equal(j.ntok, c->ntok);
        assert_int_equal(j.tok[0].next, j.ntok);
    }
    sl_json_free(&j);
}

/* ---- documents that must be rejected ---------------------------------------- */

static const struct invalid_case {
    const char *text;
    size_t len;      /* 0: strlen */
    const char *msg; /* "offset N: ..." fragment */
} invalid_cases[] = {
    {"", 0, "offset 0: unexpected end of input"},
    {"   ", 0, "offset 3: unexpected end of input"},
    {"{\"a\":1,}", 0, "offset 7: trailing comma before '}'"},
    {"[1,2,]", 0, "offset 5: trailing comma before ']'"},
    {"// c\n{}", 0, "offset 0: unexpected character"},
    {"{} /* c */", 0, "offset 3: unexpected data after the JSON value"},
    {"{'a':1}", 0, "offset 1: expected a string as object key"},
    {"['a']", 0, "offset 1: unexpected character"},
    {"\"\\x\"", 0, "offset 1: invalid escape sequence"},
    {"\"\\v\"", 0, "offset 1: invalid escape sequence"},
    {"\"\\u12\"", 0, "offset 1: invalid \\u escape: expected 4 hex digits"},
    {"\"\\u12G4\"", 0, "offset 1: invalid \\u escape"},
    {"\"\\uDE00\"", 0, "low surrogate without a high surrogate"},
    {"\"\\uD83D\"", 0, "high surrogate without a low surrogate"},
    {"\"\\uD83Dx\\uDE00\"", 0, "high surrogate without a low surrogate"},
    {"\"\\uD83D\\u0041\"", 0, "high surrogate without a low surrogate"},
    {"\"\xff\"", 0, "offset 1: invalid UTF-8"},
    {"\"\xc0\x80\"", 0, "invalid UTF-8"},         /* overlong NUL */
    {"\"\xe0\x80\xaf\"", 0, "invalid UTF-8"},     /* overlong '/' */
    {"\"\xed\xa0\x80\"", 0, "invalid UTF-8"},     /* encoded surrogate */
    {"\"\xf4\x90\x80\x80\"", 0, "invalid UTF-8"}, /* above U+10FFFF */
    {"\"\xe2\x82\"", 0, "invalid UTF-8"},         /* truncated sequence */
    {"\"\x80\"", 0, "invalid UTF-8"},             /* lone continuation byte */
    {"\"a\tb\"", 0, "offset 2: control character in string"},
    {"\"a\nb\"", 0, "control character in string"},
    {"\"a\0b\"", 5, "offset 2: control character in string"},
    {"\"abc", 0, "offset 0: unterminated string"},
    {"\"abc\\", 0, "unterminated string"},
    {"01", 0, "offset 0: invalid number: leading zero"},
    {"-01", 0, "invalid number: leading zero"},
    {"-", 0, "offset 1: invalid number: expected a digit"},
    {"1.", 0, "offset 2: invalid number: expected a digit after '.'"},
    {".5", 0, "offset 0: unexpected character"},
    {"1e", 0, "offset 2: invalid number: expected a digit in the exponent"},
    {"1e+", 0, "invalid number: expected a digit in the exponent"},
    {"+1", 0, "offset 0: unexpected character"},
    {"0x10", 0, "offset 1: unexpected data"},
    {"NaN", 0, "unexpected character"},
    {"Infinity", 0, "unexpected character"},
    {"-Infinity", 0, "invalid number"},
    {"tru", 0, "offset 0: invalid literal (expected true)"},
    {"nul", 0, "invalid literal (expected null)"},
    {"falsy", 0, "invalid literal"},
    {"TRUE", 0, "unexpected character"},
    {"{\"a\" 1}", 0, "offset 5: expected ':' after an object key"},
    {"{\"a\":1 \"b\":2}", 0, "offset 7: expected ',' or '}' in object"},
    {"[1 2]", 0, "offset 3: expected ',' or ']' in array"},
    {"{1:2}", 0, "offset 1: expected a string as object key"},
    {"[1}", 0, "expected ',' or ']' in array"},
    {"{\"a\":1]", 0, "expected ',' or '}' in object"},
    {"{\"a\":}", 0, "offset 5: unexpected closing bracket"},
    {"]", 0, "unexpected closing bracket"},
    {"[", 0, "offset 1: unexpected end of input"},
    {"{\"a\":1", 0, "offset 6: unexpected end of input"},
    {"{\"a\"", 0, "expected ':'"},
    {"1 2", 0, "offset 2: unexpected data after the JSON value"},
    {"{}{}", 0, "unexpected data after the JSON value"},
    {"\xef\xbb\xbf{}", 0, "offset 0: unexpected character"}, /* the tokenizer takes no BOM */
};

static void test_invalid(void **state)
{
    size_t i;
    sl_json j;
    sl_error err;

    (void)state;
    sl_json_init(&j);
    for (i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        const struct invalid_case *c = &invalid_cases[i];
        size_t len = c->len ? c->len : strlen(c->text);
        int rc;

        sl_error_clear(&err);
        rc = sl_json_parse(&j, c->text, len, &err);
        if (rc == 0 || strstr(err.msg, c->msg) == NULL)
            print_error("case %zu: got rc %d msg '%s', want '%s'\n", i, rc, err.msg, c->msg);
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, SL_ERR_PARSE);
        assert_non_null(strstr(err.msg, c->msg));
    }
    sl_json_free(&j);
}

static void test_depth(void **state)
{
    char doc[2 * (SL_JSON_MAX_DEPTH + 1) + 1];
    sl_json j;
    sl_error err;
    int i;

    (void)state;
    sl_json_init(&j);
    /* exactly the limit: accepted */
    for (i = 0; i < SL_JSON_MAX_DEPTH; i++) {
        doc[i] = '[';
        doc[SL_JSON_MAX_DEPTH + i] = ']';
    }
    assert_int_equal(sl_json_parse(&j, doc, 2 * SL_JSON_MAX_DEPTH, &err), 0);
    assert_int_equal(j.ntok, SL_JSON_MAX_DEPTH);
    /* one more: rejected */
    for (i = 0; i <= SL_JSON_MAX_DEPTH; i++) {
        doc[i] = '[';
        doc[SL_JSON_MAX_DEPTH + 1 + i] = ']';
    }
    assert_int_equal(sl_json_parse(&j, doc, 2 * (SL_JSON_MAX_DEPTH + 1), &err), -1);
    assert_non_null(strstr(err.msg, "offset 64: nesting too deep"));
    sl_json_free(&j);
}

/* ---- token layout -------------------------------------------------------------- */

static void test_layout(void **state)
{
    static const char doc[] = "{\"a\": [1, 2, {\"b\": null}], \"c\": \"x\\ny\"}";
    /* 0 obj, 1 "a", 2 arr, 3 1, 4 2, 5 obj, 6 "b", 7 null, 8 "c", 9 "x\ny" */
    static const struct {
        sl_jtype type;
        uint32_t start, len, next, count;
    } want[] = {
        {SL_J_OBJECT, 0, 39, 10, 2}, {SL_J_STRING, 1, 3, 2, 0},  {SL_J_ARRAY, 6, 19, 8, 3},
        {SL_J_NUMBER, 7, 1, 4, 0},   {SL_J_NUMBER, 10, 1, 5, 0}, {SL_J_OBJECT, 13, 11, 8, 1},
        {SL_J_STRING, 14, 3, 7, 5},  {SL_J_NULL, 19, 4, 8, 0},   {SL_J_STRING, 27, 3, 9, 0},
        {SL_J_STRING, 32, 6, 10, 0},
    };
    sl_json j;
    sl_error err;
    size_t i;

    (void)state;
    sl_json_init(&j);
    assert_int_equal(sl_json_parse(&j, doc, strlen(doc), &err), 0);
    assert_int_equal(j.ntok, 10);
    for (i = 0; i < 10; i++) {
        assert_int_equal(j.tok[i].type, want[i].type);
        assert_int_equal(j.tok[i].start, want[i].start);
        assert_int_equal(j.tok[i].len, want[i].len);
        assert_int_equal(j.tok[i].next, want[i].next);
        if (want[i].type != SL_J_STRING || i == 6)
            assert_int_equal(j.tok[i].count, want[i].count);
    }
    assert_int_equal(j.tok[9].escaped, 1);
    assert_int_equal(j.tok[1].escaped, 0);
    sl_json_free(&j);
}

/* ---- lookups ------------------------------------------------------------------- */

static void test_lookup(void **state)
{
    static const char doc[] =
        "{\"id\": 1, \"name\": \"x\", \"id\": 2, \"n\\u0061me2\": true, \"obj\": {\"id\": 3},"
        " \"arr\": [10, [20], 30], \"\": \"empty\"}";
    sl_json j;
    sl_error err;
    int t, k, n;

    (void)state;
    sl_json_init(&j);
    assert_int_equal(sl_json_parse(&j, doc, strlen(doc), &err), 0);

    /* duplicate keys: the last one wins */
    t = sl_json_get(&j, 0, "id", 2);
    assert_true(t > 0);
    assert_memory_equal(sl_json_raw(&j, t).p, "2", 1);
    /* escaped key matches its unescaped spelling */
    t = sl_json_get(&j, 0, "name2", 5);
    assert_true(t > 0);
    assert_int_equal(j.tok[t].type, SL_J_TRUE);
    assert_int_equal(sl_json_get(&j, 0, "n\\u0061me2", 10), -1);
    /* absent, prefix, and non-object lookups */
    assert_int_equal(sl_json_get(&j, 0, "nam", 3), -1);
    assert_int_equal(sl_json_get(&j, 0, "names", 5), -1);
    assert_int_equal(sl_json_get(&j, sl_json_get(&j, 0, "arr", 3), "id", 2), -1);
    assert_int_equal(sl_json_get(&j, -1, "id", 2), -1);
    /* nested object: only its own members */
    t = sl_json_get(&j, 0, "obj", 3);
    assert_memory_equal(sl_json_raw(&j, sl_json_get(&j, t, "id", 2)).p, "3", 1);
    assert_int_equal(sl_json_get(&j, t, "name", 4), -1);
    /* the empty key */
    t = sl_json_get(&j, 0, "", 0);
    assert_true(sl_json_str_eq(&j, t, "empty", 5));

    /* member iteration visits all 7 members in order, skipping subtrees */
    n = 0;
    for (k = sl_json_first(&j, 0); k >= 0; k = sl_json_next_member(&j, k))
        n++;
    assert_int_equal(n, 7);
    k = sl_json_first(&j, 0);
    assert_true(sl_json_str_eq(&j, k, "id", 2));
    k = sl_json_next_member(&j, k);
    assert_true(sl_json_str_eq(&j, k, "name", 4));
    /* element iteration */
    t = sl_json_get(&j, 0, "arr", 3);
    k = sl_json_elem_first(&j, t);
    assert_memory_equal(sl_json_raw(&j, k).p, "10", 2);
    k = sl_json_elem_next(&j, t, k);
    assert_int_equal(j.tok[k].type, SL_J_ARRAY);
    k = sl_json_elem_next(&j, t, k);
    assert_memory_equal(sl_json_raw(&j, k).p, "30", 2);
    assert_int_equal(sl_json_elem_next(&j, t, k), -1);
    /* empty containers */
    assert_int_equal(sl_json_parse(&j, "[{},[]]", 7, &err), 0);
    assert_int_equal(sl_json_first(&j, 1), -1);
    assert_int_equal(sl_json_elem_first(&j, 2), -1);
    assert_int_equal(sl_json_elem_first(&j, 1), -1); /* not an array */
    sl_json_free(&j);
}

/* ---- unescaping ------------------------------------------------------------------ */

static const struct unesc_case {
    const char *json;
    const char *want;
    size_t want_len;
} unesc_cases[] = {
    {"\"plain\"", "plain", 5},
    {"\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7},
    {"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5},
    {"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6},
    {"\"\\uD83D\\uDE00!\"", "\xf0\x9f\x98\x80!", 5},
    {"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4},
    {"\"nul\\u0000byte\"", "nul\0byte", 8},
    {"\"caf\xc3\xa9\\n\"", "caf\xc3\xa9\n", 6},
};

static void test_unescape(void **state)
{
    sl_json j;
    sl_error err;
    sl_buf b = SL_BUF_INIT;
    size_t i;

    (void)state;
    sl_json_init(&j);
    for (i = 0; i < sizeof(unesc_cases) / sizeof(unesc_cases[0]); i++) {
        const struct unesc_case *c = &unesc_cases[i];
        sl_value v;

        assert_int_equal(sl_json_parse(&j, c->json, strlen(c->json), &err), 0);
        sl_buf_reset(&b);
        sl_json_unescape(&j, 0, &b);
        assert_int_equal(b.len, c->want_len);
        assert_memory_equal(b.data, c->want, c->want_len);
        assert_true(sl_json_str_eq(&j, 0, c->want, c->want_len));
        assert_false(sl_json_str_eq(&j, 0, c->want, c->want_len - 1));
        sl_buf_reset(&b);
        sl_json_value(&j, 0, &b, &v);
        assert_int_equal(v.type, SL_V_STRING);
        assert_int_equal(v.u.s.len, c->want_len);
        assert_memory_equal(v.u.s.p, c->want, c->want_len);
        /* unescaped strings point into the source; escaped ones into scratch */
        if (j.tok[0].escaped)
            assert_ptr_equal(v.u.s.p, b.data);
        else
            assert_ptr_equal(v.u.s.p, c->json + 1);
    }
    sl_buf_free(&b);
    sl_json_free(&j);
}

/* ---- numbers and scalar values ---------------------------------------------------- */

static const struct num_case {
    const char *text;
    sl_vtype type;
    int64_t i;
    double d;
} num_cases[] = {
    {"0", SL_V_INT, 0, 0},
    {"-0", SL_V_INT, 0, 0},
    {"42", SL_V_INT, 42, 0},
    {"-17", SL_V_INT, -17, 0},
    {"1559729471739876149", SL_V_INT, 1559729471739876149LL, 0},
    {"9223372036854775807", SL_V_INT, INT64_MAX, 0},
    {"-9223372036854775808", SL_V_INT, INT64_MIN, 0},
    {"9223372036854775808", SL_V_DOUBLE, 0, 9223372036854775808.0},
    {"-9223372036854775809", SL_V_DOUBLE, 0, -9223372036854775809.0},
    {"18446744073709551616", SL_V_DOUBLE, 0, 18446744073709551616.0},
    {"9999999999999999999", SL_V_DOUBLE, 0, 9999999999999999999.0}, /* 19 digits, > INT64_MAX */
    {"1234567890123.1234567890123e-3", SL_V_DOUBLE, 0, 1234567890.1231234567890123},
    {"1.5", SL_V_DOUBLE, 0, 1.5},
    {"-0.25", SL_V_DOUBLE, 0, -0.25},
    {"1e3", SL_V_DOUBLE, 0, 1000.0},
    {"2.5E-3", SL_V_DOUBLE, 0, 0.0025},
    {"1.0", SL_V_DOUBLE, 0, 1.0},
    {"123456789012345678901234567890123456789012345678901234567890123456789.5", SL_V_DOUBLE, 0,
     1.2345678901234568e68},
};

static void test_numbers(void **state)
{
    sl_json j;
    sl_error err;
    size_t i;

    (void)state;
    sl_json_init(&j);
    for (i = 0; i < sizeof(num_cases) / sizeof(num_cases[0]); i++) {
        const struct num_case *c = &num_cases[i];
        sl_value v;
        char doc[128];

        /* inside an array, so the number is not at the end of the buffer */
        snprintf(doc, sizeof(doc), "[%s]", c->text);
        assert_int_equal(sl_json_parse(&j, doc, strlen(doc), &err), 0);
        sl_json_value(&j, 1, NULL, &v);
        assert_int_equal(v.type, c->type);
        if (c->type == SL_V_INT)
            assert_true(v.u.i == c->i);
        else
            assert_true(fabs(v.u.d - c->d) <= fabs(c->d) * 1e-15);
        /* and as the whole document, unterminated */
        assert_int_equal(sl_json_parse(&j, c->text, strlen(c->text), &err), 0);
        sl_json_value(&j, 0, NULL, &v);
        assert_int_equal(v.type, c->type);
    }
    sl_json_free(&j);
}

static void test_values(void **state)
{
    static const char doc[] = "{\"t\":true,\"f\":false,\"n\":null,\"o\":{\"a\": [1]},\"a\":[ ]}";
    sl_json j;
    sl_error err;
    sl_value v;

    (void)state;
    sl_json_init(&j);
    assert_int_equal(sl_json_parse(&j, doc, strlen(doc), &err), 0);
    sl_json_value(&j, sl_json_get(&j, 0, "t", 1), NULL, &v);
    assert_int_equal(v.type, SL_V_BOOL);
    assert_true(v.u.b);
    sl_json_value(&j, sl_json_get(&j, 0, "f", 1), NULL, &v);
    assert_int_equal(v.type, SL_V_BOOL);
    assert_false(v.u.b);
    sl_json_value(&j, sl_json_get(&j, 0, "n", 1), NULL, &v);
    assert_int_equal(v.type, SL_V_NULL);
    sl_json_value(&j, sl_json_get(&j, 0, "o", 1), NULL, &v);
    assert_int_equal(v.type, SL_V_COMPOUND);
    assert_int_equal(v.u.s.len, strlen("{\"a\": [1]}"));
    assert_memory_equal(v.u.s.p, "{\"a\": [1]}", v.u.s.len);
    sl_json_value(&j, sl_json_get(&j, 0, "a", 1), NULL, &v);
    assert_int_equal(v.type, SL_V_COMPOUND);
    assert_memory_equal(v.u.s.p, "[ ]", 3);
    sl_json_free(&j);
}

/* One sl_json reused for a big document and then small ones. */
static void test_reuse(void **state)
{
    sl_buf big = SL_BUF_INIT;
    sl_json j;
    sl_error err;
    int i;

    (void)state;
    sl_json_init(&j);
    sl_buf_putc(&big, '[');
    for (i = 0; i < 10000; i++)
        sl_buf_printf(&big, "%s{\"k%d\":\"v\\u00e9\",\"n\":%d}", i ? "," : "", i, i);
    sl_buf_putc(&big, ']');
    assert_int_equal(sl_json_parse(&j, big.data, big.len, &err), 0);
    assert_int_equal(j.ntok, 1 + 10000 * 5);
    assert_int_equal(j.tok[0].count, 10000);
    assert_int_equal(sl_json_parse(&j, "{\"a\":1}", 7, &err), 0);
    assert_int_equal(j.ntok, 3);
    assert_int_equal(j.tok[0].next, 3);
    sl_buf_free(&big);
    sl_json_free(&j);
}

/* sl_json_plain against a byte at a time: every byte value at every place
 * of words and tails, after plain bytes of each kind, and a second special
 * byte behind the first. */
static void test_plain_run(void **state)
{
    unsigned char buf[24];
    size_t n, at, want, k;
    unsigned c, d;

    (void)state;
    for (n = 0; n <= sizeof(buf); n++)
        for (at = 0; at <= n; at++)
            for (c = 0; c < 256; c++)
                for (d = 0; d < 4; d++) {
                    static const unsigned char second[4] = {'"', 0x01, 0xff, 'z'};

                    for (k = 0; k < n; k++)
                        buf[k] = (unsigned char)(0x20 + (k * 7 + c) % 0x5f); /* plain */
                    for (k = 0; k < n; k++)
                        if (buf[k] == '"' || buf[k] == '\\')
                            buf[k] = 'q';
                    if (at < n)
                        buf[at] = (unsigned char)c;
                    if (at + 1 < n)
                        buf[at + 1] = second[d];
                    for (want = 0; want < n; want++)
                        if (buf[want] < 0x20 || buf[want] >= 0x80 || buf[want] == '"' ||
                            buf[want] == '\\')
                            break;
                    if (sl_json_plain(buf, n) != want)
                        fail_msg("n %zu, byte 0x%02x at %zu: %zu, want %zu", n, c, at,
                                 sl_json_plain(buf, n), want);
                }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),   cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_depth),   cmocka_unit_test(test_layout),
        cmocka_unit_test(test_lookup),  cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_numbers), cmocka_unit_test(test_values),
        cmocka_unit_test(test_reuse),   cmocka_unit_test(test_plain_run),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
