/* Telling systemd how the service is doing (Type=notify, WatchdogSec=).
 *
 * READY=1 once the engine polls, WATCHDOG=1 from the loop every half WATCHDOG_USEC (so a
 * loop that hangs is restarted), STOPPING=1 when a shutdown begins. Without systemd (no
 * NOTIFY_SOCKET in the environment) every call does nothing.
 */
#ifndef M2P_SD_NOTIFY_H
#define M2P_SD_NOTIFY_H

#include <ev.h>
#include <stdbool.h>

typedef struct service_notify {
    struct ev_loop *loop;
    ev_timer watchdog;
    bool watching;
} service_notify;

/* Starts the watchdog pings on `loop` when systemd asks for them (WATCHDOG_USEC). */
void service_notify_start(service_notify *s, struct ev_loop *loop);
/* READY=1, with a STATUS= line for `systemctl status`. */
void service_notify_ready(service_notify *s, const char *status);
/* STOPPING=1: systemd waits for the exit instead of counting a slow stop as a hang. */
void service_notify_stopping(service_notify *s);
/* Stops the pings (before the loop is destroyed). */
void service_notify_stop(service_notify *s);

#endif
