/* sd_notify(3) from libsystemd: the datagrams to $NOTIFY_SOCKET, a no-op when it is unset. */
#include "sd_notify.h"

#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "log.h"

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    sd_notify(0, "WATCHDOG=1");
}

void service_notify_start(service_notify *s, struct ev_loop *loop)
{
    s->loop = loop;
    s->watching = false;
    uint64_t usec = 0;
    /* > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is this process). */
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return;
    double every = (double)usec / 2e6; /* half the deadline, as sd_watchdog_enabled(3) says */
    ev_timer_init(&s->watchdog, on_watchdog, every, every);
    ev_timer_start(loop, &s->watchdog);
    s->watching = true;
    sd_notify(0, "WATCHDOG=1");
    log_message(LOG_INFO, "systemd_watchdog", "WATCHDOG=1 every %.3f s", every);
}

void service_notify_ready(service_notify *s, const char *status)
{
    (void)s;
    char msg[512];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    sd_notify(0, msg);
}

void service_notify_stopping(service_notify *s)
{
    (void)s;
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing polls in flight");
}

void service_notify_stop(service_notify *s)
{
    if (s->watching)
        ev_timer_stop(s->loop, &s->watchdog);
    s->watching = false;
}
