/* db_values.c: the text and numbers PostgreSQL refuses are recognised, and JSON text is made
 * storable without changing anything that was valid (issue 12, docs/reliability.md,
 * "Database faults"). */
#include "check.h"
#include "db_values.h"

#include <math.h>
#include <stdlib.h>

static void expect_clean(const char *in, const char *want, unsigned want_bits)
{
    unsigned bits = 99;
    char *out = dbv_json_clean(in, &bits);
    CHECK(out && strcmp(out, want) == 0, "clean(%s) = %s, expected %s", in, out ? out : "NULL",
          want);
    CHECK(bits == want_bits, "clean(%s): bits %u, expected %u", in, bits, want_bits);
    free(out);
}

int main(void)
{
    /* valid text passes unchanged, multi-byte sequences included */
    const char *valid = "{\"a\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\"}";
    expect_clean(valid, valid, 0);
    expect_clean("", "", 0);
    /* invalid bytes: each one U+FFFD (stray continuation, overlong, cut sequence, 0xFF) */
    expect_clean("\"\xFF\"", "\"\xEF\xBF\xBD\"", DBV_INVALID_UTF8);
    expect_clean("\"a\x80z\"", "\"a\xEF\xBF\xBDz\"", DBV_INVALID_UTF8);
    expect_clean("\"\xC0\xAF\"", "\"\xEF\xBF\xBD\xEF\xBF\xBD\"", DBV_INVALID_UTF8);
    expect_clean("\"\xE2\x82\"", "\"\xEF\xBF\xBD\xEF\xBF\xBD\"", DBV_INVALID_UTF8);
    expect_clean("\"\xED\xA0\x80\"", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"", DBV_INVALID_UTF8);
    /* \u0000 goes; an escaped backslash before "u0000" and other escapes stay */
    expect_clean("{\"a\":\"x\\u0000y\"}", "{\"a\":\"xy\"}", DBV_NUL_ESCAPE);
    expect_clean("\"\\\\u0000\"", "\"\\\\u0000\"", 0);
    expect_clean("\"\\\\\\u0000\"", "\"\\\\\"", DBV_NUL_ESCAPE);
    expect_clean("\"\\u00001\\n\\\"\"", "\"1\\n\\\"\"", DBV_NUL_ESCAPE);
    expect_clean("\"\\u0001\"", "\"\\u0001\"", 0);
    expect_clean("\"\\u000\"", "\"\\u000\"", 0);
    expect_clean("\"\\\xFF\"", "\"\\\xEF\xBF\xBD\"", DBV_INVALID_UTF8);
    expect_clean("\"\xFF\\u0000\"", "\"\xEF\xBF\xBD\"", DBV_INVALID_UTF8 | DBV_NUL_ESCAPE);
    expect_clean("\\", "\\", 0);
    unsigned bits = 7;
    CHECK(dbv_json_clean(NULL, &bits) == NULL && bits == 0, "NULL in");

    /* NUMERIC(30,8): 22 digits before the point */
    CHECK(dbv_double_fits_numeric(0), "0");
    CHECK(dbv_double_fits_numeric(-123456789.12345678), "negative");
    CHECK(dbv_double_fits_numeric(nextafter(1e22, 0)), "the largest double below 1e22");
    CHECK(!dbv_double_fits_numeric(1e22), "1e22");
    CHECK(!dbv_double_fits_numeric(-1e30), "-1e30");
    CHECK(!dbv_double_fits_numeric(INFINITY), "inf");
    CHECK(!dbv_double_fits_numeric(NAN), "nan");
    /* decimal text as PostgreSQL's numeric input takes it */
    static const char *const good[] = {"0", "-1.5", "+2", ".5", "5.", "1e25", "1E-3", "12.5e+2"};
    static const char *const bad[] = {"", "-", ".", "1e", "0x10", "inf", "nan", "1.2.3", " 1",
                                      "1 ", "e5", "1e+"};
    double x;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(dbv_decimal_text(good[i], &x), "decimal %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!dbv_decimal_text(bad[i], &x), "not decimal: '%s'", bad[i]);
    CHECK(dbv_decimal_text("1e25", &x) && !dbv_double_fits_numeric(x), "1e25 is out of range");
    return check_summary();
}
