/* UTF-8 validation of text from outside (part of the Lua room): RFC 8259 makes JSON UTF-8,
 * and neither JSON decoder checks it (script_json.c checks first, for both). */
#ifndef M2P_SCRIPT_UTF8_H
#define M2P_SCRIPT_UTF8_H

#include <stddef.h>

/* The offset of the first byte that does not begin or continue a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF, no
 * sequence cut off by the end), or `len` when all `len` bytes are valid UTF-8. */
size_t script_utf8_invalid_at(const char *text, size_t len);

#endif
