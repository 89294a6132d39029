/*
 * fuzz_event.c - libFuzzer target for the event layer: one input is one
 * record line. Beyond "no crash, no sanitizer report", it checks properties
 * a user relies on: an output value and a row key are valid JSON, an output
 * value decodes again to the same kind of event, and a written record line
 * parses again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"id", "name", "__op", "table", "", "x", "ts_ms", "snapshot"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static void check(int ok)
{
    if (!ok)
        abort();
}

static void exercise(sl_event *ev, sl_json *j2, sl_event *ev2)
{
    static const char *const id_name[] = {"id", "name"};
    static const char *const drop_id[] = {"id"};
    const sl_colsel sels[] = {
        {false, id_name, 2, NULL, 0},
        {true, NULL, 0, drop_id, 1},
    };
    sl_buf out = SL_BUF_INIT;
    sl_error err;
    sl_value v;
    size_t s, i;
    int rc;

    for (s = SL_SEC_BEFORE; s <= SL_SEC_KEY; s++)
        for (i = 0; i < NNAMES; i++) {
            rc = sl_event_column(ev, (sl_section)s, names[i], strlen(names[i]), &v);
            check(rc == 0 || rc == 1);
            if (v.type == SL_V_STRING || v.type == SL_V_COMPOUND)
                check(v.u.s.p != NULL || v.u.s.len == 0);
        }
    /* the key, from the record key and from columns: canonical JSON objects */
    for (i = 0; i < 3; i++) {
        sl_buf_reset(&out);
        if (sl_event_key(ev, names, i, &out, &err) == 0) {
            check(sl_json_parse(j2, out.data, out.len, &err) == 0);
            check(j2->tok[0].type == SL_J_OBJECT);
        }
    }
    /* output values: valid JSON that decodes to the same kind of event */
    for (i = 0; i <= sizeof(sels) / sizeof(sels[0]); i++) {
        sl_record rec;

        sl_buf_reset(&out);
        sl_event_write_value(ev, i == 0 ? NULL : &sels[i - 1], &out);
        check(memchr(out.data, '\n', out.len) == NULL);
        check(sl_json_parse(j2, out.data, out.len, &err) == 0);
        memset(&rec, 0, sizeof(rec));
        rec.value = out.data;
        rec.value_len = out.len;
        rec.topic = (sl_str){"p.s.t", 5};
        rec.partition = -1;
        rec.offset = -1;
        if (ev->kind != SL_EV_TOMBSTONE) {
            rc = sl_event_decode(ev2, &rec, &err);
            /* a selection may empty a row, but never breaks the envelope */
            check(rc == 0);
            check(ev2->kind == ev->kind);
            check(ev2->op == ev->op);
            check(ev2->position.len == ev->position.len || ev2->flattened);
        }
    }
    sl_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_json j, j2;
    static sl_event ev, ev2;
    static sl_buf scratch, line;
    static int init;
    sl_record rec;
    sl_error err;

    if (!init) {
        sl_json_init(&j);
        sl_json_init(&j2);
        sl_event_init(&ev);
        sl_event_init(&ev2);
        init = 1;
    }
    sl_buf_reset(&scratch);
    memset(&rec, 0, sizeof(rec));
    if (sl_record_parse_line(&rec, (const char *)data, size, &j, &scratch, &err) != 0)
        return 0;
    /* a record written back as a line parses again */
    sl_buf_reset(&line);
    sl_record_write_line(&rec, false, false, &line);
    {
        sl_record back;
        sl_buf scratch2 = SL_BUF_INIT;

        memset(&back, 0, sizeof(back));
        check(sl_record_parse_line(&back, line.data, line.len, &j2, &scratch2, &err) == 0);
        check(back.nheaders == rec.nheaders);
        check((back.value == NULL) == (rec.value == NULL));
        sl_buf_free(&scratch2);
    }
    if (sl_event_decode(&ev, &rec, &err) == 0)
        exercise(&ev, &j2, &ev2);
    return 0;
}
