/*
 * parser.y - grammar of the rules language (pure Bison, no conflicts).
 *
 * Actions only call the AST builders of ast.c. Each file's statements are
 * appended to ps->rules; a syntax error is reported once and the parser
 * skips to the next `;` or `}` so later errors are reported in the same run.
 */
%define api.pure full
%define api.prefix {sl_yy}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {struct sl_parse *ps}

%code requires {
#include <stddef.h>
#include <stdint.h>

#include "ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* Locations carry byte offsets too, so a keyword used as a name can be
 * copied from the source as written. Columns are exclusive at the end. */
typedef struct sl_yyltype {
    int first_line, first_column, last_line, last_column;
    size_t first_off, last_off;
} sl_yyltype;
#define SL_YYLTYPE sl_yyltype
#define SL_YYLTYPE_IS_DECLARED 1

#define YYLLOC_DEFAULT(cur, rhs, n)                                                    \
    do {                                                                               \
        if (n) {                                                                       \
            (cur).first_line = YYRHSLOC(rhs, 1).first_line;                            \
            (cur).first_column = YYRHSLOC(rhs, 1).first_column;                        \
            (cur).first_off = YYRHSLOC(rhs, 1).first_off;                              \
            (cur).last_line = YYRHSLOC(rhs, n).last_line;                              \
            (cur).last_column = YYRHSLOC(rhs, n).last_column;                          \
            (cur).last_off = YYRHSLOC(rhs, n).last_off;                                \
        } else {                                                                       \
            (cur).first_line = (cur).last_line = YYRHSLOC(rhs, 0).last_line;           \
            (cur).first_column = (cur).last_column = YYRHSLOC(rhs, 0).last_column;     \
            (cur).first_off = (cur).last_off = YYRHSLOC(rhs, 0).last_off;              \
        }                                                                              \
    } while (0)

/* The parse of one file: shared by the scanner (as its extra data) and the parser. */
struct sl_parse {
    sl_diags *diags;
    const char *file; /* stable name from sl_diags_add_source */
    const char *text;
    ast_rules *rules;
    int line, col; /* scanner position */
    size_t off;
    int last_line, last_col; /* end of the last real token */
    size_t last_off;
    int prev_line, prev_col; /* end of the token before it */
};
}

%code provides {
int sl_yylex(SL_YYSTYPE *lval, SL_YYLTYPE *lloc, yyscan_t scanner);

static inline sl_loc sl_parse_loc(const struct sl_parse *ps, const SL_YYLTYPE *l)
{
    sl_loc r;

    r.file = ps->file;
    r.line = l->first_line;
    r.col = l->first_column;
    r.end_line = l->last_line;
    r.end_col = l->last_column;
    return r;
}
}

%code {
#include <stdlib.h>
#include <string.h>

static void sl_yyerror(SL_YYLTYPE *loc, yyscan_t scanner, struct sl_parse *ps, const char *msg);

#define LOC(l) sl_parse_loc(ps, &(l))
/* A keyword used as a name: its text as written. */
#define KWID(l) sl_ast_id(sl_xstrndup(ps->text + (l).first_off, (l).last_off - (l).first_off), LOC(l))
}

%initial-action {
    memset(&@$, 0, sizeof @$);
    @$.first_line = @$.last_line = 1;
    @$.first_column = @$.last_column = 1;
}

%union {
    char *str;
    int64_t num;
    double dbl;
    ast_id id;
    ast_ids *ids;
    ast_expr *expr;
    ast_exprs *exprs;
    ast_stmt *stmt;
    ast_tstmt *tstmt;
    ast_siteopts *opts;
    ast_merge *merge;
}

%token <str> IDENT "name" QIDENT "quoted name" STRING "string"
%token <num> INT "integer" DURATION "duration"
%token <dbl> NUMBER "number"
%token <expr> FIELD "column reference"

%token K_AND "and" K_BEFORE "before" K_BY "by" K_COLUMN "column" K_COLUMNS "columns"
%token K_CONFLICT "conflict" K_CONFLICTS "conflicts" K_DEAD "dead" K_DELETE "delete"
%token K_DELTA "delta" K_DEPENDS "depends" K_DETECT "detect" K_DROP "drop" K_FALSE "false"
%token K_GROUP "group" K_HOLD "hold" K_HUB "hub" K_IGNORE "ignore" K_IN "in" K_IS "is"
%token K_KEY "key" K_LATEST "latest" K_LETTERS "letters" K_LIKE "like" K_LUA "lua"
%token K_MANUAL "manual" K_MAX "max" K_MERGE "merge" K_MIN "min" K_NOT "not" K_NULL "null"
%token K_ON "on" K_OP "op" K_OR "or" K_ORIGIN "origin" K_PREFER "prefer" K_PRIORITY "priority"
%token K_ROUTE "route" K_SITE "site" K_SOURCE "source" K_TABLE "table" K_TIMEOUT "timeout"
%token K_TO "to" K_TOPIC "topic" K_TRUE "true" K_UPDATE "update" K_VERSION "version"
%token K_WHERE "where" K_WINS "wins"
%token K_ARROW "->" K_NE "<>" K_LE "<=" K_GE ">=" K_EQEQ "==" K_CONCAT "||"
%token K_NOTLIKE "not like" K_NOTIN "not in"

%type <id> name anyname softkw newkw dstring sword spiece siteref tword tpiece tpat mcol
%type <ids> names siterefs colnames tpats opt_to
%type <expr> expr primary opt_where
%type <exprs> exprs
%type <stmt> stmt tbody
%type <tstmt> tstmt deppairs mlist
%type <opts> siteopts
%type <merge> mitem
%type <num> opt_timeout

%destructor { free($$); } <str>
%destructor { free($$.s); } <id>
%destructor { sl_ast_ids_free($$); } <ids>
%destructor { sl_ast_expr_free($$); } <expr>
%destructor { sl_ast_exprs_free($$); } <exprs>
%destructor { sl_ast_stmt_free($$); } <stmt>
%destructor { sl_ast_tstmt_free($$); } <tstmt>
%destructor { sl_ast_siteopts_free($$); } <opts>
%destructor { sl_ast_merge_free($$); } <merge>

%left K_OR
%left K_AND
%precedence K_NOT
%nonassoc '=' K_EQEQ K_NE '<' K_LE '>' K_GE K_LIKE K_NOTLIKE K_IN K_NOTIN K_IS
%left K_CONCAT
%left '+' '-'
%left '*' '/' '%'
%precedence UMINUS

%%

rules:
      %empty
    | rules stmt                        { sl_ast_rules_add(ps->rules, $2); }
    ;

stmt:
      K_SITE names siteopts ';'         { $$ = sl_ast_s_site($2, $3, LOC(@$)); }
    | K_GROUP name '=' siterefs ';'     { $$ = sl_ast_s_names(AST_GROUP, $2, $4, LOC(@$)); }
    | K_LUA dstring ';'                 { $$ = sl_ast_s_string(AST_LUA, $2, LOC(@$)); }
    | K_TOPIC dstring ';'               { $$ = sl_ast_s_string(AST_TOPIC, $2, LOC(@$)); }
    | K_DEAD K_LETTERS dstring ';'      { $$ = sl_ast_s_string(AST_DEAD, $3, LOC(@$)); }
    | K_HOLD K_TIMEOUT DURATION ';'     { $$ = sl_ast_s_hold($3, LOC(@$)); }
    | K_IGNORE K_TABLE tpats ';'        { $$ = sl_ast_s_names(AST_IGNORE, sl_ast_id_none(), $3, LOC(@$)); }
    | tbody '}'                         { $$ = $1; }
    | tbody error '}'                   { $$ = $1; }
    | error ';'                         { $$ = NULL; }
    | error '}'                         { $$ = NULL; }
    ;

siteopts:
      %empty                            { $$ = sl_ast_siteopts(); }
    | siteopts K_HUB                    { $$ = sl_ast_siteopts_hub($1, LOC(@2)); }
    | siteopts K_PRIORITY INT           { $$ = sl_ast_siteopts_prio($1, $3, LOC(@3)); }
    | siteopts K_PRIORITY '-' INT       { $$ = sl_ast_siteopts_prio($1, -$4, LOC(@4)); }
    | siteopts K_SOURCE dstring         { $$ = sl_ast_siteopts_source($1, $3); }
    ;

tbody:
      K_TABLE tpat '{'                  { $$ = sl_ast_s_table($2, LOC(@2)); }
    | tbody tstmt                       { $$ = sl_ast_s_table_add($1, $2); }
    ;

tstmt:
      K_KEY '(' colnames ')' ';'        { $$ = sl_ast_t_cols(AST_T_KEY, $3, NULL, LOC(@$)); }
    | K_KEY colnames ';'                { $$ = sl_ast_t_cols(AST_T_KEY, $2, NULL, LOC(@$)); }
    | K_WHERE expr ';'                  { $$ = sl_ast_t_where($2, LOC(@2)); }
    | K_ROUTE siterefs K_ARROW siterefs opt_where ';'
                                        { $$ = sl_ast_t_route($2, $4, NULL, $5, LOC(@$)); }
    | K_ROUTE siterefs K_ARROW K_SITE '(' expr ')' opt_where ';'
                                        { $$ = sl_ast_t_route($2, NULL, $6, $8, LOC(@$)); }
    | K_COLUMNS colnames opt_to ';'     { $$ = sl_ast_t_cols(AST_T_COLUMNS, $2, $3, LOC(@$)); }
    | K_DROP K_COLUMN colnames opt_to ';'  { $$ = sl_ast_t_cols(AST_T_DROP, $3, $4, LOC(@$)); }
    | K_DROP K_COLUMNS colnames opt_to ';' { $$ = sl_ast_t_cols(AST_T_DROP, $3, $4, LOC(@$)); }
    | K_DEPENDS K_ON tpat '(' deppairs ')' opt_timeout ';'
                                        { $$ = sl_ast_t_depends($5, $3, $7, LOC(@$)); }
    | K_ON K_CONFLICT K_LATEST ';'      { $$ = sl_ast_t_conflict(SL_CONFLICT_LATEST, sl_ast_id_none(), LOC(@$)); }
    | K_ON K_CONFLICT K_PREFER name ';' { $$ = sl_ast_t_conflict(SL_CONFLICT_PREFER, $4, LOC(@$)); }
    | K_ON K_CONFLICT K_LUA anyname ';' { $$ = sl_ast_t_conflict(SL_CONFLICT_LUA, $4, LOC(@$)); }
    | K_ON K_CONFLICT K_MANUAL ';'      { $$ = sl_ast_t_conflict(SL_CONFLICT_MANUAL, sl_ast_id_none(), LOC(@$)); }
    | mlist '}'                         { $$ = sl_ast_t_loc($1, LOC(@$)); }
    | mlist mitem '}'                   { $$ = sl_ast_t_loc(sl_ast_t_merge_add($1, $2), LOC(@$)); }
    | K_ON K_DELETE K_CONFLICT K_LATEST ';'         { $$ = sl_ast_t_ondelete(SL_DELETE_LATEST, LOC(@$)); }
    | K_ON K_DELETE K_CONFLICT K_DELETE K_WINS ';'  { $$ = sl_ast_t_ondelete(SL_DELETE_WINS, LOC(@$)); }
    | K_ON K_DELETE K_CONFLICT K_UPDATE K_WINS ';'  { $$ = sl_ast_t_ondelete(SL_DELETE_UPDATE_WINS, LOC(@$)); }
    | K_DETECT K_CONFLICTS K_BY K_BEFORE ';'   { $$ = sl_ast_t_detect(true, LOC(@$)); }
    | K_DETECT K_CONFLICTS K_BY K_VERSION ';'  { $$ = sl_ast_t_detect(false, LOC(@$)); }
    | K_TOPIC dstring ';'               { $$ = sl_ast_t_topic($2, LOC(@$)); }
    | ';'                               { $$ = NULL; }
    | error ';'                         { $$ = NULL; }
    ;

opt_where:
      %empty                            { $$ = NULL; }
    | K_WHERE expr                      { $$ = $2; }
    ;

opt_to:
      %empty                            { $$ = NULL; }
    | K_TO siterefs                     { $$ = $2; }
    ;

opt_timeout:
      %empty                            { $$ = 0; }
    | K_TIMEOUT DURATION                { $$ = $2; }
    ;

deppairs:
      anyname '=' anyname               { $$ = sl_ast_t_deppair(NULL, $1, $3); }
    | deppairs ',' anyname '=' anyname  { $$ = sl_ast_t_deppair($1, $3, $5); }
    ;

mlist:
      K_ON K_CONFLICT K_MERGE '{'       { $$ = sl_ast_t_conflict(SL_CONFLICT_MERGE, sl_ast_id_none(), LOC(@$)); }
    | mlist mitem ';'                   { $$ = sl_ast_t_merge_add($1, $2); }
    | mlist ';'                         { $$ = $1; }
    | mlist error ';'                   { $$ = $1; }
    ;

mitem:
      mcol ':' K_LATEST                 { $$ = sl_ast_merge($1, SL_MERGE_LATEST, sl_ast_id_none(), LOC(@$)); }
    | mcol ':' K_MAX                    { $$ = sl_ast_merge($1, SL_MERGE_MAX, sl_ast_id_none(), LOC(@$)); }
    | mcol ':' K_MIN                    { $$ = sl_ast_merge($1, SL_MERGE_MIN, sl_ast_id_none(), LOC(@$)); }
    | mcol ':' K_DELTA                  { $$ = sl_ast_merge($1, SL_MERGE_DELTA, sl_ast_id_none(), LOC(@$)); }
    | mcol ':' K_PREFER name            { $$ = sl_ast_merge($1, SL_MERGE_PREFER, $4, LOC(@$)); }
    ;

mcol:
      anyname                           { $$ = $1; }
    | '*'                               { $$ = sl_ast_id(sl_xstrdup("*"), LOC(@1)); }
    ;

/* ---- names ---------------------------------------------------------------- */

name:
      IDENT                             { $$ = sl_ast_id($1, LOC(@1)); }
    | QIDENT                            { $$ = sl_ast_id_quoted($1, LOC(@1)); }
    ;

/* Column and table names may be words the language uses as keywords. */
anyname:
      name                              { $$ = $1; }
    | softkw                            { $$ = $1; }
    ;

softkw:
      K_AND { $$ = KWID(@1); } | K_BEFORE { $$ = KWID(@1); } | K_BY { $$ = KWID(@1); }
    | K_COLUMN { $$ = KWID(@1); } | K_COLUMNS { $$ = KWID(@1); } | K_CONFLICT { $$ = KWID(@1); }
    | K_CONFLICTS { $$ = KWID(@1); } | K_DEAD { $$ = KWID(@1); } | K_DELETE { $$ = KWID(@1); }
    | K_DELTA { $$ = KWID(@1); } | K_DEPENDS { $$ = KWID(@1); } | K_DETECT { $$ = KWID(@1); }
    | K_DROP { $$ = KWID(@1); }
    | K_FALSE { $$ = KWID(@1); } | K_GROUP { $$ = KWID(@1); } | K_HOLD { $$ = KWID(@1); }
    | K_HUB { $$ = KWID(@1); } | K_IGNORE { $$ = KWID(@1); } | K_IN { $$ = KWID(@1); }
    | K_IS { $$ = KWID(@1); } | K_KEY { $$ = KWID(@1); } | K_LATEST { $$ = KWID(@1); }
    | K_LETTERS { $$ = KWID(@1); } | K_LIKE { $$ = KWID(@1); } | K_LUA { $$ = KWID(@1); }
    | K_MANUAL { $$ = KWID(@1); } | K_MAX { $$ = KWID(@1); } | K_MERGE { $$ = KWID(@1); }
    | K_MIN { $$ = KWID(@1); } | K_NOT { $$ = KWID(@1); } | K_NULL { $$ = KWID(@1); }
    | K_ON { $$ = KWID(@1); } | K_OP { $$ = KWID(@1); } | K_OR { $$ = KWID(@1); }
    | K_ORIGIN { $$ = KWID(@1); } | K_PREFER { $$ = KWID(@1); } | K_PRIORITY { $$ = KWID(@1); }
    | K_ROUTE { $$ = KWID(@1); } | K_SITE { $$ = KWID(@1); } | K_SOURCE { $$ = KWID(@1); }
    | K_TABLE { $$ = KWID(@1); } | K_TIMEOUT { $$ = KWID(@1); } | K_TO { $$ = KWID(@1); }
    | K_TOPIC { $$ = KWID(@1); } | K_TRUE { $$ = KWID(@1); } | K_UPDATE { $$ = KWID(@1); }
    | K_VERSION { $$ = KWID(@1); } | K_WHERE { $$ = KWID(@1); } | K_WINS { $$ = KWID(@1); }
    ;

/* Keywords added after names could be these words: in an expression they
 * stay bare names, so the checker says how to write a column. */
newkw:
      K_BEFORE { $$ = KWID(@1); } | K_BY { $$ = KWID(@1); } | K_CONFLICTS { $$ = KWID(@1); }
    | K_DETECT { $$ = KWID(@1); } | K_VERSION { $$ = KWID(@1); }
    ;

names:
      name                              { $$ = sl_ast_ids_new($1); }
    | names ',' name                    { $$ = sl_ast_ids_add($1, $3); }
    ;

colnames:
      anyname                           { $$ = sl_ast_ids_new($1); }
    | colnames ',' anyname              { $$ = sl_ast_ids_add($1, $3); }
    ;

dstring:
      STRING                            { $$ = sl_ast_id($1, LOC(@1)); }
    | QIDENT                            { $$ = sl_ast_id_quoted($1, LOC(@1)); }
    ;

/* Site references: names, globs (`store_*`), groups, `*`, `hub`. A glob is
 * written as adjacent pieces; sl_ast_id_join reports spaces inside it. */
siterefs:
      siteref                           { $$ = sl_ast_ids_new($1); }
    | siterefs ',' siteref              { $$ = sl_ast_ids_add($1, $3); }
    ;

siteref:
      sword                             { $$ = $1; }
    | K_HUB                             { $$ = sl_ast_id(sl_xstrdup("hub"), LOC(@1)); }
    ;

sword:
      spiece                            { $$ = $1; }
    | sword spiece                      { $$ = sl_ast_id_join(ps->diags, $1, $2); }
    ;

spiece:
      name                              { $$ = $1; }
    | '*'                               { $$ = sl_ast_id(sl_xstrdup("*"), LOC(@1)); }
    | '?'                               { $$ = sl_ast_id(sl_xstrdup("?"), LOC(@1)); }
    ;

/* Table patterns: schema.table, db.table, or a bare table name; globs allowed. */
tpats:
      tpat                              { $$ = sl_ast_ids_new($1); }
    | tpats ',' tpat                    { $$ = sl_ast_ids_add($1, $3); }
    ;

tpat:
      tword                             { $$ = $1; }
    | tword '.' tword                   { $$ = sl_ast_id_dotted($1, $3); }
    ;

tword:
      tpiece                            { $$ = $1; }
    | tword tpiece                      { $$ = sl_ast_id_join(ps->diags, $1, $2); }
    ;

tpiece:
      anyname                           { $$ = $1; }
    | '*'                               { $$ = sl_ast_id(sl_xstrdup("*"), LOC(@1)); }
    | '?'                               { $$ = sl_ast_id(sl_xstrdup("?"), LOC(@1)); }
    ;

/* ---- expressions ---------------------------------------------------------- */

expr:
      expr K_OR expr                    { $$ = sl_ast_binary(SL_X_OR, 0, $1, $3, LOC(@$)); }
    | expr K_AND expr                   { $$ = sl_ast_binary(SL_X_AND, 0, $1, $3, LOC(@$)); }
    | K_NOT expr                        { $$ = sl_ast_unary(SL_X_NOT, $2, LOC(@$)); }
    | expr '=' expr                     { $$ = sl_ast_binary(SL_X_CMP, SL_CMP_EQ, $1, $3, LOC(@$)); }
    | expr K_EQEQ expr                  { $$ = sl_ast_binary(SL_X_CMP, SL_CMP_EQ, $1, $3, LOC(@$)); }
    | expr K_NE expr                    { $$ = sl_ast_binary(SL_X_CMP, SL_CMP_NE, $1, $3, LOC(@$)); }
    | expr '<' expr                     { $$ = sl_ast_binary(SL_X_CMP, SL_CMP_LT, $1, $3, LOC(@$)); }
    | expr K_LE expr                    { $$ = sl_ast_binary(SL_X_CMP, SL_CMP_LE, $1, $3, LOC(@$)); }
    | expr '>' expr                     { $$ = sl_ast_binary(SL_X_CMP, SL_CMP_GT, $1, $3, LOC(@$)); }
    | expr K_GE expr                    { $$ = sl_ast_binary(SL_X_CMP, SL_CMP_GE, $1, $3, LOC(@$)); }
    | expr K_LIKE expr                  { $$ = sl_ast_like($1, $3, false, LOC(@$)); }
    | expr K_NOTLIKE expr               { $$ = sl_ast_like($1, $3, true, LOC(@$)); }
    | expr K_IN '(' exprs ')'           { $$ = sl_ast_in($1, $4, false, LOC(@$)); }
    | expr K_NOTIN '(' exprs ')'        { $$ = sl_ast_in($1, $4, true, LOC(@$)); }
    | expr K_IS K_NULL                  { $$ = sl_ast_isnull($1, false, LOC(@$)); }
    | expr K_IS K_NOT K_NULL            { $$ = sl_ast_isnull($1, true, LOC(@$)); }
    | expr K_CONCAT expr                { $$ = sl_ast_binary(SL_X_CONCAT, 0, $1, $3, LOC(@$)); }
    | expr '+' expr                     { $$ = sl_ast_binary(SL_X_ARITH, SL_AR_ADD, $1, $3, LOC(@$)); }
    | expr '-' expr                     { $$ = sl_ast_binary(SL_X_ARITH, SL_AR_SUB, $1, $3, LOC(@$)); }
    | expr '*' expr                     { $$ = sl_ast_binary(SL_X_ARITH, SL_AR_MUL, $1, $3, LOC(@$)); }
    | expr '/' expr                     { $$ = sl_ast_binary(SL_X_ARITH, SL_AR_DIV, $1, $3, LOC(@$)); }
    | expr '%' expr                     { $$ = sl_ast_binary(SL_X_ARITH, SL_AR_MOD, $1, $3, LOC(@$)); }
    | '-' expr %prec UMINUS             { $$ = sl_ast_unary(SL_X_NEG, $2, LOC(@$)); }
    | primary                           { $$ = $1; }
    ;

primary:
      STRING                            { $$ = sl_ast_lit_str($1, LOC(@1)); }
    | INT                               { $$ = sl_ast_lit_int($1, LOC(@1)); }
    | NUMBER                            { $$ = sl_ast_lit_num($1, LOC(@1)); }
    | K_TRUE                            { $$ = sl_ast_lit_bool(true, LOC(@1)); }
    | K_FALSE                           { $$ = sl_ast_lit_bool(false, LOC(@1)); }
    | K_NULL                            { $$ = sl_ast_lit_null(LOC(@1)); }
    | K_OP                              { $$ = sl_ast_leaf(SL_X_OP, LOC(@1)); }
    | K_ORIGIN                          { $$ = sl_ast_leaf(SL_X_ORIGIN, LOC(@1)); }
    | FIELD                             { $$ = $1; }
    | IDENT                             { $$ = sl_ast_name($1, LOC(@1)); }
    | QIDENT                            { $$ = sl_ast_name($1, LOC(@1)); }
    | newkw                             { $$ = sl_ast_name($1.s, $1.loc); }
    | IDENT '(' ')'                     { $$ = sl_ast_call($1, NULL, LOC(@$)); }
    | IDENT '(' exprs ')'               { $$ = sl_ast_call($1, $3, LOC(@$)); }
    | '(' expr ')'                      { $$ = $2; }
    ;

exprs:
      expr                              { $$ = sl_ast_exprs_new($1); }
    | exprs ',' expr                    { $$ = sl_ast_exprs_add($1, $3); }
    ;

%%

static void sl_yyerror(SL_YYLTYPE *loc, yyscan_t scanner, struct sl_parse *ps, const char *msg)
{
    (void)scanner;
    /* Bison's own message for a full stack: say what the user did. */
    if (strcmp(msg, "memory exhausted") == 0)
        msg = "nested too deeply";
    sl_diags_add(ps->diags, SL_SEV_ERROR, sl_parse_loc(ps, loc), "%s", msg);
}

/* How a token is named in a message: keywords and punctuation quoted, value
 * tokens by kind. */
static void put_symbol(sl_buf *b, yysymbol_kind_t k)
{
    const char *n = yysymbol_name(k);

    switch (k) {
    case YYSYMBOL_YYEOF:
    case YYSYMBOL_IDENT:
    case YYSYMBOL_QIDENT:
    case YYSYMBOL_STRING:
    case YYSYMBOL_INT:
    case YYSYMBOL_DURATION:
    case YYSYMBOL_NUMBER:
    case YYSYMBOL_FIELD:
        sl_buf_puts(b, n);
        return;
    default:
        break;
    }
    if (n[0] == '\'')
        sl_buf_puts(b, n);
    else
        sl_buf_printf(b, "'%s'", n);
}

/* "unexpected name 'store_02', expecting 'hub', 'priority', 'source' or ';'" */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, struct sl_parse *ps)
{
    yysymbol_kind_t exp[YYNTOKENS];
    yysymbol_kind_t tok = yypcontext_token(ctx);
    const SL_YYLTYPE *l = yypcontext_location(ctx);
    sl_loc loc = sl_parse_loc(ps, l);
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    bool semi = false;
    sl_buf b = SL_BUF_INIT;

    (void)scanner;
    for (int i = 0; i < n; i++)
        if (strcmp(yysymbol_name(exp[i]), "';'") == 0)
            semi = true;
    /* A statement that ends at a line break almost always lacks its ';':
     * point just after its last token, not at the next line. */
    if (semi && tok != YYSYMBOL_YYEOF && l->first_line > ps->prev_line && ps->prev_line > 0) {
        loc.line = loc.end_line = ps->prev_line;
        loc.col = loc.end_col = ps->prev_col;
        sl_diags_add(ps->diags, SL_SEV_ERROR, loc, "missing ';' at the end of the statement");
        return 0;
    }
    sl_buf_puts(&b, "unexpected ");
    put_symbol(&b, tok);
    if (tok != YYSYMBOL_YYEOF && tok != YYSYMBOL_YYerror && tok != YYSYMBOL_YYUNDEF &&
        l->last_off > l->first_off && l->last_off - l->first_off <= 40 &&
        (tok == YYSYMBOL_IDENT || tok == YYSYMBOL_QIDENT || tok == YYSYMBOL_STRING ||
         tok == YYSYMBOL_INT || tok == YYSYMBOL_NUMBER || tok == YYSYMBOL_DURATION ||
         tok == YYSYMBOL_FIELD))
    {
        const char *raw = ps->text + l->first_off;
        int len = (int)(l->last_off - l->first_off);

        if (raw[0] == '\'' || raw[0] == '"')
            sl_buf_printf(&b, " %.*s", len, raw);
        else
            sl_buf_printf(&b, " '%.*s'", len, raw);
    }
    /* A long list of alternatives helps nobody; name up to six. */
    if (n > 0 && n <= 6) {
        sl_buf_puts(&b, ", expecting ");
        for (int i = 0; i < n; i++) {
            if (i)
                sl_buf_puts(&b, i == n - 1 ? " or " : ", ");
            put_symbol(&b, exp[i]);
        }
    }
    sl_diags_add(ps->diags, SL_SEV_ERROR, loc, "%s", b.data);
    sl_buf_free(&b);
    return 0;
}
