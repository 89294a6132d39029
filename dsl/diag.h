/*
 * diag.h - source locations and compiler diagnostics.
 *
 * Every AST node carries an sl_loc. Diagnostics are collected (the compiler
 * keeps going to report several errors), then formatted by the caller as
 *
 *     retail.rules:12:5: error: unknown site 'store_9'
 *        12 |     route central -> store_9;
 *           |                      ^~~~~~~
 *
 * The diag list keeps a copy of every source text it was given so carets can
 * be drawn after the AST is gone.
 */
#ifndef SL_DIAG_H
#define SL_DIAG_H

#include <stddef.h>

#include "../common/buf.h"

typedef struct sl_loc {
    const char *file; /* borrowed from the sl_diags / program that owns the name */
    int line;         /* 1-based */
    int col;          /* 1-based, in bytes */
    int end_line;
    int end_col; /* exclusive; equal to col for a point */
} sl_loc;

typedef enum sl_severity { SL_SEV_ERROR, SL_SEV_WARNING, SL_SEV_NOTE } sl_severity;

typedef struct sl_diag {
    sl_severity sev;
    sl_loc loc;
    char *msg; /* owned */
} sl_diag;

typedef struct sl_source {
    char *name; /* owned: the path as given */
    char *text; /* owned: the whole file */
    size_t len;
} sl_source;

typedef struct sl_diags {
    sl_diag *v;
    size_t n, cap;
    size_t nerrors;
    sl_source *src; /* sources registered with sl_diags_add_source */
    size_t nsrc;
} sl_diags;

void sl_diags_init(sl_diags *d);
void sl_diags_free(sl_diags *d);
/* Register a source; returns the stable copy of its name for use in sl_loc. */
const char *sl_diags_add_source(sl_diags *d, const char *name, const char *text, size_t len);
void sl_diags_add(sl_diags *d, sl_severity sev, sl_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Format every diagnostic, in the order added, with source line and caret. */
void sl_diags_format(const sl_diags *d, sl_buf *out);

#endif
