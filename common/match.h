/*
 * match.h - wildcard matching shared by site/table globs (`*`, `?`) and the
 * rule language's LIKE (`%`, `_`).
 */
#ifndef SL_MATCH_H
#define SL_MATCH_H

#include <stdbool.h>
#include <stddef.h>

/* Does s match pat, where `many` stands for any run of bytes (also empty)
 * and `one` for exactly one byte? Iterative, linear in practice. */
bool sl_wildcard_match(const char *pat, size_t plen, const char *s, size_t slen, char many,
                       char one);

#endif
