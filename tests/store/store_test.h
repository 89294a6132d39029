/*
 * store_test.h - helpers of the store tests (test_store.c,
 * test_collision.c, test_store_hooks.c). Include after string.h, cmocka.h
 * and connectors/store.h.
 */
#ifndef SLUICE_TESTS_STORE_TEST_H
#define SLUICE_TESTS_STORE_TEST_H

static inline sl_str S(const char *s)
{
    sl_str r = {s, strlen(s)};

    return r;
}

/* One change as the engine hands it to seen_put. */
static inline sl_seen seen(const char *origin, const char *table, const char *key, const char *pos,
                           const char *part, const char *doc)
{
    sl_seen r;

    r.origin = S(origin);
    r.table = S(table);
    r.key = S(key);
    r.position = S(pos);
    r.partition = S(part);
    r.doc = S(doc);
    return r;
}

/* Two SQLite store handles on one file, as two processes would have, each
 * with a session. */
static inline void open_pair(const char *uri, sl_store *a, sl_store *b, void **sa, void **sb)
{
    sl_error err = {0};

    assert_int_equal(sl_store_open(a, uri, &err), 0);
    assert_int_equal(sl_store_open(b, uri, &err), 0);
    *sa = a->ops->session_open(a->self, &err);
    *sb = b->ops->session_open(b->self, &err);
    assert_non_null(*sa);
    assert_non_null(*sb);
}

#endif
