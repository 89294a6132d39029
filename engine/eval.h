/*
 * eval.h - evaluate compiled rule expressions over one decoded event.
 *
 * SQL semantics: NULL propagates through comparisons and arithmetic, AND/OR
 * are three-valued, and a predicate passes only when it is true. Values of
 * the wrong type for an operation are an error (the engine dead-letters the
 * event with the message), except that a string holding a number compares
 * and computes as that number, because Debezium encodes decimals as strings.
 */
#ifndef SL_EVAL_H
#define SL_EVAL_H

#include "../dsl/program.h"
#include "event.h"

/* Memory for strings computed during one event (lower(), ||, ...). Blocks
 * never move, so earlier results stay valid until sl_pool_reset. */
typedef struct sl_pool_block sl_pool_block;
typedef struct sl_pool {
    sl_pool_block *head;
} sl_pool;

void sl_pool_init(sl_pool *a);
void *sl_pool_alloc(sl_pool *a, size_t n);
char *sl_pool_strdup(sl_pool *a, const char *p, size_t n);
/* Keep the first block, free the rest. */
void sl_pool_reset(sl_pool *a);
void sl_pool_free(sl_pool *a);

typedef struct sl_eval_ctx {
    sl_event *ev;
    sl_str origin; /* the origin site's name */
    sl_pool *arena;
    /* The row's consolidated image (parsed), or NULL: a delete whose before
     * lacks a column (PostgreSQL's default replica identity sends only the
     * key) reads it from here, so filters and content routes still see the
     * row that is being deleted. */
    const sl_json *last_row;
} sl_eval_ctx;

/* Compute e. Returns 0, or -1 with err naming the rule location. */
int sl_eval(const sl_expr *e, sl_eval_ctx *c, sl_value *out, sl_error *err);

/* A predicate: *pass is true only when e is TRUE (NULL and FALSE reject).
 * A non-boolean result is an error. */
int sl_eval_pred(const sl_expr *e, sl_eval_ctx *c, bool *pass, sl_error *err);

/* Render a value for messages ("'abc'", "42", "null"); appended to out. */
void sl_value_format(const sl_value *v, sl_buf *out);

#endif
