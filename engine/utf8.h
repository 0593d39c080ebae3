/* UTF-8 checks for text that came from outside (pool answers, players' rows) on its way to
 * places that require valid UTF-8 (PostgreSQL text, JSON for browsers) or to a terminal. */
#ifndef M2P_UTF8_H
#define M2P_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the valid UTF-8 sequence at s, or 0 when the byte at s does not start one
 * (a stray continuation byte, an overlong form, a surrogate, a code point above U+10FFFF, a
 * sequence cut by the end of the string). *cp gets the code point when cp is not NULL. */
size_t utf8_sequence(const char *s, uint32_t *cp);

/* Whether the whole NUL-terminated string is valid UTF-8. */
bool utf8_valid(const char *s);

/* In place: every byte that is not part of a valid sequence becomes '?'. */
void utf8_scrub(char *s);

/* Whether a terminal may act on code point `cp`: C0 and C1 controls, DEL, and the
 * bidirectional marks, overrides and isolates that reorder what follows them on the line. The
 * command-line output and the text log both keep these off the screen. */
bool utf8_terminal_control(uint32_t cp);

#endif
