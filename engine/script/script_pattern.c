/* string.find, string.match, string.gmatch and string.gsub, charged to the instruction budget.
 *
 * Why the runtime has its own matcher. Lua patterns backtrack: ("a?"):rep(30) .. ("a"):rep(30)
 * matched against ("a"):rep(30) takes 2^30 steps, all inside one C function, where no count
 * hook ever fires. A pool script (or a pool's wallet_pattern, matched against a wallet string
 * a player typed) could therefore stop the engine for minutes under any budget. This matcher
 * implements the same pattern language (Lua 5.1's, as LuaJIT has it: the classes %a %c %d %g
 * %l %p %s %u %w %x %z and their complements, sets, %b, %f, captures and back-references)
 * and counts its steps: every STEP_CHUNK steps are added to the call's instruction count, and
 * a match that would exceed the budget raises the budget error at the script's line.
 *
 * It also bounds the C stack: a gsub whose replacement function calls gsub again recurses in
 * C, which the stock library does until the process dies (SIGSEGV); here each entry checks
 * the C stack used since the engine called into Lua (script_check_cstack).
 *
 * script_pattern_install replaces the four functions in the state's string table, which is
 * also the strings' __index: s:find(...) in any script, in the prelude and in the pipeline
 * goes through here. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "script_internal.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH 200 /* nested do_match calls: LuaJIT's "pattern too complex" level */
#define STEP_CHUNK 256
#define STEP_COST 4 /* instructions charged per matcher step: a step costs several */
#define SCAN_BYTES_PER_STEP (16 * STEP_COST) /* charge_scan: 16 bytes per instruction */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define SPECIALS "^$*+?.([%-"

typedef struct {
    const char *src_init, *src_end, *p_end;
    lua_State *L;
    int level, depth;
    int countdown; /* steps left before the next charge */
    struct {
        const char *init;
        ptrdiff_t len;
    } capture[MAX_CAPTURES];
} match_state;

static void charge(match_state *ms)
{
    long long steps = STEP_CHUNK - (long long)ms->countdown; /* countdown <= 0 here */
    ms->countdown = STEP_CHUNK;
    script_charge(ms->L, steps * STEP_COST);
}

/* A set ([...], %f[...]) is read in full on every step it is tried, and a back-reference
 * (%1) compares its whole capture: work proportional to their length, not one step.
 * Charged as a byte scan elsewhere, one instruction per 16 bytes. */
static inline void charge_scan(match_state *ms, size_t bytes)
{
    if (bytes < SCAN_BYTES_PER_STEP)
        return;
    ms->countdown -= (int)(bytes / SCAN_BYTES_PER_STEP);
    if (ms->countdown <= 0)
        charge(ms);
}

static inline void step(match_state *ms)
{
    if (--ms->countdown <= 0)
        charge(ms);
}

/* ---------------------------------------------------------------- Character classes */

/* ASCII only, as LuaJIT's own classes: bytes >= 128 are in no class, whatever the locale. */
static int class_matches(int c, int cl)
{
    int res;
    switch (cl | 0x20) {
    case 'a': res = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); break;
    case 'c': res = c < 32 || c == 127; break;
    case 'd': res = c >= '0' && c <= '9'; break;
    case 'g': res = c > 32 && c < 127; break;
    case 'l': res = c >= 'a' && c <= 'z'; break;
    case 'p': res = c > 32 && c < 127 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                          (c >= '0' && c <= '9')); break;
    case 's': res = c == ' ' || (c >= 9 && c <= 13); break;
    case 'u': res = c >= 'A' && c <= 'Z'; break;
    case 'w': res = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        break;
    case 'x': res = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); break;
    case 'z': res = c == 0; break;
    default: return cl == c; /* %. and the like: the character itself */
    }
    return (cl >= 'A' && cl <= 'Z') ? !res : res;
}

/* The end of the single-character class at p (p < p_end). */
static const char *class_end(match_state *ms, const char *p)
{
    if (*p++ == '%') {
        if (p >= ms->p_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (p[-1] == '[') {
        if (p < ms->p_end && *p == '^')
            p++;
        do { /* the first character of a set is itself even when it is ']' */
            if (p >= ms->p_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == '%' && p < ms->p_end)
                p++;
        } while (p >= ms->p_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* c against the set [p .. ec] (p at '[', ec at ']'). */
static int set_matches(int c, const char *p, const char *ec)
{
    int sig = 1;
    if (*(p + 1) == '^') {
        sig = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == '%') {
            p++;
            if (class_matches(c, (unsigned char)*p))
                return sig;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p)
                return sig;
        } else if ((unsigned char)*p == c) {
            return sig;
        }
    }
    return !sig;
}

static int single_match(match_state *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_matches(c, (unsigned char)*(p + 1));
    case '[':
        charge_scan(ms, (size_t)(ep - p));
        return set_matches(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* ------------------------------------------------------------------------ Matching */

static const char *do_match(match_state *ms, const char *s, const char *p);

static const char *match_balance(match_state *ms, const char *s, const char *p)
{
    if (p + 1 >= ms->p_end)
        luaL_error(ms->L, "unbalanced pattern");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    int b = *p, e = *(p + 1), cont = 1;
    while (++s < ms->src_end) {
        step(ms);
        if (*s == e) {
            if (--cont == 0)
                return s + 1;
        } else if (*s == b) {
            cont++;
        }
    }
    return NULL;
}

static const char *max_expand(match_state *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single_match(ms, s + i, p, ep)) {
        step(ms);
        i++;
    }
    while (i >= 0) { /* try the longest first, then give back one character at a time */
        const char *res = do_match(ms, s + i, ep + 1);
        if (res)
            return res;
        i--;
    }
    return NULL;
}

static const char *min_expand(match_state *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *res = do_match(ms, s, ep + 1);
        if (res)
            return res;
        if (!single_match(ms, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *start_capture(match_state *ms, const char *s, const char *p, ptrdiff_t what)
{
    if (ms->level >= MAX_CAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = do_match(ms, s, p);
    if (!res)
        ms->level--; /* undo the capture */
    return res;
}

static int open_capture(match_state *ms)
{
    for (int level = ms->level - 1; level >= 0; level--)
        if (ms->capture[level].len == CAP_UNFINISHED)
            return level;
    return luaL_error(ms->L, "invalid pattern capture");
}

static const char *end_capture(match_state *ms, const char *s, const char *p)
{
    int l = open_capture(ms);
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = do_match(ms, s, p);
    if (!res)
        ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

static int capture_index(match_state *ms, int l)
{
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        return luaL_error(ms->L, "invalid capture index");
    return l;
}

static const char *match_capture(match_state *ms, const char *s, int l)
{
    l = capture_index(ms, l);
    size_t len = (size_t)ms->capture[l].len;
    charge_scan(ms, len);
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

/* %f[set]: the transition from a character not in the set to one in it. */
static const char *frontier(match_state *ms, const char *s, const char **p)
{
    *p += 2;
    if (*p >= ms->p_end || **p != '[')
        luaL_error(ms->L, "missing '[' after '%%f' in pattern");
    const char *ep = class_end(ms, *p);
    charge_scan(ms, 2 * (size_t)(ep - *p)); /* two set_matches below */
    int prev = s == ms->src_init ? 0 : (unsigned char)*(s - 1);
    int cur = s < ms->src_end ? (unsigned char)*s : 0;
    if (set_matches(prev, *p, ep - 1) || !set_matches(cur, *p, ep - 1))
        return NULL;
    *p = ep;
    return s;
}

/* A single item with its quantifier, or a literal run: the default case of do_match. */
static const char *match_item(match_state *ms, const char *s, const char *p, int *again,
                              const char **next_p)
{
    const char *ep = class_end(ms, p);
    int m = single_match(ms, s, p, ep);
    char q = ep < ms->p_end ? *ep : '\0';
    *again = 0;
    switch (q) {
    case '?':
        if (m) {
            const char *res = do_match(ms, s + 1, ep + 1);
            if (res)
                return res;
        }
        *next_p = ep + 1;
        *again = 1;
        return s;
    case '*': return max_expand(ms, s, p, ep);
    case '+': return m ? max_expand(ms, s + 1, p, ep) : NULL;
    case '-': return min_expand(ms, s, p, ep);
    default:
        if (!m)
            return NULL;
        *next_p = ep;
        *again = 1;
        return s + 1;
    }
}

static const char *do_match(match_state *ms, const char *s, const char *p)
{
    if (++ms->depth > MAX_DEPTH)
        luaL_error(ms->L, "pattern too complex");
    for (;;) {
        step(ms);
        if (p >= ms->p_end)
            break;
        if (*p == '(') {
            s = p + 1 < ms->p_end && *(p + 1) == ')' ? start_capture(ms, s, p + 2, CAP_POSITION)
                                                     : start_capture(ms, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = end_capture(ms, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == ms->p_end) {
            s = s == ms->src_end ? s : NULL;
            break;
        }
        if (*p == '%' && p + 1 < ms->p_end && *(p + 1) == 'b') {
            s = match_balance(ms, s, p + 2);
            if (!s)
                break;
            p += 4;
            continue;
        }
        if (*p == '%' && p + 1 < ms->p_end && *(p + 1) == 'f') {
            s = frontier(ms, s, &p);
            if (!s)
                break;
            continue;
        }
        if (*p == '%' && p + 1 < ms->p_end && *(p + 1) >= '0' && *(p + 1) <= '9') {
            s = match_capture(ms, s, (unsigned char)*(p + 1));
            if (!s)
                break;
            p += 2;
            continue;
        }
        int again;
        const char *next_p = p;
        s = match_item(ms, s, p, &again, &next_p);
        if (!again || !s)
            break;
        p = next_p;
    }
    ms->depth--;
    return s;
}

/* ------------------------------------------------------------------- Lua functions */

static void push_capture(match_state *ms, int i, const char *s, const char *e)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index");
        lua_pushlstring(ms->L, s, (size_t)(e - s)); /* the whole match */
        return;
    }
    ptrdiff_t l = ms->capture[i].len;
    if (l == CAP_UNFINISHED)
        luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POSITION)
        lua_pushinteger(ms->L, ms->capture[i].init - ms->src_init + 1);
    else
        lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
}

static int push_captures(match_state *ms, const char *s, const char *e)
{
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(ms, i, s, e);
    return n;
}

static void state_init(match_state *ms, lua_State *L, const char *s, size_t ls, const char *p,
                       size_t lp)
{
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->level = ms->depth = 0;
    ms->countdown = STEP_CHUNK;
}

/* Lua 5.1's start position: negative counts from the end, clamped to [0, len]. */
static size_t start_of(lua_State *L, int arg, size_t len)
{
    ptrdiff_t init = luaL_optinteger(L, arg, 1);
    if (init < 0)
        init += (ptrdiff_t)len + 1;
    if (init < 1)
        init = 1;
    return (size_t)init - 1 > len ? len : (size_t)init - 1;
}

static bool has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (p[i] && strchr(SPECIALS, p[i]))
            return true;
    return false;
}

static int find_aux(lua_State *L, int find)
{
    script_check_cstack(L);
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_of(L, 3, ls);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        script_charge(L, (long long)(ls - init) / 16); /* memmem: a byte scan */
        const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (!hit) {
            lua_pushnil(L);
            return 1;
        }
        lua_pushinteger(L, hit - s + 1);
        lua_pushinteger(L, hit - s + (ptrdiff_t)lp);
        return 2;
    }
    match_state ms;
    int anchor = lp > 0 && *p == '^';
    state_init(&ms, L, s, ls, p + anchor, lp - (size_t)anchor);
    const char *s1 = s + init;
    do {
        ms.level = 0;
        ms.depth = 0;
        const char *e = do_match(&ms, s1, p + anchor);
        if (e) {
            if (find) {
                lua_pushinteger(L, s1 - s + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&ms, NULL, NULL) + 2;
            }
            return push_captures(&ms, s1, e);
        }
    } while (s1++ < ms.src_end && !anchor);
    lua_pushnil(L);
    return 1;
}

static int str_find(lua_State *L) { return find_aux(L, 1); }
static int str_match(lua_State *L) { return find_aux(L, 0); }

static int gmatch_next(lua_State *L)
{
    script_check_cstack(L);
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    match_state ms;
    state_init(&ms, L, s, ls, p, lp);
    for (const char *src = s + lua_tointeger(L, lua_upvalueindex(3)); src <= ms.src_end; src++) {
        ms.level = 0;
        ms.depth = 0;
        const char *e = do_match(&ms, src, p);
        if (e) {
            lua_Integer next = e - s;
            if (e == src)
                next++; /* an empty match: go on from the next character */
            lua_pushinteger(L, next);
            lua_replace(L, lua_upvalueindex(3));
            return push_captures(&ms, src, e);
        }
    }
    return 0;
}

static int str_gmatch(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

static void add_string_repl(match_state *ms, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    const char *news = lua_tolstring(ms->L, 3, &l);
    for (size_t i = 0; i < l; i++) {
        if (news[i] != '%') {
            luaL_addchar(b, news[i]);
        } else if (++i < l && (news[i] < '0' || news[i] > '9')) {
            luaL_addchar(b, news[i]); /* %x is x, as in Lua 5.1 */
        } else if (i < l && news[i] == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (i < l) {
            push_capture(ms, news[i] - '1', s, e);
            luaL_addvalue(b);
        }
    }
}

static void add_value(match_state *ms, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = ms->L;
    switch (lua_type(L, 3)) {
    case LUA_TNUMBER:
    case LUA_TSTRING: add_string_repl(ms, b, s, e); return;
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, s, (size_t)(e - s)); /* false or nil: keep the original text */
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    luaL_addvalue(b);
}

static int str_gsub(lua_State *L)
{
    script_check_cstack(L);
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    luaL_argcheck(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                         tr == LUA_TTABLE,
                  3, "string/function/table expected");
    int anchor = lp > 0 && *p == '^';
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    match_state ms;
    state_init(&ms, L, src, srcl, p + anchor, lp - (size_t)anchor);
    lua_Integer n = 0;
    while (n < max_s) {
        ms.level = 0;
        ms.depth = 0;
        const char *e = do_match(&ms, src, p + anchor);
        if (e) {
            n++;
            add_value(&ms, &b, src, e);
        }
        if (e && e > src) {
            src = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void script_pattern_install(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch}, {"gsub", str_gsub},
        {NULL, NULL},
    };
    lua_getglobal(L, "string");
    for (const luaL_Reg *f = functions; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_pop(L, 1);
}
