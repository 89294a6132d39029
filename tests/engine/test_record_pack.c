/*
 * test_record_pack.c - the packed record form Kafka messages travel in
 * through the engine's batches (sl_record_pack / sl_record_unpack), and
 * stage A over it (sl_item_decode_record) against the wrapper line path it
 * replaces: same event, same fate, same outputs and dead letters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../dsl/diag.h"
#include "../../engine/event.h"
#include "../../engine/process.h"

#define S(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

typedef struct bytes {
    const char *p; /* NULL: absent */
    size_t n;
} bytes;

typedef struct hcase {
    bytes name;
    bytes value; /* p NULL: a null header value */
} hcase;

typedef struct rcase {
    const char *what;
    bytes topic;
    int32_t partition;
    int64_t offset;
    bytes key, value;
    hcase h[4];
    size_t nh;
} rcase;

static const rcase rcases[] = {
    {"plain",
     S("central.public.orders"),
     3,
     42,
     S("{\"id\":1}"),
     S("{\"op\":\"c\"}"),
     {{{0}, {0}}},
     0},
    {"NULL key", S("t"), 0, 0, {NULL, 0}, S("{}"), {{{0}, {0}}}, 0},
    {"NULL value (tombstone)", S("t"), 1, 7, S("{\"id\":1}"), {NULL, 0}, {{{0}, {0}}}, 0},
    {"NULL key and value", S("t"), 2, 9, {NULL, 0}, {NULL, 0}, {{{0}, {0}}}, 0},
    {"binary key", S("t"), 0, 1, S("\x00\xff\x01\"\\\n"), S("{}"), {{{0}, {0}}}, 0},
    {"empty key and value", S("t"), 0, 2, S(""), S(""), {{{0}, {0}}}, 0},
    {"empty topic", S(""), -1, -1, {NULL, 0}, S("v"), {{{0}, {0}}}, 0},
    {"headers with NULL values",
     S("t"),
     5,
     INT64_MAX,
     S("k"),
     S("v"),
     {{S("a"), S("1")}, {S("b"), {NULL, 0}}, {S(""), S("")}, {S("bin"), S("\xff\x00z")}},
     4},
    {"largest partition", S("t"), INT32_MAX, 0, S("k"), S("v"), {{{0}, {0}}}, 0},
};

static void fill(sl_record *rec, const rcase *c)
{
    size_t i;

    memset(rec, 0, sizeof(*rec));
    rec->topic.p = c->topic.p;
    rec->topic.len = c->topic.n;
    rec->partition = c->partition;
    rec->offset = c->offset;
    rec->key = c->key.p;
    rec->key_len = c->key.n;
    rec->value = c->value.p;
    rec->value_len = c->value.n;
    for (i = 0; i < c->nh; i++) {
        rec->headers[i].name.p = c->h[i].name.p;
        rec->headers[i].name.len = c->h[i].name.n;
        rec->headers[i].null_value = c->h[i].value.p == NULL;
        rec->headers[i].value.p = c->h[i].value.p ? c->h[i].value.p : "";
        rec->headers[i].value.len = c->h[i].value.n;
    }
    rec->nheaders = c->nh;
}

/* p points into [lo, hi) (the packed bytes), not into the case's literals */
static void assert_inside(const char *p, size_t n, const char *lo, const char *hi)
{
    assert_true(p >= lo && p + n <= hi);
}

static void assert_bytes(const char *what, const char *field, const char *got, size_t glen,
                         const bytes *want)
{
    if (want->p == NULL) {
        if (got != NULL)
            fail_msg("%s: %s should be NULL", what, field);
        return;
    }
    if (got == NULL)
        fail_msg("%s: %s is NULL, expected %zu bytes", what, field, want->n);
    if (glen != want->n || memcmp(got, want->p, glen) != 0)
        fail_msg("%s: %s has the wrong bytes (%zu, expected %zu)", what, field, glen, want->n);
}

/* Every case packed back to back after an odd prefix (the batch's bytes
 * give no alignment), then each unpacked from its own slice. */
static void test_round_trip(void **state)
{
    size_t n = sizeof(rcases) / sizeof(rcases[0]), i, k, off[16], len[16];
    sl_buf buf = SL_BUF_INIT;
    sl_error err;

    (void)state;
    sl_buf_append(&buf, "x", 1);
    for (i = 0; i < n; i++) {
        sl_record rec;

        fill(&rec, &rcases[i]);
        off[i] = buf.len;
        sl_record_pack(&rec, &buf);
        len[i] = buf.len - off[i];
        sl_buf_append(&buf, "abc", i % 3); /* shift the next one */
    }
    for (i = 0; i < n; i++) {
        const rcase *c = &rcases[i];
        const char *lo = buf.data + off[i], *hi = lo + len[i];
        sl_record rec;

        rec.where.p = "stale";
        rec.where.len = 5;
        sl_error_clear(&err);
        if (sl_record_unpack(&rec, lo, len[i], &err) != 0)
            fail_msg("%s: %s", c->what, err.msg);
        assert_bytes(c->what, "topic", rec.topic.p, rec.topic.len, &c->topic);
        assert_inside(rec.topic.p, rec.topic.len, lo, hi);
        assert_int_equal(rec.partition, c->partition);
        assert_int_equal(rec.offset, c->offset);
        assert_bytes(c->what, "key", rec.key, rec.key_len, &c->key);
        assert_bytes(c->what, "value", rec.value, rec.value_len, &c->value);
        if (rec.key) {
            assert_inside(rec.key, rec.key_len, lo, hi);
        } else {
            assert_int_equal(rec.key_len, 0);
        }
        if (rec.value) {
            assert_inside(rec.value, rec.value_len, lo, hi);
        } else {
            assert_int_equal(rec.value_len, 0);
        }
        assert_int_equal(rec.nheaders, c->nh);
        for (k = 0; k < c->nh; k++) {
            const sl_header *h = &rec.headers[k];

            assert_bytes(c->what, "header name", h->name.p, h->name.len, &c->h[k].name);
            assert_inside(h->name.p, h->name.len, lo, hi);
            assert_int_equal(h->null_value, c->h[k].value.p == NULL);
            if (h->null_value) {
                assert_non_null(h->value.p); /* "" like a parsed line gives */
                assert_int_equal(h->value.len, 0);
            } else {
                assert_bytes(c->what, "header value", h->value.p, h->value.len, &c->h[k].value);
                assert_inside(h->value.p, h->value.len, lo, hi);
            }
        }
        assert_int_equal(rec.where.len, 0);
    }
    sl_buf_free(&buf);
}

/* The most headers a record holds survive; more than that are not packed
 * (a source gives at most SL_MAX_HEADERS). */
static void test_many_headers(void **state)
{
    sl_record rec, back;
    sl_buf buf = SL_BUF_INIT;
    sl_error err;
    char names[SL_MAX_HEADERS][8];
    size_t i;

    (void)state;
    memset(&rec, 0, sizeof(rec));
    rec.topic.p = "t";
    rec.topic.len = 1;
    for (i = 0; i < SL_MAX_HEADERS; i++) {
        snprintf(names[i], sizeof(names[i]), "h%zu", i);
        rec.headers[i].name.p = names[i];
        rec.headers[i].name.len = strlen(names[i]);
        rec.headers[i].value.p = names[i];
        rec.headers[i].value.len = i % 3;
    }
    rec.nheaders = SL_MAX_HEADERS;
    sl_record_pack(&rec, &buf);
    assert_int_equal(sl_record_unpack(&back, buf.data, buf.len, &err), 0);
    assert_int_equal(back.nheaders, SL_MAX_HEADERS);
    for (i = 0; i < SL_MAX_HEADERS; i++) {
        assert_int_equal(back.headers[i].name.len, strlen(names[i]));
        assert_memory_equal(back.headers[i].name.p, names[i], strlen(names[i]));
        assert_int_equal(back.headers[i].value.len, i % 3);
        assert_memory_equal(back.headers[i].value.p, names[i], i % 3);
    }
    sl_buf_free(&buf);
}

/* Damage: every truncation and a trailing byte are refused, never read
 * past the end (ASan checks that). */
static void test_damaged(void **state)
{
    sl_record rec;
    sl_buf buf = SL_BUF_INIT;
    sl_error err;
    size_t n;
    char *copy;

    (void)state;
    fill(&rec, &rcases[7]);
    sl_record_pack(&rec, &buf);
    for (n = 0; n < buf.len; n++) {
        copy = malloc(n ? n : 1);
        memcpy(copy, buf.data, n);
        sl_error_clear(&err);
        assert_int_equal(sl_record_unpack(&rec, copy, n, &err), -1);
        assert_int_equal(err.code, SL_ERR_INTERNAL);
        assert_int_equal(rec.nheaders, 0);
        assert_null(rec.value);
        free(copy);
    }
    sl_buf_putc(&buf, 'z');
    assert_int_equal(sl_record_unpack(&rec, buf.data, buf.len, &err), -1);
    sl_buf_free(&buf);
}

/* ---- stage A: packed record against the wrapper line it replaces ----------- */

static const char rules[] = "site central hub;\n"
                            "site store_01;\n"
                            "dead letters \"dead\";\n"
                            "table public.orders {\n"
                            "    key (id);\n"
                            "    route * -> *;\n"
                            "}\n";

static sl_program *pack_program(void)
{
    sl_diags d;
    sl_program *p;

    sl_diags_init(&d);
    p = sl_compile_text("pack.rules", rules, strlen(rules), &d);
    assert_non_null(p);
    sl_diags_free(&d);
    return p;
}

#define CHANGE                                                                                     \
    "{\"before\":null,\"after\":{\"id\":1,\"qty\":3},\"source\":{\"connector\":\"postgresql\","    \
    "\"name\":\"central\",\"db\":\"d\",\"schema\":\"public\",\"table\":\"orders\",\"lsn\":12,"     \
    "\"ts_ms\":5},\"op\":\"c\",\"ts_ms\":5}"
#define UNKNOWN_TABLE                                                                              \
    "{\"before\":null,\"after\":{\"id\":1},\"source\":{\"connector\":\"postgresql\","              \
    "\"name\":\"central\",\"db\":\"d\",\"schema\":\"public\",\"table\":\"nope\",\"lsn\":12,"       \
    "\"ts_ms\":5},\"op\":\"c\",\"ts_ms\":5}"
#define UNKNOWN_SITE                                                                               \
    "{\"before\":null,\"after\":{\"id\":1},\"source\":{\"connector\":\"postgresql\","              \
    "\"name\":\"elsewhere\",\"db\":\"d\",\"schema\":\"public\",\"table\":\"orders\",\"lsn\":12,"   \
    "\"ts_ms\":5},\"op\":\"c\",\"ts_ms\":5}"
#define NO_KEY                                                                                     \
    "{\"before\":null,\"after\":{\"qty\":1},\"source\":{\"connector\":\"postgresql\","             \
    "\"name\":\"central\",\"db\":\"d\",\"schema\":\"public\",\"table\":\"orders\",\"lsn\":12,"     \
    "\"ts_ms\":5},\"op\":\"c\",\"ts_ms\":5}"

typedef struct kcase {
    const char *what;
    bytes key, value;
    /* the wrapper line embedded the key's JSON without its surrounding
     * spaces; a packed record keeps the message's bytes as they are */
    bool key_trimmed;
} kcase;

/* Kafka messages as the source hands them (topic c.public.orders, with a
 * header with a NULL value), good and bad. */
static const kcase kcases[] = {
    {"change", S("{\"id\":1}"), S(CHANGE), false},
    {"change, no key", {NULL, 0}, S(CHANGE), false},
    {"change, key not JSON", S("id=1"), S(CHANGE), false},
    {"change, binary key", S("\xff\x01"), S(CHANGE), false},
    {"change, key a JSON number", S("1"), S(CHANGE), false},
    {"change, key with spaces", S(" {\"id\":1} "), S(CHANGE), true},
    {"value not JSON", S("{\"id\":1}"), S("hello"), false},
    {"value not UTF-8", S("{\"id\":1}"), S("\xff\xfe{"), false},
    {"key and value not UTF-8", S("\x80\x81"), S("\xc0\xaf"), false},
    {"value a number", {NULL, 0}, S("42"), false},
    {"value a JSON string", {NULL, 0}, S("\"{}\""), false},
    {"value an array", {NULL, 0}, S("[1,2]"), false},
    {"value empty", {NULL, 0}, S(""), false},
    {"value {oops}", S("{\"id\":1}"), S("{oops}"), false},
    {"value an object with a non-UTF-8 string", S("{\"id\":1}"), S("{\"a\":\"\xff\"}"), false},
    {"value truncated JSON", S("{\"id\":1}"), S("{\"before\":"), false},
    {"value with a control byte", S("{\"id\":1}"), S("a\x01\tb\"\\"), false},
    {"tombstone", S("{\"id\":1}"), {NULL, 0}, false},
    {"value the text null", S("{\"id\":1}"), S("null"), false},
    {"unknown table", S("{\"id\":1}"), S(UNKNOWN_TABLE), false},
    {"unknown site", S("{\"id\":1}"), S(UNKNOWN_SITE), false},
    {"no key column", {NULL, 0}, S(NO_KEY), false},
};

/* What the reader did before: is it a JSON object or array? */
static bool is_json(sl_json *j, const char *p, size_t n)
{
    sl_error e;

    return sl_json_parse(j, p, n, &e) == 0 &&
           (j->tok[0].type == SL_J_OBJECT || j->tok[0].type == SL_J_ARRAY);
}

static void assert_same_str(const char *what, const char *field, const char *a, size_t alen,
                            const char *b, size_t blen)
{
    if ((a == NULL) != (b == NULL))
        fail_msg("%s: %s is NULL on one path only", what, field);
    if (a && (alen != blen || memcmp(a, b, alen) != 0))
        fail_msg("%s: %s differs: '%.*s' / '%.*s'", what, field, (int)alen, a, (int)blen, b);
}

/* Stage B's outputs of one item, flattened to text to compare. */
static void outputs(sl_proc *w, sl_item *it, sl_buf *out)
{
    const sl_record *recs;
    size_t n, i, h;
    sl_error err;

    sl_buf_reset(out);
    assert_int_equal(sl_proc_item(w, it, &err), 0);
    recs = sl_proc_outputs(w, &n);
    for (i = 0; i < n; i++) {
        const sl_record *r = &recs[i];

        sl_buf_printf(out, "topic=%.*s\nkey=", (int)r->topic.len, r->topic.p);
        if (r->key)
            sl_buf_append(out, r->key, r->key_len);
        sl_buf_puts(out, r->value ? "\nvalue=" : "\nvalue=(null)");
        if (r->value)
            sl_buf_append(out, r->value, r->value_len);
        for (h = 0; h < r->nheaders; h++) {
            sl_buf_printf(out, "\n%.*s=", (int)r->headers[h].name.len, r->headers[h].name.p);
            sl_buf_append(out, r->headers[h].value.p, r->headers[h].value.len);
        }
        sl_buf_putc(out, '\n');
    }
    sl_proc_reset(w, NULL);
}

static void test_same_as_line(void **state)
{
    sl_program *p;
    sl_proc *w;
    sl_item a, b;
    sl_json j, jl;
    sl_buf line = SL_BUF_INIT, packed = SL_BUF_INIT, oa = SL_BUF_INIT, ob = SL_BUF_INIT;
    size_t i;
    int dead = 0;

    (void)state;
    p = pack_program();
    w = sl_proc_new(NULL, NULL);
    sl_item_init(&a);
    sl_item_init(&b);
    sl_json_init(&j);
    sl_json_init(&jl);
    for (i = 0; i < sizeof(kcases) / sizeof(kcases[0]); i++) {
        const kcase *c = &kcases[i];
        sl_record rec;

        memset(&rec, 0, sizeof(rec));
        rec.topic.p = "c.public.orders";
        rec.topic.len = strlen(rec.topic.p);
        rec.partition = 2;
        rec.offset = 100 + (int64_t)i;
        rec.key = c->key.p;
        rec.key_len = c->key.n;
        rec.value = c->value.p;
        rec.value_len = c->value.n;
        rec.headers[0].name.p = "trace";
        rec.headers[0].name.len = 5;
        rec.headers[0].value.p = "";
        rec.headers[0].null_value = true;
        rec.nheaders = 1;

        /* before: the reader wrote a wrapper line, the worker parsed it */
        sl_buf_reset(&line);
        sl_record_write_line(&rec, rec.key == NULL || is_json(&j, rec.key, rec.key_len),
                             rec.value == NULL || is_json(&j, rec.value, rec.value_len), &line);
        sl_item_decode(&a, p, line.data, line.len, "c.public.orders:2", rec.offset, &jl);
        /* now: packed, and read where it lies */
        sl_buf_reset(&packed);
        sl_record_pack(&rec, &packed);
        sl_item_decode_record(&b, p, packed.data, packed.len, "c.public.orders:2", rec.offset);

        if (a.fate != b.fate)
            fail_msg("%s: fate %d (line) / %d (packed)", c->what, (int)a.fate, (int)b.fate);
        assert_int_equal(a.err.code, b.err.code);
        assert_string_equal(a.err.msg, b.err.msg);
        if (c->key_trimmed) {
            assert_int_equal(b.rec.key_len, c->key.n);
            assert_memory_equal(b.rec.key, c->key.p, c->key.n);
        } else {
            assert_same_str(c->what, "key", a.rec.key, a.rec.key_len, b.rec.key, b.rec.key_len);
        }
        assert_same_str(c->what, "value", a.rec.value, a.rec.value_len, b.rec.value,
                        b.rec.value_len);
        assert_same_str(c->what, "topic", a.rec.topic.p, a.rec.topic.len, b.rec.topic.p,
                        b.rec.topic.len);
        assert_int_equal(a.rec.partition, b.rec.partition);
        assert_int_equal(a.rec.offset, b.rec.offset);
        assert_int_equal(b.rec.nheaders, 1);
        assert_true(b.rec.headers[0].null_value);
        assert_same_str(c->what, "qname", a.qname.data, a.qname.len, b.qname.data, b.qname.len);
        assert_same_str(c->what, "row key", a.key.data, a.key.len, b.key.data, b.key.len);
        assert_true(a.hash == b.hash);
        assert_true(a.table == b.table);
        assert_int_equal(a.origin, b.origin);

        outputs(w, &a, &oa);
        outputs(w, &b, &ob);
        if (strcmp(oa.data, ob.data) != 0)
            fail_msg("%s: outputs differ:\n--- line\n%s--- packed\n%s", c->what, oa.data, ob.data);
        if (strstr(ob.data, "topic=dead\n"))
            dead++;
    }
    /* the table holds dead letters of every kind above, not only passes */
    assert_true(dead >= 12);
    sl_buf_free(&line);
    sl_buf_free(&packed);
    sl_buf_free(&oa);
    sl_buf_free(&ob);
    sl_json_free(&j);
    sl_json_free(&jl);
    sl_item_free(&a);
    sl_item_free(&b);
    sl_proc_free(w);
    sl_program_unref(p);
}

/* A dead letter from a packed record carries the value as the message had
 * it, whatever the topic (the wrapper line once gave a record with an empty
 * topic and no key the whole wrapper line as its value). */
static void test_dead_letter_value(void **state)
{
    sl_program *p;
    sl_proc *w;
    sl_item it;
    sl_buf packed = SL_BUF_INIT, out = SL_BUF_INIT;
    sl_record rec;

    (void)state;
    p = pack_program();
    w = sl_proc_new(NULL, NULL);
    sl_item_init(&it);
    memset(&rec, 0, sizeof(rec));
    rec.topic.p = "";
    rec.partition = 0;
    rec.offset = 3;
    rec.value = "not json";
    rec.value_len = 8;
    sl_record_pack(&rec, &packed);
    sl_item_decode_record(&it, p, packed.data, packed.len, ":0", 3);
    assert_int_equal(it.fate, SL_FATE_DEAD);
    outputs(w, &it, &out);
    assert_non_null(strstr(out.data, "topic=dead\nkey=\nvalue=\"not json\"\n"));
    assert_non_null(strstr(out.data, "\nsluice.input=:0:3\n"));
    sl_buf_free(&packed);
    sl_buf_free(&out);
    sl_item_free(&it);
    sl_proc_free(w);
    sl_program_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_many_headers),
        cmocka_unit_test(test_damaged),           cmocka_unit_test(test_same_as_line),
        cmocka_unit_test(test_dead_letter_value),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
