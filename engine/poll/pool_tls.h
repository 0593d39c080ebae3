/* Whether TLS verification is off for a pool's requests: the operator's <POOL>_TLS_VERIFY.
 *
 * Read by C from the configuration, never from the pool script's table: a script (which a
 * pool operator or a contributor may write) can read the setting with m2p.env() but has no
 * field that turns verification off. <POOL> is the pool's name upper-cased, every character
 * other than a letter or digit as "_" (cpu-pool -> CPU_POOL_TLS_VERIFY). The shipped pools'
 * variables are in the settings table (validated booleans); for another pool's, only
 * "false", "0", "no" or "off" (any case) turn it off, anything else keeps it on.
 */
#ifndef M2P_POOL_TLS_H
#define M2P_POOL_TLS_H

#include <stdbool.h>

#include "script.h"

/* true when `pool`'s requests go without certificate and host name verification. */
bool pool_tls_verify_off(const script_runtime *rt, const char *pool);

/* Logs pool_tls_verify_off (warning) for `pool` when that is so; returns the same answer. */
bool pool_tls_warn_if_off(const script_runtime *rt, const char *pool);

#endif
