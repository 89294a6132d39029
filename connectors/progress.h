/*
 * progress.h - what the store backends share when they record progress:
 * one batch's changes aggregated per origin and source partition (the
 * newest position in memcmp order, and how many changes).
 */
#ifndef SL_PROGRESS_H
#define SL_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct sl_prog_acc {
    sl_str origin, part, pos;
    int64_t events;
} sl_prog_acc;

/* memcmp order, a prefix first: the order of encoded positions. */
int sl_pos_cmp(sl_str a, sl_str b);

/* Aggregate rows (those with a position) into acc, which has room for n;
 * returns how many entries it filled. The entries point into rows. */
size_t sl_progress_aggregate(const sl_seen *rows, size_t n, sl_prog_acc *acc);

#endif
