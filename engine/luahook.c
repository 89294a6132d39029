/*
 * luahook.c - Lua 5.4 conflict hooks: the sandboxed state, its limits, and
 * the JSON <-> Lua conversion of rows.
 *
 * Every Lua API call that can allocate runs inside lua_pcall: an allocation
 * refused by the memory limit then becomes an ordinary error instead of a
 * panic (which would abort the engine). The only work done outside is
 * parsing the JSON inputs (C heap) and pushing C functions (no allocation).
 *
 * Conversion writes straight into the caller's buffer; Lua errors during it
 * (a value that has no JSON form) longjmp out, so nothing allocated on the C
 * heap may be owned by a C local across a Lua call. The key lists used to
 * order columns live in buffers owned by the handle, reset per call.
 */
#include "luahook.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "json.h"

#define HOOK_STEP  1000 /* instructions between two calls of the count hook */
#define MAX_FRAMES 3    /* Lua frames quoted in an error message */

/* Unique addresses: the value of sluice.null and a registry key. Never
 * written; only their addresses matter. */
static const char null_tag = 'n';
static const char array_key = 'a';
#define NULL_PTR ((void *)(uintptr_t)&null_tag)

/* A string key of a table being written, copied out of Lua (see top). */
typedef struct entry {
    size_t off, len; /* in names */
    const char *p;   /* names.data + off, valid only while sorting */
    int done;
} entry;

struct sl_lua {
    lua_State *L; /* NULL after a rebuild failed; retried on the next call */
    sl_error broken;

    /* the allocator's accounting */
    size_t mem_used, max_bytes;
    bool mem_hit;

    /* the instruction budget of the running call */
    uint64_t max_instr, instr_used;
    int step;
    bool instr_hit;

    const char *cur_fn; /* the hook being called, for tracebacks */
    sl_lua_failure last;

    /* the hook files, read once by sl_lua_new */
    size_t nfiles;
    char **chunk; /* "@path": Lua's chunk name, so messages say path:line */
    sl_buf *src;
    char *pkgpath; /* package.path: the files' directories */

    /* per-call scratch */
    sl_json rows[3]; /* base, current, incoming */
    sl_json key;
    sl_buf scratch; /* unescaped JSON strings */
    sl_buf names;   /* key names of the tables being written */
    sl_buf ents;    /* entry[] over names */
};

typedef struct call {
    sl_lua *S;
    const char *fn;
    const sl_lua_ctx *ctx;
    bool has[3], has_key;
    sl_buf *out;
    int rc;
    sl_lua_failure fail;
    char col[64]; /* the top-level column being written, for messages */
} call;

static sl_lua *handle_of(lua_State *L)
{
    void *ud;

    lua_getallocf(L, &ud);
    return ud;
}

/* ---- limits ------------------------------------------------------------------ */

/* The state's allocator: refuses to grow past max_bytes. Lua then runs an
 * emergency collection and retries once before raising a memory error. */
static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sl_lua *S = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    void *q;

    if (nsize == 0) {
        free(ptr);
        S->mem_used -= old;
        return NULL;
    }
    /* Growing costs budget too (one instruction per 256 bytes, granted or
     * not): C functions such as string.rep do work in proportion to what
     * they allocate without running VM instructions, and a loop that keeps
     * asking for memory it cannot get pays for an emergency collection each
     * time. Charged here, enforced by the count hook within HOOK_STEP. */
    if (nsize > old)
        S->instr_used += (nsize - old) >> 8;
    if (nsize > old && (S->mem_used > S->max_bytes || nsize - old > S->max_bytes - S->mem_used)) {
        S->mem_hit = true;
        return NULL;
    }
    q = realloc(ptr, nsize);
    if (q == NULL)
        return NULL;
    S->mem_used = S->mem_used - old + nsize;
    return q;
}

/* Counts instructions in steps; a thread whose count was changed (the limit
 * was hit, or it was created under an older step) adds what it really ran. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    sl_lua *S = handle_of(L);
    int ran = lua_gethookcount(L);

    (void)ar;
    S->instr_used += (uint64_t)ran;
    if (!S->instr_hit && S->instr_used < S->max_instr) {
        if (ran != S->step)
            lua_sethook(L, count_hook, LUA_MASKCOUNT, S->step);
        return;
    }
    S->instr_hit = true;
    /* Code that catches this with pcall is stopped again at its next
     * instruction, until the error reaches our own pcall. */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    lua_pushfstring(L, "instruction limit of %I exceeded", (lua_Integer)S->max_instr);
    lua_error(L);
}

/* A fresh budget for one protected entry into the state. */
static void arm(sl_lua *S)
{
    S->instr_used = 0;
    S->instr_hit = false;
    S->mem_hit = false;
    S->step = S->max_instr < HOOK_STEP ? (int)S->max_instr : HOOK_STEP;
    lua_sethook(S->L, count_hook, LUA_MASKCOUNT, S->step);
}

/* ---- error messages ------------------------------------------------------------ */

static bool lua_frame_above(lua_State *L, int level)
{
    lua_Debug ar;

    for (; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "S", &ar);
        if (strcmp(ar.what, "C") != 0)
            return true;
    }
    return false;
}

/* Message handler: the error as a string, followed by the innermost Lua
 * frames ("; traceback: a.lua:3 in function 'f', a.lua:9 in function 'g'"). */
static int msgh(lua_State *L)
{
    sl_lua *S = handle_of(L);
    lua_Debug ar;
    int frames = 0;

    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER) {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        lua_replace(L, 1);
    }
    lua_tostring(L, 1);
    lua_settop(L, 1);
    for (int level = 1; frames < MAX_FRAMES && lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Slnt", &ar);
        if (ar.currentline <= 0)
            continue; /* a C function */
        lua_pushstring(L, frames++ == 0 ? "; traceback: " : ", ");
        if (*ar.namewhat)
            lua_pushfstring(L, "%s:%d in function '%s'", ar.short_src, ar.currentline, ar.name);
        else if (strcmp(ar.what, "main") == 0)
            lua_pushfstring(L, "%s:%d in main chunk", ar.short_src, ar.currentline);
        else if (S->cur_fn && !ar.istailcall && !lua_frame_above(L, level + 1))
            /* called from C, so Lua does not know its name: it is the hook */
            lua_pushfstring(L, "%s:%d in function '%s'", ar.short_src, ar.currentline, S->cur_fn);
        else
            lua_pushfstring(L, "%s:%d in function <%s:%d>", ar.short_src, ar.currentline,
                            ar.short_src, ar.linedefined);
    }
    lua_concat(L, lua_gettop(L));
    return 1;
}

/* ---- the sandbox ----------------------------------------------------------------- */

/* load() for text chunks only: binary chunks are not verified by Lua and a
 * crafted one can crash the VM. */
static int text_load(lua_State *L)
{
    int n = lua_gettop(L);

    if (n < 3) {
        lua_settop(L, 3);
        n = 3;
    }
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* setmetatable() that refuses a __gc field: Lua runs finalizers with hooks
 * off, so one that loops would hang the worker beyond any limit. Lua only
 * registers a finalizer when the field is there at setmetatable time. */
static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in conflict hooks");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* package.searchers[2]: Lua modules on package.path, text only. */
static int search_lua(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *file;

    lua_getfield(L, lua_upvalueindex(1), "searchpath");
    lua_pushstring(L, name);
    lua_getfield(L, lua_upvalueindex(1), "path");
    if (!lua_isstring(L, -1))
        return luaL_error(L, "'package.path' must be a string");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 1; /* searchpath's "no file ..." message */
    lua_pop(L, 1);
    file = lua_tostring(L, -1);
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                          lua_tostring(L, -1));
    lua_insert(L, -2); /* loader, file name */
    return 2;
}

/* sluice.array([t]): mark t (or a new table) so it is written as a JSON array. */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
    lua_setmetatable(L, 1);
    return 1;
}

static void set_nil(lua_State *L, int t, const char *const *names)
{
    for (; *names; names++) {
        lua_pushnil(L);
        lua_setfield(L, t, *names);
    }
}

static int open_sandbox(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},
        {LUA_LOADLIBNAME, luaopen_package},
        {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_OSLIBNAME, luaopen_os},
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
        {NULL, NULL},
    };
    static const char *const base_off[] = {"dofile", "loadfile", "print", NULL};
    static const char *const os_off[] = {"execute", "exit",      "getenv",  "remove",
                                         "rename",  "setlocale", "tmpname", NULL};
    sl_lua *S = handle_of(L);

    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    set_nil(L, 1, base_off);
    lua_getfield(L, 1, "load");
    lua_pushcclosure(L, text_load, 1);
    lua_setfield(L, 1, "load");
    lua_getfield(L, 1, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setfield(L, 1, "setmetatable");

    lua_getfield(L, 1, LUA_OSLIBNAME);
    set_nil(L, 2, os_off);
    lua_pop(L, 1);

    /* package: no C modules; Lua modules from the hook files' directories */
    lua_getfield(L, 1, LUA_LOADLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, 2, "loadlib");
    lua_pushliteral(L, "");
    lua_setfield(L, 2, "cpath");
    lua_pushstring(L, S->pkgpath);
    lua_setfield(L, 2, "path");
    lua_createtable(L, 2, 0);
    lua_getfield(L, 2, "searchers");
    lua_rawgeti(L, -1, 1); /* the preload searcher */
    lua_rawseti(L, -3, 1);
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, search_lua, 1);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, 2, "searchers");
    lua_pop(L, 1);

    /* the array marker and the sluice table */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "sluice.array");
    lua_setfield(L, -2, "__name");
    /* protected: getmetatable(t) gives "sluice.array", and nobody can add a
     * __gc to the table every JSON array gets */
    lua_pushliteral(L, "sluice.array");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_key);
    lua_createtable(L, 0, 2);
    lua_pushlightuserdata(L, NULL_PTR);
    lua_setfield(L, -2, "null");
    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
    lua_setfield(L, 1, "sluice");
    return 0;
}

/* Create the state and run every file. On failure the state is closed. */
static int build_state(sl_lua *S, sl_error *err)
{
    lua_State *L;
    int status, rc = -1;

    S->L = L = lua_newstate(lalloc, S);
    if (L == NULL)
        return sl_error_set(err, SL_ERR_NOMEM, "cannot create a Lua state");
    S->cur_fn = NULL;
    arm(S);
    lua_pushcfunction(L, open_sandbox);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        sl_error_set(err, SL_ERR_NOMEM, "cannot open the Lua libraries: %s", lua_tostring(L, -1));
        goto out;
    }
    for (size_t i = 0; i < S->nfiles; i++) {
        const char *path = S->chunk[i] + 1, *p = S->src[i].data ? S->src[i].data : "";
        size_t len = S->src[i].len;

        /* As luaL_loadfile does: skip a UTF-8 BOM and a first line starting
         * with '#' (its newline stays, so line numbers are right). */
        if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
            p += 3, len -= 3;
        if (len > 0 && *p == '#') {
            const char *nl = memchr(p, '\n', len);

            len = nl ? len - (size_t)(nl - p) : 0;
            p = nl ? nl : p;
        }
        arm(S);
        lua_pushcfunction(L, msgh);
        status = luaL_loadbufferx(L, p, len, S->chunk[i], "t");
        if (status == LUA_ERRSYNTAX) {
            const char *msg = lua_tostring(L, -1);

            /* Lua says "path:line: ..." except for a binary chunk */
            if (strncmp(msg, path, strlen(path)) == 0)
                sl_error_set(err, SL_ERR_PARSE, "%s", msg);
            else
                sl_error_set(err, SL_ERR_PARSE, "%s: %s", path, msg);
            goto out;
        }
        if (status != LUA_OK) {
            sl_error_set(err, SL_ERR_NOMEM, "lua file '%s': %s", path, lua_tostring(L, -1));
            goto out;
        }
        status = lua_pcall(L, 0, 0, 1);
        if (status != LUA_OK) {
            const char *msg = lua_tostring(L, -1);

            if (status != LUA_ERRMEM && S->instr_hit && !strstr(msg, "instruction limit"))
                sl_error_set(err, SL_ERR_INVALID,
                             "lua file '%s': instruction limit of %llu exceeded: %s", path,
                             (unsigned long long)S->max_instr, msg);
            else if (status != LUA_ERRMEM && S->instr_hit)
                sl_error_set(err, SL_ERR_INVALID, "lua file '%s': %s", path, msg);
            else if (status == LUA_ERRMEM || S->mem_hit)
                sl_error_set(err, SL_ERR_INVALID,
                             "lua file '%s': memory limit of %zu bytes exceeded: %s", path,
                             S->max_bytes, msg);
            else
                sl_error_set(err, SL_ERR_INVALID, "lua file '%s': %s", path, msg);
            goto out;
        }
        lua_settop(L, 0);
    }
    rc = 0;
out:
    if (rc < 0) {
        lua_close(L);
        S->L = NULL;
    }
    return rc;
}

/* ---- JSON -> Lua -------------------------------------------------------------------- */

static void push_jstring(lua_State *L, sl_lua *S, const sl_json *j, int t)
{
    const sl_jtok *k = &j->tok[t];

    if (!k->escaped) {
        lua_pushlstring(L, j->src + k->start + 1, k->len - 2);
        return;
    }
    sl_buf_reset(&S->scratch);
    sl_json_unescape(j, t, &S->scratch);
    lua_pushlstring(L, S->scratch.data, S->scratch.len);
}

/* Push token t. Depth is bounded by the tokenizer (SL_JSON_MAX_DEPTH). */
static void push_json(lua_State *L, sl_lua *S, const sl_json *j, int t)
{
    const sl_jtok *k = &j->tok[t];
    int hint = k->count > 4096 ? 4096 : (int)k->count;
    sl_value v;
    lua_Integer i = 1;

    luaL_checkstack(L, 4, "JSON nested too deep");
    switch ((sl_jtype)k->type) {
    case SL_J_NULL:
        lua_pushlightuserdata(L, NULL_PTR);
        break;
    case SL_J_FALSE:
    case SL_J_TRUE:
        lua_pushboolean(L, k->type == SL_J_TRUE);
        break;
    case SL_J_NUMBER:
        sl_json_value(j, t, &S->scratch, &v);
        if (v.type == SL_V_INT)
            lua_pushinteger(L, (lua_Integer)v.u.i);
        else
            lua_pushnumber(L, (lua_Number)v.u.d);
        break;
    case SL_J_STRING:
        push_jstring(L, S, j, t);
        break;
    case SL_J_OBJECT:
        lua_createtable(L, 0, hint);
        for (int m = sl_json_first(j, t); m >= 0; m = sl_json_next_member(j, m)) {
            push_jstring(L, S, j, m);
            push_json(L, S, j, m + 1);
            lua_rawset(L, -3);
        }
        break;
    case SL_J_ARRAY:
        lua_createtable(L, hint, 0);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
        lua_setmetatable(L, -2);
        for (int e = sl_json_elem_first(j, t); e >= 0; e = sl_json_elem_next(j, t, e)) {
            push_json(L, S, j, e);
            lua_rawseti(L, -2, i++);
        }
        break;
    }
}

static void push_ctx(lua_State *L, call *c)
{
    const sl_lua_ctx *x = c->ctx;
    static const sl_lua_ctx none;

    if (x == NULL)
        x = &none;
    lua_createtable(L, 0, 8);
    lua_pushstring(L, x->table); /* NULL pushes nil */
    lua_setfield(L, -2, "table");
    if (c->has_key)
        push_json(L, c->S, &c->S->key, 0);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, x->incoming_site);
    lua_setfield(L, -2, "incoming_site");
    lua_pushstring(L, x->current_site);
    lua_setfield(L, -2, "current_site");
    lua_pushinteger(L, (lua_Integer)x->incoming_ts);
    lua_setfield(L, -2, "incoming_ts");
    lua_pushinteger(L, (lua_Integer)x->current_ts);
    lua_setfield(L, -2, "current_ts");
    if (x->incoming_op)
        lua_pushlstring(L, &x->incoming_op, 1);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, "incoming_op");
    lua_pushstring(L, x->rule);
    lua_setfield(L, -2, "rule");
}

/* ---- Lua -> JSON -------------------------------------------------------------------- */

static int result_error(lua_State *L, call *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int result_error(lua_State *L, call *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->fail = SL_LUA_RESULT;
    if (c->col[0])
        lua_pushfstring(L, "the returned row: column '%s': %s", c->col, msg);
    else
        lua_pushfstring(L, "the returned row: %s", msg);
    return lua_error(L);
}

#define ENT(S, i) (((entry *)(void *)(S)->ents.data)[i])

typedef struct keys {
    size_t first, n;    /* string keys: entries first..first+n */
    size_t nint;        /* integer keys >= 1 */
    lua_Integer maxint; /* the largest of them */
    size_t nother;      /* any other key */
    int other_type;
} keys;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int r = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

    if (r)
        return r;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Classify the keys of the table at idx and copy its string keys, sorted. */
static void collect_keys(lua_State *L, sl_lua *S, int idx, keys *k)
{
    memset(k, 0, sizeof *k);
    k->first = S->ents.len / sizeof(entry);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            entry e = {S->names.len, len, NULL, 0};

            sl_buf_append(&S->names, s, len);
            sl_buf_append(&S->ents, &e, sizeof e);
            k->n++;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer v = lua_tointeger(L, -1);

            k->nint++;
            if (v > k->maxint)
                k->maxint = v;
        } else {
            k->nother++;
            k->other_type = lua_type(L, -1);
        }
    }
    for (size_t i = 0; i < k->n; i++)
        ENT(S, k->first + i).p = S->names.data + ENT(S, k->first + i).off;
    if (k->n > 1)
        qsort(&ENT(S, k->first), k->n, sizeof(entry), entry_cmp);
}

/* Drop what collect_keys added. */
static void release_keys(sl_lua *S, const keys *k)
{
    if (k->n) {
        S->names.len = ENT(S, k->first).off;
        for (size_t i = 0; i < k->n; i++)
            if (ENT(S, k->first + i).off < S->names.len)
                S->names.len = ENT(S, k->first + i).off;
    }
    S->ents.len = k->first * sizeof(entry);
}

/* Index of the entry named name among k's, or -1. */
static long find_key(sl_lua *S, const keys *k, const char *name, size_t len)
{
    size_t lo = k->first, hi = k->first + k->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const entry *e = &ENT(S, mid);
        int r = memcmp(S->names.data + e->off, name, e->len < len ? e->len : len);

        if (r == 0)
            r = e->len < len ? -1 : e->len > len;
        if (r == 0)
            return (long)mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void write_value(lua_State *L, call *c, int idx, int depth);

/* Write member `i` (an entry) of the object at idx, unless it vanished. */
static void write_member(lua_State *L, call *c, int idx, size_t i, bool *first, int depth)
{
    sl_lua *S = c->S;
    size_t off = ENT(S, i).off, len = ENT(S, i).len;

    ENT(S, i).done = 1;
    lua_pushlstring(L, S->names.data + off, len);
    if (lua_rawget(L, idx) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!*first)
        sl_buf_putc(c->out, ',');
    *first = false;
    sl_buf_json_str(c->out, S->names.data + off, len);
    sl_buf_putc(c->out, ':');
    if (depth == 1)
        snprintf(c->col, sizeof c->col, "%.*s", (int)(len < 60 ? len : 60), S->names.data + off);
    write_value(L, c, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
}

static bool is_marked_array(lua_State *L, int idx)
{
    bool yes = false;

    if (lua_getmetatable(L, idx)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
        yes = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    return yes;
}

/* A nested table: an array when marked or keyed 1..n, else an object with
 * its keys sorted. `depth` is its own nesting level (the row is 1). */
static void write_table(lua_State *L, call *c, int idx, int depth)
{
    sl_lua *S = c->S;
    bool first = true, array;
    keys k;

    if (depth > SL_JSON_MAX_DEPTH)
        result_error(L, c, "nested deeper than %d levels (a table that contains itself?)",
                     SL_JSON_MAX_DEPTH);
    luaL_checkstack(L, 4, "tables nested too deep");
    collect_keys(L, S, idx, &k);
    array = is_marked_array(L, idx) || (k.n == 0 && k.nint > 0);
    if (array) {
        if (k.n || k.nother || (lua_Integer)k.nint != k.maxint)
            result_error(L, c, "an array with %s",
                         k.n || k.nother ? "a key that is not a positive integer"
                                         : "holes (its keys are not exactly 1..n)");
        release_keys(S, &k);
        sl_buf_putc(c->out, '[');
        for (lua_Integer i = 1; i <= k.maxint; i++) {
            if (i > 1)
                sl_buf_putc(c->out, ',');
            lua_rawgeti(L, idx, i);
            write_value(L, c, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        sl_buf_putc(c->out, ']');
        return;
    }
    if (k.nint || k.nother)
        result_error(L, c, "a table with both string keys and keys of another type (%s)",
                     k.nint ? "number" : lua_typename(L, k.other_type));
    sl_buf_putc(c->out, '{');
    for (size_t i = 0; i < k.n; i++)
        write_member(L, c, idx, k.first + i, &first, depth);
    sl_buf_putc(c->out, '}');
    release_keys(S, &k);
}

/* Shortest %g form that reads back as the same double; an integral value
 * keeps a ".0" so it stays a float when read again. */
static void write_float(lua_State *L, call *c, double d)
{
    char tmp[40];

    if (!isfinite(d))
        result_error(L, c, "%s has no JSON form", isnan(d) ? "NaN" : "an infinite number");
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    sl_buf_puts(c->out, tmp);
    if (tmp[strspn(tmp, "-0123456789")] == '\0')
        sl_buf_puts(c->out, ".0");
}

static void write_value(lua_State *L, call *c, int idx, int depth)
{
    size_t len;
    const char *s;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        sl_buf_puts(c->out, "null");
        break;
    case LUA_TBOOLEAN:
        sl_buf_puts(c->out, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            sl_buf_printf(c->out, "%lld", (long long)lua_tointeger(L, idx));
        else
            write_float(L, c, (double)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        sl_buf_json_str(c->out, s, len);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL_PTR)
            result_error(L, c, "a light userdata has no JSON form (only sluice.null)");
        sl_buf_puts(c->out, "null");
        break;
    case LUA_TTABLE:
        write_table(L, c, idx, depth);
        break;
    default:
        result_error(L, c, "a %s has no JSON form", luaL_typename(L, idx));
    }
}

/* The returned row: current's columns in order, then incoming's, then the
 * others sorted by name. */
static void write_row(lua_State *L, call *c, int idx)
{
    sl_lua *S = c->S;
    bool first = true;
    keys k;

    luaL_checkstack(L, 4, "no stack for the result");
    if (is_marked_array(L, idx))
        result_error(L, c, "it is a sluice.array, not a row");
    collect_keys(L, S, idx, &k);
    if (k.nint || k.nother)
        result_error(L, c, "a column name that is not a string (a %s)",
                     k.nint ? "number" : lua_typename(L, k.other_type));
    sl_buf_putc(c->out, '{');
    for (int side = 1; side <= 2; side++) {
        const sl_json *j = &S->rows[side];

        if (!c->has[side])
            continue;
        for (int m = sl_json_first(j, 0); m >= 0; m = sl_json_next_member(j, m)) {
            const sl_jtok *t = &j->tok[m];
            const char *name = j->src + t->start + 1;
            size_t len = t->len - 2;
            long i;

            if (t->escaped) {
                sl_buf_reset(&S->scratch);
                sl_json_unescape(j, m, &S->scratch);
                name = S->scratch.data;
                len = S->scratch.len;
            }
            i = find_key(S, &k, name, len);
            if (i >= 0 && !ENT(S, i).done)
                write_member(L, c, idx, (size_t)i, &first, 1);
        }
    }
    for (size_t i = 0; i < k.n; i++)
        if (!ENT(S, k.first + i).done)
            write_member(L, c, idx, k.first + i, &first, 1);
    sl_buf_putc(c->out, '}');
    release_keys(S, &k);
}

/* ---- calls ----------------------------------------------------------------------------- */

/* The protected body of sl_lua_merge: argument 1 is the call. */
static int do_merge(lua_State *L)
{
    call *c = lua_touserdata(L, 1);
    sl_lua *S = c->S;
    int fn;

    lua_settop(L, 0);
    lua_pushglobaltable(L);
    lua_pushstring(L, c->fn);
    /* raw: no user __index runs before the hook itself */
    if (lua_rawget(L, 1) != LUA_TFUNCTION) {
        c->fail = SL_LUA_NOFUNC;
        if (lua_isnil(L, -1))
            return luaL_error(L, "function '%s' is not defined in the lua files", c->fn);
        return luaL_error(L, "'%s' is a %s, not a function", c->fn, luaL_typename(L, -1));
    }
    fn = lua_gettop(L);
    for (int i = 0; i < 3; i++) {
        if (c->has[i])
            push_json(L, S, &S->rows[i], 0);
        else
            lua_pushnil(L);
    }
    push_ctx(L, c);
    lua_call(L, 4, 1);
    switch (lua_type(L, fn)) {
    case LUA_TNIL:
        c->rc = 0;
        break;
    case LUA_TTABLE:
        write_row(L, c, fn);
        c->rc = 1;
        break;
    default:
        c->fail = SL_LUA_RESULT;
        return luaL_error(L, "returned a %s; a conflict function returns a row (table) or nil",
                          luaL_typename(L, fn));
    }
    return 0;
}

static int parse_input(sl_json *j, sl_str s, const char *what, bool must_be_object, bool *has,
                       sl_error *err)
{
    sl_error perr;

    *has = s.len > 0;
    if (!*has)
        return 0;
    if (sl_json_parse(j, s.p, s.len, &perr) < 0)
        return sl_error_set(err, SL_ERR_PARSE, "lua: the %s is not valid JSON: %s", what, perr.msg);
    if (must_be_object && j->tok[0].type != SL_J_OBJECT)
        return sl_error_set(err, SL_ERR_TYPE, "lua: the %s is not a JSON object", what);
    return 0;
}

/* After a memory failure, or when a rebuild failed before: a fresh state. */
static int ensure_state(sl_lua *S, sl_error *err)
{
    if (S->L)
        return 0;
    if (build_state(S, &S->broken) == 0)
        return 0;
    return sl_error_set(err, S->broken.code, "lua: the state could not be rebuilt: %s",
                        S->broken.msg);
}

int sl_lua_merge(sl_lua *S, const char *fn, const sl_lua_ctx *ctx, sl_str base, sl_str current,
                 sl_str incoming, sl_buf *out, sl_error *err)
{
    static const char *const what[3] = {"base row", "current row", "incoming row"};
    sl_str rows[3] = {base, current, incoming};
    call c = {.S = S, .fn = fn ? fn : "", .ctx = ctx, .out = out, .fail = SL_LUA_ERROR};
    size_t out_len = out->len;
    const char *msg;
    lua_State *L;
    int status;

    S->last = SL_LUA_INPUT;
    for (int i = 0; i < 3; i++)
        if (parse_input(&S->rows[i], rows[i], what[i], true, &c.has[i], err) < 0)
            return -1;
    if (parse_input(&S->key, ctx ? ctx->key : (sl_str){NULL, 0}, "key", false, &c.has_key, err) < 0)
        return -1;
    S->last = SL_LUA_STATE;
    if (ensure_state(S, err) < 0)
        return -1;

    L = S->L;
    sl_buf_reset(&S->names);
    sl_buf_reset(&S->ents);
    S->cur_fn = c.fn;
    arm(S);
    lua_settop(L, 0);
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, do_merge);
    lua_pushlightuserdata(L, &c);
    status = lua_pcall(L, 1, 0, 1);
    S->cur_fn = NULL;
    if (status == LUA_OK) {
        lua_settop(L, 0);
        S->last = SL_LUA_OK;
        return c.rc;
    }

    out->len = out_len;
    if (out->data)
        out->data[out_len] = '\0';
    msg = lua_tostring(L, -1);
    if (msg == NULL)
        msg = "(no message)";
    /* A memory error that reached us wins; then the instruction limit; then
     * an allocation refused earlier that the code caught and turned into
     * another error. */
    if (status != LUA_ERRMEM && S->instr_hit) {
        S->last = SL_LUA_INSTRUCTIONS;
        if (strstr(msg, "instruction limit"))
            sl_error_set(err, SL_ERR_INVALID, "lua %s: %s", c.fn, msg);
        else
            sl_error_set(err, SL_ERR_INVALID, "lua %s: instruction limit of %llu exceeded: %s",
                         c.fn, (unsigned long long)S->max_instr, msg);
    } else if (status == LUA_ERRMEM || S->mem_hit) {
        S->last = SL_LUA_MEMORY;
        sl_error_set(err, SL_ERR_INVALID, "lua %s: memory limit of %zu bytes exceeded: %s", c.fn,
                     S->max_bytes, msg);
    } else {
        S->last = c.fail;
        sl_error_set(err, c.fail == SL_LUA_RESULT ? SL_ERR_TYPE : SL_ERR_INVALID, "lua %s: %s",
                     c.fn, msg);
    }
    lua_settop(L, 0);
    if (S->last == SL_LUA_MEMORY) {
        /* Whatever filled the state may still hold it (a global cache): start
         * over from the files. A failure here is reported by the next call. */
        arm(S);
        lua_close(L);
        S->L = NULL;
        ensure_state(S, NULL);
    }
    return -1;
}

sl_lua_failure sl_lua_last_failure(const sl_lua *S)
{
    return S->last;
}

static int do_has_function(lua_State *L)
{
    const char *fn = lua_touserdata(L, 1);

    lua_pushglobaltable(L);
    lua_pushstring(L, fn);
    lua_pushboolean(L, lua_rawget(L, -2) == LUA_TFUNCTION);
    return 1;
}

int sl_lua_has_function(sl_lua *S, const char *fn)
{
    int yes = 0;

    if (fn == NULL || ensure_state(S, NULL) < 0)
        return 0;
    arm(S);
    lua_settop(S->L, 0);
    lua_pushcfunction(S->L, do_has_function);
    lua_pushlightuserdata(S->L, (void *)(uintptr_t)fn);
    if (lua_pcall(S->L, 1, 1, 0) == LUA_OK)
        yes = lua_toboolean(S->L, -1);
    lua_settop(S->L, 0);
    return yes;
}

int sl_lua_check_program(sl_lua *S, const sl_program *p, sl_error *err)
{
    for (size_t i = 0; i < p->ntables; i++) {
        const sl_table *t = &p->tables[i];
        const sl_conflict *cf = &t->conflict;

        if (cf->kind != SL_CONFLICT_LUA || sl_lua_has_function(S, cf->lua_fn))
            continue;
        return sl_error_set(err, SL_ERR_RULES,
                            "%s:%d:%d: table %s: on conflict lua %s: no function '%s' in the "
                            "lua files",
                            cf->loc.file ? cf->loc.file : "?", cf->loc.line, cf->loc.col,
                            t->pattern, cf->lua_fn, cf->lua_fn);
    }
    return 0;
}

size_t sl_lua_memory(const sl_lua *S)
{
    return S->mem_used;
}

/* ---- handles ------------------------------------------------------------------------------ */

void sl_lua_set_limits(sl_lua *S, uint64_t max_instructions, size_t max_bytes)
{
    S->max_instr = max_instructions ? max_instructions : SL_LUA_DEFAULT_INSTRUCTIONS;
    S->max_bytes = max_bytes ? max_bytes : SL_LUA_DEFAULT_BYTES;
}

static int read_file(const char *path, sl_buf *out, sl_error *err)
{
    char chunk[8192];
    size_t n;
    int rc = -1;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return sl_error_set(err, SL_ERR_IO, "cannot read lua file '%s': %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_buf_append(out, chunk, n);
    if (ferror(f)) {
        sl_error_set(err, SL_ERR_IO, "cannot read lua file '%s': read error", path);
        goto out;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

/* package.path: name.lua and name/init.lua in each hook file's directory. */
static char *package_path(const sl_program *p)
{
    sl_buf b = SL_BUF_INIT, dir = SL_BUF_INIT, item = SL_BUF_INIT;

    for (size_t i = 0; p && i < p->nlua; i++) {
        const char *slash = strrchr(p->lua_files[i], '/');

        sl_buf_reset(&dir);
        sl_buf_reset(&item);
        if (slash)
            sl_buf_append(&dir, p->lua_files[i], (size_t)(slash - p->lua_files[i]));
        else
            sl_buf_putc(&dir, '.');
        sl_buf_printf(&item, "%s/?.lua;%s/?/init.lua;", dir.data, dir.data);
        if (b.data == NULL || strstr(b.data, item.data) == NULL)
            sl_buf_append(&b, item.data, item.len);
    }
    if (b.len)
        b.data[--b.len] = '\0'; /* the last ';' */
    sl_buf_free(&dir);
    sl_buf_free(&item);
    return sl_buf_steal(&b, NULL);
}

sl_lua *sl_lua_new(const sl_program *p, sl_error *err)
{
    sl_lua *S = sl_xcalloc(1, sizeof *S);
    int rc = -1;

    S->max_instr = SL_LUA_DEFAULT_INSTRUCTIONS;
    S->max_bytes = SL_LUA_DEFAULT_BYTES;
    for (int i = 0; i < 3; i++)
        sl_json_init(&S->rows[i]);
    sl_json_init(&S->key);
    S->nfiles = p ? p->nlua : 0;
    S->chunk = sl_xcalloc(S->nfiles ? S->nfiles : 1, sizeof *S->chunk);
    S->src = sl_xcalloc(S->nfiles ? S->nfiles : 1, sizeof *S->src);
    for (size_t i = 0; i < S->nfiles; i++) {
        size_t n = strlen(p->lua_files[i]);

        S->chunk[i] = sl_xmalloc(n + 2);
        S->chunk[i][0] = '@';
        memcpy(S->chunk[i] + 1, p->lua_files[i], n + 1);
        if (read_file(p->lua_files[i], &S->src[i], err) < 0)
            goto out;
    }
    S->pkgpath = package_path(p);
    if (build_state(S, err) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0) {
        sl_lua_free(S);
        return NULL;
    }
    return S;
}

void sl_lua_free(sl_lua *S)
{
    if (S == NULL)
        return;
    if (S->L) {
        arm(S); /* __gc metamethods run now; keep them bounded */
        lua_close(S->L);
    }
    for (size_t i = 0; i < S->nfiles; i++) {
        free(S->chunk[i]);
        sl_buf_free(&S->src[i]);
    }
    free(S->chunk);
    free(S->src);
    free(S->pkgpath);
    for (int i = 0; i < 3; i++)
        sl_json_free(&S->rows[i]);
    sl_json_free(&S->key);
    sl_buf_free(&S->scratch);
    sl_buf_free(&S->names);
    sl_buf_free(&S->ents);
    free(S);
}
