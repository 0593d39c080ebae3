/* Fuzz target: the .env parser and the settings built from it (engine/config.c,
 * engine/settings.c). Input: the bytes of a .env file, any bytes.
 *
 * The file is written to a private temporary directory and read by config_load as the engine
 * reads --env-file; a configuration that loads then goes through everything the modes derive
 * from it (config_to_json, every table setting as text, the script and HTTP options, the
 * lookups scripts make, config_redact_url of DATABASE_URL). An invalid file must give
 * NULL and a reason, never a crash.
 *
 * Variables already in the process environment win over the file (as in the engine): run the
 * fuzzer with a clean environment (tests/fuzz/run.sh does, env -i). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "http.h"
#include "script.h"
#include "settings.h"

static char dir[] = "/tmp/fuzz_config.XXXXXX", path[256];

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

static void make_dir(void)
{
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/m2p.env", dir);
    atexit(remove_dir);
}

static void exercise(const config *c)
{
    cJSON *j = config_to_json(c);
    char *text = cJSON_PrintUnformatted(j);
    free(text);
    cJSON_Delete(j);
    for (int id = 0; id < CFG_COUNT; id++)
        (void)config_string(c, (config_id)id);
    script_options so;
    settings_script_options(c, "pools", "scripts", &so);
    if (so.env) {
        so.env(so.env_user, "BTC_TO_ADVC_RATE");
        so.env(so.env_user, "DATABASE_URL"); /* never given to scripts */
    }
    http_options ho;
    settings_http_options(c, &ho);
    free(config_redact_url(config_lookup(c, "DATABASE_URL")));
    (void)config_lookup(c, "ZPOOL_URL");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        make_dir();
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    char err[4096];
    config *c = config_load(path, err, sizeof err);
    if (c)
        exercise(c);
    else if (!err[0])
        abort(); /* a refusal always says why */
    config_free(c);
    return 0;
}
