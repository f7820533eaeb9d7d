/* A fast local WebSocket sender, only to measure the compiled load client's ceiling
 * (docs/performance.md, "The compiled load client"). Not a server for anything else.
 *
 *   sender PORT [SECONDS]
 *
 * Listens on 127.0.0.1:PORT; answers the load client's handshake (its fixed key, so the
 * accept value is RFC 6455's example), acks the first message with {"type":"subscribed"},
 * then writes tickcast-shaped quote objects (Front 1's keys, the current millisecond as
 * "timestamp") to every connection as fast as the socket takes them. One thread, epoll,
 * libc only. Exits after SECONDS (default 60).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NFRAMES 512
typedef struct { int fd, open; size_t off; } Conn;

static char buf[NFRAMES * 160];
static size_t buflen, stamp_at[NFRAMES];
static long long stamped_ms = -1;

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + (t.tv_nsec + 500000) / 1000000;
}

static void restamp(void) {
    long long ms = now_ms();
    if (ms == stamped_ms) return;
    stamped_ms = ms;
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char s[32];
    snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    for (int i = 0; i < NFRAMES; i++) memcpy(buf + stamp_at[i], s, 23);
}

static void build(void) {
    for (int i = 0; i < NFRAMES; i++) {
        char body[160];
        int n = snprintf(body, sizeof body,
                         "{\"symbol\":\"S%03d\",\"price\":101.25,\"bid\":101.2,\"ask\":101.3,"
                         "\"volume\":1200,\"timestamp\":\"2000-01-01T00:00:00.000Z\",\"source\":\"sim\"}",
                         i % 100);
        buf[buflen++] = (char)0x81;
        buf[buflen++] = (char)n; /* < 126 */
        stamp_at[i] = buflen + (size_t)(strstr(body, "2000-") - body);
        memcpy(buf + buflen, body, (size_t)n);
        buflen += (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    double seconds = argc > 2 ? atof(argv[2]) : 60;
    build();
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    Conn *conns = calloc(65536, sizeof(Conn));
    long long end = now_ms() + (long long)(seconds * 1000);
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    static const char ack[] = "\x81\x15{\"type\":\"subscribed\"}";
    while (now_ms() < end) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        restamp();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == (uint64_t)-1) {
                int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0 || fd >= 65536) { if (fd >= 0) close(fd); continue; }
                conns[fd] = (Conn){fd, 0, 0};
                struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = (uint64_t)fd};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                continue;
            }
            Conn *c = &conns[evs[i].data.u64];
            if (evs[i].events & EPOLLIN) {
                char in[4096];
                ssize_t r;
                while ((r = recv(c->fd, in, sizeof in, 0)) > 0) {
                    if (!c->open && memmem(in, (size_t)r, "\r\n\r\n", 4)) {
                        send(c->fd, resp, sizeof resp - 1, MSG_NOSIGNAL);
                        c->open = 1;
                    } else if (c->open == 1) {
                        send(c->fd, ack, sizeof ack - 1, MSG_NOSIGNAL);
                        c->open = 2;
                    }
                }
                if (r == 0 || (r < 0 && errno != EAGAIN)) { close(c->fd); c->open = -1; continue; }
            }
            while (c->open == 2) { /* write until the socket is full */
                ssize_t w = send(c->fd, buf + c->off, buflen - c->off, MSG_NOSIGNAL);
                if (w <= 0) break;
                c->off = (c->off + (size_t)w) % buflen;
            }
        }
    }
    return 0;
}
