/* A fast local WebSocket sender, only to measure the compiled load client's ceiling
 * (docs/performance.md, "The compiled load client"). Not a server for anything else.
 *
 *   sender PORT [SECONDS [FRAMES_PER_WRITE]]
 *
 * Listens on 127.0.0.1:PORT; answers any client's handshake (Sec-WebSocket-Accept: SHA-1
 * and base64, RFC 6455 4.2.2), acks the first message with {"type":"subscribed"},
 * then writes tickcast-shaped quote objects (Front 1's keys, the current millisecond as
 * "timestamp") to every connection as fast as the socket takes them. One thread, epoll,
 * libc only. Exits after SECONDS (default 60). FRAMES_PER_WRITE (default 512) frames go in
 * one send(); 1 is the per-tick servers' way (a message per send, the receiver's costly case).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NFRAMES 512
typedef struct { int fd, open; size_t off; int frame; } Conn;

static char buf[NFRAMES * 160];
static size_t buflen, stamp_at[NFRAMES], frame_at[NFRAMES + 1];
static int per_write = NFRAMES;
static long long stamped_ms = -1;

/* SHA-1 (FIPS 180-4) of a short message, for Sec-WebSocket-Accept. */
static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char *m = calloc(total, 1);
    memcpy(m, msg, len);
    m[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) m[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 |
                   (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    free(m);
    for (int i = 0; i < 20; i++) out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* The handshake response to the request in `req` (NUL-terminated); its length. */
static int handshake(const char *req, char *out, size_t cap) {
    const char *k = strcasestr(req, "Sec-WebSocket-Key:");
    if (!k) return -1;
    k += 18;
    while (*k == ' ') k++;
    char key[128];
    size_t n = 0;
    while (k[n] && k[n] != '\r' && n < 60) n++;
    snprintf(key, sizeof key, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)n, k);
    unsigned char d[20];
    sha1((const unsigned char *)key, strlen(key), d);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char acc[32];
    int j = 0;
    for (int i = 0; i < 21; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < 20 ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < 20 ? d[i + 2] : 0);
        acc[j++] = b64[(v >> 18) & 63];
        acc[j++] = b64[(v >> 12) & 63];
        acc[j++] = i + 1 < 20 ? b64[(v >> 6) & 63] : '=';
        acc[j++] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    acc[j] = 0;
    return snprintf(out, cap, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
}

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
    char s[80];
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
        frame_at[i] = buflen;
        buf[buflen++] = (char)0x81;
        buf[buflen++] = (char)n; /* < 126 */
        stamp_at[i] = buflen + (size_t)(strstr(body, "2000-") - body);
        memcpy(buf + buflen, body, (size_t)n);
        buflen += (size_t)n;
    }
    frame_at[NFRAMES] = buflen;
}

/* Write frames to `c`, per_write frames per send(), at most 4 sends (so that one
 * connection a fast reader keeps draining does not starve the others; epoll is
 * level-triggered and comes back to it). */
static void pump(Conn *c) {
    for (int sends = 0; sends < 4; sends++) {
        int last = c->frame + per_write > NFRAMES ? NFRAMES : c->frame + per_write;
        size_t end = frame_at[last];
        ssize_t w = send(c->fd, buf + c->off, end - c->off, MSG_NOSIGNAL);
        if (w <= 0) return;
        c->off += (size_t)w;
        if (c->off < end) { /* partial: find the frame we stopped in */
            while (frame_at[c->frame + 1] <= c->off) c->frame++;
            return;
        }
        c->frame = last == NFRAMES ? 0 : last;
        c->off = frame_at[c->frame];
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    double seconds = argc > 2 ? atof(argv[2]) : 60;
    if (argc > 3 && atoi(argv[3]) > 0) per_write = atoi(argv[3]);
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
    static const char ack[] = "\x81\x15{\"type\":\"subscribed\"}";
    while (now_ms() < end) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        restamp();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == (uint64_t)-1) {
                int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0 || fd >= 65536) { if (fd >= 0) close(fd); continue; }
                conns[fd] = (Conn){fd, 0, 0, 0};
                struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)fd};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                continue;
            }
            Conn *c = &conns[evs[i].data.u64];
            if (evs[i].events & EPOLLIN) {
                char in[4097], resp[512];
                ssize_t r = recv(c->fd, in, sizeof in - 1, 0);
                if (r > 0) {
                    in[r] = 0;
                    if (!c->open && memmem(in, (size_t)r, "\r\n\r\n", 4)) {
                        int n = handshake(in, resp, sizeof resp);
                        if (n > 0) send(c->fd, resp, (size_t)n, MSG_NOSIGNAL);
                        c->open = 1;
                    } else if (c->open == 1) {
                        send(c->fd, ack, sizeof ack - 1, MSG_NOSIGNAL);
                        c->open = 2;
                    }
                }
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->open = -1;
                    continue;
                }
            }
            if (c->open == 2) pump(c);
        }
    }
    return 0;
}
