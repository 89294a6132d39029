/*
 * ast.h - the syntax tree of a rule set, as parsed (internal to dsl/).
 *
 * The parser builds it through the sl_ast_* builders only; check.c resolves
 * names and annotates it (types, site sets, table indexes); compile.c turns
 * it into the immutable sl_program. Every node owns its children and strings
 * (malloc), so the parser's %destructor can free a half-built statement.
 */
#ifndef SL_AST_H
#define SL_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "program.h"

/* A name, string or pattern with where it was written. For table patterns
 * `split` is the length of the schema part (the text before the dot), or -1
 * when the pattern has no dot. */
typedef struct ast_id {
    char *s;
    sl_loc loc;
    int split;
    bool quoted; /* written as "..." */
} ast_id;

typedef struct ast_ids {
    ast_id *v;
    size_t n, cap;
} ast_ids;

/* Expression kinds beyond sl_xkind that only exist before checking. */
enum { AST_X_NAME = 100 /* a bare name: not valid, reported by the checker */ };

typedef struct ast_expr ast_expr;

typedef struct ast_exprs {
    ast_expr **v;
    size_t n, cap;
} ast_exprs;

struct ast_expr {
    int kind; /* sl_xkind or AST_X_NAME */
    int op;   /* sl_cmp / sl_arith / sl_fn (CALL: set by the checker) */
    bool negated;
    sl_type type; /* set by the checker */
    sl_loc loc;
    sl_value lit; /* LITERAL; a string points into str */
    char *str;    /* owned text of a string literal */
    sl_section sec;
    char *name; /* FIELD column / source field; CALL function; NAME */
    ast_expr *a, *b;
    ast_exprs *args; /* IN list, CALL arguments */
    int depth;       /* nesting depth, so passes can refuse absurd trees before recursing */
};

/* ---- table block statements ---------------------------------------------- */

typedef enum ast_tkind {
    AST_T_KEY,
    AST_T_WHERE,
    AST_T_ROUTE,
    AST_T_COLUMNS,
    AST_T_DROP,
    AST_T_DEPENDS,
    AST_T_CONFLICT,
    AST_T_ONDELETE,
    AST_T_TOPIC,
    AST_T_DETECT,
} ast_tkind;

typedef struct ast_merge {
    ast_id col; /* "*" for every other column */
    int kind;   /* sl_merge_kind */
    ast_id site;
    int site_index; /* set by the checker */
    sl_loc loc;
} ast_merge;

typedef struct ast_tstmt ast_tstmt;
struct ast_tstmt {
    ast_tkind kind;
    sl_loc loc;
    ast_ids *cols;     /* KEY, COLUMNS, DROP; DEPENDS: child columns */
    ast_ids *pcols;    /* DEPENDS: parent columns */
    ast_ids *from;     /* ROUTE */
    ast_ids *to;       /* ROUTE (NULL for site(expr)); COLUMNS/DROP: NULL = every site */
    ast_expr *expr;    /* WHERE; ROUTE where */
    ast_expr *to_expr; /* ROUTE site(expr) */
    ast_id target;     /* DEPENDS parent; CONFLICT prefer site or lua function; TOPIC */
    int64_t ms;        /* DEPENDS timeout, 0 = default */
    int policy;        /* CONFLICT: sl_conflict_kind; ONDELETE: sl_delete_policy;
                          DETECT: 1 = by before, 0 = by version */
    ast_merge *merge;
    size_t nmerge, mcap;
    /* filled by the checker */
    sl_siteset *from_set, *to_set;
    int parent;     /* DEPENDS: index into the checker's tables */
    int site_index; /* CONFLICT prefer */
    ast_tstmt *next;
};

/* ---- top-level statements -------------------------------------------------- */

typedef enum ast_skind {
    AST_SITE,
    AST_GROUP,
    AST_LUA,
    AST_TOPIC,
    AST_DEAD,
    AST_HOLD,
    AST_IGNORE,
    AST_TABLE,
} ast_skind;

typedef struct ast_siteopts {
    bool hub, has_prio;
    int64_t prio;
    ast_id source; /* s == NULL: none */
    sl_loc hub_loc, prio_loc;
} ast_siteopts;

typedef struct ast_stmt ast_stmt;
struct ast_stmt {
    ast_skind kind;
    sl_loc loc;
    ast_ids *names; /* SITE names, GROUP members, IGNORE patterns */
    ast_id name;    /* GROUP name, TABLE pattern, LUA / TOPIC / DEAD string */
    ast_siteopts opts;
    int64_t ms; /* HOLD */
    ast_tstmt *body, *body_tail;
    ast_stmt *next;
};

/* One rule set: the statements of every file, in order. */
typedef struct ast_rules {
    ast_stmt *head, *tail;
} ast_rules;

/* ---- builders (called by the grammar) ---------------------------------------- */

ast_id sl_ast_id(char *s, sl_loc loc);
ast_id sl_ast_id_quoted(char *s, sl_loc loc);
ast_id sl_ast_id_none(void);
/* Join two adjacent pieces of a glob ("store_" "*"); reports a gap. */
ast_id sl_ast_id_join(sl_diags *d, ast_id a, ast_id b);
/* "schema" "." "table" -> one pattern with split set. */
ast_id sl_ast_id_dotted(ast_id a, ast_id b);
ast_ids *sl_ast_ids_new(ast_id first);
ast_ids *sl_ast_ids_add(ast_ids *l, ast_id id);
void sl_ast_ids_free(ast_ids *l);

ast_expr *sl_ast_lit_int(int64_t v, sl_loc loc);
ast_expr *sl_ast_lit_num(double v, sl_loc loc);
ast_expr *sl_ast_lit_str(char *s, sl_loc loc);
ast_expr *sl_ast_lit_bool(bool v, sl_loc loc);
ast_expr *sl_ast_lit_null(sl_loc loc);
ast_expr *sl_ast_field(sl_section sec, char *name, sl_loc loc);
ast_expr *sl_ast_leaf(int kind, sl_loc loc); /* OP, ORIGIN */
ast_expr *sl_ast_name(char *name, sl_loc loc);
ast_expr *sl_ast_unary(int kind, ast_expr *a, sl_loc loc);
ast_expr *sl_ast_binary(int kind, int op, ast_expr *a, ast_expr *b, sl_loc loc);
ast_expr *sl_ast_like(ast_expr *a, ast_expr *b, bool negated, sl_loc loc);
ast_expr *sl_ast_in(ast_expr *a, ast_exprs *list, bool negated, sl_loc loc);
ast_expr *sl_ast_isnull(ast_expr *a, bool negated, sl_loc loc);
ast_expr *sl_ast_call(char *name, ast_exprs *args, sl_loc loc);
ast_exprs *sl_ast_exprs_new(ast_expr *first);
ast_exprs *sl_ast_exprs_add(ast_exprs *l, ast_expr *e);
void sl_ast_exprs_free(ast_exprs *l);
void sl_ast_expr_free(ast_expr *e);

ast_tstmt *sl_ast_tstmt(ast_tkind kind, sl_loc loc);
ast_tstmt *sl_ast_t_cols(ast_tkind kind, ast_ids *cols, ast_ids *to, sl_loc loc);
ast_tstmt *sl_ast_t_where(ast_expr *e, sl_loc loc);
ast_tstmt *sl_ast_t_route(ast_ids *from, ast_ids *to, ast_expr *to_expr, ast_expr *where,
                          sl_loc loc);
/* `depends on`: the pairs list is built as a DEPENDS statement, then named. */
ast_tstmt *sl_ast_t_deppair(ast_tstmt *t, ast_id child, ast_id parent);
ast_tstmt *sl_ast_t_depends(ast_tstmt *pairs, ast_id parent, int64_t ms, sl_loc loc);
ast_tstmt *sl_ast_t_conflict(int kind, ast_id target, sl_loc loc);
ast_tstmt *sl_ast_t_merge_add(ast_tstmt *t, ast_merge *m);
ast_merge *sl_ast_merge(ast_id col, int kind, ast_id site, sl_loc loc);
void sl_ast_merge_free(ast_merge *m);
ast_tstmt *sl_ast_t_ondelete(int policy, sl_loc loc);
ast_tstmt *sl_ast_t_detect(bool by_before, sl_loc loc);
ast_tstmt *sl_ast_t_topic(ast_id s, sl_loc loc);
ast_tstmt *sl_ast_t_loc(ast_tstmt *t, sl_loc loc);
void sl_ast_tstmt_free(ast_tstmt *t);

ast_stmt *sl_ast_stmt(ast_skind kind, sl_loc loc);
ast_stmt *sl_ast_s_site(ast_ids *names, ast_siteopts *opts, sl_loc loc);
ast_stmt *sl_ast_s_names(ast_skind kind, ast_id name, ast_ids *names, sl_loc loc);
ast_stmt *sl_ast_s_string(ast_skind kind, ast_id s, sl_loc loc);
ast_stmt *sl_ast_s_hold(int64_t ms, sl_loc loc);
ast_stmt *sl_ast_s_table(ast_id pattern, sl_loc loc);
ast_stmt *sl_ast_s_table_add(ast_stmt *t, ast_tstmt *s);
ast_stmt *sl_ast_s_loc(ast_stmt *s, sl_loc loc);
void sl_ast_stmt_free(ast_stmt *s);
ast_siteopts *sl_ast_siteopts(void);
ast_siteopts *sl_ast_siteopts_hub(ast_siteopts *o, sl_loc loc);
ast_siteopts *sl_ast_siteopts_prio(ast_siteopts *o, int64_t prio, sl_loc loc);
ast_siteopts *sl_ast_siteopts_source(ast_siteopts *o, ast_id source);
void sl_ast_siteopts_free(ast_siteopts *o);

void sl_ast_rules_add(ast_rules *r, ast_stmt *s);
void sl_ast_rules_free(ast_rules *r);

/* Parse one file's text into r (appending). `name` must be the stable copy
 * returned by sl_diags_add_source. Returns the number of errors reported. */
size_t sl_ast_parse(sl_diags *d, const char *name, const char *text, size_t len, ast_rules *r);

#endif
