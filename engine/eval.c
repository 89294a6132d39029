/*
 * eval.c - the rule-expression interpreter.
 *
 * A tree walk over the compiled (immutable) expression. Column reads go
 * through the event accessor; nothing is allocated except computed strings,
 * which live in the per-event arena.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/match.h"
#include "eval.h"

/* ---- arena ---------------------------------------------------------------- */

struct sl_pool_block {
    sl_pool_block *next;
    size_t used, cap;
    char data[];
};

#define ARENA_BLOCK 4096

void sl_pool_init(sl_pool *a)
{
    a->head = NULL;
}

void *sl_pool_alloc(sl_pool *a, size_t n)
{
    sl_pool_block *b = a->head;
    size_t need = (n + 15) & ~(size_t)15;
    void *p;

    if (b == NULL || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;

        b = sl_xmalloc(sizeof(*b) + cap);
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    p = b->data + b->used;
    b->used += need;
    return p;
}

char *sl_pool_strdup(sl_pool *a, const char *p, size_t n)
{
    char *s = sl_pool_alloc(a, n + 1);

    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void sl_pool_reset(sl_pool *a)
{
    sl_pool_block *b = a->head, *next;

    if (b == NULL)
        return;
    /* keep the oldest block (the last in the list), free the others */
    while (b->next) {
        next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
}

void sl_pool_free(sl_pool *a)
{
    sl_pool_block *b = a->head, *next;

    for (; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

/* ---- helpers --------------------------------------------------------------- */

void sl_value_format(const sl_value *v, sl_buf *out)
{
    switch (v->type) {
    case SL_V_NULL:
        sl_buf_puts(out, "null");
        break;
    case SL_V_BOOL:
        sl_buf_puts(out, v->u.b ? "true" : "false");
        break;
    case SL_V_INT:
        sl_buf_printf(out, "%lld", (long long)v->u.i);
        break;
    case SL_V_DOUBLE:
        sl_buf_printf(out, "%.17g", v->u.d);
        break;
    case SL_V_STRING:
        sl_buf_putc(out, '\'');
        sl_buf_append(out, v->u.s.p, v->u.s.len > 60 ? 60 : v->u.s.len);
        sl_buf_puts(out, v->u.s.len > 60 ? "...'" : "'");
        break;
    case SL_V_COMPOUND:
        sl_buf_append(out, v->u.s.p, v->u.s.len > 60 ? 60 : v->u.s.len);
        if (v->u.s.len > 60)
            sl_buf_puts(out, "...");
        break;
    }
}

/* An error located at the expression, e.g.
 * "retail.rules:14:11: cannot compare string 'x' with number 3". */
static int fail(sl_error *err, const sl_expr *e, const char *fmt, const sl_value *a,
                const sl_value *b)
{
    sl_buf msg = SL_BUF_INIT;
    const char *p = fmt;

    if (e->loc.file)
        sl_buf_printf(&msg, "%s:%d:%d: ", e->loc.file, e->loc.line, e->loc.col);
    /* %A / %B: the operands formatted with their type */
    while (*p) {
        if (p[0] == '%' && (p[1] == 'A' || p[1] == 'B')) {
            const sl_value *v = p[1] == 'A' ? a : b;

            sl_buf_printf(&msg, "%s ", sl_vtype_name(v->type));
            sl_value_format(v, &msg);
            p += 2;
            continue;
        }
        sl_buf_putc(&msg, *p++);
    }
    sl_error_set(err, SL_ERR_TYPE, "%s", msg.data);
    sl_buf_free(&msg);
    return -1;
}

/* A string that is entirely a JSON-style number becomes that number. */
static bool str_to_num(sl_str s, sl_value *out)
{
    char tmp[64], *end;
    long long i;
    double d;

    if (s.len == 0 || s.len >= sizeof(tmp))
        return false;
    memcpy(tmp, s.p, s.len);
    tmp[s.len] = '\0';
    if (isspace((unsigned char)tmp[0]))
        return false;
    errno = 0;
    i = strtoll(tmp, &end, 10);
    if (*end == '\0' && errno == 0) {
        out->type = SL_V_INT;
        out->u.i = i;
        return true;
    }
    errno = 0;
    d = strtod(tmp, &end);
    if (*end == '\0' && errno == 0 && isfinite(d)) {
        out->type = SL_V_DOUBLE;
        out->u.d = d;
        return true;
    }
    return false;
}

static bool is_num(const sl_value *v)
{
    return v->type == SL_V_INT || v->type == SL_V_DOUBLE;
}

static double num_d(const sl_value *v)
{
    return v->type == SL_V_INT ? (double)v->u.i : v->u.d;
}

/* Bring a and b to numbers when one is a number and the other a numeric string. */
static void coerce_pair(sl_value *a, sl_value *b)
{
    sl_value t;

    if (is_num(a) && b->type == SL_V_STRING && str_to_num(b->u.s, &t))
        *b = t;
    else if (is_num(b) && a->type == SL_V_STRING && str_to_num(a->u.s, &t))
        *a = t;
}

static int cmp_bytes(sl_str a, sl_str b)
{
    size_t m = a.len < b.len ? a.len : b.len;
    int c = m ? memcmp(a.p, b.p, m) : 0;

    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* Compare two non-null values: 0 and *res (<0, 0, >0), or -1 when the types
 * cannot be compared. Only equality is defined for booleans and compounds. */
static int compare(sl_value *a, sl_value *b, bool eq_only, int *res)
{
    coerce_pair(a, b);
    if (is_num(a) && is_num(b)) {
        if (a->type == SL_V_INT && b->type == SL_V_INT)
            *res = (a->u.i > b->u.i) - (a->u.i < b->u.i);
        else
            *res = (num_d(a) > num_d(b)) - (num_d(a) < num_d(b));
        return 0;
    }
    if (a->type == SL_V_STRING && b->type == SL_V_STRING) {
        *res = cmp_bytes(a->u.s, b->u.s);
        return 0;
    }
    if (a->type == SL_V_BOOL && b->type == SL_V_BOOL) {
        *res = (int)a->u.b - (int)b->u.b;
        return eq_only ? 0 : -1;
    }
    if (a->type == SL_V_COMPOUND && b->type == SL_V_COMPOUND) {
        *res = cmp_bytes(a->u.s, b->u.s);
        return eq_only ? 0 : -1;
    }
    return -1;
}

static void set_null(sl_value *v)
{
    v->type = SL_V_NULL;
}

static void set_bool(sl_value *v, bool b)
{
    v->type = SL_V_BOOL;
    v->u.b = b;
}

/* Strings read from the event may live in the event's scratch, which moves
 * when it grows: copy them into the arena before reading the next value. */
static void pin(sl_eval_ctx *c, sl_value *v)
{
    const sl_buf *s = &c->ev->scratch;

    if ((v->type == SL_V_STRING || v->type == SL_V_COMPOUND) && s->data && v->u.s.p >= s->data &&
        v->u.s.p < s->data + s->cap)
        v->u.s.p = sl_pool_strdup(c->arena, v->u.s.p, v->u.s.len);
}

static int eval_bool_operand(const sl_expr *e, sl_eval_ctx *c, sl_value *v, sl_error *err)
{
    if (sl_eval(e, c, v, err) != 0)
        return -1;
    if (v->type != SL_V_NULL && v->type != SL_V_BOOL)
        return fail(err, e, "expected a boolean, got %A", v, NULL);
    return 0;
}

static int eval_arith(const sl_expr *e, sl_value *a, sl_value *b, sl_value *out, sl_error *err)
{
    static const char *const opname[] = {"+", "-", "*", "/", "%"};
    sl_value t;
    char msg[80];

    if (a->type == SL_V_NULL || b->type == SL_V_NULL) {
        set_null(out);
        return 0;
    }
    if (a->type == SL_V_STRING && str_to_num(a->u.s, &t))
        *a = t;
    if (b->type == SL_V_STRING && str_to_num(b->u.s, &t))
        *b = t;
    if (!is_num(a) || !is_num(b)) {
        snprintf(msg, sizeof(msg), "cannot apply '%s' to %%A and %%B", opname[e->op]);
        return fail(err, e, msg, a, b);
    }
    if (a->type == SL_V_INT && b->type == SL_V_INT) {
        int64_t r;
        bool ovf = false;

        switch (e->op) {
        case SL_AR_ADD:
            ovf = __builtin_add_overflow(a->u.i, b->u.i, &r);
            break;
        case SL_AR_SUB:
            ovf = __builtin_sub_overflow(a->u.i, b->u.i, &r);
            break;
        case SL_AR_MUL:
            ovf = __builtin_mul_overflow(a->u.i, b->u.i, &r);
            break;
        case SL_AR_DIV:
        case SL_AR_MOD:
            if (b->u.i == 0)
                return fail(err, e, "division by zero: %A / %B", a, b);
            if (a->u.i == INT64_MIN && b->u.i == -1) {
                ovf = true;
                break;
            }
            r = e->op == SL_AR_DIV ? a->u.i / b->u.i : a->u.i % b->u.i;
            break;
        default:
            r = 0;
        }
        if (!ovf) {
            out->type = SL_V_INT;
            out->u.i = r;
            return 0;
        }
    }
    {
        double x = num_d(a), y = num_d(b), r = 0;

        switch (e->op) {
        case SL_AR_ADD:
            r = x + y;
            break;
        case SL_AR_SUB:
            r = x - y;
            break;
        case SL_AR_MUL:
            r = x * y;
            break;
        case SL_AR_DIV:
        case SL_AR_MOD:
            if (y == 0)
                return fail(err, e, "division by zero: %A / %B", a, b);
            r = e->op == SL_AR_DIV ? x / y : fmod(x, y);
            break;
        }
        out->type = SL_V_DOUBLE;
        out->u.d = r;
    }
    return 0;
}

/* Render a scalar as text for || (numbers print as in JSON). */
static sl_str as_text(sl_eval_ctx *c, const sl_value *v)
{
    char tmp[64];
    sl_str s = {"", 0};
    int n = 0;

    switch (v->type) {
    case SL_V_STRING:
    case SL_V_COMPOUND:
        return v->u.s;
    case SL_V_INT:
        n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v->u.i);
        break;
    case SL_V_DOUBLE:
        n = snprintf(tmp, sizeof(tmp), "%.17g", v->u.d);
        break;
    case SL_V_BOOL:
        n = snprintf(tmp, sizeof(tmp), "%s", v->u.b ? "true" : "false");
        break;
    case SL_V_NULL:
        return s;
    }
    s.p = sl_pool_strdup(c->arena, tmp, (size_t)n);
    s.len = (size_t)n;
    return s;
}

static int want_string(const sl_expr *e, const sl_value *v, sl_error *err, const char *fn)
{
    char msg[96];

    if (v->type == SL_V_STRING)
        return 0;
    snprintf(msg, sizeof(msg), "%s() expects a string, got %%A", fn);
    return fail(err, e, msg, v, NULL);
}

static int eval_call(const sl_expr *e, sl_eval_ctx *c, sl_value *out, sl_error *err)
{
    static const char *const fname[] = {"lower",    "upper",       "length",    "substr",   "trim",
                                        "coalesce", "starts_with", "ends_with", "contains", "abs"};
    sl_value a[3];
    size_t i, n = e->nargs < 3 ? e->nargs : 3;

    if (e->op == SL_FN_COALESCE) {
        for (i = 0; i < e->nargs; i++) {
            if (sl_eval(e->args[i], c, out, err) != 0)
                return -1;
            if (out->type != SL_V_NULL) {
                pin(c, out);
                return 0;
            }
        }
        set_null(out);
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (sl_eval(e->args[i], c, &a[i], err) != 0)
            return -1;
        pin(c, &a[i]);
        if (a[i].type == SL_V_NULL) {
            set_null(out);
            return 0;
        }
    }
    switch ((sl_fn)e->op) {
    case SL_FN_LOWER:
    case SL_FN_UPPER: {
        char *s;

        if (want_string(e, &a[0], err, fname[e->op]) != 0)
            return -1;
        s = sl_pool_strdup(c->arena, a[0].u.s.p, a[0].u.s.len);
        for (i = 0; i < a[0].u.s.len; i++)
            s[i] = (char)(e->op == SL_FN_LOWER ? tolower((unsigned char)s[i])
                                               : toupper((unsigned char)s[i]));
        out->type = SL_V_STRING;
        out->u.s.p = s;
        out->u.s.len = a[0].u.s.len;
        return 0;
    }
    case SL_FN_LENGTH:
        if (want_string(e, &a[0], err, "length") != 0)
            return -1;
        out->type = SL_V_INT;
        out->u.i = (int64_t)a[0].u.s.len;
        return 0;
    case SL_FN_SUBSTR: {
        int64_t from, len;

        if (want_string(e, &a[0], err, "substr") != 0)
            return -1;
        if (a[1].type != SL_V_INT || (n > 2 && a[2].type != SL_V_INT))
            return fail(err, e, "substr() expects whole-number positions, got %A", &a[1], NULL);
        from = a[1].u.i < 1 ? 1 : a[1].u.i;
        len = n > 2 ? a[2].u.i : (int64_t)a[0].u.s.len;
        if (len < 0)
            len = 0;
        out->type = SL_V_STRING;
        if ((size_t)from > a[0].u.s.len) {
            out->u.s.p = "";
            out->u.s.len = 0;
            return 0;
        }
        out->u.s.p = a[0].u.s.p + from - 1;
        out->u.s.len = a[0].u.s.len - (size_t)(from - 1);
        if ((size_t)len < out->u.s.len)
            out->u.s.len = (size_t)len;
        return 0;
    }
    case SL_FN_TRIM: {
        sl_str s;

        if (want_string(e, &a[0], err, "trim") != 0)
            return -1;
        s = a[0].u.s;
        while (s.len && isspace((unsigned char)s.p[0]))
            s.p++, s.len--;
        while (s.len && isspace((unsigned char)s.p[s.len - 1]))
            s.len--;
        out->type = SL_V_STRING;
        out->u.s = s;
        return 0;
    }
    case SL_FN_STARTS:
    case SL_FN_ENDS:
    case SL_FN_CONTAINS: {
        sl_str s, p;
        bool r = false;
        size_t k;

        if (want_string(e, &a[0], err, fname[e->op]) != 0 ||
            want_string(e, &a[1], err, fname[e->op]) != 0)
            return -1;
        s = a[0].u.s;
        p = a[1].u.s;
        if (p.len <= s.len) {
            if (e->op == SL_FN_STARTS)
                r = memcmp(s.p, p.p, p.len) == 0;
            else if (e->op == SL_FN_ENDS)
                r = memcmp(s.p + s.len - p.len, p.p, p.len) == 0;
            else
                for (k = 0; k + p.len <= s.len && !r; k++)
                    r = memcmp(s.p + k, p.p, p.len) == 0;
        }
        set_bool(out, r);
        return 0;
    }
    case SL_FN_ABS: {
        sl_value t;

        if (a[0].type == SL_V_STRING && str_to_num(a[0].u.s, &t))
            a[0] = t;
        if (a[0].type == SL_V_INT && a[0].u.i != INT64_MIN) {
            out->type = SL_V_INT;
            out->u.i = a[0].u.i < 0 ? -a[0].u.i : a[0].u.i;
            return 0;
        }
        if (!is_num(&a[0]))
            return fail(err, e, "abs() expects a number, got %A", &a[0], NULL);
        out->type = SL_V_DOUBLE;
        out->u.d = fabs(num_d(&a[0]));
        return 0;
    }
    case SL_FN_COALESCE:
        break;
    }
    return sl_error_set(err, SL_ERR_INTERNAL, "unknown function %d", e->op);
}

int sl_eval(const sl_expr *e, sl_eval_ctx *c, sl_value *out, sl_error *err)
{
    sl_value a, b;
    int r;
    size_t i;

    switch (e->kind) {
    case SL_X_LITERAL:
        *out = e->lit;
        return 0;
    case SL_X_OP: {
        static const char ops[] = "cudrtm";
        const char *p = c->ev->op ? strchr(ops, c->ev->op) : NULL;

        if (p == NULL) {
            set_null(out);
            return 0;
        }
        out->type = SL_V_STRING;
        out->u.s.p = p;
        out->u.s.len = 1;
        return 0;
    }
    case SL_X_ORIGIN:
        out->type = SL_V_STRING;
        out->u.s = c->origin;
        return 0;
    case SL_X_FIELD:
        /* A delete has no after image: after.* reads the row's last known
         * image (before), so filters and content routes still see it. */
        if (sl_event_column(c->ev, e->sec == SL_SEC_AFTER && c->ev->op == 'd' ? SL_SEC_ROW : e->sec,
                            e->name, e->name_len, out) == 0 &&
            c->ev->op == 'd' && c->last_row &&
            (e->sec == SL_SEC_AFTER || e->sec == SL_SEC_ROW || e->sec == SL_SEC_BEFORE)) {
            int t = sl_json_get(c->last_row, 0, e->name, e->name_len);

            if (t >= 0) {
                sl_buf tmp = SL_BUF_INIT;

                sl_json_value(c->last_row, t, &tmp, out);
                if (out->type == SL_V_STRING || out->type == SL_V_COMPOUND)
                    out->u.s.p = sl_pool_strdup(c->arena, out->u.s.p, out->u.s.len);
                sl_buf_free(&tmp);
            }
        }
        return 0;
    case SL_X_NOT:
        if (eval_bool_operand(e->a, c, &a, err) != 0)
            return -1;
        if (a.type == SL_V_NULL)
            set_null(out);
        else
            set_bool(out, !a.u.b);
        return 0;
    case SL_X_NEG: {
        sl_value t;

        if (sl_eval(e->a, c, &a, err) != 0)
            return -1;
        if (a.type == SL_V_STRING && str_to_num(a.u.s, &t))
            a = t;
        if (a.type == SL_V_NULL) {
            set_null(out);
        } else if (a.type == SL_V_INT && a.u.i != INT64_MIN) {
            out->type = SL_V_INT;
            out->u.i = -a.u.i;
        } else if (is_num(&a)) {
            out->type = SL_V_DOUBLE;
            out->u.d = -num_d(&a);
        } else {
            return fail(err, e, "cannot negate %A", &a, NULL);
        }
        return 0;
    }
    case SL_X_AND:
    case SL_X_OR: {
        bool is_and = e->kind == SL_X_AND;

        if (eval_bool_operand(e->a, c, &a, err) != 0)
            return -1;
        /* short-circuit: false AND x = false; true OR x = true */
        if (a.type == SL_V_BOOL && a.u.b != is_and) {
            set_bool(out, !is_and);
            return 0;
        }
        if (eval_bool_operand(e->b, c, &b, err) != 0)
            return -1;
        if (b.type == SL_V_BOOL && b.u.b != is_and)
            set_bool(out, !is_and);
        else if (a.type == SL_V_NULL || b.type == SL_V_NULL)
            set_null(out);
        else
            set_bool(out, is_and);
        return 0;
    }
    case SL_X_CMP:
        if (sl_eval(e->a, c, &a, err) != 0)
            return -1;
        pin(c, &a);
        if (sl_eval(e->b, c, &b, err) != 0)
            return -1;
        if (a.type == SL_V_NULL || b.type == SL_V_NULL) {
            set_null(out);
            return 0;
        }
        if (compare(&a, &b, e->op == SL_CMP_EQ || e->op == SL_CMP_NE, &r) != 0)
            return fail(err, e, "cannot compare %A with %B", &a, &b);
        switch ((sl_cmp)e->op) {
        case SL_CMP_EQ:
            set_bool(out, r == 0);
            break;
        case SL_CMP_NE:
            set_bool(out, r != 0);
            break;
        case SL_CMP_LT:
            set_bool(out, r < 0);
            break;
        case SL_CMP_LE:
            set_bool(out, r <= 0);
            break;
        case SL_CMP_GT:
            set_bool(out, r > 0);
            break;
        case SL_CMP_GE:
            set_bool(out, r >= 0);
            break;
        }
        return 0;
    case SL_X_ARITH:
        if (sl_eval(e->a, c, &a, err) != 0)
            return -1;
        pin(c, &a);
        if (sl_eval(e->b, c, &b, err) != 0)
            return -1;
        return eval_arith(e, &a, &b, out, err);
    case SL_X_CONCAT: {
        sl_str x, y;
        char *s;

        if (sl_eval(e->a, c, &a, err) != 0)
            return -1;
        pin(c, &a);
        if (sl_eval(e->b, c, &b, err) != 0)
            return -1;
        pin(c, &b);
        if (a.type == SL_V_NULL || b.type == SL_V_NULL) {
            set_null(out);
            return 0;
        }
        x = as_text(c, &a);
        y = as_text(c, &b);
        s = sl_pool_alloc(c->arena, x.len + y.len + 1);
        memcpy(s, x.p, x.len);
        memcpy(s + x.len, y.p, y.len);
        s[x.len + y.len] = '\0';
        out->type = SL_V_STRING;
        out->u.s.p = s;
        out->u.s.len = x.len + y.len;
        return 0;
    }
    case SL_X_IN: {
        bool saw_null = false;

        if (sl_eval(e->a, c, &a, err) != 0)
            return -1;
        pin(c, &a);
        if (a.type == SL_V_NULL) {
            set_null(out);
            return 0;
        }
        for (i = 0; i < e->nargs; i++) {
            sl_value x = a;

            if (sl_eval(e->args[i], c, &b, err) != 0)
                return -1;
            if (b.type == SL_V_NULL) {
                saw_null = true;
                continue;
            }
            if (compare(&x, &b, true, &r) != 0)
                return fail(err, e->args[i], "cannot compare %A with %B", &x, &b);
            if (r == 0) {
                set_bool(out, !e->negated);
                return 0;
            }
        }
        if (saw_null)
            set_null(out);
        else
            set_bool(out, e->negated);
        return 0;
    }
    case SL_X_LIKE:
        if (sl_eval(e->a, c, &a, err) != 0)
            return -1;
        pin(c, &a);
        if (sl_eval(e->b, c, &b, err) != 0)
            return -1;
        if (a.type == SL_V_NULL || b.type == SL_V_NULL) {
            set_null(out);
            return 0;
        }
        if (a.type != SL_V_STRING || b.type != SL_V_STRING)
            return fail(err, e, "LIKE needs strings, got %A and %B", &a, &b);
        set_bool(out,
                 sl_wildcard_match(b.u.s.p, b.u.s.len, a.u.s.p, a.u.s.len, '%', '_') != e->negated);
        return 0;
    case SL_X_ISNULL:
        if (sl_eval(e->a, c, &a, err) != 0)
            return -1;
        set_bool(out, (a.type == SL_V_NULL) != e->negated);
        return 0;
    case SL_X_CALL:
        return eval_call(e, c, out, err);
    }
    return sl_error_set(err, SL_ERR_INTERNAL, "unknown expression kind %d", (int)e->kind);
}

int sl_eval_pred(const sl_expr *e, sl_eval_ctx *c, bool *pass, sl_error *err)
{
    sl_value v;

    *pass = false;
    if (sl_eval(e, c, &v, err) != 0)
        return -1;
    if (v.type == SL_V_BOOL)
        *pass = v.u.b;
    else if (v.type != SL_V_NULL)
        return fail(err, e, "a condition must be true or false, got %A", &v, NULL);
    return 0;
}
