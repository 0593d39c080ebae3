/* UTF-8 validation (see utf8.h): RFC 3629's well-formed sequences only. */
#include "utf8.h"

size_t utf8_sequence(const char *text, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n;
    uint32_t c, min;
    if (s[0] < 0x80) {
        n = 1, c = s[0], min = 0;
    } else if ((s[0] & 0xE0) == 0xC0) {
        n = 2, c = s[0] & 0x1F, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3, c = s[0] & 0x0F, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    if (cp)
        *cp = c;
    return n;
}

bool utf8_valid(const char *s)
{
    while (*s) {
        if ((unsigned char)*s < 0x80) {
            s++;
            continue;
        }
        size_t n = utf8_sequence(s, NULL);
        if (!n)
            return false;
        s += n;
    }
    return true;
}

void utf8_scrub(char *s)
{
    while (*s) {
        size_t n = utf8_sequence(s, NULL);
        if (n == 0)
            *s++ = '?';
        else
            s += n;
    }
}

bool utf8_terminal_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F;
}
