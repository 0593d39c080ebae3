/* Fuzz target: the --script-test fixture loader and runner (engine/cli/scripttest.c) on a
 * hostile fixture file. Input: the bytes of one fixture (*.json), any bytes.
 *
 * The input is written to a private temporary directory and run by scripttest_run as
 * `m2p-engine --script-test FILE` runs it, against the shipped pools/ and scripts/ (run from
 * the repository root). A fixture that fails is an expected outcome; a crash, a sanitizer
 * report or a hang is not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "script.h"
#include "scripttest.h"

static char dir[] = "/tmp/fuzz_fixture.XXXXXX", path[256];
static FILE *devnull;

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

static void init(void)
{
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/case.json", dir);
    atexit(remove_dir);
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull)
        init();
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    script_options o;
    script_options_defaults(&o);
    o.pools_dir = "pools";
    o.scripts_dir = "scripts";
    const char *paths[] = {path};
    scripttest_run(&o, paths, 1, devnull);
    /* scripttest_run leaves warnings on stderr (what main() set): keep the fuzzer's output
     * readable */
    log_configure(LOG_ERROR, LOG_FORMAT_TEXT, devnull);
    return 0;
}
