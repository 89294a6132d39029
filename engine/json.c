/*
 * json.c - the strict, single-pass JSON tokenizer behind every event.
 *
 * This is the hot path of the engine: every input line goes through
 * sl_json_parse() at least once. The parser is an explicit state machine
 * (no recursion), keeps a stack of at most SL_JSON_MAX_DEPTH open containers
 * on the C stack, writes fixed-size tokens into a reusable array, and scans
 * string bodies eight bytes at a time until it meets a byte that needs a
 * closer look (quote, backslash, control character or non-ASCII).
 */
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* Token offsets are 32-bit; a larger document is refused rather than wrapped. */
#define MAX_DOC_LEN ((size_t)UINT32_MAX - 1)

void sl_json_init(sl_json *j)
{
    memset(j, 0, sizeof(*j));
}

void sl_json_free(sl_json *j)
{
    free(j->tok);
    memset(j, 0, sizeof(*j));
}

/* ---- scanning helpers ---------------------------------------------------- */

typedef struct scanner {
    const unsigned char *s; /* document start, for offsets */
    const unsigned char *end;
    sl_error *err;
} scanner;

static int fail(const scanner *sc, const unsigned char *at, const char *what)
{
    return sl_error_set(sc->err, SL_ERR_PARSE, "offset %zu: %s", (size_t)(at - sc->s), what);
}

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    if (end > p && *p > 0x20) /* not blank: almost always, JSON is mostly compact */
        return p;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static inline int hexval(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    return -1;
}

/* Value of the 4 hex digits at p (p..p+3 must be readable), or -1. */
static inline long hex4(const unsigned char *p)
{
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);

    if ((a | b | c | d) < 0)
        return -1;
    return ((long)a << 12) | (b << 8) | (c << 4) | d;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. Rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n = (size_t)(end - p);

    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = 0x80, hi = 0xbf;

        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
        if (n < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = 0x80, hi = 0xbf;

        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
        if (n < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* Scan a string whose opening quote is at p. On success returns the position
 * just after the closing quote and sets *escaped. */
static const unsigned char *scan_string(const scanner *sc, const unsigned char *p, uint8_t *escaped)
{
    const unsigned char *end = sc->end;
    const unsigned char *open = p;

    p++;
    for (;;) {
        p += sl_json_plain(p, (size_t)(end - p));
        if (p >= end) {
            fail(sc, open, "unterminated string");
            return NULL;
        }
        if (*p == '"')
            return p + 1;
        if (*p == '\\') {
            *escaped = 1;
            if (end - p < 2) {
                fail(sc, open, "unterminated string");
                return NULL;
            }
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                continue;
            case 'u': {
                long cp;

                if (end - p < 6 || (cp = hex4(p + 2)) < 0) {
                    fail(sc, p, "invalid \\u escape: expected 4 hex digits");
                    return NULL;
                }
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    fail(sc, p, "invalid \\u escape: low surrogate without a high surrogate");
                    return NULL;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    long lo;

                    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || (lo = hex4(p + 8)) < 0 ||
                        lo < 0xdc00 || lo > 0xdfff) {
                        fail(sc, p, "invalid \\u escape: high surrogate without a low surrogate");
                        return NULL;
                    }
                    p += 12;
                } else {
                    p += 6;
                }
                continue;
            }
            default:
                fail(sc, p, "invalid escape sequence in string");
                return NULL;
            }
        }
        if (*p < 0x20) {
            fail(sc, p, "control character in string (must be escaped)");
            return NULL;
        }
        {
            size_t n = utf8_seq(p, end);

            if (n == 0) {
                fail(sc, p, "invalid UTF-8 in string");
                return NULL;
            }
            p += n;
        }
    }
}

static inline int is_digit(unsigned c)
{
    return c - '0' < 10;
}

/* The position after the run of ASCII digits at p, eight bytes at a time
 * where words are little-endian. In a word, a byte below '0' borrows into
 * its high bit, one above '9' carries into it when 0x46 is added, and one
 * from 0x80 has it already; the bytes below the first such byte are digits,
 * which neither borrow nor carry, so the lowest flagged byte is exact. */
static inline const unsigned char *skip_digits(const unsigned char *p, const unsigned char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;

    while (end - p >= 8) {
        uint64_t x, m;

        memcpy(&x, p, 8);
        m = ((x - ones * '0') | (x + ones * (0x80 - ('9' + 1))) | x) & highs;
        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* Scan an RFC 8259 number starting at p; returns the position after it. */
static const unsigned char *scan_number(const scanner *sc, const unsigned char *p)
{
    const unsigned char *end = sc->end;

    if (*p == '-')
        p++;
    if (p >= end || !is_digit(*p)) {
        fail(sc, p, "invalid number: expected a digit");
        return NULL;
    }
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            fail(sc, p - 1, "invalid number: leading zero");
            return NULL;
        }
    } else {
        p = skip_digits(p, end);
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) {
            fail(sc, p, "invalid number: expected a digit after '.'");
            return NULL;
        }
        p = skip_digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p)) {
            fail(sc, p, "invalid number: expected a digit in the exponent");
            return NULL;
        }
        p = skip_digits(p, end);
    }
    return p;
}

static void grow(sl_json *j)
{
    uint32_t cap = j->cap ? j->cap * 2 : 64;

    j->tok = sl_xrealloc(j->tok, (size_t)cap * sizeof(*j->tok));
    j->cap = cap;
}

static inline uint32_t push(sl_json *j, uint8_t type, uint32_t start)
{
    sl_jtok *t;

    if (j->ntok == j->cap)
        grow(j);
    t = &j->tok[j->ntok];
    t->type = type;
    t->escaped = 0;
    t->start = start;
    t->len = 0;
    t->next = j->ntok + 1;
    t->count = 0;
    return j->ntok++;
}

/* ---- the parser ---------------------------------------------------------- */

int sl_json_parse(sl_json *j, const char *src, size_t len, sl_error *err)
{
    scanner sc;
    const unsigned char *s;
    const unsigned char *p, *end;
    uint32_t stack[SL_JSON_MAX_DEPTH];
    int depth = 0;

    if (src == NULL) /* an empty document; keeps pointer arithmetic defined */
        src = "";
    s = (const unsigned char *)src;
    j->src = src;
    j->src_len = len;
    j->ntok = 0;
    sc.s = s;
    sc.end = s + len;
    sc.err = err;
    end = sc.end;
    if (len > MAX_DOC_LEN)
        return sl_error_set(err, SL_ERR_PARSE, "document too large (%zu bytes)", len);
    /* A typical document has about one token per 8 bytes; reserve once so the
     * loop rarely checks a full array. */
    if (j->cap < len / 8 + 16) {
        uint32_t want = (uint32_t)(len / 8 + 16);

        j->tok = sl_xrealloc(j->tok, (size_t)want * sizeof(*j->tok));
        j->cap = want;
    }

    p = skip_ws(s, end);

value:
    if (p >= end)
        return fail(&sc, p, "unexpected end of input, expected a value");
    if (depth > 0 && j->tok[stack[depth - 1]].type == SL_J_ARRAY)
        j->tok[stack[depth - 1]].count++;
    switch (*p) {
    case '{':
    case '[': {
        uint32_t t = push(j, *p == '{' ? SL_J_OBJECT : SL_J_ARRAY, (uint32_t)(p - s));

        if (depth == SL_JSON_MAX_DEPTH)
            return fail(&sc, p, "nesting too deep (more than 64 levels)");
        stack[depth++] = t;
        p = skip_ws(p + 1, end);
        if (p < end && *p == (j->tok[t].type == SL_J_OBJECT ? '}' : ']'))
            goto close;
        if (j->tok[t].type == SL_J_OBJECT)
            goto key;
        goto value;
    }
    case '"': {
        uint32_t t = push(j, SL_J_STRING, (uint32_t)(p - s));
        const unsigned char *q = scan_string(&sc, p, &j->tok[t].escaped);

        if (q == NULL)
            return -1;
        j->tok[t].len = (uint32_t)(q - p);
        p = q;
        goto after;
    }
    case 't':
        if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
            uint32_t t = push(j, SL_J_TRUE, (uint32_t)(p - s));

            j->tok[t].len = 4;
            p += 4;
            goto after;
        }
        return fail(&sc, p, "invalid literal (expected true)");
    case 'f':
        if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
            uint32_t t = push(j, SL_J_FALSE, (uint32_t)(p - s));

            j->tok[t].len = 5;
            p += 5;
            goto after;
        }
        return fail(&sc, p, "invalid literal (expected false)");
    case 'n':
        if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            uint32_t t = push(j, SL_J_NULL, (uint32_t)(p - s));

            j->tok[t].len = 4;
            p += 4;
            goto after;
        }
        return fail(&sc, p, "invalid literal (expected null)");
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': {
        uint32_t t = push(j, SL_J_NUMBER, (uint32_t)(p - s));
        const unsigned char *q = scan_number(&sc, p);

        if (q == NULL)
            return -1;
        j->tok[t].len = (uint32_t)(q - p);
        p = q;
        goto after;
    }
    case ']':
    case '}':
        return fail(&sc, p, "unexpected closing bracket, expected a value");
    default:
        return fail(&sc, p, "unexpected character, expected a value");
    }

key:
    /* p is at the first non-blank byte where an object member must start. */
    if (p >= end)
        return fail(&sc, p, "unexpected end of input, expected an object key");
    if (*p != '"') {
        if (*p == '}')
            return fail(&sc, p, "trailing comma before '}'");
        return fail(&sc, p, "expected a string as object key");
    }
    {
        uint32_t obj = stack[depth - 1];
        uint32_t t = push(j, SL_J_STRING, (uint32_t)(p - s));
        const unsigned char *q = scan_string(&sc, p, &j->tok[t].escaped);

        if (q == NULL)
            return -1;
        j->tok[t].len = (uint32_t)(q - p);
        /* Key tokens remember their object so member iteration knows where
         * the object ends (see json.h). */
        j->tok[t].count = obj;
        j->tok[obj].count++;
        p = skip_ws(q, end);
    }
    if (p >= end || *p != ':')
        return fail(&sc, p, "expected ':' after an object key");
    p = skip_ws(p + 1, end);
    goto value;

after:
    if (depth == 0) {
        p = skip_ws(p, end);
        if (p != end)
            return fail(&sc, p, "unexpected data after the JSON value");
        return 0;
    }
    p = skip_ws(p, end);
    if (p >= end)
        return fail(&sc, p, "unexpected end of input, expected ',' or a closing bracket");
    if (*p == ',') {
        p = skip_ws(p + 1, end);
        if (j->tok[stack[depth - 1]].type == SL_J_OBJECT)
            goto key;
        if (p < end && *p == ']')
            return fail(&sc, p, "trailing comma before ']'");
        goto value;
    }
    if (*p == (j->tok[stack[depth - 1]].type == SL_J_OBJECT ? '}' : ']'))
        goto close;
    return fail(&sc, p,
                j->tok[stack[depth - 1]].type == SL_J_OBJECT ? "expected ',' or '}' in object"
                                                             : "expected ',' or ']' in array");

close : {
    uint32_t t = stack[--depth];

    j->tok[t].len = (uint32_t)(p + 1 - s) - j->tok[t].start;
    j->tok[t].next = j->ntok;
    p++;
    goto after;
}
}

/* ---- lookups --------------------------------------------------------------- */

/* Decode one code point of an escaped string body at *pp (a backslash or a
 * plain byte), advancing *pp; writes the UTF-8 bytes to out, returns the count. */
static size_t decode_unit(const unsigned char **pp, unsigned char out[4])
{
    const unsigned char *p = *pp;
    unsigned long cp;

    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }
    switch (p[1]) {
    case 'b':
        out[0] = '\b';
        break;
    case 'f':
        out[0] = '\f';
        break;
    case 'n':
        out[0] = '\n';
        break;
    case 'r':
        out[0] = '\r';
        break;
    case 't':
        out[0] = '\t';
        break;
    case 'u':
        cp = (unsigned long)hex4(p + 2);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            /* the tokenizer guaranteed a low surrogate follows */
            cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned long)hex4(p + 8) - 0xdc00);
            *pp = p + 12;
        } else {
            *pp = p + 6;
        }
        if (cp < 0x80) {
            out[0] = (unsigned char)cp;
            return 1;
        }
        if (cp < 0x800) {
            out[0] = (unsigned char)(0xc0 | (cp >> 6));
            out[1] = (unsigned char)(0x80 | (cp & 0x3f));
            return 2;
        }
        if (cp < 0x10000) {
            out[0] = (unsigned char)(0xe0 | (cp >> 12));
            out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            out[2] = (unsigned char)(0x80 | (cp & 0x3f));
            return 3;
        }
        out[0] = (unsigned char)(0xf0 | (cp >> 18));
        out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (unsigned char)(0x80 | (cp & 0x3f));
        return 4;
    default: /* '"', '\\', '/' stand for themselves */
        out[0] = p[1];
        break;
    }
    *pp = p + 2;
    return 1;
}

bool sl_json_str_eq(const sl_json *j, int t, const char *s, size_t len)
{
    const sl_jtok *k = &j->tok[t];
    const unsigned char *p, *end;
    size_t i = 0;

    if (k->type != SL_J_STRING)
        return false;
    p = (const unsigned char *)j->src + k->start + 1;
    end = p + k->len - 2;
    if (!k->escaped)
        return k->len - 2 == len && memcmp(p, s, len) == 0;
    /* Unescaped text is never longer than the raw body; compare unit by unit. */
    if (len > (size_t)(end - p))
        return false;
    while (p < end) {
        unsigned char u[4];
        size_t n = decode_unit(&p, u);

        if (i + n > len || memcmp(s + i, u, n) != 0)
            return false;
        i += n;
    }
    return i == len;
}

int sl_json_get(const sl_json *j, int obj, const char *key, size_t key_len)
{
    int k, found = -1;

    if (obj < 0 || (uint32_t)obj >= j->ntok || j->tok[obj].type != SL_J_OBJECT)
        return -1;
    for (k = sl_json_first(j, obj); k >= 0; k = sl_json_next_member(j, k)) {
        const sl_jtok *kt = &j->tok[k];

        if (!kt->escaped) {
            if (kt->len - 2 == key_len && memcmp(j->src + kt->start + 1, key, key_len) == 0)
                found = k + 1; /* keep going: the last duplicate wins */
        } else if (sl_json_str_eq(j, k, key, key_len)) {
            found = k + 1;
        }
    }
    return found;
}

int sl_json_first(const sl_json *j, int obj)
{
    if (obj < 0 || (uint32_t)obj >= j->ntok || j->tok[obj].type != SL_J_OBJECT ||
        j->tok[obj].count == 0)
        return -1;
    return obj + 1;
}

int sl_json_next_member(const sl_json *j, int key_tok)
{
    uint32_t obj = j->tok[key_tok].count;
    uint32_t n = j->tok[key_tok + 1].next;

    return n < j->tok[obj].next ? (int)n : -1;
}

int sl_json_elem_first(const sl_json *j, int arr)
{
    if (arr < 0 || (uint32_t)arr >= j->ntok || j->tok[arr].type != SL_J_ARRAY ||
        j->tok[arr].count == 0)
        return -1;
    return arr + 1;
}

int sl_json_elem_next(const sl_json *j, int arr, int elem)
{
    uint32_t n = j->tok[elem].next;

    return n < j->tok[arr].next ? (int)n : -1;
}

void sl_json_unescape(const sl_json *j, int t, sl_buf *out)
{
    const sl_jtok *k = &j->tok[t];
    const unsigned char *p = (const unsigned char *)j->src + k->start + 1;
    const unsigned char *end = p + k->len - 2;
    unsigned char *w;

    if (!k->escaped) {
        sl_buf_append(out, p, k->len - 2);
        return;
    }
    /* The unescaped text is at most as long as the raw body. */
    sl_buf_reserve(out, k->len - 2);
    w = (unsigned char *)out->data + out->len;
    while (p < end) {
        const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t run = bs ? (size_t)(bs - p) : (size_t)(end - p);

        memcpy(w, p, run);
        w += run;
        p += run;
        if (p < end)
            w += decode_unit(&p, w);
    }
    out->len = (size_t)(w - (unsigned char *)out->data);
    out->data[out->len] = '\0';
}

/* Integral numbers that fit int64 become SL_V_INT; everything else a double. */
static void number_value(const char *p, size_t n, sl_value *out)
{
    const char *q = p, *end = p + n;
    bool neg = false, may_overflow;
    uint64_t v = 0;
    char small[64];
    char *tmp = small;

    if (*q == '-') {
        neg = true;
        q++;
    }
    may_overflow = end - q > 19; /* 19 digits always fit in 64 bits */
    for (; q < end && is_digit((unsigned char)*q); q++) {
        unsigned d = (unsigned)(*q - '0');

        if (may_overflow && v > (UINT64_MAX - d) / 10)
            goto dbl;
        v = v * 10 + d;
    }
    if (q != end)
        goto dbl;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        goto dbl;
    out->type = SL_V_INT;
    /* -(INT64_MIN) does not fit; compute in unsigned space */
    out->u.i = neg ? (int64_t)(0 - v) : (int64_t)v;
    return;
dbl:
    /* strtod needs a terminated string; numbers are short, long ones are rare */
    if (n >= sizeof(small))
        tmp = sl_xmalloc(n + 1);
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    out->type = SL_V_DOUBLE;
    out->u.d = strtod(tmp, NULL);
    if (tmp != small)
        free(tmp);
}

void sl_json_value(const sl_json *j, int t, sl_buf *scratch, sl_value *out)
{
    const sl_jtok *k = &j->tok[t];

    switch ((sl_jtype)k->type) {
    case SL_J_NULL:
        out->type = SL_V_NULL;
        break;
    case SL_J_FALSE:
    case SL_J_TRUE:
        out->type = SL_V_BOOL;
        out->u.b = k->type == SL_J_TRUE;
        break;
    case SL_J_NUMBER:
        number_value(j->src + k->start, k->len, out);
        break;
    case SL_J_STRING:
        out->type = SL_V_STRING;
        if (!k->escaped) {
            out->u.s.p = j->src + k->start + 1;
            out->u.s.len = k->len - 2;
        } else {
            size_t at = scratch->len;

            sl_json_unescape(j, t, scratch);
            out->u.s.p = scratch->data + at;
            out->u.s.len = scratch->len - at;
        }
        break;
    case SL_J_OBJECT:
    case SL_J_ARRAY:
        out->type = SL_V_COMPOUND;
        out->u.s.p = j->src + k->start;
        out->u.s.len = k->len;
        break;
    }
}
