/*
 * The bench's load generator for churn and round trips, in C on epoll, so that it costs a small
 * part of what the server it drives costs, and the server, not the load, sets the pace. No tool
 * found does this exact work: tcpkali and wrk neither half-close nor check an echo to its end.
 *
 *   loadgen <churn|rtt> <port> <seconds> <connections> <warmup-seconds>
 *
 * churn: each of <connections> loops connects, sends 64 bytes, half-closes (shutdown SHUT_WR),
 *        reads the echo to EOF, checks it byte for byte, closes, and starts again.
 * rtt:   <connections> connections each send 64 bytes and wait for their echo, again and again.
 *
 * Counts only after the warm-up. Prints one JSON line: the units counted in the window, errors,
 * and this process's own CPU time in the window (user + system, ms), with latency percentiles for
 * rtt. Prints {"measuring":true} when the counted window opens. Bounded: it stops by itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 64
#define MAX_SAMPLES 4000000

enum state { CONNECTING, READING };

struct conn {
  int fd;
  enum state state;
  int received;
  int64_t sent_at_ns;
  unsigned char seed;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_ms(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec * 1e3 + usage.ru_utime.tv_usec / 1e3 + usage.ru_stime.tv_sec * 1e3 +
         usage.ru_stime.tv_usec / 1e3;
}

static struct sockaddr_in server;
static int epfd;
static long long counted = 0, errors = 0;
static int measuring = 0;
static int64_t *samples;
static long long nsamples = 0;

static int compare(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void fill(unsigned char *buffer, unsigned char seed) {
  for (int i = 0; i < PAYLOAD; i++) buffer[i] = (unsigned char)(seed + i * 7);
}

/* Opens a non-blocking connection and waits for it to be writable (connected). */
static void start(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    perror("socket");
    exit(1);
  }
  c->state = CONNECTING;
  c->received = 0;
  int r = connect(c->fd, (struct sockaddr *)&server, sizeof server);
  if (r < 0 && errno != EINPROGRESS) {
    errors++;
    close(c->fd);
    c->fd = -1;
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static int send_payload(struct conn *c, int half_close) {
  unsigned char buffer[PAYLOAD];
  fill(buffer, c->seed);
  ssize_t n = send(c->fd, buffer, PAYLOAD, MSG_NOSIGNAL);
  if (n != PAYLOAD) return -1;
  if (half_close && shutdown(c->fd, SHUT_WR) < 0) return -1;
  c->sent_at_ns = now_ns();
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->state = READING;
  return 0;
}

/* Reads what there is; returns 1 at the end of the echo (EOF for churn, 64 bytes for rtt), 0 for
 * more to come, -1 on an error or a wrong byte. */
static int read_echo(struct conn *c, int until_eof) {
  unsigned char buffer[4096], expected[PAYLOAD];
  fill(expected, c->seed);
  for (;;) {
    ssize_t n = recv(c->fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      for (ssize_t i = 0; i < n; i++) {
        if (c->received >= PAYLOAD || buffer[i] != expected[c->received]) return -1;
        c->received++;
      }
      if (!until_eof && c->received == PAYLOAD) return 1;
      continue;
    }
    if (n == 0) return c->received == PAYLOAD ? 1 : -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno == EINTR) continue;
    return -1;
  }
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: loadgen <churn|rtt> <port> <seconds> <connections> <warmup-seconds>\n");
    return 2;
  }
  int churn = strcmp(argv[1], "churn") == 0;
  if (!churn && strcmp(argv[1], "rtt") != 0) {
    fprintf(stderr, "loadgen: mode must be churn or rtt, not %s\n", argv[1]);
    return 2;
  }
  int port = atoi(argv[2]);
  double seconds = atof(argv[3]), warmup = atof(argv[5]);
  int connections = atoi(argv[4]);
  if (port <= 0 || port > 65535 || seconds <= 0 || connections <= 0 || connections > 10000 || warmup < 0) {
    fprintf(stderr, "loadgen: bad arguments\n");
    return 2;
  }
  server.sin_family = AF_INET;
  server.sin_port = htons((uint16_t)port);
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  samples = calloc(MAX_SAMPLES, sizeof *samples);
  struct conn *conns = calloc((size_t)connections, sizeof *conns);
  for (int i = 0; i < connections; i++) {
    conns[i].seed = (unsigned char)i;
    start(&conns[i]);
  }
  int64_t began = now_ns();
  int64_t opens = began + (int64_t)(warmup * 1e9), ends = opens + (int64_t)(seconds * 1e9);
  double cpu_at_open = 0;
  struct epoll_event events[256];
  for (;;) {
    int64_t t = now_ns();
    if (!measuring && t >= opens) {
      measuring = 1;
      cpu_at_open = cpu_ms();
      printf("{\"measuring\":true}\n");
      fflush(stdout);
    }
    if (t >= ends) break;
    int n = epoll_wait(epfd, events, 256, 10);
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      int done = 0, failed = 0;
      if (c->state == CONNECTING) {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error != 0 || send_payload(c, churn) < 0) failed = 1;
      } else {
        int r = read_echo(c, churn);
        if (r < 0) failed = 1;
        else if (r == 1) done = 1;
      }
      if (failed) {
        errors++;
        close(c->fd);
        start(c);
        continue;
      }
      if (!done) continue;
      if (measuring) {
        counted++;
        if (!churn && nsamples < MAX_SAMPLES) samples[nsamples++] = now_ns() - c->sent_at_ns;
      }
      if (churn) {
        close(c->fd);
        c->seed++;
        start(c);
      } else {
        c->received = 0;
        c->seed++;
        if (send_payload(c, 0) < 0) {
          errors++;
          close(c->fd);
          start(c);
        }
      }
    }
  }
  double cpu = cpu_ms() - cpu_at_open;
  if (!churn && nsamples > 0) {
    /* Percentiles of the round trips in the window, in ms. */
    qsort(samples, (size_t)nsamples, sizeof *samples, compare);
    printf("{\"mode\":\"rtt\",\"units\":%lld,\"errors\":%lld,\"cpuMs\":%.1f,\"p50\":%.4f,\"p99\":%.4f}\n", counted,
           errors, cpu, samples[nsamples / 2] / 1e6, samples[(nsamples * 99) / 100] / 1e6);
  } else {
    printf("{\"mode\":\"%s\",\"units\":%lld,\"errors\":%lld,\"cpuMs\":%.1f}\n", argv[1], counted, errors, cpu);
  }
  return 0;
}
