/*
 * resolve.h - decide a conflict by the table's `on conflict` rule.
 *
 * Pure functions over row images (JSON object text): given the base (what
 * the incoming site last held), the current consolidated version and the
 * incoming change, say which side wins or build the merged row.
 * docs/conflicts.md describes each strategy with an example.
 */
#ifndef SL_RESOLVE_H
#define SL_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../dsl/program.h"
#include "luahook.h"

typedef struct sl_side {
    const char *row; /* JSON object text; NULL: deleted, or (base) unknown */
    int64_t ts;      /* source ts_ms */
    const char *site;
} sl_side;

typedef enum sl_outcome {
    SL_RES_CURRENT,  /* the current version stays */
    SL_RES_INCOMING, /* the incoming change becomes the new version */
    SL_RES_MERGED,   /* a new row (in `merged`) becomes the new version */
    SL_RES_MANUAL,   /* the current version stays; an operator decides */
} sl_outcome;

/* Does `in` beat `cur` under latest-wins? Higher ts_ms; then higher site
 * priority; then the site name that sorts first. */
bool sl_latest_wins(const sl_program *p, const sl_side *in, const sl_side *cur);

/* Decide. `L` may be NULL when the program has no Lua (a `lua` rule then
 * goes to manual). `merged` receives the row for SL_RES_MERGED, `reason`
 * why an automatic rule gave up (SL_RES_MANUAL from Lua). */
sl_outcome sl_resolve(const sl_program *p, const sl_table *t, const sl_side *base,
                      const sl_side *cur, const sl_side *in, sl_lua *L, const sl_lua_ctx *lctx,
                      sl_buf *merged, sl_buf *reason);

/* The strategy's name as conflicts record it: "latest", "prefer central",
 * "merge", "lua merge_points", "manual". */
void sl_strategy_name(const sl_program *p, const sl_table *t, bool delete_involved, sl_buf *out);

#endif
