/* pg_fixture.h: a throw-away PostgreSQL server for tests (header-only, C11 + POSIX + libpq).
 *
 *     #include "pg_fixture.h"
 *
 *     pg_fixture pg;
 *     if (pg_fixture_start(&pg) != 0) {          // initdb + start, waits until it accepts
 *         fprintf(stderr, "%s\n", pg.error);      // why (PostgreSQL missing, initdb failed...)
 *         return 1;
 *     }
 *     PGconn *c = PQconnectdb(pg.conninfo);       // superuser "m2p", database "postgres", no
 *                                                 // password (trust on the socket)
 *     pg_fixture_sql(&pg, "CREATE TABLE t (x int)");  // blocking helper, 0 / -1 + pg.error
 *     char v[64];
 *     pg_fixture_value(&pg, "SELECT count(*) FROM t", v, sizeof v);  // first value, 0 / -1
 *     pg_fixture_ctl(&pg, "restart");             // "restart" | "stop" | "start" (pg_ctl -w,
 *                                                 //  stop/restart in fast mode)
 *     pg_fixture_stop(&pg);                       // stop the server, delete everything
 *
 * What it sets up: a fresh cluster in a mkdtemp directory under $TMPDIR (or /tmp), owned by
 * the user the server runs as; the server listens on a Unix socket in that directory only
 * (listen_addresses='', unix_socket_directories=DIR), fsync off. pg.conninfo is
 * "host=DIR port=PORT user=m2p dbname=postgres" and pg.url the same as a postgresql:// URL.
 * pg_hba.conf: user m2p is trusted; every other role must log in with a SCRAM password, so
 * a test needing password authentication creates one:
 *     pg_fixture_sql(&pg, "CREATE ROLE app LOGIN PASSWORD 's3cret'");
 *     ... "host=DIR port=PORT user=app password=s3cret dbname=postgres"
 *
 * Running as root: PostgreSQL refuses to run as root, so initdb/pg_ctl run (fork + setuid)
 * as the "postgres" OS user when it exists, else "nobody". As another user, they run as you.
 * Binaries: $M2P_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin, else $PATH.
 * The server log is DIR/server.log (pg_fixture_stop prints its tail to stderr when
 * pg.keep_log_on_stop is set, and the directory is kept when $M2P_PG_KEEP is set).
 * A test that dies without calling pg_fixture_stop (abort, sanitizer report, kill -9) does
 * not leave a server behind: a small watchdog process forked by pg_fixture_start waits for
 * the test process to go away and then stops the server and deletes the directory.
 */
#ifndef M2P_TEST_PG_FIXTURE_H
#define M2P_TEST_PG_FIXTURE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

typedef struct pg_fixture {
    char dir[200];        /* temporary directory: data/, sockets, logs */
    char datadir[256];
    char bindir[256];     /* "" = rely on $PATH */
    int port;
    char conninfo[512];   /* superuser, key=value form */
    char url[512];        /* the same as a postgresql:// URL */
    char error[1024];     /* why the last call failed */
    uid_t uid;            /* the server's user */
    gid_t gid;
    bool switch_user;
    bool running;
    bool keep_log_on_stop;
    int watchdog_fd;      /* write end of the pipe the watchdog waits on, -1: none */
    pid_t watchdog;
} pg_fixture;

static void pg_fixture_err_(pg_fixture *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void pg_fixture_err_(pg_fixture *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->error, sizeof f->error, fmt, ap);
    va_end(ap);
}

static void pg_fixture_find_bindir_(pg_fixture *f)
{
    const char *env = getenv("M2P_PG_BINDIR");
    f->bindir[0] = '\0';
    if (env && *env) {
        snprintf(f->bindir, sizeof f->bindir, "%s", env);
        return;
    }
    DIR *dir = opendir("/usr/lib/postgresql");
    if (!dir)
        return;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end || v <= best)
            continue;
        char path[300];
        snprintf(path, sizeof path, "/usr/lib/postgresql/%.64s/bin/pg_ctl", e->d_name);
        if (access(path, X_OK) == 0) {
            best = (int)v;
            snprintf(f->bindir, sizeof f->bindir, "/usr/lib/postgresql/%.64s/bin", e->d_name);
        }
    }
    closedir(dir);
}

/* Runs bindir/prog argv... as the server's user, output appended to DIR/fixture.log.
 * Returns the exit status (0 = success), -1 if it could not run. */
static int pg_fixture_run_(pg_fixture *f, const char *prog, const char *const *args)
{
    char path[320];
    if (f->bindir[0])
        snprintf(path, sizeof path, "%s/%s", f->bindir, prog);
    else
        snprintf(path, sizeof path, "%s", prog);
    const char *argv[32];
    int n = 0;
    /* The full path, not the bare name: initdb and pg_ctl find their sibling programs
     * (postgres) from argv[0], and with a bare name they search $PATH, where Debian does
     * not put /usr/lib/postgresql/N/bin. */
    argv[n++] = path;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s/fixture.log", f->dir);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        pg_fixture_err_(f, "%s: %s", logpath, strerror(errno));
        return -1;
    }
    if (f->switch_user && fchown(logfd, f->uid, f->gid) != 0) {
        /* best effort: the child writes through the inherited descriptor anyway */
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        pg_fixture_err_(f, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        if (f->switch_user) {
            if (setgroups(0, NULL) != 0 || setgid(f->gid) != 0 || setuid(f->uid) != 0)
                _exit(126);
        }
        if (chdir(f->dir) != 0)
            _exit(126);
        /* the fixture decides everything; no PG* variable of the caller leaks in */
        unsetenv("PGDATA");
        unsetenv("PGPORT");
        unsetenv("PGHOST");
        unsetenv("PGUSER");
        unsetenv("PGDATABASE");
        unsetenv("PGOPTIONS");
        setenv("LC_ALL", "C", 1);
        if (f->bindir[0])
            execv(path, (char *const *)argv);
        else
            execvp(prog, (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            pg_fixture_err_(f, "waitpid: %s", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char tail[600] = "";
    FILE *lf = fopen(logpath, "r");
    if (lf) {
        fseek(lf, 0, SEEK_END);
        long size = ftell(lf);
        fseek(lf, size > (long)sizeof tail - 1 ? size - (long)sizeof tail + 1 : 0, SEEK_SET);
        size_t got = fread(tail, 1, sizeof tail - 1, lf);
        tail[got] = '\0';
        fclose(lf);
    }
    pg_fixture_err_(f, "%s exited with %d%s (see %s): ...%s", path, code,
                    code == 127 ? " (not found: install postgresql or set M2P_PG_BINDIR)" : "",
                    logpath, tail);
    return code;
}

static int pg_fixture_write_file_(pg_fixture *f, const char *path, const char *text,
                                  const char *mode)
{
    FILE *out = fopen(path, mode);
    if (!out) {
        pg_fixture_err_(f, "%s: %s", path, strerror(errno));
        return -1;
    }
    fputs(text, out);
    fclose(out);
    if (f->switch_user && chown(path, f->uid, f->gid) != 0) {
        pg_fixture_err_(f, "chown %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* pg_ctl start | stop | restart (waits; stop and restart in fast mode). */
static int pg_fixture_ctl(pg_fixture *f, const char *action)
{
    char logfile[300], opts[800];
    snprintf(logfile, sizeof logfile, "%s/server.log", f->dir);
    snprintf(opts, sizeof opts,
             "-c listen_addresses='' -c unix_socket_directories=%s -p %d -c fsync=off "
             "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
             f->dir, f->port);
    int rc;
    if (strcmp(action, "start") == 0 || strcmp(action, "restart") == 0) {
        const char *args[] = {"-D", f->datadir, "-l", logfile, "-w", "-t", "120", "-s",
                              "-m", "fast", "-o", opts, action, NULL};
        rc = pg_fixture_run_(f, "pg_ctl", args);
    } else if (strcmp(action, "stop") == 0) {
        const char *args[] = {"-D", f->datadir, "-w", "-t", "120", "-s", "-m", "fast", "stop", NULL};
        rc = pg_fixture_run_(f, "pg_ctl", args);
    } else {
        pg_fixture_err_(f, "unknown action %s", action);
        return -1;
    }
    if (rc == 0)
        f->running = strcmp(action, "stop") != 0;
    return rc == 0 ? 0 : -1;
}

/* Runs one SQL command (or several separated by ;) over a blocking superuser connection. */
static int pg_fixture_sql(pg_fixture *f, const char *sql)
{
    PGconn *c = PQconnectdb(f->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        pg_fixture_err_(f, "connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        pg_fixture_err_(f, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* The first column of the first row of a query (over a blocking superuser connection),
 * "" when there is no row or it is NULL. */
static int pg_fixture_value(pg_fixture *f, const char *sql, char *out, size_t outlen)
{
    if (outlen)
        out[0] = '\0';
    PGconn *c = PQconnectdb(f->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        pg_fixture_err_(f, "connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        pg_fixture_err_(f, "%s: %s", sql, PQresultErrorMessage(r));
    else if (PQntuples(r) > 0 && PQnfields(r) > 0 && outlen)
        snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static int pg_fixture_rm_(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void pg_fixture_stop(pg_fixture *f);

/* Forks the watchdog: it blocks reading a pipe whose write end only the test process holds;
 * end of file means the test is gone. Then it cleans up whatever is left. */
static void pg_fixture_watchdog_(pg_fixture *f)
{
    int p[2];
    f->watchdog_fd = -1;
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_IGN); /* a ^C to the test's process group must not skip cleanup */
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        close(p[1]);
        if (p[0] != 3) {
            dup2(p[0], 3);
            close(p[0]);
        }
        close_range(4, ~0U, 0); /* nothing of the test (its sockets...) stays open here */
        char c;
        while (read(3, &c, 1) < 0 && errno == EINTR)
            ;
        struct stat st;
        if (f->dir[0] && stat(f->datadir, &st) == 0 && !getenv("M2P_PG_KEEP")) {
            f->running = true;
            f->keep_log_on_stop = false;
            pg_fixture_stop(f);
        }
        _exit(0);
    }
    close(p[0]);
    f->watchdog_fd = p[1];
    f->watchdog = pid;
}

static void pg_fixture_stop(pg_fixture *f)
{
    if (f->running) {
        const char *args[] = {"-D", f->datadir, "-w", "-t", "60", "-s", "-m", "immediate",
                              "stop", NULL};
        pg_fixture_run_(f, "pg_ctl", args);
        f->running = false;
    }
    if (f->keep_log_on_stop) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -n 40 '%s/server.log' >&2", f->dir);
        if (system(cmd) != 0) {
            /* nothing to show */
        }
    }
    if (f->dir[0] && !getenv("M2P_PG_KEEP"))
        nftw(f->dir, pg_fixture_rm_, 16, FTW_DEPTH | FTW_PHYS);
    f->dir[0] = '\0';
    if (f->watchdog_fd >= 0) { /* all done: let the watchdog go */
        close(f->watchdog_fd);
        f->watchdog_fd = -1;
        while (waitpid(f->watchdog, NULL, 0) < 0 && errno == EINTR)
            ;
    }
}

static int pg_fixture_start(pg_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->watchdog_fd = -1;
    pg_fixture_find_bindir_(f);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw)
            pw = getpwnam("nobody");
        if (!pw) {
            pg_fixture_err_(f, "running as root and neither a postgres nor a nobody user exists");
            return -1;
        }
        f->uid = pw->pw_uid;
        f->gid = pw->pw_gid;
        f->switch_user = true;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/m2p-pg-XXXXXX", tmp && *tmp && strlen(tmp) < 60 ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        pg_fixture_err_(f, "mkdtemp %s: %s", f->dir, strerror(errno));
        f->dir[0] = '\0';
        return -1;
    }
    if (f->switch_user && chown(f->dir, f->uid, f->gid) != 0) {
        pg_fixture_err_(f, "chown %s: %s", f->dir, strerror(errno));
        pg_fixture_stop(f);
        return -1;
    }
    snprintf(f->datadir, sizeof f->datadir, "%s/data", f->dir);
    f->port = 40000 + (int)(getpid() % 20000);
    snprintf(f->conninfo, sizeof f->conninfo, "host=%s port=%d user=m2p dbname=postgres",
             f->dir, f->port);
    snprintf(f->url, sizeof f->url, "postgresql://m2p@/postgres?host=%s&port=%d", f->dir,
             f->port);
    if (getenv("M2P_PG_VERBOSE"))
        fprintf(stderr, "pg_fixture: %s (bin %s)\n", f->dir, f->bindir[0] ? f->bindir : "$PATH");

    const char *initdb[] = {"-D", f->datadir, "-U", "m2p", "-A", "trust", "-E", "UTF8",
                            "--no-locale", "--no-sync", NULL};
    if (pg_fixture_run_(f, "initdb", initdb) != 0) {
        char why[sizeof f->error];
        memcpy(why, f->error, sizeof why);
        pg_fixture_stop(f);
        memcpy(f->error, why, sizeof why);
        return -1;
    }
    char hba[300];
    snprintf(hba, sizeof hba, "%s/pg_hba.conf", f->datadir);
    int rc = pg_fixture_write_file_(f, hba,
                                    "# written by tests/unit/pg_fixture.h\n"
                                    "local all m2p trust\n"
                                    "local all all scram-sha-256\n",
                                    "w");
    if (rc == 0) {
        pg_fixture_watchdog_(f);
        rc = pg_fixture_ctl(f, "start");
    }
    if (rc != 0) {
        char why[sizeof f->error];
        memcpy(why, f->error, sizeof why);
        f->running = true; /* pg_ctl may have started it before failing to wait */
        pg_fixture_stop(f);
        memcpy(f->error, why, sizeof why);
        return -1;
    }
    return 0;
}

#endif
