/* <POOL>_TLS_VERIFY (see pool_tls.h). */
#include "pool_tls.h"

#include <ctype.h>
#include <stdio.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "log.h"

bool pool_tls_verify_off(const script_runtime *rt, const char *pool)
{
    char name[128];
    size_t n = 0;
    for (const char *s = pool; *s && n < sizeof name - sizeof "_TLS_VERIFY"; s++)
        name[n++] = isalnum((unsigned char)*s) ? (char)toupper((unsigned char)*s) : '_';
    snprintf(name + n, sizeof name - n, "_TLS_VERIFY");
    const char *v = script_env_value(rt, name);
    return v && (strcasecmp(v, "false") == 0 || strcasecmp(v, "0") == 0 ||
                 strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0);
}

bool pool_tls_warn_if_off(const script_runtime *rt, const char *pool)
{
    if (!pool_tls_verify_off(rt, pool))
        return false;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "pool", pool);
    cJSON_AddStringToObject(f, "message",
                            "TLS certificate and host name verification is off for this pool "
                            "(its _TLS_VERIFY setting): anyone on the path can answer for it");
    log_emit(LOG_WARNING, "pool_tls_verify_off", f);
    return true;
}
