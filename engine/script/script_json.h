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

/* Pushes `item` as a Lua value. Raises a Lua error when nesting is deeper than the limit or
 * an object repeats a key. */
void script_json_push(lua_State *L, const cJSON *item);

/* Decodes `len` bytes of JSON and pushes the value; on malformed input pushes nothing, returns
 * -1 and writes a reason to err: "truncated JSON (N bytes)" when the text stops before the
 * value is complete, "invalid JSON at byte N of M", "NUL character in the JSON at byte N
 * of M" (a raw NUL byte or a \u0000 escape: refused, never cut short), "not valid UTF-8 at
 * byte N of M" (RFC 8259), or "duplicate key \"K\" in a JSON object" (K: at most 40 bytes,
 * printable ASCII, others shown as '?'; an escape counts as the character it stands for).
 * Nesting deeper than the limit raises a Lua error. */
int script_json_push_text(lua_State *L, const char *text, size_t len, char *err, size_t errlen);

/* Sets the decoded body on the response table at `idx`: `json` and `json_type` ("object",
 * "array", "string", "number", "boolean" or "null"), or `json_error` when the body is not
 * JSON (or is empty: "empty body"). */
void script_json_set_response(lua_State *L, int idx, const char *body, size_t len);

/* Converts the Lua value at `idx` to a new cJSON tree (caller frees). NULL with a reason in
 * err for functions, non-finite numbers, mixed or non-string keys, cycles, too deep. */
cJSON *script_json_from_lua(lua_State *L, int idx, char *err, size_t errlen);

/* The n string keys of the object-shaped table at idx (script_json_table_shape said so) in
 * strcmp order, the order both encoders print; each stays valid while the table does. */
void script_json_sorted_keys(lua_State *L, int idx, size_t n, const char **keys);

/* Returns 1 when the table at idx is a list 1..n (n > 0 or empty), 0 when it has only string
 * keys, -1 (with err) otherwise. Stores the number of entries in *count. */
int script_json_table_shape(lua_State *L, int idx, size_t *count, char *err, size_t errlen);

/* native.json_decode(text) -> value (cJSON) and native.json_encode(value) -> text: written
 * directly (script_json_encode.c), byte for byte what cJSON_PrintUnformatted of
 * script_json_from_lua's tree gives, without building the tree. */
int script_json_decode_fn(lua_State *L);
/* native.json_decode_state(text): as json_decode, but the engine's own account state, where
 * bytes that are not valid UTF-8 (from a custom rule) are read as U+FFFD, as they are stored. */
int script_json_decode_state_fn(lua_State *L);
int script_json_encode_fn(lua_State *L);

/* Room for any number script_json_format_number writes, NUL included. */
#define SCRIPT_JSON_NUMBER_MAX 32

/* Writes a finite double as the linked cJSON (1.7.15) prints it: "%1.15g" when that reads
 * back within cJSON's tolerance, else "%1.17g" (tests/unit/test_script_json.c checks it
 * against cJSON, so an upgrade that prints differently fails there first). No printf for
 * whole numbers below 1e15 and for multiples of 1e-8 from 1e-4 to 1e7. Returns the length. */
size_t script_json_format_number(double d, char *out);

#endif
