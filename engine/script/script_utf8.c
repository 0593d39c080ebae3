/* UTF-8 validation (RFC 3629, the table of well-formed byte sequences in Unicode's chapter 3).
 *
 * Why here and not in the decoders: yajl can check strings but only on its fast path, which
 * hands anything it is unsure of to cJSON, and cJSON passes bytes through as they are. One
 * pass before both decoders makes them agree by construction. A response body is mostly
 * ASCII, so 16 bytes are tested at a time until a byte with the high bit set turns up.
 */
#include "script_utf8.h"

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define HIGH_BITS 0x8080808080808080u

/* The first offset from i that is not in a run of 16-byte blocks of ASCII (or the offset of
 * the last, shorter block). A poll's body is checked in about 150 instructions this way. */
static size_t skip_ascii(const unsigned char *s, size_t i, size_t len)
{
#if defined(__SSE2__)
    while (len - i >= 16 && !_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(s + i))))
        i += 16;
#else
    while (len - i >= 16) {
        uint64_t a, b;
        memcpy(&a, s + i, sizeof a);
        memcpy(&b, s + i + 8, sizeof b);
        if ((a | b) & HIGH_BITS)
            break;
        i += 16;
    }
#endif
    return i;
}

/* The length of the well-formed sequence at s (left bytes available), or 0. */
static size_t sequence_length(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* below: overlong */
        else if (c == 0xed)
            hi = 0x9f; /* above: a UTF-16 surrogate */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above: past U+10FFFF */
    } else {
        return 0; /* a continuation byte first, C0/C1 (overlong) or F5..FF */
    }
    if (left < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

size_t script_utf8_invalid_at(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        i = skip_ascii(s, i, len);
        if (i == len)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = sequence_length(s + i, len - i);
        if (!n)
            return i;
        i += n;
    }
    return len;
}
