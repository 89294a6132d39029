/*
 * progress.c - per-batch progress aggregation for the store backends
 * (progress.h).
 */
#include <string.h>

#include "progress.h"

static bool str_eq(sl_str a, sl_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int sl_pos_cmp(sl_str a, sl_str b)
{
    size_t m = a.len < b.len ? a.len : b.len;
    int c = m ? memcmp(a.p, b.p, m) : 0;

    if (c != 0)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

size_t sl_progress_aggregate(const sl_seen *rows, size_t n, sl_prog_acc *acc)
{
    size_t nacc = 0, i, j;

    for (i = 0; i < n; i++) {
        const sl_seen *r = &rows[i];

        if (r->position.len == 0)
            continue; /* nothing to compare against later: no progress */
        for (j = 0; j < nacc; j++)
            if (str_eq(acc[j].origin, r->origin) && str_eq(acc[j].part, r->partition))
                break;
        if (j == nacc) {
            acc[nacc].origin = r->origin;
            acc[nacc].part = r->partition;
            acc[nacc].pos = r->position;
            acc[nacc++].events = 0;
        }
        acc[j].events++;
        if (sl_pos_cmp(r->position, acc[j].pos) > 0)
            acc[j].pos = r->position;
    }
    return nacc;
}
