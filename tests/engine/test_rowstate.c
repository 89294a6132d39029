/*
 * test_rowstate.c - a row's state document (engine/rowstate.c): the binary
 * form round-trips every field, the JSON documents of schema version 2 are
 * still read, and a damaged document is an error, never a crash or a
 * silently different state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/event.h"
#include "engine/rowstate.h"

/* A state with every kind of field: a live version, sites holding a
 * version, nothing, and their own content; queues with hashes equal to the
 * row's and different; acknowledged entries; forgotten versions; an older
 * image kept as a merge base and a deleted one. */
static void full_state(sl_rowstate *s)
{
    sl_rs_site *a, *b, *c;
    sl_str pos = {"00000000000003e9", 16}, row = {"{\"id\":1,\"n\":2}", 14};
    sl_str row1 = {"{\"id\":1,\"n\":1}", 14};

    sl_rowstate_init(s);
    sl_rowstate_set_version(s, 1, "central", 1700000000000, pos, false, row1, 0x1111);
    a = sl_rowstate_site(s, "central");
    b = sl_rowstate_site(s, "store_01");
    c = sl_rowstate_site(s, "store_02");
    a->held = 1;
    sl_rowstate_queue(b, 1, 0x1111);
    sl_rowstate_set_version(s, 2, "store_01", -5, pos, false, row, 0x9e3779b97f4a7c15ULL);
    sl_rowstate_queue(b, 2, 0x9e3779b97f4a7c15ULL);
    sl_rowstate_queue(c, 2, 0xfedcba9876543210ULL); /* a column selection: another hash */
    b->pos = strdup("00000000000003ea");
    b->lost = 7;
    c->held = SL_HELD_OWN;
    c->own = strdup("{\"id\":1,\"n\":99}");
    c->acked[0].v = 1;
    c->acked[0].hash = 0x1111;
    c->acked[1].v = 2;
    c->acked[1].hash = 0x9e3779b97f4a7c15ULL;
    c->nacked = 2;
}

static void assert_same_str(const char *a, const char *b)
{
    if (a == NULL)
        assert_null(b);
    else
        assert_string_equal(a, b);
}

static void assert_same_state(const sl_rowstate *x, const sl_rowstate *y)
{
    size_t i, k;

    assert_int_equal(x->v, y->v);
    assert_same_str(x->writer, y->writer);
    assert_int_equal(x->ts, y->ts);
    assert_same_str(x->pos, y->pos);
    assert_int_equal(x->deleted, y->deleted);
    if (!x->deleted)
        assert_same_str(x->row, y->row);
    assert_true(x->hash == y->hash);
    assert_int_equal(x->nsites, y->nsites);
    for (i = 0; i < x->nsites; i++) {
        const sl_rs_site *a = &x->sites[i], *b = &y->sites[i];

        assert_string_equal(a->name, b->name);
        assert_same_str(a->pos, b->pos);
        assert_int_equal(a->held, b->held);
        assert_int_equal(a->nq, b->nq);
        for (k = 0; k < a->nq; k++) {
            assert_int_equal(a->q[k].v, b->q[k].v);
            assert_true(a->q[k].hash == b->q[k].hash);
        }
        assert_int_equal(a->lost, b->lost);
        if (a->held == SL_HELD_OWN)
            assert_same_str(a->own, b->own);
        assert_int_equal(a->nacked, b->nacked);
        for (k = 0; k < a->nacked; k++) {
            assert_int_equal(a->acked[k].v, b->acked[k].v);
            assert_true(a->acked[k].hash == b->acked[k].hash);
        }
    }
    assert_int_equal(x->nimgs, y->nimgs);
    for (i = 0; i < x->nimgs; i++) {
        assert_int_equal(x->imgs[i].v, y->imgs[i].v);
        assert_int_equal(x->imgs[i].deleted, y->imgs[i].deleted);
        assert_same_str(x->imgs[i].row, y->imgs[i].row);
    }
}

static void test_round_trip(void **state)
{
    sl_rowstate s, t;
    sl_buf b = SL_BUF_INIT, b2 = SL_BUF_INIT;
    sl_error err;

    (void)state;
    full_state(&s);
    assert_int_equal(s.nimgs, 1); /* version 1 is still a base: site b has it queued */
    sl_rowstate_encode(&s, &b);
    sl_rowstate_init(&t);
    assert_int_equal(sl_rowstate_read(&t, b.data, b.len, &err), 0);
    assert_same_state(&s, &t);
    /* and encodes to the same bytes again */
    sl_rowstate_encode(&t, &b2);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    /* a tombstone */
    sl_rowstate_set_version(&s, 3, "store_02", 1700000000500, (sl_str){"0a", 2}, true,
                            (sl_str){NULL, 0}, SL_EVENT_HASH_DELETED);
    sl_buf_reset(&b);
    sl_rowstate_encode(&s, &b);
    assert_int_equal(sl_rowstate_read(&t, b.data, b.len, &err), 0);
    assert_true(t.deleted);
    assert_null(t.row);
    assert_same_state(&s, &t);
    sl_rowstate_free(&s);
    sl_rowstate_free(&t);
    sl_buf_free(&b);
    sl_buf_free(&b2);
}

/* One state reused for row after row (sl_rowstate_clear, as a worker
 * does): each row decodes exactly as into a new state, whatever sites, in
 * whatever order, the rows before it had. */
static void test_reuse(void **state)
{
    sl_rowstate full, small, t, fresh;
    sl_buf bf = SL_BUF_INIT, bs = SL_BUF_INIT, out = SL_BUF_INIT;
    sl_error err;
    sl_rs_site *x;
    int round;

    (void)state;
    full_state(&full);
    sl_rowstate_encode(&full, &bf);
    /* fewer sites, in another order, one of them new */
    sl_rowstate_init(&small);
    sl_rowstate_set_version(&small, 4, "store_02", 1, (sl_str){"07", 2}, false,
                            (sl_str){"{\"id\":2}", 8}, 0x22);
    x = sl_rowstate_site(&small, "store_02");
    x->held = 4;
    sl_rowstate_queue(sl_rowstate_site(&small, "store_09"), 4, 0x22);
    sl_rowstate_encode(&small, &bs);

    sl_rowstate_init(&t);
    for (round = 0; round < 3; round++) {
        assert_int_equal(sl_rowstate_read(&t, bf.data, bf.len, &err), 0);
        assert_same_state(&full, &t);
        sl_buf_reset(&out);
        sl_rowstate_encode(&t, &out);
        assert_int_equal(out.len, bf.len);
        assert_memory_equal(out.data, bf.data, bf.len);

        assert_int_equal(sl_rowstate_read(&t, bs.data, bs.len, &err), 0);
        assert_same_state(&small, &t);
        assert_int_equal(t.sites[0].lost, 0); /* nothing left from the row before */
        assert_int_equal(t.sites[0].nacked, 0);
        assert_null(t.sites[0].own);

        /* a new row built on the cleared state: no site, no queue */
        sl_rowstate_clear(&t);
        sl_rowstate_init(&fresh);
        assert_int_equal(t.nsites, 0);
        assert_int_equal(t.v, 0);
        x = sl_rowstate_site(&t, "store_01");
        assert_int_equal(x->nq, 0);
        assert_int_equal(x->held, 0);
        assert_null(x->pos);
        sl_rowstate_queue(x, 1, 0x33);
        sl_rowstate_queue(sl_rowstate_site(&fresh, "store_01"), 1, 0x33);
        assert_same_state(&fresh, &t);
        sl_rowstate_free(&fresh);
        sl_rowstate_clear(&t);
    }
    sl_rowstate_free(&t);
    sl_rowstate_free(&full);
    sl_rowstate_free(&small);
    sl_buf_free(&bf);
    sl_buf_free(&bs);
    sl_buf_free(&out);
}

/* Smaller than the JSON it replaced: what the benchmark's row costs. */
static void test_size(void **state)
{
    sl_rowstate s;
    sl_buf b = SL_BUF_INIT;
    sl_rs_site *st;
    const char *const sites[] = {"store_03", "central", "store_01", "store_02"};
    size_t i;

    (void)state;
    sl_rowstate_init(&s);
    sl_rowstate_set_version(
        &s, 1, "store_03", 1700000000256, (sl_str){"0000000000000428", 16}, false,
        (sl_str){"{\"sku\":\"sku-255\",\"qty\":15,\"shelf\":\"s0\"}", 38}, 0x2bcbaae71fb8b332ULL);
    for (i = 0; i < 4; i++) {
        st = sl_rowstate_site(&s, sites[i]);
        if (i == 0) {
            st->held = 1;
            st->pos = strdup("0000000000000428");
        } else {
            sl_rowstate_queue(st, 1, 0x2bcbaae71fb8b332ULL);
        }
    }
    sl_rowstate_encode(&s, &b);
    /* the same state was 419 bytes of JSON in schema version 2; 165 now */
    assert_true(b.len <= 419 / 2);
    sl_rowstate_free(&s);
    sl_buf_free(&b);
}

static void test_json_v2(void **state)
{
    static const char doc[] =
        "{\"v\":2,\"w\":\"s1\",\"ts\":1700000000000,\"p\":\"000000000000a1b2\",\"d\":false,"
        "\"h\":\"9e3779b97f4a7c15\",\"row\":{\"id\":1,\"n\":2},"
        "\"s\":[{\"n\":\"s1\",\"p\":\"000000000000a1b2\",\"h\":2,\"q\":[],\"a\":[]},"
        "{\"n\":\"s2\",\"p\":null,\"h\":-1,\"q\":[[2,\"9e3779b97f4a7c15\"]],"
        "\"o\":{\"id\":1,\"n\":7},\"a\":[[1,\"0000000000001111\"]]}],"
        "\"i\":[[1,false,{\"id\":1,\"n\":1}]]}";
    sl_rowstate s;
    sl_error err;

    (void)state;
    sl_rowstate_init(&s);
    assert_int_equal(sl_rowstate_read(&s, doc, strlen(doc), &err), 0);
    assert_int_equal(s.v, 2);
    assert_string_equal(s.writer, "s1");
    assert_string_equal(s.row, "{\"id\":1,\"n\":2}");
    assert_true(s.hash == 0x9e3779b97f4a7c15ULL);
    assert_int_equal(s.nsites, 2);
    assert_int_equal(s.sites[1].held, SL_HELD_OWN);
    assert_string_equal(s.sites[1].own, "{\"id\":1,\"n\":7}");
    assert_int_equal(s.sites[1].nq, 1);
    assert_int_equal(s.sites[1].lost, 0);
    assert_true(s.sites[1].acked[0].hash == 0x1111);
    assert_int_equal(s.nimgs, 1);
    assert_string_equal(s.imgs[0].row, "{\"id\":1,\"n\":1}");
    sl_rowstate_free(&s);
}

/* Every truncation of a document is refused with a message; every
 * single-bit change is refused or read into some state that reads back the
 * same after encoding it: nothing is read past the end (ASan runs this),
 * nothing crashes. */
static void test_damaged(void **state)
{
    sl_rowstate s, t;
    sl_buf b = SL_BUF_INIT, again = SL_BUF_INIT;
    sl_error err;
    size_t n, i;
    int bit, refused = 0;

    (void)state;
    full_state(&s);
    sl_rowstate_encode(&s, &b);
    sl_rowstate_init(&t);
    for (n = 0; n < b.len; n++) {
        /* a copy of exactly n bytes, so that ASan sees a read past it */
        char *p = malloc(n ? n : 1);

        memcpy(p, b.data, n);
        assert_int_equal(sl_rowstate_read(&t, p, n, &err), -1);
        assert_non_null(strstr(err.msg, "row state"));
        free(p);
    }
    for (i = 0; i < b.len; i++)
        for (bit = 0; bit < 8; bit++) {
            char *p = malloc(b.len);

            memcpy(p, b.data, b.len);
            p[i] ^= (char)(1 << bit);
            if (sl_rowstate_read(&t, p, b.len, &err) != 0) {
                refused++;
            } else {
                sl_rowstate u;

                sl_buf_reset(&again);
                sl_rowstate_encode(&t, &again);
                sl_rowstate_init(&u);
                assert_int_equal(sl_rowstate_read(&u, again.data, again.len, &err), 0);
                assert_same_state(&t, &u);
                sl_rowstate_free(&u);
            }
            free(p);
        }
    assert_true(refused > 0);
    sl_rowstate_free(&s);
    sl_rowstate_free(&t);
    sl_buf_free(&b);
    sl_buf_free(&again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_size),       cmocka_unit_test(test_json_v2),
        cmocka_unit_test(test_damaged),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
