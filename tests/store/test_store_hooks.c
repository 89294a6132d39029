/*
 * test_store_hooks.c - two SQLite store paths that timing alone rarely
 * reaches, with the store built for them (tests/store/CMakeLists.txt):
 *
 * - CKPT_BYTES=256 KiB, CKPT_PERIOD_S=3600: the checkpointer thread wakes
 *   when the write-ahead log passes its size, not only on its timer;
 * - SQ_ROWS_BEFORE_READ=before_read: between a lookup and the read of the
 *   entry it found, another handle on the file (another process, in
 *   production) rewrites the rows until its compaction has moved the entry
 *   away. The lookup must notice the entry is gone, catch up with the
 *   file, and find the row's newest document.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/buf.h"
#include "connectors/store.h"
#include "store_test.h"

enum { NROWS = 200, BATCH = 50, ROUNDS = 100 };

static char tmpdir[64];
static char keys[NROWS][32];

/* Every row once, with documents "round R row I" (padded to pad bytes). */
static void write_round(const sl_store *st, void *sess, int round, size_t pad)
{
    static char docs[BATCH][600];
    sl_seen rows[BATCH];
    sl_error err;
    int i, j;

    for (i = 0; i < NROWS; i += BATCH) {
        for (j = 0; j < BATCH; j++) {
            int n = snprintf(docs[j], sizeof(docs[j]), "round %03d row %03d", round, i + j);

            uint32_t x = (uint32_t)(round * NROWS + i + j) * 2654435761u + 1;

            /* letters that do not repeat: the store compresses its segments,
             * and the log must grow by about what is written */
            while ((size_t)n < pad && n < (int)sizeof(docs[j]) - 1) {
                x = x * 1664525u + 1013904223u;
                docs[j][n++] = (char)('a' + (x >> 27) % 26);
            }
            docs[j][n] = '\0';
            rows[j] = seen("central", "s.t", keys[i + j], "", "db", docs[j]);
        }
        sl_error_clear(&err);
        if (st->ops->seen_put(sess, rows, BATCH, NULL, 0, &err) != 0)
            fail_msg("seen_put: %s", err.msg);
    }
}

/* ---- the lookup that races a compaction ---------------------------------------- */

static struct {
    const sl_store *other; /* the handle that rewrites the rows */
    void *sess;
    bool armed;
    int calls; /* before_read calls since armed */
} race;

void before_read(sl_str table, sl_str key);

void before_read(sl_str table, sl_str key)
{
    int round;

    (void)table;
    (void)key;
    if (!race.armed)
        return;
    if (race.calls++ > 0)
        return;
    /* 100 more rounds: the garbage passes 4,096 entries many times, and
     * compaction moves every live entry out of the first segments */
    for (round = 1; round <= ROUNDS; round++)
        write_round(race.other, race.sess, round, 0);
}

static void test_lookup_retried_after_compaction(void **state)
{
    char uri[128];
    sl_store a = {0}, b = {0};
    sl_error err = {0};
    void *sa, *sb;
    sl_buf doc = SL_BUF_INIT;
    char want[32];
    int rc;

    (void)state;
    snprintf(uri, sizeof(uri), "sqlite:%s/race.db", tmpdir);
    open_pair(uri, &a, &b, &sa, &sb);
    write_round(&a, sa, 0, 0);
    /* b indexes the rows where round 0 put them */
    assert_int_equal(b.ops->row_get(sb, S("s.t"), S(keys[5]), &doc, &err), 1);
    assert_int_equal(doc.len, 17);
    assert_memory_equal(doc.data, "round 000 row 005", 17);

    race.other = &a;
    race.sess = sa;
    race.calls = 0;
    race.armed = true;
    sl_error_clear(&err);
    rc = b.ops->row_get(sb, S("s.t"), S(keys[5]), &doc, &err);
    if (rc != 1)
        fail_msg("row_get gave %d (1: found): %s", rc, err.msg);
    race.armed = false;
    /* the first read found the entry's segment gone; the second read,
     * after catching up with a's segments, found the newest document */
    assert_int_equal(race.calls, 2);
    snprintf(want, sizeof(want), "round %03d row 005", ROUNDS);
    assert_int_equal(doc.len, strlen(want));
    assert_memory_equal(doc.data, want, doc.len);

    a.ops->session_close(sa);
    b.ops->session_close(sb);
    sl_store_destroy(&a);
    sl_store_destroy(&b);
    sl_buf_free(&doc);
}

/* ---- the checkpointer's wake-up ------------------------------------------------ */

static long file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void test_checkpointer_wakes_at_size(void **state)
{
    char path[128], uri[160];
    sl_store st = {0};
    sl_error err = {0};
    void *s;
    long before, after = 0;
    int round, waited;

    (void)state;
    snprintf(path, sizeof(path), "%s/ckpt.db", tmpdir);
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    assert_int_equal(sl_store_open(&st, uri, &err), 0);
    s = st.ops->session_open(st.self, &err);
    assert_non_null(s);
    before = file_size(path);
    assert_true(before > 0);
    /* 4 rounds of 200 rows of ~500 bytes: about 400 KB of log, past the
     * 256 KiB this build wakes the checkpointer at */
    for (round = 0; round < 4; round++)
        write_round(&st, s, round, 500);
    /* Only the wake-up can copy the log into the file now: the timer is an
     * hour, the writers never checkpoint, and nothing is closed yet. */
    for (waited = 0; waited < 100; waited++) {
        after = file_size(path);
        if (after > before + (256 << 10))
            break;
        usleep(100 * 1000);
    }
    if (after <= before + (256 << 10))
        fail_msg("the database file stayed at %ld bytes (%ld at the start) for 10 s: the "
                 "checkpointer did not wake up",
                 after, before);
    st.ops->session_close(s);
    sl_store_destroy(&st);
}

static int setup(void **state)
{
    int i;

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-hooks-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    for (i = 0; i < NROWS; i++)
        snprintf(keys[i], sizeof(keys[i]), "{\"id\":%03d}", i);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_retried_after_compaction),
        cmocka_unit_test(test_checkpointer_wakes_at_size),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
