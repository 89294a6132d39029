/*
 * json.h - a validating, non-allocating-per-value JSON tokenizer.
 *
 * sl_json_parse() scans a buffer once and records a flat array of tokens
 * (type, byte span, subtree size); nothing is copied and no DOM is built.
 * Lookups walk the token array. The document borrows the input bytes: they
 * must outlive it. The token array is reused across parses, so a worker that
 * keeps one sl_json per thread allocates only while documents grow.
 *
 * The parser is strict RFC 8259 (it rejects trailing commas, comments, bad
 * escapes, invalid UTF-8, control characters in strings, leading zeros) and
 * bounded in nesting depth (SL_JSON_MAX_DEPTH). Duplicate object keys are
 * kept; lookups return the last one, as most JSON libraries do.
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../common/value.h"

#define SL_JSON_MAX_DEPTH 64

typedef enum sl_jtype {
    SL_J_NULL,
    SL_J_FALSE,
    SL_J_TRUE,
    SL_J_NUMBER,
    SL_J_STRING,
    SL_J_OBJECT,
    SL_J_ARRAY,
} sl_jtype;

typedef struct sl_jtok {
    uint8_t type;    /* sl_jtype */
    uint8_t escaped; /* STRING: contains a backslash escape */
    uint32_t start;  /* byte offset of the first byte (the quote for strings) */
    uint32_t len;    /* bytes, quotes included */
    uint32_t next;   /* index of the token after this whole subtree */
    uint32_t count;  /* OBJECT: members; ARRAY: elements; object key: its object's index */
} sl_jtok;
/* An object's members are laid out as key token, value subtree, key, value... */

typedef struct sl_json {
    const char *src;
    size_t src_len;
    sl_jtok *tok;
    uint32_t ntok, cap;
} sl_json;

void sl_json_init(sl_json *j);
void sl_json_free(sl_json *j);
/* Parse src[0..len) as exactly one JSON value (surrounding white space allowed).
 * Returns 0, or -1 with err filled ("offset 17: expected ':'"). */
int sl_json_parse(sl_json *j, const char *src, size_t len, sl_error *err);

/* Token 0 is the root. Returns the value token of member `key` in object
 * token `obj`, or -1 when absent (or obj is not an object). */
int sl_json_get(const sl_json *j, int obj, const char *key, size_t key_len);
/* Iterate an object: first member's key token (or -1), then the next key. */
int sl_json_first(const sl_json *j, int obj);
int sl_json_next_member(const sl_json *j, int key_tok);
/* Array elements: first element (or -1), next element (or -1). */
int sl_json_elem_first(const sl_json *j, int arr);
int sl_json_elem_next(const sl_json *j, int arr, int elem);

/* Raw bytes of a token's whole value. */
static inline sl_str sl_json_raw(const sl_json *j, int t)
{
    sl_str s = {j->src + j->tok[t].start, j->tok[t].len};
    return s;
}

/* Does string token t equal s (compared unescaped)? */
bool sl_json_str_eq(const sl_json *j, int t, const char *s, size_t len);

/* Convert token t to a scalar value. Strings without escapes point into the
 * source; escaped ones are unescaped into `scratch` (appended; the pointer is
 * valid until scratch is next reset or grows, so callers copy or finish with
 * it before the next call that uses the same scratch). Objects and arrays
 * become SL_V_COMPOUND with their raw text. */
void sl_json_value(const sl_json *j, int t, sl_buf *scratch, sl_value *out);

/* Unescaped text of string token t appended to out. */
void sl_json_unescape(const sl_json *j, int t, sl_buf *out);

#endif
