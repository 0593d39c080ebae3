/* m2p-sim entry point: options, the loopback listening socket, signals, clean shutdown. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: m2p-sim [--port N] [--seed S] [--payout-interval SECONDS] [--clock real|manual]\n"
          "               [--zpool-rate-limit SECONDS] [--quiet] [--threads N] [--epoch UNIX]\n"
          "               [--rplant-div2 N]\n"
          "Simulates the cpu-pool, rplant and zpool HTTP APIs on 127.0.0.1. See tests/sim/README.md.\n");
}

static bool parse_double_arg(const char *s, double min, double max, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < min || v > max) return false;
  *out = v;
  return true;
}

static bool parse_ll_arg(const char *s, long long min, long long max, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return false;
  *out = v;
  return true;
}

static int parse_args(int argc, char **argv) {
  static const struct option opts[] = {
      {"port", required_argument, NULL, 'p'},
      {"seed", required_argument, NULL, 's'},
      {"payout-interval", required_argument, NULL, 'i'},
      {"clock", required_argument, NULL, 'c'},
      {"zpool-rate-limit", required_argument, NULL, 'z'},
      {"quiet", no_argument, NULL, 'q'},
      {"threads", required_argument, NULL, 't'},
      {"epoch", required_argument, NULL, 'e'},
      {"rplant-div2", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  g_cfg.port = 0;
  snprintf(g_cfg.seed, sizeof g_cfg.seed, "1");
  g_cfg.interval_ms = 30000;
  g_cfg.manual_clock = false;
  g_cfg.zpool_rate_limit = 0;
  g_cfg.quiet = false;
  g_cfg.threads = 2;
  g_cfg.epoch = (int64_t)time(NULL);
  g_cfg.rplant_div2 = 8;
  int ch;
  long long ll;
  double d;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'p':
      if (!parse_ll_arg(optarg, 0, 65535, &ll)) goto bad;
      g_cfg.port = (int)ll;
      break;
    case 's': {
      char *end;
      errno = 0;
      if (optarg[0] == '-' || optarg[0] == '\0') goto bad;
      unsigned long long seed = strtoull(optarg, &end, 10);
      if (errno || *end) goto bad;
      snprintf(g_cfg.seed, sizeof g_cfg.seed, "%llu", seed);
      break;
    }
    case 'i':
      if (!parse_double_arg(optarg, 0.001, 1e6, &d)) goto bad;
      g_cfg.interval_ms = (int64_t)llround(d * 1000.0);
      break;
    case 'c':
      if (strcmp(optarg, "real") == 0)
        g_cfg.manual_clock = false;
      else if (strcmp(optarg, "manual") == 0)
        g_cfg.manual_clock = true;
      else
        goto bad;
      break;
    case 'z':
      if (!parse_double_arg(optarg, 0, 1e6, &d)) goto bad;
      g_cfg.zpool_rate_limit = d;
      break;
    case 'q':
      g_cfg.quiet = true;
      break;
    case 't':
      if (!parse_ll_arg(optarg, 1, 64, &ll)) goto bad;
      g_cfg.threads = (int)ll;
      break;
    case 'e':
      if (!parse_ll_arg(optarg, 0, INT64_C(4000000000), &ll)) goto bad;
      g_cfg.epoch = (int64_t)ll;
      break;
    case 'd': /* at least 8: the schedule's amounts are whole 1e-8 units */
      if (!parse_ll_arg(optarg, 8, 18, &ll)) goto bad;
      g_cfg.rplant_div2 = (int)ll;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
    continue;
  bad:
    fprintf(stderr, "m2p-sim: invalid value '%s' for an option\n", optarg);
    usage(stderr);
    return -1;
  }
  if (optind < argc) {
    fprintf(stderr, "m2p-sim: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return -1;
  }
  return 0;
}

static int listen_loopback(int port, int *bound_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4096) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  *bound_port = ntohs(sa.sin_port);
  return fd;
}

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv) != 0) return 2;

  /* Every thread (MHD's, the release thread) inherits this mask: only sigwait() sees them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  sim_clock_init();
  state_init();

  int port = 0;
  int lfd = listen_loopback(g_cfg.port, &port);
  if (lfd < 0) {
    fprintf(stderr, "m2p-sim: cannot listen on 127.0.0.1:%d: %s\n", g_cfg.port, strerror(errno));
    state_free();
    return 1;
  }
  struct MHD_Daemon *d = server_start(lfd);
  if (!d) {
    fprintf(stderr, "m2p-sim: cannot start the HTTP daemon\n");
    close(lfd);
    state_free();
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  sim_log("seed=%s payout-interval=%" PRId64 " ms clock=%s zpool-rate-limit=%g s threads=%d epoch=%" PRId64
          " rplant-div2=%d",
          g_cfg.seed, g_cfg.interval_ms, g_cfg.manual_clock ? "manual" : "real", g_cfg.zpool_rate_limit,
          g_cfg.threads, g_cfg.epoch, g_cfg.rplant_div2);

  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  sim_log("signal %d: stopping", sig);
  server_stop(d);
  state_free();
  sched_cache_free();
  return 0;
}
