/*
 * buf.h - a growable byte buffer, the unit of output everywhere.
 *
 * The buffer owns its bytes. Appends keep a terminating NUL (not counted in
 * len) so the contents can be passed to C string functions. Allocation
 * failure aborts: every caller would otherwise have to handle it on the hot
 * path, and an engine that cannot allocate a few KB cannot continue anyway.
 */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_buf {
    char *data;
    size_t len;
    size_t cap;
} sl_buf;

#define SL_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Slow path of sl_buf_reserve: grow the allocation. */
void sl_buf_grow(sl_buf *b, size_t extra);

/* The hot appenders are inline: they run several times per byte range of
 * every event, and a call per character would dominate. */
static inline void sl_buf_reserve(sl_buf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap)
        sl_buf_grow(b, extra);
}

static inline void sl_buf_append(sl_buf *b, const void *p, size_t n)
{
    sl_buf_reserve(b, n);
    if (n)
        __builtin_memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void sl_buf_putc(sl_buf *b, char c)
{
    sl_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

/* How many of the n bytes at p, from the first, can stand in a JSON string
 * as they are: printable ASCII other than '"' and '\\'. Eight bytes at a
 * time where words are little-endian: there the lowest flagged byte of a
 * word is exactly the first that cannot (the subtractions borrow only
 * upward, from a byte that is flagged itself). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint64_t sl_json_word_flags(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t x, q, b;

    __builtin_memcpy(&x, p, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    /* a zero byte of q or b; a byte below 0x20; a byte from 0x80 */
    return (((q - ones) & ~q) | ((b - ones) & ~b) | (x - ones * 0x20) | x) & highs;
}
#endif

static inline size_t sl_json_plain(const unsigned char *p, size_t n)
{
    size_t i = 0;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t m;

    for (; n - i >= 8; i += 8)
        if ((m = sl_json_word_flags(p + i)) != 0)
            return i + (size_t)(__builtin_ctzll(m) >> 3);
    if (i < n && n >= 8) {
        /* the last eight bytes: those before i were plain, so unflagged */
        m = sl_json_word_flags(p + n - 8);
        return m ? n - 8 + (size_t)(__builtin_ctzll(m) >> 3) : n;
    }
#endif
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}

void sl_buf_puts(sl_buf *b, const char *s);
void sl_buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s (n bytes) as a JSON string literal, quotes included. Bytes that
 * are not valid UTF-8 are written as \u00XX escapes of the byte value. */
void sl_buf_json_str(sl_buf *b, const char *s, size_t n);
/* Append n bytes as a JSON string of their base64 encoding (RFC 4648). */
void sl_buf_base64_str(sl_buf *b, const void *p, size_t n);
/* Is p[0..n) valid UTF-8 (no overlongs, no surrogates)? */
bool sl_utf8_valid(const char *p, size_t n);
void sl_buf_reset(sl_buf *b);
void sl_buf_free(sl_buf *b);
/* Move the contents out; the caller owns the returned pointer; b becomes empty. */
char *sl_buf_steal(sl_buf *b, size_t *len);

/* Helpers that abort on allocation failure (see above). */
void *sl_xmalloc(size_t n);
void *sl_xcalloc(size_t n, size_t size);
/* Like sl_xcalloc, for a table probed before it is written (a hash
 * table): the zeros are written here. calloc may map fresh pages to the
 * shared zero page on their first read; the first write to each then faults
 * again and flushes the TLB of every CPU the process runs on. */
void *sl_xcalloc_written(size_t n, size_t size);
void *sl_xrealloc(void *p, size_t n);
char *sl_xstrdup(const char *s);
char *sl_xstrndup(const char *s, size_t n);

/* 64-bit FNV-1a, used for key slicing and rule-version hashes. */
uint64_t sl_hash64(const void *p, size_t n, uint64_t seed);
/* splitmix64's finalizer: every input bit moves about half the output bits
 * (to mix a hash before summing it, or to spread one over table slots). */
static inline uint64_t sl_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}
#define SL_HASH_SEED 0xcbf29ce484222325ULL

#endif
