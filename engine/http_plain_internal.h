/* Internals shared by engine/http_plain.c (requests, scheduling, the public API) and
 * engine/http_plain_conn.c (connections). Not for any other file.
 */
#ifndef M2P_HTTP_PLAIN_INTERNAL_H
#define M2P_HTTP_PLAIN_INTERNAL_H

#include <sys/socket.h>

#include <ev.h>

#include "http_plain.h"
#include "http_plain_dns.h"
#include "http_plain_request.h"
#include "http_plain_response.h"

#define PLAIN_MAX_ADDRS 8
/* A body buffer larger than this is not kept by a finished request (as in http.c). */
#define PLAIN_KEEP_BODY_BYTES ((size_t)64 << 10)
#define PLAIN_IDLE_REQUESTS 512

typedef struct plain_host plain_host;
typedef struct plain_conn plain_conn;
typedef struct plain_req plain_req;

struct plain_host {
    char *name;                 /* as in the URL; numeric or a DNS name */
    int port;
    char host_line[280];        /* "Host: name[:port]\r\n" as libcurl writes it */
    int numeric;
    struct sockaddr_storage addrs[PLAIN_MAX_ADDRS];
    socklen_t addr_lens[PLAIN_MAX_ADDRS];
    size_t n_addrs;
    ev_tstamp resolved_at;
    int resolving;
    size_t n_conns;             /* open or connecting */
    plain_conn *idle;           /* most recently used first */
    plain_host *next;
};

enum { CONN_CONNECTING, CONN_BUSY, CONN_IDLE };

struct plain_conn {
    ev_io io;
    http_plain *p;
    plain_host *h;
    int fd, state, reused, last_errno;
    int unrefd;                 /* idle: its watcher does not keep the loop running */
    size_t addr;                /* the address being tried */
    ev_tstamp connect_started, last_used;
    plain_req *req;
    plain_conn *next;           /* idle list */
    plain_conn *all_prev, *all_next;
};

enum { REQ_PENDING, REQ_ACTIVE, REQ_DEFERRED };

struct plain_req {
    http_plain *p;
    plain_host *h;
    plain_conn *conn;
    http_done_fn done;
    void *user;
    int state, connected, retried, got_bytes;
    int connect_armed;          /* the armed timer is the connect deadline */
    ev_tstamp started;
    long timeout_ms;
    ev_timer timer;
    plain_buf out;              /* the request's bytes */
    size_t out_off;             /* sent so far */
    plain_response resp;
    const char *error;          /* deferred failure */
    int timed_out;
    char error_buf[300];
    plain_req *prev, *next;     /* in flight */
    plain_req *qprev, *qnext;   /* pending (or deferred, qnext only) */
};

struct http_plain {
    struct ev_loop *loop;
    http_options opts;
    plain_host *hosts;
    plain_conn *conns;          /* every connection */
    size_t n_conns;
    plain_req *reqs;
    size_t in_flight;
    plain_req *pending, *pending_tail;
    plain_req *deferred, *deferred_tail;
    plain_req *spare;           /* finished requests kept for reuse, linked by next */
    size_t n_spare;
    ev_timer kick;              /* reports deferred completions, pumps */
    plain_dns *dns;
    int in_get, dispatching, free_requested, closing, pumping, pump_again;
};

/* http_plain.c */
void plain_enter(http_plain *p);
void plain_leave(http_plain *p);
void plain_pump(http_plain *p);
void plain_pending_push(http_plain *p, plain_req *r, int front);
void plain_req_finish(plain_req *r, const char *error, int timed_out);
void plain_req_fail(plain_req *r, const char *msg);
void plain_req_arm(plain_req *r, ev_tstamp connect_started);

/* http_plain_conn.c */
plain_conn *plain_conn_open(http_plain *p, plain_host *h, plain_req *r);
void plain_conn_close(plain_conn *c);
void plain_conn_assign(plain_conn *c, plain_req *r);
void plain_conn_idle(plain_conn *c);
void plain_idle_remove(plain_conn *c);
/* 1 when an idle connection has nothing to read (no bytes, no EOF, no error). */
int plain_conn_quiet(plain_conn *c);

#endif
