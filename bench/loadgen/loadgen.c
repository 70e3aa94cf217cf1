/*
 * loadgen: the HTTP/1.1 load generator of the data-plane benchmark (test/bench/data-plane.ts).
 * One thread, epoll, keep-alive connections, no pipelining. Prints one JSON object on stdout.
 *
 *   --mode rate  open loop: --rate R requests/s spread over --conns N connections (connection c
 *                sends its k-th request at t0 + (c + k*N)/R). A request whose connection is still
 *                busy is sent as soon as it is free, and every latency is measured from the time
 *                the request was *meant* to be sent, so a stall shows up as the latency it caused
 *                to every request scheduled behind it (no coordinated omission).
 *   --mode sat   closed loop: N connections, each sends its next request when the last answer is
 *                in; req/s is the saturation throughput. Latency from the actual send time.
 *   --mode conn  N concurrent slots, each: connect, one request with "Connection: close", read the
 *                answer, close, again. Rate of new connections (each carrying one request).
 *   --mode bulk  one connection, back-to-back GETs of --path (a large file); body bytes per second.
 *
 * Latencies go into a log-bucketed histogram (64 sub-buckets per power of two: ±0.8 %).
 * --warmup S runs the same load first, not recorded. --cpu-stat FILE (repeatable): a cgroup v2
 * cpu.stat read at the start and end of the recorded period; the usage_usec deltas are reported.
 * "stalled" (sat and conn): requests still unanswered at the end that were sent over a second
 * before, warm-up ones included — no other count sees a request that never finished in time to
 * time out (a hung slot of the s4 bench counted nothing).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define MAX_CPU_STATS 8
#define HEAD_MAX 16384
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_SIZE (2 * SUB + 58 * SUB)

enum mode { M_RATE, M_SAT, M_CONN, M_BULK };
enum pstate { P_HEAD, P_BODY_LEN, P_BODY_EOF, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER };
enum phase { PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

typedef struct {
  uint64_t counts[HIST_SIZE];
  uint64_t n, max;
  double sum;
} hist_t;

typedef struct {
  int fd;
  int idx;
  int connecting;
  int busy;
  uint64_t k;          /* rate mode: index of the next request on this connection */
  double intended;     /* when the in-flight request was meant to go (rate) or went (others) */
  double started;      /* conn mode: when the connect began */
  double retry_at;     /* a failed connect is retried from this time */
  size_t wpos;         /* bytes of the request written */
  int counted;         /* the in-flight request was sent during the recorded period */
  /* response parser */
  enum pstate ps;
  char head[HEAD_MAX];
  size_t headlen;
  char line[64];
  size_t linelen;
  uint64_t remaining;
  int status;
  int close_after;
  double stalled_for;  /* unanswered at the end for this long (counted in "stalled"); 0: not stalled */
} conn_t;

static struct {
  enum mode mode;
  const char *host;
  int port;
  const char *path;
  const char *host_header;
  int conns;
  double rate;
  double duration;
  double warmup;
  double timeout;
  const char *cpu_stats[MAX_CPU_STATS];
  int ncpu;
} opt = {M_RATE, "127.0.0.1", 80, "/", NULL, 4, 1000, 10, 0, 10, {0}, 0};

static struct sockaddr_in dst;
static char request[1024];
static size_t request_len;
static int ep;
static conn_t *conns;
static hist_t hist;
static hist_t lag; /* rate mode: how late requests went out (generator or connection busy) */
static enum phase phase = PH_WARMUP;
static double t0, t_measure, t_end, t_stop;
static uint64_t ok_2xx, st_3xx, st_4xx, st_5xx, st_other, errors, timeouts, reconnects, connect_errors, body_bytes, stalled;
static uint64_t cpu_before[MAX_CPU_STATS], cpu_after[MAX_CPU_STATS];
static char read_buf[256 * 1024];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --mode rate|sat|conn|bulk --host IP --port N [--path P] [--host-header H]\n"
          "               [--conns N] [--rate R] [--duration S] [--warmup S] [--timeout S] [--cpu-stat FILE]...\n");
  exit(2);
}

/* ---- histogram ---- */

static unsigned bucket_of(uint64_t v) {
  if (v < 2 * SUB) return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - SUB_BITS;
  unsigned idx = 2 * SUB + (msb - SUB_BITS - 1) * SUB + (unsigned)((v >> shift) - SUB);
  return idx < HIST_SIZE ? idx : HIST_SIZE - 1;
}

/* middle of the values a bucket holds */
static double value_of(unsigned idx) {
  if (idx < 2 * SUB) return idx;
  unsigned octave = (idx - 2 * SUB) / SUB;
  unsigned sub = (idx - 2 * SUB) % SUB + SUB;
  unsigned shift = octave + 1;
  return (double)((uint64_t)sub << shift) + (double)((uint64_t)1 << shift) / 2.0;
}

static void hist_add(hist_t *h, double seconds) {
  double us = seconds * 1e6;
  uint64_t v = us <= 0 ? 0 : (uint64_t)(us + 0.5);
  h->counts[bucket_of(v)]++;
  h->n++;
  h->sum += (double)v;
  if (v > h->max) h->max = v;
}

static double hist_pct(const hist_t *h, double q) {
  if (h->n == 0) return 0;
  uint64_t want = (uint64_t)ceil(q * (double)h->n);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_SIZE; i++) {
    seen += h->counts[i];
    if (seen >= want) {
      double v = value_of(i);
      return v > (double)h->max ? (double)h->max : v;
    }
  }
  return (double)h->max;
}

/* ---- cgroup cpu.stat ---- */

static uint64_t read_usage(const char *file) {
  FILE *f = fopen(file, "r");
  if (!f) return 0;
  char key[64];
  unsigned long long val;
  uint64_t out = 0;
  while (fscanf(f, "%63s %llu", key, &val) == 2) {
    if (strcmp(key, "usage_usec") == 0) {
      out = val;
      break;
    }
  }
  fclose(f);
  return out;
}

static void read_cpu(uint64_t *into) {
  for (int i = 0; i < opt.ncpu; i++) into[i] = read_usage(opt.cpu_stats[i]);
}

/* ---- connections ---- */

static void ep_set(conn_t *c, uint32_t events, int op) {
  struct epoll_event ev = {.events = events, .data = {.ptr = c}};
  if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static void reset_parser(conn_t *c) {
  c->ps = P_HEAD;
  c->headlen = 0;
  c->linelen = 0;
  c->remaining = 0;
  c->status = 0;
  c->close_after = 0;
}

static void open_conn(conn_t *c, double now) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->connecting = 1;
  c->busy = 0;
  c->wpos = 0;
  c->started = now;
  reset_parser(c);
  if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
    if (phase == PH_MEASURE) connect_errors++;
    close(c->fd);
    c->fd = -1;
    c->connecting = 0;
    c->retry_at = now + 0.001;
    return;
  }
  ep_set(c, EPOLLOUT | EPOLLIN, EPOLL_CTL_ADD);
}

static void close_conn(conn_t *c) {
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->connecting = 0;
  c->busy = 0;
}

/* The connection failed or the peer closed it: the request in flight (if any) is an error. */
static void fail_conn(conn_t *c, double now) {
  if (c->busy && c->counted) errors++;
  close_conn(c);
  if (phase == PH_MEASURE || phase == PH_WARMUP) {
    if (opt.mode != M_CONN) reconnects++;
    open_conn(c, now);
  }
}

static void flush_request(conn_t *c, double now) {
  while (c->wpos < request_len) {
    ssize_t n = write(c->fd, request + c->wpos, request_len - c->wpos);
    if (n < 0) {
      if (errno == EAGAIN) {
        ep_set(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        return;
      }
      fail_conn(c, now);
      return;
    }
    c->wpos += (size_t)n;
  }
}

static void send_request(conn_t *c, double intended, double now) {
  c->busy = 1;
  c->intended = intended;
  c->counted = phase == PH_MEASURE;
  if (c->counted && opt.mode == M_RATE) hist_add(&lag, now - intended);
  c->wpos = 0;
  reset_parser(c);
  flush_request(c, now);
}

static void on_response(conn_t *c, double now) {
  if (c->counted) {
    int s = c->status;
    if (s >= 200 && s < 300) ok_2xx++;
    else if (s >= 300 && s < 400) st_3xx++;
    else if (s >= 400 && s < 500) st_4xx++;
    else if (s >= 500 && s < 600) st_5xx++;
    else st_other++;
    hist_add(&hist, now - (opt.mode == M_CONN ? c->started : c->intended));
  }
  c->busy = 0;
  reset_parser(c);
  if (opt.mode == M_CONN) {
    close_conn(c);
    if (phase == PH_MEASURE || phase == PH_WARMUP) open_conn(c, now);
  } else if (c->close_after) {
    close_conn(c);
    if (phase == PH_MEASURE || phase == PH_WARMUP) {
      reconnects++;
      open_conn(c, now);
    }
  }
}

/* Headers complete in c->head[0..len): status, framing, connection. Returns -1 if unparsable. */
static int parse_head(conn_t *c, size_t len) {
  char *h = c->head;
  h[len - 1] = '\0';
  if (strncmp(h, "HTTP/1.", 7) != 0 || len < 12) return -1;
  int http10 = h[7] == '0';
  c->status = atoi(h + 9);
  int chunked = 0, has_len = 0, keep_alive = 0;
  uint64_t clen = 0;
  for (char *line = strstr(h, "\r\n"); line; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, "content-length:", 15) == 0) {
      has_len = 1;
      clen = strtoull(line + 15, NULL, 10);
    } else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
      char *eol = strstr(line, "\r\n");
      size_t n = eol ? (size_t)(eol - line) : strlen(line);
      if (memmem(line, n, "chunked", 7)) chunked = 1;
    } else if (strncasecmp(line, "connection:", 11) == 0) {
      char *eol = strstr(line, "\r\n");
      size_t n = eol ? (size_t)(eol - line) : strlen(line);
      if (memmem(line, n, "close", 5)) c->close_after = 1;
      if (memmem(line, n, "keep-alive", 10)) keep_alive = 1;
    }
  }
  if (http10 && !keep_alive) c->close_after = 1;
  if ((c->status >= 100 && c->status < 200) || c->status == 204 || c->status == 304) {
    c->ps = P_HEAD; /* no body (1xx: the real answer follows) */
    return c->status >= 200 ? 1 : 0;
  }
  if (chunked) {
    c->ps = P_CHUNK_SIZE;
    c->linelen = 0;
  } else if (has_len) {
    c->ps = P_BODY_LEN;
    c->remaining = clen;
    if (clen == 0) return 1;
  } else {
    c->ps = P_BODY_EOF;
    c->close_after = 1;
  }
  return 0;
}

/* Feed received bytes. Returns 1 when a response completed, 0 if more is needed, -1 on error. */
static int feed(conn_t *c, const char *p, size_t n, size_t *used) {
  size_t i = 0;
  while (i < n) {
    switch (c->ps) {
    case P_HEAD: {
      size_t room = HEAD_MAX - c->headlen;
      size_t take = n - i < room ? n - i : room;
      if (take == 0) return -1;
      size_t old = c->headlen;
      memcpy(c->head + c->headlen, p + i, take);
      c->headlen += take;
      size_t from = old >= 3 ? old - 3 : 0;
      char *end = memmem(c->head + from, c->headlen - from, "\r\n\r\n", 4);
      if (!end) {
        i += take;
        break;
      }
      size_t hlen = (size_t)(end - c->head) + 4;
      i += hlen - old;
      c->headlen = 0;
      int r = parse_head(c, hlen);
      if (r < 0) return -1;
      if (r == 1) {
        *used = i;
        return 1;
      }
      break;
    }
    case P_BODY_LEN: {
      size_t take = (uint64_t)(n - i) < c->remaining ? n - i : (size_t)c->remaining;
      if (phase == PH_MEASURE) body_bytes += take;
      c->remaining -= take;
      i += take;
      if (c->remaining == 0) {
        *used = i;
        return 1;
      }
      break;
    }
    case P_BODY_EOF:
      if (phase == PH_MEASURE) body_bytes += n - i;
      i = n;
      break;
    case P_CHUNK_SIZE:
    case P_CHUNK_CRLF:
    case P_TRAILER: {
      char ch = p[i++];
      if (ch != '\n') {
        if (c->linelen + 1 >= sizeof c->line) {
          if (c->ps != P_TRAILER) return -1;
        } else {
          c->line[c->linelen++] = ch;
        }
        break;
      }
      if (c->linelen && c->line[c->linelen - 1] == '\r') c->linelen--;
      c->line[c->linelen] = '\0';
      size_t len = c->linelen;
      c->linelen = 0;
      if (c->ps == P_CHUNK_CRLF) {
        if (len != 0) return -1;
        c->ps = P_CHUNK_SIZE;
      } else if (c->ps == P_CHUNK_SIZE) {
        char *endp;
        unsigned long long size = strtoull(c->line, &endp, 16);
        if (endp == c->line) return -1;
        if (size == 0) {
          c->ps = P_TRAILER;
        } else {
          c->ps = P_CHUNK_DATA;
          c->remaining = size;
        }
      } else if (len == 0) { /* end of trailers */
        *used = i;
        return 1;
      }
      break;
    }
    case P_CHUNK_DATA: {
      size_t take = (uint64_t)(n - i) < c->remaining ? n - i : (size_t)c->remaining;
      if (phase == PH_MEASURE) body_bytes += take;
      c->remaining -= take;
      i += take;
      if (c->remaining == 0) c->ps = P_CHUNK_CRLF;
      break;
    }
    }
  }
  *used = i;
  return 0;
}

static void on_readable(conn_t *c, double now) {
  ssize_t n = read(c->fd, read_buf, sizeof read_buf);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    if (n == 0 && c->busy && c->ps == P_BODY_EOF) {
      on_response(c, now);
      if (c->fd >= 0) fail_conn(c, now); /* closed: reopen */
      return;
    }
    if (n == 0 && !c->busy && opt.mode != M_CONN) {
      /* idle keep-alive connection closed by the peer: not an error, reopen */
      close_conn(c);
      reconnects++;
      open_conn(c, now);
      return;
    }
    fail_conn(c, now);
    return;
  }
  if (!c->busy) { /* bytes nobody asked for */
    if (phase == PH_MEASURE) errors++;
    fail_conn(c, now);
    return;
  }
  size_t used = 0;
  int r = feed(c, read_buf, (size_t)n, &used);
  if (r < 0 || (r == 1 && used != (size_t)n)) {
    fail_conn(c, now);
    return;
  }
  if (r == 1) on_response(c, now);
}

static void on_writable(conn_t *c, double now) {
  if (c->connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      if (phase == PH_MEASURE) connect_errors++;
      close_conn(c);
      c->retry_at = now + 0.001;
      return;
    }
    c->connecting = 0;
    ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
    if (opt.mode == M_CONN) send_request(c, now, now);
    return;
  }
  if (c->busy && c->wpos < request_len) {
    flush_request(c, now);
    if (c->fd >= 0 && c->wpos == request_len) ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
  }
}

/* ---- scheduling ---- */

static double intended_of(const conn_t *c) {
  return t0 + ((double)c->idx + (double)c->k * opt.conns) / opt.rate;
}

/* Start what is due; returns the next time something is due (or now + 50 ms). */
static double schedule(double now) {
  double next = now + 0.05;
  for (int i = 0; i < opt.conns; i++) {
    conn_t *c = &conns[i];
    if (c->fd >= 0 && c->connecting && now - c->started > opt.timeout) {
      if (phase == PH_MEASURE) connect_errors++;
      close_conn(c);
      c->retry_at = now;
    }
    if (c->fd < 0) {
      if (phase != PH_MEASURE && phase != PH_WARMUP) continue;
      if (c->retry_at <= now) open_conn(c, now);
      else if (c->retry_at < next) next = c->retry_at;
      continue;
    }
    if (c->busy) {
      if (now - c->intended > opt.timeout && !c->connecting) {
        if (c->counted) timeouts++;
        c->counted = 0;
        fail_conn(c, now);
      }
      continue;
    }
    if (c->connecting || opt.mode == M_CONN) continue;
    if (phase != PH_MEASURE && phase != PH_WARMUP) continue;
    if (opt.mode == M_RATE) {
      double due = intended_of(c);
      if (due >= t_end) continue;
      if (due <= now) {
        c->k++;
        send_request(c, due, now);
      } else if (due < next) {
        next = due;
      }
    } else {
      send_request(c, now, now);
    }
  }
  return next;
}

static int any_busy(void) {
  for (int i = 0; i < opt.conns; i++)
    if (conns[i].busy) return 1;
  return 0;
}

static void advance_phase(double now) {
  if (phase == PH_WARMUP && now >= t_measure) {
    phase = PH_MEASURE;
    read_cpu(cpu_before);
    /* requests already in flight were sent during warm-up: not recorded */
  }
  if (phase == PH_MEASURE && now >= t_end) {
    read_cpu(cpu_after);
    if (opt.mode == M_RATE) {
      phase = PH_DRAIN;
      t_stop = now + opt.timeout;
    } else {
      phase = PH_DONE;
      t_stop = now;
    }
  }
  if (phase == PH_DRAIN && (!any_busy() || now >= t_stop)) {
    for (int i = 0; i < opt.conns; i++)
      if (conns[i].busy && conns[i].counted) timeouts++;
    phase = PH_DONE;
  }
}

static void wait_events(double until) {
  struct epoll_event evs[256];
  double now = now_s();
  double d = until - now;
  if (d < 0) d = 0;
  struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - (double)(time_t)d) * 1e9)};
  int n = epoll_pwait2(ep, evs, 256, &ts, NULL);
  if (n < 0 && errno == ENOSYS) n = epoll_wait(ep, evs, 256, (int)ceil(d * 1000));
  if (n < 0) {
    if (errno == EINTR) return;
    die("epoll_wait");
  }
  now = now_s();
  for (int i = 0; i < n; i++) {
    conn_t *c = evs[i].data.ptr;
    if (c->fd < 0) continue;
    uint32_t e = evs[i].events;
    if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP) && (c->connecting || c->wpos < request_len)) {
      on_writable(c, now);
      if (c->fd < 0) continue;
    }
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now);
  }
}

/* ---- main ---- */

static void print_json(double measured) {
  uint64_t done = ok_2xx + st_3xx + st_4xx + st_5xx + st_other;
  const char *names[] = {"rate", "sat", "conn", "bulk"};
  printf("{\"mode\":\"%s\",\"conns\":%d,\"target_rate\":%.0f,\"duration_s\":%.3f,", names[opt.mode], opt.conns,
         opt.mode == M_RATE ? opt.rate : 0.0, measured);
  printf("\"requests\":%llu,\"ok\":%llu,\"status\":{\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu},",
         (unsigned long long)done, (unsigned long long)ok_2xx, (unsigned long long)ok_2xx, (unsigned long long)st_3xx,
         (unsigned long long)st_4xx, (unsigned long long)st_5xx, (unsigned long long)st_other);
  printf("\"errors\":%llu,\"timeouts\":%llu,\"connect_errors\":%llu,\"reconnects\":%llu,\"stalled\":%llu,", (unsigned long long)errors,
         (unsigned long long)timeouts, (unsigned long long)connect_errors, (unsigned long long)reconnects, (unsigned long long)stalled);
  printf("\"rps\":%.1f,\"body_bytes\":%llu,\"gbit_s\":%.4f,", measured > 0 ? (double)done / measured : 0.0,
         (unsigned long long)body_bytes, measured > 0 ? (double)body_bytes * 8 / measured / 1e9 : 0.0);
  printf("\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%llu,\"mean\":%.1f},",
         hist_pct(&hist, 0.50), hist_pct(&hist, 0.90), hist_pct(&hist, 0.99), hist_pct(&hist, 0.999),
         (unsigned long long)hist.max, hist.n ? hist.sum / (double)hist.n : 0.0);
  printf("\"send_lag_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%llu},", hist_pct(&lag, 0.50), hist_pct(&lag, 0.99),
         (unsigned long long)lag.max);
  printf("\"cpu_usec\":[");
  for (int i = 0; i < opt.ncpu; i++) printf("%s%llu", i ? "," : "", (unsigned long long)(cpu_after[i] - cpu_before[i]));
  /* each stalled request's connection: its local port (to find it in ss and the proxies' state), what went and came */
  printf("],\"stalled_conns\":[");
  int first = 1;
  for (int i = 0; i < opt.conns; i++) {
    conn_t *c = &conns[i];
    if (c->stalled_for <= 0) continue;
    struct sockaddr_in local = {0};
    socklen_t len = sizeof local;
    int port = c->fd >= 0 && getsockname(c->fd, (struct sockaddr *)&local, &len) == 0 ? ntohs(local.sin_port) : 0;
    printf("%s{\"port\":%d,\"waited_s\":%.3f,\"request_bytes_sent\":%zu,\"response_head_bytes\":%zu,\"connecting\":%d}", first ? "" : ",", port,
           c->stalled_for, c->wpos, c->headlen, c->connecting);
    first = 0;
  }
  printf("]}\n");
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"mode", required_argument, 0, 'm'},     {"host", required_argument, 0, 'h'},
      {"port", required_argument, 0, 'p'},     {"path", required_argument, 0, 'P'},
      {"host-header", required_argument, 0, 'H'}, {"conns", required_argument, 0, 'c'},
      {"rate", required_argument, 0, 'r'},     {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'w'},   {"timeout", required_argument, 0, 't'},
      {"cpu-stat", required_argument, 0, 's'}, {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
    case 'm':
      if (!strcmp(optarg, "rate")) opt.mode = M_RATE;
      else if (!strcmp(optarg, "sat")) opt.mode = M_SAT;
      else if (!strcmp(optarg, "conn")) opt.mode = M_CONN;
      else if (!strcmp(optarg, "bulk")) opt.mode = M_BULK;
      else usage();
      break;
    case 'h': opt.host = optarg; break;
    case 'p': opt.port = atoi(optarg); break;
    case 'P': opt.path = optarg; break;
    case 'H': opt.host_header = optarg; break;
    case 'c': opt.conns = atoi(optarg); break;
    case 'r': opt.rate = atof(optarg); break;
    case 'd': opt.duration = atof(optarg); break;
    case 'w': opt.warmup = atof(optarg); break;
    case 't': opt.timeout = atof(optarg); break;
    case 's':
      if (opt.ncpu == MAX_CPU_STATS) usage();
      opt.cpu_stats[opt.ncpu++] = optarg;
      break;
    default: usage();
    }
  }
  if (opt.mode == M_BULK) opt.conns = 1;
  if (opt.conns < 1 || opt.conns > MAX_CONNS || opt.port < 1 || opt.port > 65535 || opt.duration <= 0 ||
      opt.duration > 3600 || opt.warmup < 0 || opt.warmup > 600 || opt.timeout <= 0 || (opt.mode == M_RATE && opt.rate <= 0))
    usage();
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)opt.port);
  if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) usage();
  int w = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: palisade-loadgen\r\n%s\r\n", opt.path,
                   opt.host_header ? opt.host_header : opt.host, opt.mode == M_CONN ? "Connection: close\r\n" : "");
  if (w < 0 || (size_t)w >= sizeof request) usage();
  request_len = (size_t)w;
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake at the scheduled send time, not up to 50 us later */

  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  conns = calloc((size_t)opt.conns, sizeof *conns);
  if (!conns) die("calloc");
  double start = now_s();
  for (int i = 0; i < opt.conns; i++) {
    conns[i].idx = i;
    conns[i].fd = -1;
    if (opt.mode != M_CONN) open_conn(&conns[i], start);
  }
  /* keep-alive modes: every connection up before the clock starts (bounded wait) */
  if (opt.mode != M_CONN) {
    for (;;) {
      int pending = 0;
      for (int i = 0; i < opt.conns; i++) {
        if (conns[i].fd < 0 && conns[i].retry_at <= now_s()) open_conn(&conns[i], now_s());
        if (conns[i].fd < 0 || conns[i].connecting) pending++;
      }
      if (!pending) break;
      if (now_s() - start > opt.timeout) {
        fprintf(stderr, "loadgen: %d of %d connections to %s:%d not established within %.0f s\n", pending, opt.conns, opt.host,
                opt.port, opt.timeout);
        return 1;
      }
      wait_events(now_s() + 0.01);
    }
  }
  t0 = now_s();
  t_measure = t0 + opt.warmup;
  t_end = t_measure + opt.duration;
  phase = opt.warmup > 0 ? PH_WARMUP : PH_MEASURE;
  if (phase == PH_MEASURE) read_cpu(cpu_before);
  if (opt.mode == M_CONN)
    for (int i = 0; i < opt.conns; i++) open_conn(&conns[i], t0);
  while (phase != PH_DONE) {
    double now = now_s();
    advance_phase(now);
    if (phase == PH_DONE) break;
    double next = schedule(now);
    if (phase == PH_WARMUP && t_measure < next) next = t_measure;
    if (phase == PH_MEASURE && t_end < next) next = t_end;
    if (phase == PH_DRAIN && t_stop < next) next = t_stop;
    wait_events(next);
  }
  if (opt.mode == M_SAT || opt.mode == M_CONN) {
    double end = now_s();
    for (int i = 0; i < opt.conns; i++)
      if (conns[i].busy && end - (opt.mode == M_CONN ? conns[i].started : conns[i].intended) > 1.0) {
        stalled++;
        conns[i].stalled_for = end - (opt.mode == M_CONN ? conns[i].started : conns[i].intended);
      }
  }
  print_json(opt.duration);
  for (int i = 0; i < opt.conns; i++) close_conn(&conns[i]);
  return 0;
}
