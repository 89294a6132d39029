#include "match.h"

bool sl_wildcard_match(const char *pat, size_t plen, const char *s, size_t slen, char many,
                       char one)
{
    size_t p = 0, i = 0, star_p = (size_t)-1, star_i = 0;

    /* On a mismatch, let the last `many` wildcard eat one more byte. */
    while (i < slen) {
        if (p < plen && (pat[p] == one || pat[p] == s[i])) {
            p++;
            i++;
        } else if (p < plen && pat[p] == many) {
            star_p = p++;
            star_i = i;
        } else if (star_p != (size_t)-1) {
            p = star_p + 1;
            i = ++star_i;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == many)
        p++;
    return p == plen;
}
