/* From the configuration table to the options of each room. */
#include "settings.h"

#include "log.h"

void settings_apply_logging(const config *cfg)
{
    log_configure((log_level)config_enum(cfg, CFG_LOG_LEVEL),
                  (log_format)config_enum(cfg, CFG_LOG_FORMAT),
                  stdout);
}

static const char *lookup(void *user, const char *name)
{
    return config_lookup(user, name);
}

void settings_script_options(const config *cfg, const char *pools_dir, const char *scripts_dir,
                             script_options *out)
{
    script_options_defaults(out);
    out->pools_dir = pools_dir;
    out->scripts_dir = scripts_dir;
    out->instruction_budget = (long long)config_int(cfg, CFG_SCRIPT_INSTRUCTION_BUDGET);
    out->memory_limit_bytes = (size_t)config_int(cfg, CFG_SCRIPT_MEMORY_LIMIT_MB) * 1024 * 1024;
    out->max_body_bytes = (size_t)config_int(cfg, CFG_POOL_MAX_RESPONSE_BYTES);
    out->env = lookup;
    out->env_user = (void *)cfg;
}

void settings_http_options(const config *cfg, http_options *out)
{
    http_options_defaults(out);
    out->timeout_ms = (long)(config_number(cfg, CFG_POOL_REQUEST_TIMEOUT) * 1000);
    out->connect_timeout_ms = (long)(config_number(cfg, CFG_POOL_CONNECT_TIMEOUT) * 1000);
    out->max_body_bytes = (size_t)config_int(cfg, CFG_POOL_MAX_RESPONSE_BYTES);
    out->libcurl_only = config_enum(cfg, CFG_HTTP_CLIENT) == 1;  /* "libcurl" */
}

script_runtime *settings_load_scripts(const config *cfg, const char *pools_dir,
                                      const char *scripts_dir, bool strict)
{
    script_options opts;
    settings_script_options(cfg, pools_dir, scripts_dir, &opts);
    char err[2048];
    script_runtime *rt = script_runtime_new(&opts, err, sizeof err);
    if (!rt) {
        log_message(LOG_ERROR, strict ? "script_reload_failed" : "script_load_failed", "%s", err);
        return NULL;
    }
    size_t errors = script_load_error_count(rt);
    for (size_t i = 0; i < errors; i++)
        log_message(LOG_ERROR, strict ? "script_reload_failed" : "script_load_failed", "%s",
                    script_load_error(rt, i));
    if (strict && errors) {
        script_runtime_free(rt);
        return NULL;
    }
    return rt;
}
