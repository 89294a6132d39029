/*
 * test_lua.c - Lua conflict hooks: rows in and out, the sandbox, the limits,
 * and loading failures. Table-driven: each merge case names a function of
 * the hook file below, the three rows, and what must come back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsl/program.h"
#include "engine/luahook.h"

/* Line numbers matter: messages are checked for "hooks.lua:LINE:". */
/* clang-format off */
static const char hooks_lua[] =
    "-- hooks.lua: one function per test case\n"                                           /* 1 */
    "function boom(b, c, i) error('boom: bad row') end\n"                                  /* 2 */
    "local function inner(x)\n"                                                            /* 3 */
    "    return x.y.z\n"                                                                   /* 4 */
    "end\n"                                                                                /* 5 */
    "function boom_deep(b, c, i) local r = inner({}) return r end\n"                       /* 6 */
    "function boom_table() error({code = 1}) end\n"                                        /* 7 */
    "function keep_nil() return nil end\n"                                                 /* 8 */
    "function keep_none() end\n"                                                           /* 9 */
    "function ret_number() return 42 end\n"                                                /* 10 */
    "function ret_false() return false end\n"                                              /* 11 */
    "function ret_null() return sluice.null end\n"                                         /* 12 */
    "function ret_incoming(b, c, i) return i end\n"                                        /* 13 */
    "function ret_current(b, c, i) return c end\n"                                         /* 14 */
    "function ret_seq() return {1, 2, 3} end\n"                                            /* 15 */
    "function ret_boolkey() return {a = 1, [true] = 1} end\n"                              /* 16 */
    "function ret_marked() return sluice.array() end\n"                                    /* 17 */
    "function ret_func() return {f = function() end} end\n"                                /* 18 */
    "function ret_nan() return {x = 0/0} end\n"                                            /* 19 */
    "function ret_inf() return {x = -math.huge} end\n"                                     /* 20 */
    "function ret_cycle() local t = {} t.self = t return {t = t} end\n"                    /* 21 */
    "function ret_holes() return {a = {[1] = 1, [3] = 3}} end\n"                           /* 22 */
    "function ret_mixed() return {a = {1, x = 2}} end\n"                                   /* 23 */
    "function ret_empty() return {} end\n"                                                 /* 24 */
    "function ret_arrays() return {e = sluice.array(), o = {}, s = {'x', 'y'},\n"          /* 25 */
    "    m = sluice.array({true, false}), n = {{}, sluice.array()}} end\n"                 /* 26 */
    "function order() return {z = 1, a = 2, b = 3, c = 4, y = 5} end\n"                    /* 27 */
    "function numbers(b, c, i)\n"                                                          /* 28 */
    "    return {a = c.i + 1, b = c.f + 1, c = c.i / 1, d = 7 // 2, e = 0.1,\n"            /* 29 */
    "            f = 1e300, g = -0.0, h = math.mininteger, k = 2^53, m = c.big}\n"         /* 30 */
    "end\n"                                                                                /* 31 */
    "function nulls(b, c, i)\n"                                                            /* 32 */
    "    return {isnull = c.note == sluice.null, kept = c.note ~= nil,\n"                  /* 33 */
    "            note = c.note, id = c.id}\n"                                              /* 34 */
    "end\n"                                                                                /* 35 */
    "function types(b, c, i)\n"                                                            /* 36 */
    "    return {i = math.type(c.i), f = math.type(c.f), s = type(c.s),\n"                 /* 37 */
    "            arr = getmetatable(c.arr), n2 = getmetatable(sluice.array()),\n"          /* 38 */
    "            obj = getmetatable(c.obj) == nil, n = #c.arr, t = type(c.t)}\n"           /* 39 */
    "end\n"                                                                                /* 40 */
    "function ctxinfo(b, c, i, ctx)\n"                                                     /* 41 */
    "    return {t = ctx.table, k = ctx.key and ctx.key.id, is = ctx.incoming_site,\n"     /* 42 */
    "            cs = ctx.current_site, its = ctx.incoming_ts,\n"                          /* 43 */
    "            cts = ctx.current_ts, op = ctx.incoming_op, rule = ctx.rule}\n"           /* 44 */
    "end\n"                                                                                /* 45 */
    "function sides(b, c, i) return {b = b == nil, c = c == nil, i = i == nil} end\n"      /* 46 */
    "function modify(b, c, i) c.points = c.points + i.points return c end\n"               /* 47 */
    "function sandbox()\n"                                                                 /* 48 */
    "    local bin = load(string.dump(function() return 1 end))\n"                         /* 49 */
    "    return {io = io == nil, debug = debug == nil, dofile = dofile == nil,\n"          /* 50 */
    "            loadfile = loadfile == nil, print = print == nil,\n"                      /* 51 */
    "            os_execute = os.execute == nil, os_exit = os.exit == nil,\n"              /* 52 */
    "            os_getenv = os.getenv == nil, os_remove = os.remove == nil,\n"            /* 53 */
    "            loadlib = package.loadlib == nil, cpath = package.cpath,\n"               /* 54 */
    "            binload = bin == nil, textload = load('return 7')(),\n"                   /* 55 */
    "            time = type(os.time()), fmt = string.format('%05.1f', 3.14159),\n"        /* 56 */
    "            utf8 = utf8.char(233), co = coroutine.wrap(function() return 5 end)(),\n" /* 57 */
    "            helper = util.twice(21)}\n"                                               /* 58 */
    "end\n"                                                                                /* 59 */
    "function spin() while true do end end\n"                                              /* 60 */
    "function spin_pcall() while 1 do pcall(function() while 1 do end end) end end\n"      /* 61 */
    "function spin_co() coroutine.wrap(function() while true do end end)() end\n"          /* 62 */
    "function spin_some(_, c) local n=0 for k=1,c.n do n=n+k end return {n=n} end\n"       /* 63 */
    "function bomb()\n"                                                                    /* 64 */
    "    local t = {}\n"                                                                   /* 65 */
    "    for k = 1, 1e9 do t[k] = string.rep('x', 1 << 20) .. k end\n"                     /* 66 */
    "end\n"                                                                                /* 67 */
    "function bomb_pcall()\n"                                                              /* 68 */
    "    local t = {}\n"                                                                   /* 69 */
    "    while 1 do pcall(function() t[#t+1] = string.rep('y', 1<<20) .. #t end) end\n"    /* 70 */
    "end\n"                                                                                /* 71 */
    "calls = 0\n"                                                                          /* 72 */
    "function counter() calls = calls + 1 return {calls = calls} end\n"                    /* 73 */
    "not_a_function = 5\n"                                                                 /* 74 */
    "util = require('hookutil')\n"                                                         /* 75 */
    "function gc_hook()\n"                                                                 /* 76 */
    "    setmetatable({}, {__gc = function() while true do end end})\n"                    /* 77 */
    "    collectgarbage()\n"                                                               /* 78 */
    "end\n"                                                                                /* 79 */
    "function gc_tamper() getmetatable(sluice.array()).__gc = print end\n"                 /* 80 */
    "function recurse() local function f() return 1 + f() end return f() end\n"            /* 81 */
    "function strict_on()\n"                                                               /* 82 */
    "    setmetatable(_G, {__index = function(_, k) error('undefined ' .. k) end})\n"      /* 83 */
    "    return {}\n"                                                                      /* 84 */
    "end\n"                                                                                /* 85 */
    "function strict_off() setmetatable(_G, nil) return {} end\n"                          /* 86 */
    "function uses_missing() return {x = missing_global} end\n";                           /* 87 */
/* clang-format on */

static const char hookutil_lua[] = "return {twice = function(x) return 2 * x end}\n";

typedef struct fixture {
    char dir[64];
    char path[256];
    sl_lua *L;
} fixture;

static fixture fx;

static void write_file(const char *dir, const char *name, const char *text, char *path_out,
                       size_t cap)
{
    char path[200];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    if (path_out)
        snprintf(path_out, cap, "%s", path);
}

/* A program that is nothing but its lua files: all sl_lua_new reads. */
static sl_lua *load_files(const char *const *paths, size_t n, sl_error *err)
{
    sl_program p;

    memset(&p, 0, sizeof p);
    p.lua_files = paths;
    p.nlua = n;
    return sl_lua_new(&p, err);
}

static int setup(void **state)
{
    const char *files[1];
    sl_error err = {0};

    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/sluice-test-lua-XXXXXX");
    if (mkdtemp(fx.dir) == NULL)
        return -1;
    write_file(fx.dir, "hooks.lua", hooks_lua, fx.path, sizeof fx.path);
    write_file(fx.dir, "hookutil.lua", hookutil_lua, NULL, 0);
    files[0] = fx.path;
    fx.L = load_files(files, 1, &err);
    if (fx.L == NULL) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    sl_lua_free(fx.L);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- merge cases ---------------------------------------------------------------- */

typedef struct mcase {
    const char *fn;
    const char *base, *current, *incoming; /* NULL = absent */
    int rc;
    const char *out;         /* rc 1: the exact row */
    sl_lua_failure fail;     /* rc -1 */
    const char *msg1, *msg2; /* rc -1: fragments of the message */
} mcase;

static const char row_a[] = "{\"id\":7,\"points\":10,\"name\":\"Ann\"}";
static const char row_b[] = "{\"id\":7,\"points\":5,\"name\":\"Ann B\",\"tier\":\"gold\"}";

static const mcase mcases[] = {
    /* what comes back */
    {"keep_nil", NULL, row_a, row_b, 0, NULL, 0, NULL, NULL},
    {"keep_none", NULL, row_a, row_b, 0, NULL, 0, NULL, NULL},
    {"ret_incoming", NULL, row_a, row_b, 1, row_b, 0, NULL, NULL},
    {"ret_current", row_b, row_a, row_b, 1, row_a, 0, NULL, NULL},
    {"modify", NULL, row_a, row_b, 1, "{\"id\":7,\"points\":15,\"name\":\"Ann\"}", 0, NULL, NULL},
    {"ret_empty", NULL, row_a, row_b, 1, "{}", 0, NULL, NULL},
    /* columns: current's order, then incoming's, then the rest by name */
    {"order", NULL, "{\"b\":0,\"a\":0}", "{\"c\":0,\"a\":0,\"q\":0}", 1,
     "{\"b\":3,\"a\":2,\"c\":4,\"y\":5,\"z\":1}", 0, NULL, NULL},
    {"order", NULL, NULL, "{\"c\":0,\"z\":0}", 1, "{\"c\":4,\"z\":1,\"a\":2,\"b\":3,\"y\":5}", 0,
     NULL, NULL},
    /* absent sides are nil */
    {"sides", NULL, row_a, row_b, 1, "{\"b\":true,\"c\":false,\"i\":false}", 0, NULL, NULL},
    {"sides", row_a, NULL, row_b, 1, "{\"b\":false,\"c\":true,\"i\":false}", 0, NULL, NULL},
    {"sides", row_a, row_a, NULL, 1, "{\"b\":false,\"c\":false,\"i\":true}", 0, NULL, NULL},
    /* null columns stay present */
    {"ret_current", NULL, "{\"id\":1,\"note\":null,\"x\":[null]}", row_b, 1,
     "{\"id\":1,\"note\":null,\"x\":[null]}", 0, NULL, NULL},
    {"nulls", NULL, "{\"id\":1,\"note\":null}", row_b, 1,
     "{\"id\":1,\"note\":null,\"isnull\":true,\"kept\":true}", 0, NULL, NULL},
    /* nested objects and arrays round-trip (nested keys come back sorted) */
    {"ret_current", NULL,
     "{\"id\":1,\"tags\":[\"a\",\"b\",[],{}],\"meta\":{\"a\":{\"b\":[1,2.5,{\"c\":null}]},"
     "\"e\":{}},\"deep\":[[[[1]]]],\"flag\":false}",
     NULL, 1,
     "{\"id\":1,\"tags\":[\"a\",\"b\",[],{}],\"meta\":{\"a\":{\"b\":[1,2.5,{\"c\":null}]},"
     "\"e\":{}},\"deep\":[[[[1]]]],\"flag\":false}",
     0, NULL, NULL},
    {"ret_current", NULL, "{\"o\":{\"z\":1,\"a\":{\"y\":2,\"b\":3}}}", NULL, 1,
     "{\"o\":{\"a\":{\"b\":3,\"y\":2},\"z\":1}}", 0, NULL, NULL},
    {"ret_arrays", NULL, row_a, NULL, 1,
     "{\"e\":[],\"m\":[true,false],\"n\":[{},[]],\"o\":{},\"s\":[\"x\",\"y\"]}", 0, NULL, NULL},
    /* unicode and escapes */
    {"ret_current", NULL,
     "{\"s\":\"caf\\u00e9 \\\"q\\\" \\\\ \\/ \\n\\t\\r\\b\\f \\u0001 \\u0000 \\ud83d\\ude00 "
     "\xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\",\"k\\u00e9y\":\"\"}",
     NULL, 1,
     "{\"s\":\"caf\xc3\xa9 \\\"q\\\" \\\\ / \\n\\t\\r\\u0008\\u000c \\u0001 \\u0000 "
     "\xf0\x9f\x98\x80 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\",\"k\xc3\xa9y\":\"\"}",
     0, NULL, NULL},
    /* integers stay integers, floats stay floats */
    {"ret_current", NULL,
     "{\"i\":3,\"f\":3.0,\"g\":2.5,\"e\":1E2,\"big\":12345678901234567890,\"neg\":-7,"
     "\"max\":9223372036854775807,\"min\":-9223372036854775808,\"tiny\":5e-324,\"z\":-0.0}",
     NULL, 1,
     "{\"i\":3,\"f\":3.0,\"g\":2.5,\"e\":100.0,\"big\":1.2345678901234567e+19,\"neg\":-7,"
     "\"max\":9223372036854775807,\"min\":-9223372036854775808,\"tiny\":4.94065645841247e-324,"
     "\"z\":-0.0}",
     0, NULL, NULL},
    {"numbers", NULL, "{\"i\":3,\"f\":3.0,\"big\":9007199254740993}", NULL, 1,
     "{\"f\":1e+300,\"a\":4,\"b\":4.0,\"c\":3.0,\"d\":3,\"e\":0.1,\"g\":-0.0,"
     "\"h\":-9223372036854775808,\"k\":9007199254740992.0,\"m\":9007199254740993}",
     0, NULL, NULL},
    {"types", NULL, "{\"i\":1,\"f\":1.5,\"s\":\"x\",\"arr\":[1,2,3],\"obj\":{\"a\":1},\"t\":true}",
     NULL, 1,
     "{\"i\":\"integer\",\"f\":\"float\",\"s\":\"string\",\"arr\":\"sluice.array\","
     "\"obj\":true,\"t\":\"boolean\",\"n\":3,\"n2\":\"sluice.array\"}",
     0, NULL, NULL},
    /* errors in the function */
    {"boom", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR, "hooks.lua:2: boom: bad row",
     "traceback: "},
    {"boom", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR,
     "lua boom: ", "hooks.lua:2 in function 'boom'"},
    {"boom_deep", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR,
     "hooks.lua:4: attempt to index a nil value (field 'y')", "hooks.lua:4 in function 'inner', /"},
    {"boom_deep", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR, "traceback: /",
     "hooks.lua:6 in function 'boom_deep'"},
    {"boom_table", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR, "error object is a table value",
     NULL},
    {"no_such_function", NULL, row_a, row_b, -1, NULL, SL_LUA_NOFUNC,
     "function 'no_such_function' is not defined", NULL},
    {"not_a_function", NULL, row_a, row_b, -1, NULL, SL_LUA_NOFUNC,
     "'not_a_function' is a number, not a function", NULL},
    /* finalizers run with hooks off: refused */
    {"gc_hook", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR,
     "hooks.lua:77: __gc metamethods are not allowed in conflict hooks", NULL},
    {"gc_tamper", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR, "attempt to index a string value",
     NULL},
    /* strict mode on _G: a missing function is still "not defined" */
    {"strict_on", NULL, row_a, row_b, 1, "{}", 0, NULL, NULL},
    {"no_such_function", NULL, row_a, row_b, -1, NULL, SL_LUA_NOFUNC,
     "function 'no_such_function' is not defined", NULL},
    {"uses_missing", NULL, row_a, row_b, -1, NULL, SL_LUA_ERROR,
     "hooks.lua:83: undefined missing_global", NULL},
    {"strict_off", NULL, row_a, row_b, 1, "{}", 0, NULL, NULL},
    {"uses_missing", NULL, row_a, row_b, 1, "{}", 0, NULL, NULL},
    /* results that are not rows */
    {"ret_number", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "returned a number", NULL},
    {"ret_false", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "returned a boolean", NULL},
    {"ret_null", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "returned a userdata", NULL},
    {"ret_seq", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT,
     "column name that is not a string (a number)", NULL},
    {"ret_boolkey", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT,
     "column name that is not a string (a boolean)", NULL},
    {"ret_marked", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "a sluice.array, not a row", NULL},
    {"ret_func", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "column 'f': a function", NULL},
    {"ret_nan", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "column 'x': NaN has no JSON form",
     NULL},
    {"ret_inf", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "column 'x': an infinite number",
     NULL},
    {"ret_cycle", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "column 't': nested deeper than 64",
     NULL},
    {"ret_holes", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT, "column 'a': an array with holes",
     NULL},
    {"ret_mixed", NULL, row_a, row_b, -1, NULL, SL_LUA_RESULT,
     "column 'a': a table with both string keys and keys of another type", NULL},
    /* inputs that are not rows */
    {"ret_current", NULL, "{\"id\":", row_b, -1, NULL, SL_LUA_INPUT,
     "the current row is not valid JSON", NULL},
    {"ret_current", NULL, row_a, "[1,2]", -1, NULL, SL_LUA_INPUT,
     "the incoming row is not a JSON object", NULL},
};

static void check_case(const mcase *c, size_t n)
{
    sl_buf out = SL_BUF_INIT;
    sl_error err = {0};
    sl_str base = {c->base, c->base ? strlen(c->base) : 0};
    sl_str cur = {c->current, c->current ? strlen(c->current) : 0};
    sl_str inc = {c->incoming, c->incoming ? strlen(c->incoming) : 0};
    int rc;

    sl_buf_puts(&out, "prefix:"); /* results are appended; failures leave out alone */
    rc = sl_lua_merge(fx.L, c->fn, NULL, base, cur, inc, &out, &err);
    if (rc != c->rc)
        fail_msg("case %zu (%s): rc %d, want %d (%s)", n, c->fn, rc, c->rc, err.msg);
    if (rc == 1 && strcmp(out.data + 7, c->out) != 0)
        fail_msg("case %zu (%s):\n got %s\nwant %s", n, c->fn, out.data + 7, c->out);
    if (rc != 1)
        assert_string_equal(out.data, "prefix:");
    if (rc == -1) {
        if (sl_lua_last_failure(fx.L) != c->fail)
            fail_msg("case %zu (%s): failure %d, want %d (%s)", n, c->fn,
                     (int)sl_lua_last_failure(fx.L), (int)c->fail, err.msg);
        if (c->msg1 && !strstr(err.msg, c->msg1))
            fail_msg("case %zu (%s): message '%s' lacks '%s'", n, c->fn, err.msg, c->msg1);
        if (c->msg2 && !strstr(err.msg, c->msg2))
            fail_msg("case %zu (%s): message '%s' lacks '%s'", n, c->fn, err.msg, c->msg2);
    } else {
        assert_int_equal(sl_lua_last_failure(fx.L), SL_LUA_OK);
    }
    sl_buf_free(&out);
}

static void test_merge_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++)
        check_case(&mcases[i], i);
    /* and again: every failure left the state usable */
    for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++)
        check_case(&mcases[i], i);
}

static int merge(const char *fn, const char *current, sl_buf *out, sl_error *err)
{
    sl_str cur = {current, strlen(current)}, none = {NULL, 0};

    sl_buf_reset(out);
    return sl_lua_merge(fx.L, fn, NULL, none, cur, none, out, err);
}

static void test_ctx(void **state)
{
    sl_lua_ctx ctx = {"public.loyalty_points", {"{\"id\":42}", 9}, "store_01", "central",
                      1741161600123,           1741161600000,      'u',        "retail.rules:27:5"};
    sl_str row = {row_a, strlen(row_a)};
    sl_buf out = SL_BUF_INIT;
    sl_error err = {0};

    (void)state;
    assert_int_equal(sl_lua_merge(fx.L, "ctxinfo", &ctx, row, row, row, &out, &err), 1);
    assert_string_equal(out.data,
                        "{\"cs\":\"central\",\"cts\":1741161600000,\"is\":\"store_01\","
                        "\"its\":1741161600123,\"k\":42,\"op\":\"u\","
                        "\"rule\":\"retail.rules:27:5\",\"t\":\"public.loyalty_points\"}");
    /* NULL strings, no key, no op: nil */
    memset(&ctx, 0, sizeof ctx);
    sl_buf_reset(&out);
    assert_int_equal(sl_lua_merge(fx.L, "ctxinfo", &ctx, row, row, row, &out, &err), 1);
    assert_string_equal(out.data, "{\"cts\":0,\"its\":0}");
    sl_buf_free(&out);
}

static void test_sandbox(void **state)
{
    sl_buf out = SL_BUF_INIT;
    sl_error err = {0};

    (void)state;
    assert_int_equal(merge("sandbox", row_a, &out, &err), 1);
    assert_string_equal(out.data,
                        "{\"binload\":true,\"co\":5,\"cpath\":\"\",\"debug\":true,\"dofile\":true,"
                        "\"fmt\":\"003.1\",\"helper\":42,\"io\":true,\"loadfile\":true,"
                        "\"loadlib\":true,\"os_execute\":true,\"os_exit\":true,"
                        "\"os_getenv\":true,\"os_remove\":true,\"print\":true,\"textload\":7,"
                        "\"time\":\"number\",\"utf8\":\"\xc3\xa9\"}");
    assert_true(sl_lua_has_function(fx.L, "boom"));
    assert_false(sl_lua_has_function(fx.L, "not_a_function"));
    assert_false(sl_lua_has_function(fx.L, "nope"));
    sl_buf_free(&out);
}

/* ---- limits ----------------------------------------------------------------------- */

typedef struct lcase {
    const char *fn;
    sl_lua_failure fail, fail2; /* fail2: also accepted */
    const char *msg, *msg2;
} lcase;

static const lcase lcases[] = {
    {"spin", SL_LUA_INSTRUCTIONS, SL_LUA_INSTRUCTIONS,
     "lua spin: instruction limit of 1000000 exceeded; traceback: /", NULL},
    {"spin_pcall", SL_LUA_INSTRUCTIONS, SL_LUA_INSTRUCTIONS,
     "lua spin_pcall: instruction limit of 1000000 exceeded", NULL},
    {"spin_co", SL_LUA_INSTRUCTIONS, SL_LUA_INSTRUCTIONS,
     "hooks.lua:62: instruction limit of 1000000 exceeded", NULL},
    {"bomb", SL_LUA_MEMORY, SL_LUA_MEMORY,
     "lua bomb: memory limit of 67108864 bytes exceeded: not enough memory", NULL},
    /* endless recursion: growing the Lua stack is charged, so the budget
     * runs out before the stack reaches the memory limit */
    {"recurse", SL_LUA_INSTRUCTIONS, SL_LUA_MEMORY, "instruction limit of 1000000 exceeded",
     "memory limit of 67108864 bytes exceeded"},
    /* it catches every memory error, so it also runs out of instructions:
     * whichever error reaches the top decides */
    {"bomb_pcall", SL_LUA_MEMORY, SL_LUA_INSTRUCTIONS, "memory limit of 67108864 bytes exceeded",
     "instruction limit of 1000000 exceeded"},
};

static void test_limits(void **state)
{
    sl_buf out = SL_BUF_INIT;
    sl_error err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof lcases / sizeof lcases[0]; i++) {
        const lcase *c = &lcases[i];
        clock_t t0 = clock();
        double secs;
        sl_lua_failure got;

        sl_buf_reset(&out);
        assert_int_equal(merge("counter", row_a, &out, &err), 1);
        assert_string_equal(out.data, "{\"calls\":1}");
        sl_buf_reset(&out);
        assert_int_equal(merge("counter", row_a, &out, &err), 1);
        assert_string_equal(out.data, "{\"calls\":2}");

        sl_buf_reset(&out);
        if (merge(c->fn, row_a, &out, &err) != -1)
            fail_msg("%s: did not fail", c->fn);
        secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        got = sl_lua_last_failure(fx.L);
        if (!(got == c->fail && strstr(err.msg, c->msg)) &&
            !(got == c->fail2 && strstr(err.msg, c->msg2 ? c->msg2 : c->msg)))
            fail_msg("%s: failure %d: %s", c->fn, (int)got, err.msg);
        assert_int_equal(out.len, 0);
        if (secs > 10)
            fail_msg("%s: took %.1f s", c->fn, secs);

        /* still works; after a memory failure the state was rebuilt from
         * the files, so the counter starts again */
        sl_buf_reset(&out);
        assert_int_equal(merge("ret_current", row_a, &out, &err), 1);
        assert_string_equal(out.data, row_a);
        sl_buf_reset(&out);
        assert_int_equal(merge("counter", row_a, &out, &err), 1);
        assert_string_equal(out.data, got == SL_LUA_MEMORY ? "{\"calls\":1}" : "{\"calls\":3}");
        if (got == SL_LUA_MEMORY) /* a fresh state holds little */
            assert_true(sl_lua_memory(fx.L) < (size_t)1 << 20);
        /* A state that cannot be rebuilt (the limit is below what loading
         * needs) fails every call until the limit allows it again; then the
         * counter starts over for the next case. */
        sl_lua_set_limits(fx.L, 0, (size_t)1 << 10);
        assert_int_equal(merge("bomb", row_a, &out, &err), -1);
        assert_int_equal(sl_lua_last_failure(fx.L), SL_LUA_MEMORY);
        assert_int_equal(merge("counter", row_a, &out, &err), -1);
        assert_int_equal(sl_lua_last_failure(fx.L), SL_LUA_STATE);
        assert_non_null(strstr(err.msg, "could not be rebuilt"));
        assert_false(sl_lua_has_function(fx.L, "counter"));
        sl_lua_set_limits(fx.L, 0, 0);
    }
    sl_buf_free(&out);
}

static void test_custom_limits(void **state)
{
    sl_buf out = SL_BUF_INIT;
    sl_error err = {0};

    (void)state;
    sl_lua_set_limits(fx.L, 20000, 0);
    assert_int_equal(merge("spin_some", "{\"n\":100}", &out, &err), 1);
    assert_string_equal(out.data, "{\"n\":5050}");
    assert_int_equal(merge("spin_some", "{\"n\":100000}", &out, &err), -1);
    assert_int_equal(sl_lua_last_failure(fx.L), SL_LUA_INSTRUCTIONS);
    assert_non_null(strstr(err.msg, "instruction limit of 20000 exceeded"));
    assert_non_null(strstr(err.msg, "hooks.lua:63 in function 'spin_some'"));
    sl_lua_set_limits(fx.L, 0, 0);
    assert_int_equal(merge("spin_some", "{\"n\":100000}", &out, &err), 1);
    assert_string_equal(out.data, "{\"n\":5000050000}");
    sl_buf_free(&out);
}

/* ---- loading -------------------------------------------------------------------------- */

typedef struct fcase {
    const char *name;        /* a test name */
    const char *files[3][2]; /* file name, contents (NULL: do not create) */
    sl_errcode code;         /* SL_OK: loads */
    const char *msg;         /* a fragment; "%s" = the directory */
} fcase;

static const fcase fcases[] = {
    {"syntax",
     {{"bad.lua", "function f(b, c, i)\n  return 1 +\nend\n"}},
     SL_ERR_PARSE,
     "%s/bad.lua:3: unexpected symbol near 'end'"},
    {"syntax2",
     {{"ok.lua", "x = 1\n"}, {"bad2.lua", "\n\nlocal = 5\n"}},
     SL_ERR_PARSE,
     "%s/bad2.lua:3: <name> expected near '='"},
    {"runtime",
     {{"rt.lua", "local t = nil\nx = t.field\n"}},
     SL_ERR_INVALID,
     "lua file '%s/rt.lua': %s/rt.lua:2: attempt to index a nil value (local 't')"},
    {"missing",
     {{"missing.lua", NULL}},
     SL_ERR_IO,
     "cannot read lua file '%s/missing.lua': No such file or directory"},
    {"loop",
     {{"loop.lua", "while true do end\n"}},
     SL_ERR_INVALID,
     "lua file '%s/loop.lua': instruction limit of 1000000 exceeded"},
    {"memory",
     {{"mem.lua", "big = string.rep('x', 100 << 20)\n"}},
     SL_ERR_INVALID,
     "memory limit of 67108864 bytes exceeded"},
    {"order",
     {{"a.lua", "function helper() return 1 end\n"}, {"b.lua", "assert(helper() == 1)\n"}},
     SL_OK,
     NULL},
    {"wrong order",
     {{"b.lua", "assert(helper() == 1)\n"}, {"a.lua", "function helper() return 1 end\n"}},
     SL_ERR_INVALID,
     "%s/b.lua:1: attempt to call a nil value (global 'helper')"},
    {"shebang",
     {{"sb.lua", "#!/usr/bin/env lua\nx = nil + 1\n"}},
     SL_ERR_INVALID,
     "%s/sb.lua:2: attempt to perform arithmetic on a nil value"},
    {"bom", {{"bom.lua", "\xef\xbb\xbfx = 1\n"}}, SL_OK, NULL},
    {"binary",
     {{"bin.lua", "\x1bLua\x54"}},
     SL_ERR_PARSE,
     "%s/bin.lua: attempt to load a binary chunk"},
    {"require",
     {{"m1.lua", "return {v = 3}\n"}, {"req.lua", "assert(require('m1').v == 3)\n"}},
     SL_OK,
     NULL},
    {"require C",
     {{"cmod.so", "not a library"}, {"reqc.lua", "require('cmod')\n"}},
     SL_ERR_INVALID,
     "module 'cmod' not found"},
};

static void test_load_failures(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fcases / sizeof fcases[0]; i++) {
        const fcase *c = &fcases[i];
        char dir[64], paths[3][256], want[512], cmd[128];
        const char *list[3];
        size_t n = 0;
        sl_error err = {0};
        sl_lua *L;

        snprintf(dir, sizeof dir, "/tmp/sluice-test-lua-XXXXXX");
        assert_non_null(mkdtemp(dir));
        for (; n < 3 && c->files[n][0]; n++) {
            snprintf(paths[n], sizeof paths[n], "%s/%s", dir, c->files[n][0]);
            if (c->files[n][1])
                write_file(dir, c->files[n][0], c->files[n][1], NULL, 0);
            list[n] = paths[n];
        }
        /* the "require C" case lists only its hook file */
        L = strcmp(c->name, "require C") == 0 ? load_files(list + 1, 1, &err)
                                              : load_files(list, n, &err);
        if (c->code == SL_OK) {
            if (L == NULL)
                fail_msg("%s: %s", c->name, err.msg);
        } else {
            if (L != NULL)
                fail_msg("%s: loaded", c->name);
            snprintf(want, sizeof want, c->msg, dir, dir);
            if (err.code != c->code || !strstr(err.msg, want))
                fail_msg("%s: code %d, message '%s', want '%s'", c->name, (int)err.code, err.msg,
                         want);
        }
        sl_lua_free(L);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
}

/* ---- the retail example --------------------------------------------------------------- */

static const char base_row[] =
    "{\"id\":2,\"name\":\"Aoife Siobhan Ruiz-Tagle\",\"email\":\"aoife.ruiz-tagle13@mail.example."
    "org\",\"tier\":\"silver\",\"home_store\":\"store_01\",\"points\":2232,"
    "\"updated_at\":\"2025-03-05T08:00:00.000000Z\"}";
/* central upgraded the customer and added 100 points at 10:00 */
static const char central_row[] =
    "{\"id\":2,\"name\":\"Aoife Siobhan Ruiz-Tagle\",\"email\":\"aoife.ruiz-tagle13@mail.example."
    "org\",\"tier\":\"gold\",\"home_store\":\"store_01\",\"points\":2332,"
    "\"updated_at\":\"2025-03-05T10:00:00.000000Z\"}";
/* meanwhile store_01 added 18 points at 09:30, without having seen it */
static const char store_row[] =
    "{\"id\":2,\"name\":\"Aoife Siobhan Ruiz-Tagle\",\"email\":\"aoife.ruiz-tagle13@mail.example."
    "org\",\"tier\":\"silver\",\"home_store\":\"store_01\",\"points\":2250,"
    "\"updated_at\":\"2025-03-05T09:30:00.000000Z\"}";
/* store_01 renamed her at 11:00 */
static const char store_row_late[] =
    "{\"id\":2,\"name\":\"Aoife S. Ruiz-Tagle\",\"email\":\"aoife.ruiz-tagle13@mail.example."
    "org\",\"tier\":\"silver\",\"home_store\":\"store_01\",\"points\":2240,"
    "\"updated_at\":\"2025-03-05T11:00:00.000000Z\"}";

static void test_retail(void **state)
{
    const char *rules = "examples/retail/retail.rules";
    sl_diags diags;
    sl_program *p;
    sl_lua *L;
    sl_error err = {0};
    sl_buf out = SL_BUF_INIT;
    sl_lua_ctx ctx = {"public.customers", {"{\"id\":2}", 8}, "store_01", "central",
                      1741168800000,      1741172400000,     'u',        "retail.rules:27:5"};
    sl_str base = {base_row, strlen(base_row)}, cur = {central_row, strlen(central_row)};
    sl_str inc = {store_row, strlen(store_row)}, none = {NULL, 0};

    (void)state;
    sl_diags_init(&diags);
    p = sl_compile_files(&rules, 1, &diags);
    assert_non_null(p);
    assert_int_equal(p->nlua, 1);
    L = sl_lua_new(p, &err);
    if (L == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(sl_lua_check_program(L, p, &err), 0);

    /* central's newer columns, and both sides' points: 2332 + 2250 - 2232 */
    assert_int_equal(sl_lua_merge(L, "merge_points", &ctx, base, cur, inc, &out, &err), 1);
    assert_string_equal(out.data,
                        "{\"id\":2,\"name\":\"Aoife Siobhan Ruiz-Tagle\",\"email\":\"aoife.ruiz-"
                        "tagle13@mail.example.org\",\"tier\":\"gold\",\"home_store\":\"store_01\","
                        "\"points\":2350,\"updated_at\":\"2025-03-05T10:00:00.000000Z\"}");
    /* the store's rename is newer; no base: the points simply add up */
    sl_buf_reset(&out);
    inc.p = store_row_late;
    inc.len = strlen(store_row_late);
    assert_int_equal(sl_lua_merge(L, "merge_points", &ctx, none, cur, inc, &out, &err), 1);
    assert_string_equal(
        out.data, "{\"id\":2,\"name\":\"Aoife S. Ruiz-Tagle\",\"email\":\"aoife.ruiz-"
                  "tagle13@mail.example.org\",\"tier\":\"silver\",\"home_store\":\"store_01\","
                  "\"points\":4572,\"updated_at\":\"2025-03-05T11:00:00.000000Z\"}");
    /* a deleted current side: the hook indexes nil, which is an error */
    sl_buf_reset(&out);
    assert_int_equal(sl_lua_merge(L, "merge_points", &ctx, base, none, inc, &out, &err), -1);
    assert_int_equal(sl_lua_last_failure(L), SL_LUA_ERROR);
    assert_non_null(strstr(err.msg, "retail.lua:"));
    assert_non_null(strstr(err.msg, "in function 'merge_points'"));
    assert_int_equal(out.len, 0);

    sl_lua_free(L);
    sl_program_unref(p);
    sl_diags_free(&diags);
    sl_buf_free(&out);
}

/* A program naming a function the files do not define is caught at startup. */
static void test_check_program(void **state)
{
    char text[512];
    sl_diags diags;
    sl_program *p;
    sl_lua *L;
    sl_error err = {0};

    (void)state;
    snprintf(text, sizeof text,
             "site central hub;\nsite store_01;\nlua \"%s\";\n"
             "table public.customers {\n    key (id);\n    route * -> *;\n"
             "    on conflict lua merge_pointz;\n}\n",
             fx.path);
    sl_diags_init(&diags);
    p = sl_compile_text("check.rules", text, strlen(text), &diags);
    if (p == NULL) {
        sl_buf b = SL_BUF_INIT;

        sl_diags_format(&diags, &b);
        fail_msg("%s", b.data);
    }
    L = sl_lua_new(p, &err);
    assert_non_null(L);
    assert_int_equal(sl_lua_check_program(L, p, &err), -1);
    assert_int_equal(err.code, SL_ERR_RULES);
    assert_non_null(strstr(err.msg, "check.rules:7:"));
    assert_non_null(strstr(err.msg, "no function 'merge_pointz'"));
    sl_lua_free(L);
    sl_program_unref(p);
    sl_diags_free(&diags);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_cases),   cmocka_unit_test(test_ctx),
        cmocka_unit_test(test_sandbox),       cmocka_unit_test(test_limits),
        cmocka_unit_test(test_custom_limits), cmocka_unit_test(test_load_failures),
        cmocka_unit_test(test_retail),        cmocka_unit_test(test_check_program),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
