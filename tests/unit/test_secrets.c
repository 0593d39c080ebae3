/* Unit tests of engine/secrets.c: the one scrubber of remembered secrets and URL user
 * information, for text, buffers and cJSON trees (what log_emit prints). */
#include "check.h"
#include "log.h"
#include "secrets.h"

#include <stdlib.h>
#include <string.h>

#define CHECK_SCRUB(text, want)                                                               \
    do {                                                                                      \
        char *got_ = secrets_scrub(text);                                                     \
        CHECK(got_ && strcmp(got_, (want)) == 0, "scrub(\"%s\") = \"%s\", want \"%s\"",       \
              (text), got_ ? got_ : "(null)", (want));                                        \
        free(got_);                                                                           \
    } while (0)

static void test_userinfo(void)
{
    secrets_forget_all();
    CHECK_SCRUB("http://u:pw@host/p?q=1", "http://***@host/p?q=1");
    CHECK_SCRUB("see ftp://user@h and wss://a:b/c?d@e/f end",
                "see ftp://***@h and wss://***@e/f end");
    CHECK_SCRUB("\"http://u:p@h\"", "\"http://***@h\"");
    CHECK_SCRUB("http://ab@h", "http://**@h"); /* shorter than ***: the length is kept */
    CHECK_SCRUB("http://host/path", "http://host/path");
    CHECK_SCRUB("no url at all: a@b", "no url at all: a@b");
    CHECK(secrets_scrub(NULL) == NULL, "NULL in, NULL out");
}

static void test_remembered(void)
{
    secrets_forget_all();
    secrets_remember("s3cr@t/x");
    secrets_remember("");
    secrets_remember(NULL);
    CHECK_SCRUB("token s3cr@t/x here", "token *** here");
    CHECK_SCRUB("encoded s3cr%40t%2Fx", "encoded ***");
    CHECK_SCRUB("twice s3cr@t/xs3cr@t/x", "twice ******");
    /* a secret containing another is replaced whole */
    secrets_remember("s3cr");
    CHECK_SCRUB("a s3cr@t/x b s3cr c", "a *** b *** c");

    secrets_forget_all();
    secrets_remember_conninfo("postgresql://m2p:p%40ss%20w0rd@db/game");
    CHECK_SCRUB("password p@ss w0rd and p%40ss%20w0rd", "password *** and ***");
    secrets_remember_conninfo("host=db password='q w\\'e' dbname=x");
    CHECK_SCRUB("got q w'e", "got ***");
    CHECK_SCRUB("libpq quoted \"q w\" piece", "libpq quoted \"***\" piece");
    secrets_forget_all();
    CHECK_SCRUB("q w'e", "q w'e");
}

static void test_buffer_and_json(void)
{
    secrets_forget_all();
    secrets_remember("hunter2-s3cret");
    char buf[24];
    snprintf(buf, sizeof buf, "x hunter2-s3cret y");
    secrets_scrub_buffer(buf, sizeof buf);
    CHECK(strcmp(buf, "x *** y") == 0, "buffer: \"%s\"", buf);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "url", "http://u:hunter2-s3cret@h/");
    cJSON *inner = cJSON_AddObjectToObject(o, "nested");
    cJSON_AddStringToObject(inner, "hunter2-s3cret", "as a key");
    cJSON *list = cJSON_AddArrayToObject(inner, "list");
    cJSON_AddItemToArray(list, cJSON_CreateString("in a list: hunter2-s3cret"));
    cJSON_AddNumberToObject(o, "n", 1);
    secrets_scrub_json(o);
    char *text = cJSON_PrintUnformatted(o);
    CHECK(text && !strstr(text, "hunter2"), "json: %s", text ? text : "(null)");
    CHECK_CONTAINS(text, "\"url\":\"http://***@h/\"");
    CHECK_CONTAINS(text, "\"in a list: ***\"");
    CHECK_CONTAINS(text, "\"n\":1");
    free(text);
    cJSON_Delete(o);
    secrets_scrub_json(NULL);
}

/* log_emit scrubs every record, whoever wrote the field (a script, another setting). */
static void test_log_records(void)
{
    secrets_forget_all();
    secrets_remember("hunter2-s3cret");
    for (int format = LOG_FORMAT_JSON; format <= LOG_FORMAT_TEXT; format++) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        log_configure(LOG_INFO, (log_format)format, f);
        cJSON *fields = cJSON_CreateObject();
        cJSON_AddStringToObject(fields, "url", "http://cpu:pw12345@pool/api?addr=");
        cJSON_AddStringToObject(fields, "engine", "e-hunter2-s3cret");
        log_emit(LOG_WARNING, "cpu_pool_url_query_dropped", fields);
        log_message(LOG_ERROR, "oops", "value %s", "hunter2-s3cret");
        fclose(f);
        CHECK(out && !strstr(out, "hunter2") && !strstr(out, "pw12345"), "log: %s",
              out ? out : "(null)");
        CHECK_CONTAINS(out, "http://***@pool/api?addr=");
        free(out);
    }
    log_configure(LOG_INFO, LOG_FORMAT_JSON, NULL);
    secrets_forget_all();
}

int main(void)
{
    test_userinfo();
    test_remembered();
    test_buffer_and_json();
    test_log_records();
    return check_summary();
}
