/*
 * open_pair.h - two SQLite store handles on one file, as two processes
 * would have, each with a session (test_store.c, test_store_hooks.c).
 * Include after cmocka.h and connectors/store.h.
 */
#ifndef SLUICE_TESTS_STORE_OPEN_PAIR_H
#define SLUICE_TESTS_STORE_OPEN_PAIR_H

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
