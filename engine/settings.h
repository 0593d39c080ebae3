/* Engine settings derived from the configuration table, shared by every mode. */
#ifndef M2P_SETTINGS_H
#define M2P_SETTINGS_H

#include "config.h"
#include "http.h"
#include "script.h"

/* Applies LOG_LEVEL and LOG_FORMAT to the logger. */
void settings_apply_logging(const config *cfg);

/* Script runtime options: directories, budgets, body cap, m2p.env() -> config_lookup(). */
void settings_script_options(const config *cfg, const char *pools_dir, const char *scripts_dir,
                             script_options *out);

/* HTTP options: timeouts, body cap, User-Agent. */
void settings_http_options(const config *cfg, http_options *out);

/* A new script generation; logs every pool that failed to load (script_load_failed). NULL
 * with a logged error when the rules cannot load. `strict`: any load error is a failure
 * (reload keeps the running generation instead). */
script_runtime *settings_load_scripts(const config *cfg, const char *pools_dir,
                                      const char *scripts_dir, bool strict);

#endif
