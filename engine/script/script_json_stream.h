/* The fast path of JSON decoding (part of the Lua room): yajl events straight onto the Lua
 * stack, no cJSON tree. See script_json_stream.c for when it gives up. */
#ifndef M2P_SCRIPT_JSON_STREAM_H
#define M2P_SCRIPT_JSON_STREAM_H

#include <stddef.h>

#include <lua.h>

/* Pushes the value of `len` bytes of JSON and sets *type to its JSON type ("object", "array",
 * "string", "number", "boolean", "null"); returns 0. Returns -1 with the stack as it was when
 * it cannot be sure to give what cJSON would (any parse error among others): the caller then
 * decodes with cJSON, which also says what is wrong. A duplicate key in an object is one
 * of those cases. The text is not checked for UTF-8: the caller does that first
 * (script_json.c), invalid bytes in strings are passed through. */
int script_json_stream_push(lua_State *L, const char *text, size_t len, const char **type);

#endif
