/* Conversions between cJSON values and Lua values (part of the Lua room, engine/script*.c).
 *
 * JSON null becomes m2p.null (a light userdata NULL) and back. Objects are encoded with their
 * keys sorted so that equal observations always give equal text. */
#ifndef M2P_SCRIPT_JSON_H
#define M2P_SCRIPT_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <lua.h>

#define SCRIPT_JSON_MAX_DEPTH 64

/* Pushes `item` as a Lua value. Raises a Lua error when nesting is deeper than the limit. */
void script_json_push(lua_State *L, const cJSON *item);

/* Decodes `len` bytes of JSON and pushes the value; on malformed input pushes nothing, returns
 * -1 and writes a reason to err: "truncated JSON (N bytes)" when the text stops before the
 * value is complete, "invalid JSON at byte N of M", or "NUL character in the JSON at byte N
 * of M" (a raw NUL byte or a \u0000 escape: refused, never cut short). Nesting deeper than
 * the limit raises a Lua error. */
int script_json_push_text(lua_State *L, const char *text, size_t len, char *err, size_t errlen);

/* Sets the decoded body on the response table at `idx`: `json` and `json_type` ("object",
 * "array", "string", "number", "boolean" or "null"), or `json_error` when the body is not
 * JSON (or is empty: "empty body"). */
void script_json_set_response(lua_State *L, int idx, const char *body, size_t len);

/* Converts the Lua value at `idx` to a new cJSON tree (caller frees). NULL with a reason in
 * err for functions, non-finite numbers, mixed or non-string keys, cycles, too deep. */
cJSON *script_json_from_lua(lua_State *L, int idx, char *err, size_t errlen);

/* native.json_decode(text) -> value and native.json_encode(value) -> text, for Lua. */
int script_json_decode_fn(lua_State *L);
int script_json_encode_fn(lua_State *L);

#endif
