/*
 * luahook.h - Lua 5.4 conflict hooks: `on conflict lua FN;`.
 *
 * One sl_lua per worker thread: it owns one Lua state into which every file
 * of sl_program.lua_files was loaded, in order. Nothing is shared between
 * handles, so workers call their own hooks without locks.
 *
 * A hook is called as FN(base, current, incoming, ctx) and returns the merged
 * row (a new version) or nil (leave the conflict to an operator). Rows cross
 * the boundary as JSON object text, converted with the engine's own JSON
 * tokenizer:
 *   JSON object -> table (string keys)      JSON array -> sequence marked as
 *   JSON string -> string                      an array (sluice.array)
 *   JSON number -> integer when it has no fraction or exponent and fits
 *                  int64, else float
 *   true/false  -> boolean                  null -> sluice.null (a light
 *                                              userdata, so null columns stay
 *                                              present; note it is truthy)
 * The returned row goes back as a JSON object: its columns in the order of
 * current's columns, then incoming's, then any others sorted by name (byte
 * order). Nested objects are written with their keys sorted. Integers stay
 * integers; floats are written in the shortest form that reads back to the
 * same double, and an integral float keeps a fraction (3.0), so a float
 * never turns into an integer on the way back. NaN and infinities, keys that
 * are not strings, and functions/userdata/threads are errors. Strings are
 * written as they are; bytes that are not valid UTF-8 become \u00XX escapes
 * (sl_buf_json_str), the only lossy case.
 * A nested table is an array when it is marked (it came from a JSON array or
 * went through sluice.array) or when all its keys are 1..n; an unmarked
 * empty table is an object ({}).
 *
 * Sandbox: the state opens base, coroutine, table, string, math, utf8,
 * package (Lua modules only) and a reduced os. Removed: dofile, loadfile,
 * print (library code never writes to stdout, which may be a sink), the
 * whole io and debug libraries (debug.sethook could remove the limits),
 * os.execute, os.exit, os.getenv, os.remove, os.rename, os.setlocale,
 * os.tmpname, package.loadlib, and the C-module searchers (package.cpath is
 * empty). `load` accepts text chunks only, as do the hook files and
 * `require` (binary chunks can crash the VM). `require "name"` finds
 * name.lua and name/init.lua in the directories of the hook files.
 * setmetatable refuses a metatable with a __gc field: Lua runs finalizers
 * with hooks off, where no limit could stop them. The array marker is a
 * protected metatable: getmetatable(t) == "sluice.array" tells arrays.
 *
 * FN is looked up raw in the globals (a strict-mode __index on _G does not
 * run for it).
 *
 * Limits (per call; also per file while the files are loaded): an
 * instruction budget counted by a Lua count hook, and a ceiling on the bytes
 * the state holds, enforced by its allocator. Growing memory also spends
 * budget, one instruction per 256 bytes asked for (granted or not), because
 * C functions such as string.rep work in proportion to what they allocate
 * without running instructions; a hook that allocates less than a few MB
 * per call will not notice. Code that catches a limit error with pcall is
 * stopped again at its next instruction. A C function that runs long
 * without allocating (a pathological string.find pattern) is not
 * interrupted. After a call fails on the memory limit, the state is rebuilt
 * from the files' bytes as read by sl_lua_new (globals the hooks kept are
 * lost); the files are not read again. Other failures keep the state.
 */
#ifndef SL_LUAHOOK_H
#define SL_LUAHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../common/value.h"
#include "../dsl/program.h"

#define SL_LUA_DEFAULT_INSTRUCTIONS 1000000
#define SL_LUA_DEFAULT_BYTES        ((size_t)64 << 20)

typedef struct sl_lua sl_lua;

typedef struct sl_lua_ctx {
    const char *table; /* "public.loyalty_points" */
    sl_str key;        /* canonical key JSON object text */
    const char *incoming_site, *current_site;
    int64_t incoming_ts, current_ts; /* source ts_ms */
    char incoming_op;                /* 'c','u','d','r' */
    const char *rule;                /* "file.rules:12:5" */
} sl_lua_ctx;
/* In Lua, ctx is a fresh table per call with the fields table, key (a table
 * made from the key JSON), incoming_site, current_site, incoming_ts,
 * current_ts (integers), incoming_op (a one-letter string) and rule. A NULL
 * string, an empty key or a NUL op becomes nil. */

/* Why the last sl_lua_merge returned -1. */
typedef enum sl_lua_failure {
    SL_LUA_OK = 0,
    SL_LUA_NOFUNC,       /* fn is not a global function */
    SL_LUA_ERROR,        /* fn raised an error */
    SL_LUA_INSTRUCTIONS, /* fn ran past the instruction limit */
    SL_LUA_MEMORY,       /* the state ran past the memory limit */
    SL_LUA_RESULT,       /* fn returned a non-table, or a table that is not a JSON row */
    SL_LUA_INPUT,        /* a row or the key passed in was not valid JSON */
    SL_LUA_STATE,        /* the state could not be rebuilt after a memory failure */
} sl_lua_failure;

/* One per worker thread. Loads every file of p->lua_files in order into a
 * fresh state (see the sandbox above; p may have no files). The files' bytes
 * are read here, once, and kept. Fails with a clear error (file:line:
 * message from Lua) when a file does not load: SL_ERR_IO when it cannot be
 * read, SL_ERR_PARSE for a syntax error, SL_ERR_INVALID when its top-level
 * code raises an error or runs past a limit. p is borrowed only during the
 * call. */
sl_lua *sl_lua_new(const sl_program *p, sl_error *err);
void sl_lua_free(sl_lua *L);

/* Limits: instructions per call (default 1,000,000) and memory of the state
 * (default 64 MiB). 0 restores a default. They apply from the next call. */
void sl_lua_set_limits(sl_lua *L, uint64_t max_instructions, size_t max_bytes);

/* Call fn(base, current, incoming, ctx). Rows are JSON object text; an empty
 * sl_str (len 0) means absent (nil in Lua: no base, or a deleted side).
 * Returns 1 with the returned row as a JSON object text appended to *out, 0
 * when fn returned nil (manual), -1 when fn is not a function, it raised an
 * error, ran past the instruction limit or the memory limit, or returned
 * something that is not a table (err says which, with Lua's message and the
 * innermost Lua frames; sl_lua_last_failure says which as a code). On 0 and
 * -1, out is left as it was. The state stays usable after any failure. */
int sl_lua_merge(sl_lua *L, const char *fn, const sl_lua_ctx *ctx, sl_str base, sl_str current,
                 sl_str incoming, sl_buf *out, sl_error *err);

/* The reason the last sl_lua_merge returned -1 (SL_LUA_OK after 0 or 1). */
sl_lua_failure sl_lua_last_failure(const sl_lua *L);

/* Is fn a global function of the loaded files? For startup checks: every
 * table with `on conflict lua FN` should name one. */
int sl_lua_has_function(sl_lua *L, const char *fn);

/* Check every `on conflict lua FN` of p against the loaded files. Returns 0,
 * or -1 with err naming the first table and rule location whose function is
 * not defined. */
int sl_lua_check_program(sl_lua *L, const sl_program *p, sl_error *err);

/* Bytes the state holds now (for metrics and tests). */
size_t sl_lua_memory(const sl_lua *L);

#endif
