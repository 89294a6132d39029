/*
 * test_collision.c - two rows whose 128-bit hashes are equal.
 *
 * The SQLite store finds a row's document through a 128-bit hash of its
 * table and key (connectors/sqlite_rows.c). Two different rows with the
 * same hash cannot both be indexed; a lookup must then report it, never
 * hand one row the other's state. No such pair of rows is known, so this
 * test builds the store with SQ_ROWS_HASH_MASK=0: every row hashes to 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/buf.h"
#include "connectors/store.h"
#include "store_test.h"

static void test_same_hash_reported(void **state)
{
    char dir[] = "/tmp/sluice-collide-XXXXXX", uri[300];
    sl_store st;
    sl_error err;
    sl_buf doc = {0};
    void *sess;
    sl_seen a = seen("central", "public.orders", "{\"id\":1}", "0000000000000001", "",
                     "{\"doc\":\"of row 1\"}");
    sl_seen b = seen("central", "public.orders", "{\"id\":2}", "0000000000000001", "",
                     "{\"doc\":\"of row 2\"}");

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(uri, sizeof(uri), "sqlite:%s/state.db", dir);
    sl_error_clear(&err);
    assert_int_equal(sl_store_open(&st, uri, &err), 0);
    sess = st.ops->session_open(st.self, &err);
    assert_non_null(sess);

    assert_int_equal(st.ops->seen_put(sess, &a, 1, NULL, 0, &err), 0);
    assert_int_equal(st.ops->row_get(sess, a.table, a.key, &doc, &err), 1);
    assert_int_equal(doc.len, a.doc.len);
    assert_memory_equal(doc.data, a.doc.p, a.doc.len);

    /* row 2 takes row 1's place in the index */
    assert_int_equal(st.ops->seen_put(sess, &b, 1, NULL, 0, &err), 0);
    assert_int_equal(st.ops->row_get(sess, b.table, b.key, &doc, &err), 1);
    assert_memory_equal(doc.data, b.doc.p, b.doc.len);

    /* row 1 is an error that names both rows, not row 2's document */
    sl_buf_reset(&doc);
    sl_error_clear(&err);
    assert_int_equal(st.ops->row_get(sess, a.table, a.key, &doc, &err), -1);
    assert_int_equal(doc.len, 0);
    assert_non_null(strstr(err.msg, "same 128-bit hash"));
    assert_non_null(strstr(err.msg, "{\"id\":1}"));
    assert_non_null(strstr(err.msg, "{\"id\":2}"));

    st.ops->session_close(sess);
    sl_store_destroy(&st);
    sl_buf_free(&doc);
    snprintf(uri, sizeof(uri), "rm -rf '%s'", dir);
    assert_int_equal(system(uri), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_hash_reported),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
