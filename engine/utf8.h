/* UTF-8 checks for text that came from outside (pool answers, players' rows) on its way to
 * places that require valid UTF-8 (PostgreSQL text, JSON for browsers) or to a terminal. */
#ifndef M2P_UTF8_H
#define M2P_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the valid UTF-8 sequence at s, or 0 when the byte at s does not start one
 * (a stray continuation byte, an overlong form, a surrogate, a code point above U+10FFFF, a
 * sequence cut by the end of the string). *cp gets the code point when cp is not NULL. */
size_t utf8_sequence(const char *s, uint32_t *cp);

/* In place: every byte that is not part of a valid sequence becomes '?'. */
void utf8_scrub(char *s);

#endif
