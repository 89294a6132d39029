/*
 * value.h - the scalar values rule expressions compute with.
 *
 * Strings are borrowed views (pointer + length, not NUL-terminated): into the
 * event's bytes, into a per-event scratch area, or into the compiled program
 * for literals. Whoever produced the value says how long it lives.
 */
#ifndef SL_VALUE_H
#define SL_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sl_vtype {
    SL_V_NULL = 0, /* SQL NULL, also a missing column */
    SL_V_BOOL,
    SL_V_INT,
    SL_V_DOUBLE,
    SL_V_STRING,
    SL_V_COMPOUND, /* a JSON object or array: only IS NULL and = / <> apply */
} sl_vtype;

typedef struct sl_str {
    const char *p;
    size_t len;
} sl_str;

typedef struct sl_value {
    sl_vtype type;
    union {
        bool b;
        int64_t i;
        double d;
        sl_str s; /* STRING: unescaped text; COMPOUND: raw JSON text */
    } u;
} sl_value;

const char *sl_vtype_name(sl_vtype t);

#endif
