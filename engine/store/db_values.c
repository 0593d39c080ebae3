/* Values PostgreSQL cannot take, made storable or recognised (see db_values.h). */
#include "db_values.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

char *dbv_json_clean(const char *json, unsigned *changed)
{
    unsigned what = 0;
    if (changed)
        *changed = 0;
    if (!json)
        return NULL;
    size_t len = strlen(json);
    /* worst case: every byte invalid, each becoming 3 bytes */
    char *out = malloc(3 * len + 1), *o = out;
    if (!out)
        return NULL;
    const char *s = json;
    while (*s) {
        if (s[0] == '\\' && s[1]) {
            /* an escape: \u0000 goes, any other (\\ included) is copied whole, so that the
             * "u0000" after an escaped backslash is never mistaken for one */
            if (s[1] == 'u' && strncmp(s + 2, "0000", 4) == 0) {
                what |= DBV_NUL_ESCAPE;
                s += 6;
                continue;
            }
            *o++ = *s++;
        }
        size_t n = (unsigned char)*s < 0x80 ? 1 : utf8_sequence(s, NULL);
        if (n == 0) {
            memcpy(o, REPLACEMENT, 3);
            o += 3;
            s++;
            what |= DBV_INVALID_UTF8;
            continue;
        }
        memcpy(o, s, n);
        o += n;
        s += n;
    }
    *o = '\0';
    if (changed)
        *changed = what;
    return out;
}

bool dbv_decimal_text(const char *text, double *out)
{
    const char *s = text;
    if (*s == '+' || *s == '-')
        s++;
    size_t whole = strspn(s, "0123456789");
    s += whole;
    size_t frac = 0;
    if (*s == '.') {
        frac = strspn(s + 1, "0123456789");
        s += 1 + frac;
    }
    if (whole + frac == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        size_t exp = strspn(s, "0123456789");
        if (exp == 0)
            return false;
        s += exp;
    }
    if (*s)
        return false;
    *out = strtod(text, NULL);
    return true;
}

bool dbv_double_fits_numeric(double x) { return isfinite(x) && fabs(x) < 1e22; }
