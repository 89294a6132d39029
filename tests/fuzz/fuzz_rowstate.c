/*
 * fuzz_rowstate.c - libFuzzer target for the row-state document reader
 * (engine/rowstate.c): any bytes from the store are refused or read; a
 * state that was read encodes to a document that reads back to the same
 * encoding (nothing half-read, nothing invented).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rowstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_rowstate s, t;
    sl_buf a = SL_BUF_INIT, b = SL_BUF_INIT, j = SL_BUF_INIT;
    sl_error err;

    sl_rowstate_init(&s);
    sl_rowstate_init(&t);
    if (sl_rowstate_read(&s, (const char *)data, size, &err) == 0) {
        sl_rowstate_encode(&s, &a);
        if (sl_rowstate_read(&t, a.data, a.len, &err) != 0)
            abort();
        sl_rowstate_encode(&t, &b);
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            abort();
        sl_rowstate_json(&s, &j); /* what `sluice rows` prints */
    }
    sl_rowstate_free(&s);
    sl_rowstate_free(&t);
    sl_buf_free(&a);
    sl_buf_free(&b);
    sl_buf_free(&j);
    return 0;
}
