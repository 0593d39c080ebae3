/*
 * bench/notify_latency.c: the commit clock of bench/notify_latency.py.
 *
 * LISTENs on one channel and prints, for every notification, the CLOCK_MONOTONIC time at
 * which it arrived (nanoseconds) and its payload:  "<ns>\t<payload>\n". PostgreSQL delivers
 * a NOTIFY only when the transaction that sent it commits, so the arrival time is the
 * award's commit time plus one loopback hop, on the same clock the Node receivers use
 * (process.hrtime). libpq, because the benchmark is stdlib-only Python and a hand-written
 * protocol parser is not an option.
 *
 *   notify_latency CONNINFO CHANNEL      (prints "listening\n" once LISTEN has taken effect)
 *
 * Built by bench/notify_latency.py with `cc ... $(pkg-config --cflags --libs libpq)`.
 * Runs until its standard input closes or the connection fails.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int listen_on(PGconn *conn, const char *channel)
{
    char *ident = PQescapeIdentifier(conn, channel, strlen(channel));
    if (ident == NULL)
        return -1;
    char sql[512];
    snprintf(sql, sizeof sql, "LISTEN %s", ident);
    PQfreemem(ident);
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok ? 0 : -1;
}

/* Prints every notification libpq has parsed; the time is taken once per read, before. */
static void drain(PGconn *conn, long long arrived)
{
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) {
        printf("%lld\t%s\n", arrived, n->extra);
        PQfreemem(n);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONNINFO CHANNEL\n", argv[0]);
        return 2;
    }
    PGconn *conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK || listen_on(conn, argv[2]) != 0) {
        fprintf(stderr, "notify_latency: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    struct pollfd fds[2] = {{.fd = PQsocket(conn), .events = POLLIN},
                            {.fd = STDIN_FILENO, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents)  /* the harness closed our stdin: done */
            break;
        long long arrived = monotonic_ns();
        if (!PQconsumeInput(conn)) {
            fprintf(stderr, "notify_latency: %s", PQerrorMessage(conn));
            break;
        }
        drain(conn, arrived);
    }
    PQfinish(conn);
    return 0;
}
