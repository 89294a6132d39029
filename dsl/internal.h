/*
 * internal.h - what the passes of dsl/ share and the engine never sees:
 * the checker's resolved view of a rule set (sl_sema), the arena a compiled
 * program lives in, and the private tail of sl_program.
 */
#ifndef SL_DSL_INTERNAL_H
#define SL_DSL_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "ast.h"
#include "program.h"

/* Deeper expressions are refused, so every recursive pass has a bound. */
#define SL_MAX_EXPR_DEPTH 200

/* ---- arena: everything of a compiled program, freed at once -------------- */

typedef struct sl_arena_block sl_arena_block;

typedef struct sl_arena {
    sl_arena_block *head;
} sl_arena;

void *sl_arena_alloc(sl_arena *a, size_t n); /* zeroed */
char *sl_arena_strdup(sl_arena *a, const char *s);
void sl_arena_free(sl_arena *a);

/* A program as allocated: the public part first, so the pointers convert. */
typedef struct sl_program_impl {
    sl_program pub;
    atomic_int refs;
    sl_arena arena;
    const int *split; /* per table: length of the schema part, -1 without a dot */
    const char *const *group_names;
    const sl_siteset *group_sets;
    size_t ngroups;
} sl_program_impl;

/* ---- the checker's resolved rule set ----------------------------------------- */

typedef struct sl_sema_group {
    const ast_id *name;
    const ast_stmt *st;
    sl_siteset set;
    int state; /* 0 unresolved, 1 resolving, 2 done */
} sl_sema_group;

typedef struct sl_sema_table {
    const ast_stmt *st; /* the TABLE block; NULL when ignored */
    const ast_id *pat;  /* pattern as written */
    bool ignored, is_glob;
    int spec;        /* literal characters in the pattern */
    int final_index; /* position in sl_program.tables */
    const ast_tstmt *key, *cols, *conflict, *ondelete, *detect, *topic;
} sl_sema_table;

typedef struct sl_sema {
    sl_site *sites; /* names point into the AST */
    size_t nsites;
    int hub;
    sl_sema_group *groups;
    size_t ngroups;
    sl_sema_table *tables; /* in declaration order */
    size_t ntables;
    const ast_id *topic, *dead;
    int64_t hold_ms;
    char **lua; /* resolved paths, owned */
    size_t nlua;
} sl_sema;

/* Resolve and check the whole rule set; returns the number of errors. */
size_t sl_check(ast_rules *r, sl_diags *d, sl_sema *s);
void sl_sema_free(sl_sema *s);

/* The columns one destination site receives from table t. Arrays are malloc'd
 * and point to AST strings; free with sl_sel_tmp_free. */
typedef struct sl_sel_tmp {
    bool all;
    const char **cols;
    size_t ncols;
    const char **drop;
    size_t ndrop;
} sl_sel_tmp;
void sl_sema_selection(const sl_sema *s, const sl_sema_table *t, int site, sl_sel_tmp *out);
void sl_sel_tmp_free(sl_sel_tmp *t);

/* Build the program from a checked rule set. names/texts: the files, in order
 * (names are the stable copies held by the diagnostics). */
sl_program *sl_compile_sema(sl_sema *s, const char *const *names, const char *const *texts,
                            const size_t *lens, size_t nfiles);

/* ---- helpers ------------------------------------------------------------------ */

/* `*` any run, `?` one byte; case-sensitive. */
bool sl_glob_match(const char *pat, size_t plen, const char *s, size_t slen);
bool sl_is_glob(const char *s);
/* The candidate closest to `name` when it is close enough to be a typo, or NULL. */
const char *sl_hint(const char *name, const char *const *cands, size_t n);
/* Does table pattern `pat` (split as in sl_program_impl) match schema.table? */
bool sl_table_match(const char *pat, int split, const char *schema, size_t schema_len,
                    const char *table, size_t table_len);
/* "500ms", "30s", "5m": the largest unit that divides ms. */
void sl_format_duration(int64_t ms, sl_buf *out);

#endif
