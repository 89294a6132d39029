/*
 * test_file_sink.c - the file sink: one call writing to more topics than it
 * first makes room for, lines longer than it reserves for them, and each
 * topic's lines in the order given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "connectors/sink.h"
#include "engine/json.h"

#define NTOPICS 20
#define ROUNDS  3

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    sl_buf b = SL_BUF_INIT;
    char tmp[4096];
    size_t n;

    assert_non_null(f);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        sl_buf_append(&b, tmp, n);
    fclose(f);
    *len = b.len;
    return b.data ? sl_buf_steal(&b, len) : calloc(1, 1);
}

static void test_many_topics_one_call(void **state)
{
    char dir[] = "/tmp/sluice-fsink-XXXXXX";
    char topics[NTOPICS][16], values[NTOPICS * ROUNDS][32], ctl[200];
    sl_record recs[NTOPICS * ROUNDS];
    sl_sink sink = {NULL, NULL};
    sl_error err;
    size_t i, k;

    (void)state;
    assert_non_null(mkdtemp(dir));
    memset(ctl, 1, sizeof(ctl)); /* each escaped as \u0001: 6 times the room */
    /* round r writes topic t record number r: one call, topics interleaved */
    for (i = 0; i < NTOPICS * ROUNDS; i++) {
        sl_record *r = &recs[i];
        size_t t = i % NTOPICS;

        memset(r, 0, sizeof(*r));
        snprintf(topics[t], sizeof(topics[t]), "t%02zu", t);
        snprintf(values[i], sizeof(values[i]), "{\"n\":%zu}", i / NTOPICS);
        r->topic.p = topics[t];
        r->topic.len = strlen(topics[t]);
        r->partition = -1;
        r->offset = -1;
        r->value = values[i];
        r->value_len = strlen(values[i]);
        r->nheaders = 1;
        r->headers[0].name.p = "h";
        r->headers[0].name.len = 1;
        r->headers[0].value.p = t % 7 == 0 ? ctl : "v";
        r->headers[0].value.len = t % 7 == 0 ? sizeof(ctl) : 1;
    }
    assert_int_equal(sl_sink_open_files(&sink, dir, &err), 0);
    assert_int_equal(sink.ops->write(sink.self, recs, NTOPICS * ROUNDS, &err), 0);
    assert_int_equal(sink.ops->flush(sink.self, true, &err), 0);
    sl_sink_destroy(&sink);

    for (k = 0; k < NTOPICS; k++) {
        char path[96];
        size_t len, lines = 0;
        char *text, *line, *save = NULL;

        snprintf(path, sizeof(path), "%s/t%02zu.jsonl", dir, k);
        text = slurp(path, &len);
        assert_int_equal(strlen(text), len); /* whole lines, nothing else */
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            sl_json j;
            sl_buf hv = SL_BUF_INIT;
            char want[32];
            int v, h;

            sl_json_init(&j);
            assert_int_equal(sl_json_parse(&j, line, strlen(line), &err), 0);
            snprintf(want, sizeof(want), "\"t%02zu\"", k);
            assert_int_equal(sl_json_raw(&j, sl_json_get(&j, 0, "topic", 5)).len, strlen(want));
            assert_memory_equal(sl_json_raw(&j, sl_json_get(&j, 0, "topic", 5)).p, want,
                                strlen(want));
            v = sl_json_get(&j, 0, "value", 5);
            snprintf(want, sizeof(want), "{\"n\":%zu}", lines); /* in the order given */
            assert_int_equal(sl_json_raw(&j, v).len, strlen(want));
            assert_memory_equal(sl_json_raw(&j, v).p, want, strlen(want));
            h = sl_json_get(&j, sl_json_get(&j, 0, "headers", 7), "h", 1);
            assert_true(h >= 0);
            sl_json_unescape(&j, h, &hv);
            if (k % 7 == 0) {
                assert_int_equal(hv.len, sizeof(ctl));
                assert_memory_equal(hv.data, ctl, sizeof(ctl));
            } else {
                assert_string_equal(hv.data, "v");
            }
            sl_buf_free(&hv);
            sl_json_free(&j);
            lines++;
        }
        assert_int_equal(lines, ROUNDS);
        free(text);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_topics_one_call),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
