/* Compiled fan-out load client for the tickcast benchmark: bench/loadclient.py's
 * measurement for the native protocol (Front 1), in C, so that the client is never the limit.
 *
 * One process, one thread, epoll, nonblocking sockets, no library beyond libc. The flags,
 * the progress lines (connected, measure_start, measure_end, result) and the figures are
 * bench/loadclient.py's, with the same definitions (docs/performance.md, "The compiled load
 * client"):
 *   - connection i subscribes to symbols (i * k + j) % nsymbols, j < k, one
 *     {"action":"subscribe","symbols":[...]} text message; a text message holding
 *     "subscribed" (and neither "price" nor an array) is the ack;
 *   - every text message holding "price" (an object, or each object of an array frame) is
 *     counted in its millisecond bucket by its "timestamp" (the 23-byte ISO prefix), with
 *     the wall time of the bucket's latest arrival (latency max) and every
 *     --sample-every-th message sampled (latency p50/p99, nearest rank, Python's round);
 *   - the window is two snapshots of the server's tick counter (schedule:RATE or a peer's
 *     /stats JSON); per-tick delivered, coverage (latest value) and freshness as there.
 * Only ws:// and http:// on 127.0.0.1 are targeted. Server frames are text, continuation,
 * ping (answered with a masked pong), close (answered, then the socket closed).
 *
 *   loadclient --summary-stdin B0 B1 SAMPLE_EVERY   reads "ts_ms now_s" lines and prints the
 *   latency summary: the pure part, for tests.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------ */
/* options                                                                                */

static struct {
    char host[64], path[512], stats_host[64], stats_path[512], stats_kind[128];
    int port, stats_port;
    int clients, per_client, nsymbols, concurrency, sample_every;
    double warmup, duration, drain_min, drain_stall, drain_max;
    double connect_timeout, connect_phase_timeout, probe_interval;
    int conflated, track_latest, fresh_stride, fresh_pairs;
    double fresh_interval, schedule_rate;
} opt = {"127.0.0.1", "/", "127.0.0.1", "/stats", "peer", 0, 0, 500, 10, 100, 100, 10,
         5.0, 20.0, 2.0, 1.0, 15.0, 15.0, 180.0, 0.0, 0, 0, 0, 720, 0.1, 0.0};

static void die(const char *msg) {
    printf("{\"event\": \"result\", \"error\": \"%s\"}\n", msg);
    fflush(stdout);
    exit(1);
}

static void parse_url(const char *url, char *host, int *port, char *path) {
    const char *p = strstr(url, "://");
    if (!p) die("bad url");
    p += 3;
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    if (!slash) slash = p + strlen(p);
    if (colon && colon < slash) {
        snprintf(host, 64, "%.*s", (int)(colon - p), p);
        *port = atoi(colon + 1);
    } else {
        snprintf(host, 64, "%.*s", (int)(slash - p), p);
        *port = 80;
    }
    snprintf(path, 512, "%s", *slash ? slash : "/");
    if (strcmp(host, "127.0.0.1") && strcmp(host, "localhost")) die("the benchmark only targets 127.0.0.1");
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
}

/* ------------------------------------------------------------------------------------ */
/* clocks, timestamps, percentiles                                                        */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#define D2(s) (((s)[0] - '0') * 10 + ((s)[1] - '0'))

/* Epoch milliseconds of "YYYY-MM-DDTHH:MM:SS.mmm" (the first 23 bytes); -1 if not that. */
static int64_t iso_ms(const char *s, size_t n) {
    if (n < 23 || s[4] != '-' || s[10] != 'T' || s[19] != '.') return -1;
    int64_t y = D2(s) * 100 + D2(s + 2);
    int64_t days = days_from_civil(y, D2(s + 5), D2(s + 8));
    int64_t sec = days * 86400 + D2(s + 11) * 3600 + D2(s + 14) * 60 + D2(s + 17);
    return sec * 1000 + (s[20] - '0') * 100 + (s[21] - '0') * 10 + (s[22] - '0');
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* tickcast.client.load.percentile: nearest rank, Python's round (ties to even). */
static int pct_index(size_t n, double q) {
    double r = nearbyint(q * (double)(n - 1));
    if (r < 0) r = 0;
    if (r > (double)(n - 1)) r = (double)(n - 1);
    return (int)r;
}

static void put_num(const char *key, double v, int has) {
    if (has) printf(", \"%s\": %.15g", key, v);
    else printf(", \"%s\": null", key);
}

static void put_pct(const char *key, const double *sorted, size_t n, double q) {
    put_num(key, n ? sorted[pct_index(n, q)] : 0, n > 0);
}

/* ------------------------------------------------------------------------------------ */
/* buckets and samples (loadclient.py's COUNTS, LAST_RECV, SAMPLES)                       */

static int64_t base_ms;       /* bucket 0 */
static size_t nbuckets;
static int64_t *counts;
static double *last_recv;
typedef struct { int64_t ts; double now; } Sample;
static Sample *samples;
static size_t nsamples, capsamples;
static int64_t total, sample_k;
static int64_t window_limit = INT64_MAX; /* Window.limit: the window's end once known */

static void record(int64_t ts, double now) {
    uint64_t b = (uint64_t)(ts - base_ms);
    if (b < nbuckets) {
        counts[b]++;
        last_recv[b] = now;
    }
    total++;
    if (++sample_k >= opt.sample_every) {
        sample_k = 0;
        if (nsamples == capsamples) {
            capsamples = capsamples ? capsamples * 2 : 1 << 16;
            samples = realloc(samples, capsamples * sizeof(Sample));
            if (!samples) die("out of memory");
        }
        samples[nsamples].ts = ts;
        samples[nsamples++].now = now;
    }
}

static int64_t in_window(int64_t b0, int64_t b1) {
    int64_t got = 0;
    for (int64_t t = b0; t < b1; t++) {
        uint64_t b = (uint64_t)(t - base_ms);
        if (b < nbuckets) got += counts[b];
    }
    return got;
}

/* The latency summary over samples stamped in [b0, b1): count, p50, p99 (ms). */
static size_t latencies(int64_t b0, int64_t b1, double **out) {
    double *lat = malloc((nsamples + 1) * sizeof(double));
    size_t n = 0;
    for (size_t i = 0; i < nsamples; i++)
        if (samples[i].ts >= b0 && samples[i].ts < b1)
            lat[n++] = (samples[i].now - samples[i].ts / 1000.0) * 1000.0;
    qsort(lat, n, sizeof(double), cmp_double);
    *out = lat;
    return n;
}

/* ------------------------------------------------------------------------------------ */
/* connections                                                                            */

enum { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

typedef struct Conn {
    int fd, state, index, probe, fresh, acked, disconnected;
    double t0, t_ack;
    int64_t received;
    char *in; size_t inlen, incap;     /* bytes read, not yet parsed */
    char *msg; size_t msglen, msgcap;  /* a fragmented message being assembled */
    int msgop;
    char *out; size_t outlen, outcap;  /* bytes to write */
    int *sym;                          /* symbol numbers */
    int nsym;
    int64_t *last;                     /* per symbol: newest stamp before the window end */
    char *after;                       /* per symbol: a stamp at/after the window end seen */
    int64_t *held;                     /* per symbol (fresh): newest stamp held */
} Conn;

static int ep;
static Conn *conns;        /* opt.clients of them */
static Conn probe_conn;
static int probe_active;
static int track;          /* --conflated or --track-latest */
static char reqbuf[1024];

static int symbols_for(int i, int *out) {
    int n = 0;
    for (int j = 0; j < opt.per_client; j++) {
        int s = (int)(((int64_t)i * opt.per_client + j) % opt.nsymbols), dup = 0;
        for (int k = 0; k < n; k++) dup |= out[k] == s;
        if (!dup) out[n++] = s;
    }
    return n;
}

static void out_append(Conn *c, const char *p, size_t n) {
    if (c->outlen + n > c->outcap) {
        c->outcap = (c->outlen + n) * 2;
        c->out = realloc(c->out, c->outcap);
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
}

static void flush_out(Conn *c) {
    while (c->outlen) {
        ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) c->outlen = 0;
            break;
        }
        memmove(c->out, c->out + w, c->outlen - (size_t)w);
        c->outlen -= (size_t)w;
    }
    struct epoll_event ev = {.events = EPOLLIN | (c->outlen ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A client frame: FIN, opcode, masked with a fixed key (RFC 6455 5.3: any key will do). */
static void send_frame(Conn *c, int op, const char *p, size_t n) {
    unsigned char h[14];
    size_t hl = 0;
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    h[hl++] = (unsigned char)(0x80 | op);
    if (n < 126) h[hl++] = (unsigned char)(0x80 | n);
    else if (n < 65536) { h[hl++] = 0x80 | 126; h[hl++] = (unsigned char)(n >> 8); h[hl++] = (unsigned char)n; }
    else { h[hl++] = 0x80 | 127; for (int i = 7; i >= 0; i--) h[hl++] = (unsigned char)(n >> (8 * i)); }
    memcpy(h + hl, key, 4);
    hl += 4;
    out_append(c, (const char *)h, hl);
    size_t at = c->outlen;
    out_append(c, p, n);
    for (size_t i = 0; i < n; i++) c->out[at + i] ^= (char)key[i & 3];
}

static void conn_close(Conn *c) {
    if (c->state == C_CLOSED) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = C_CLOSED;
    c->disconnected = 1;
}

static int conn_open(Conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    c->t0 = now_s();
    c->state = C_CONNECTING;
    c->inlen = c->outlen = c->msglen = 0;
    c->acked = c->disconnected = 0;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->state = C_CLOSED;
        return -1;
    }
    int n = snprintf(reqbuf, sizeof reqbuf,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     opt.path, opt.host, opt.port);
    out_append(c, reqbuf, (size_t)n);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void send_subscribe(Conn *c) {
    char buf[8192];
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"action\":\"subscribe\",\"symbols\":[");
    for (int j = 0; j < c->nsym && n < sizeof buf - 32; j++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"S%03d\"", j ? "," : "", c->sym[j]);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "]}");
    send_frame(c, 1, buf, n);
}

/* ------------------------------------------------------------------------------------ */
/* freshness (bench/freshness.py): held values of the tracked pairs, sampled on a clock   */

static int64_t **seen;      /* per symbol: stamps any tracked subscriber received */
static size_t *nseen, *capseen;
typedef struct { int sym; double now; int64_t held; } FSample;
static FSample *fsamples;
static size_t nfsamples, capfsamples;

static void fresh_received(Conn *c, int slot, int64_t ts) {
    if (ts > c->held[slot]) c->held[slot] = ts;
    int s = c->sym[slot];
    if (nseen[s] == capseen[s]) {
        capseen[s] = capseen[s] ? capseen[s] * 2 : 64;
        seen[s] = realloc(seen[s], capseen[s] * sizeof(int64_t));
    }
    seen[s][nseen[s]++] = ts;
}

static void fresh_sample(double now) {
    for (int i = 0; i < opt.clients; i++) {
        Conn *c = &conns[i];
        if (!c->fresh || !c->acked) continue;
        for (int j = 0; j < c->nsym; j++) {
            if (nfsamples == capfsamples) {
                capfsamples = capfsamples ? capfsamples * 2 : 4096;
                fsamples = realloc(fsamples, capfsamples * sizeof(FSample));
            }
            fsamples[nfsamples++] = (FSample){c->sym[j], now, c->held[j]};
        }
    }
}

static void fresh_summary(void) {
    size_t n = 0, missing = 0;
    double *ages = malloc((nfsamples + 1) * sizeof(double)), *stale = malloc((nfsamples + 1) * sizeof(double));
    for (int s = 0; s < opt.nsymbols; s++) { /* sort, unique */
        if (!nseen[s]) continue;
        qsort(seen[s], nseen[s], sizeof(int64_t), cmp_i64);
        size_t k = 1;
        for (size_t i = 1; i < nseen[s]; i++)
            if (seen[s][i] != seen[s][k - 1]) seen[s][k++] = seen[s][i];
        nseen[s] = k;
    }
    for (size_t i = 0; i < nfsamples; i++) {
        FSample *f = &fsamples[i];
        if (f->held < 0) { missing++; continue; }
        double h = f->held / 1000.0;
        ages[n] = (f->now - h) * 1000.0;
        int64_t *st = seen[f->sym];
        size_t lo = 0, hi = nseen[f->sym]; /* bisect_right */
        while (lo < hi) { size_t mid = (lo + hi) / 2; if (st[mid] / 1000.0 <= h) lo = mid + 1; else hi = mid; }
        double nxt = lo < nseen[f->sym] ? st[lo] / 1000.0 : -1;
        stale[n++] = (lo < nseen[f->sym] && nxt <= f->now) ? (f->now - nxt) * 1000.0 : 0.0;
    }
    qsort(ages, n, sizeof(double), cmp_double);
    qsort(stale, n, sizeof(double), cmp_double);
    printf(", \"fresh_samples\": %zu, \"fresh_missing\": %zu", nfsamples, missing);
    put_pct("age_p50_ms", ages, n, 0.5);
    put_pct("age_p99_ms", ages, n, 0.99);
    put_num("age_max_ms", n ? ages[n - 1] : 0, n > 0);
    put_pct("superseded_p50_ms", stale, n, 0.5);
    put_pct("superseded_p99_ms", stale, n, 0.99);
    put_num("superseded_max_ms", n ? stale[n - 1] : 0, n > 0);
    free(ages);
    free(stale);
}

/* ------------------------------------------------------------------------------------ */
/* messages                                                                               */

static const char *find(const char *p, const char *end, const char *needle, size_t nl) {
    return nl <= (size_t)(end - p) ? memmem(p, (size_t)(end - p), needle, nl) : NULL;
}

/* The number in the "symbol" string (S042 -> 42), or -1. */
static int symbol_of(const char *p, const char *end) {
    const char *k = find(p, end, "\"symbol\"", 8);
    if (!k) return -1;
    const char *q = memchr(k + 8, '"', (size_t)(end - k - 8));
    if (!q) return -1;
    q++;
    while (q < end && (*q < '0' || *q > '9') && *q != '"') q++;
    int v = 0, any = 0;
    while (q < end && *q >= '0' && *q <= '9') { v = v * 10 + (*q++ - '0'); any = 1; }
    return any ? v : -1;
}

/* One market object: count it in its bucket, and the per-symbol bookkeeping. */
static void market(Conn *c, const char *p, const char *end, double now) {
    const char *k = find(p, end, "\"timestamp\"", 11);
    if (!k) return;
    const char *q = memchr(k + 11, '"', (size_t)(end - k - 11));
    if (!q) return;
    int64_t ts = iso_ms(q + 1, (size_t)(end - q - 1));
    if (ts < 0) return;
    c->received++;
    record(ts, now);
    if (!(track || c->fresh)) return;
    int s = symbol_of(p, end), slot = -1;
    for (int j = 0; j < c->nsym; j++)
        if (c->sym[j] == s) slot = j;
    if (slot < 0) return;
    if (track) {
        if (ts < window_limit) c->last[slot] = ts;
        else c->after[slot] = 1;
    }
    if (c->fresh) fresh_received(c, slot, ts);
}

static void text(Conn *c, const char *p, size_t n) {
    const char *end = p + n;
    double now = now_s();
    if (n && p[0] == '[') {
        if (c->probe) return;
        /* each top-level object of the array */
        int depth = 0, instr = 0;
        const char *start = NULL;
        for (const char *q = p + 1; q < end; q++) {
            char ch = *q;
            if (instr) {
                if (ch == '\\') q++;
                else if (ch == '"') instr = 0;
            } else if (ch == '"') instr = 1;
            else if (ch == '{') { if (depth++ == 0) start = q; }
            else if (ch == '}' && --depth == 0 && start) {
                if (find(start, q + 1, "\"price\"", 7)) market(c, start, q + 1, now);
                start = NULL;
            }
        }
    } else if (find(p, end, "\"price\"", 7)) {
        if (c->probe) return;
        market(c, p, end, now);
    } else if (find(p, end, "\"subscribed\"", 12)) {
        if (!c->acked) { c->acked = 1; c->t_ack = now; }
    }
}

/* Parse what was read: the HTTP response, then frames. Returns -1 to close. */
static int parse(Conn *c) {
    size_t off = 0;
    if (c->state == C_HANDSHAKE) {
        char *e = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!e) return c->inlen > 65536 ? -1 : 0;
        if (c->inlen < 12 || memcmp(c->in + 9, "101", 3)) return -1;
        off = (size_t)(e + 4 - c->in);
        c->state = C_OPEN;
        send_subscribe(c);
    }
    while (c->inlen - off >= 2) {
        unsigned char *h = (unsigned char *)c->in + off;
        int fin = h[0] & 0x80, op = h[0] & 0x0f, masked = h[1] & 0x80;
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (c->inlen - off < 4) break;
            len = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (len == 127) {
            if (c->inlen - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
            hl = 10;
        }
        if (masked) hl += 4;
        if (c->inlen - off < hl + len) {
            if (hl + len > c->incap) { /* a frame larger than the buffer: grow it */
                memmove(c->in, c->in + off, c->inlen - off);
                c->inlen -= off;
                off = 0;
                c->incap = hl + len + 65536;
                c->in = realloc(c->in, c->incap);
            }
            break;
        }
        char *pl = c->in + off + hl;
        if (masked)
            for (uint64_t i = 0; i < len; i++) pl[i] ^= (char)h[hl - 4 + (i & 3)];
        off += hl + len;
        if (op == 0x9) { send_frame(c, 0xA, pl, len); continue; }
        if (op == 0xA) continue;
        if (op == 0x8) { send_frame(c, 0x8, pl, len < 2 ? len : 2); flush_out(c); return -1; }
        if (op == 0x1 || op == 0x2) {
            if (fin) {
                if (op == 0x1) text(c, pl, len);
                continue;
            }
            c->msgop = op;
            c->msglen = 0;
        } else if (op != 0x0) {
            return -1;
        }
        if (c->msglen + len > c->msgcap) {
            c->msgcap = (c->msglen + len) * 2;
            c->msg = realloc(c->msg, c->msgcap);
        }
        memcpy(c->msg + c->msglen, pl, len);
        c->msglen += len;
        if (fin) {
            if (c->msgop == 0x1) text(c, c->msg, c->msglen);
            c->msglen = 0;
        }
    }
    if (off) {
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
    }
    return 0;
}

static void on_event(Conn *c, uint32_t events) {
    if (c->state == C_CLOSED) return;
    if (c->state == C_CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { conn_close(c); return; }
        c->state = C_HANDSHAKE;
    }
    if (events & EPOLLOUT) flush_out(c);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        /* at most 4 reads, so that a connection that always has data does not starve the
         * others or the clock (epoll is level-triggered: it comes back to this one) */
        for (int reads = 0; reads < 4; reads++) {
            if (c->incap - c->inlen < 16384) {
                c->incap = c->incap ? c->incap * 2 : 65536;
                c->in = realloc(c->in, c->incap);
            }
            ssize_t r = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
            if (r > 0) {
                c->inlen += (size_t)r;
                if (parse(c) < 0) { conn_close(c); return; }
                if (c->outlen) flush_out(c);
                if ((size_t)r < 16384) break;
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) { conn_close(c); return; }
            break;
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* the run                                                                                */

static void poll_once(int timeout_ms) {
    struct epoll_event evs[64]; /* a bounded batch: the clock is read between batches */
    int n = epoll_wait(ep, evs, 64, timeout_ms);
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
}

/* Run the event loop until `until` (epoch s), calling tick() about every 10 ms. */
static void loop_until(double until, void (*tick)(double)) {
    for (;;) {
        double t = now_s();
        if (t >= until) return;
        if (tick) tick(t);
        double left = until - t;
        poll_once(left < 0.01 ? (int)(left * 1000) + 1 : 10);
    }
}

static long http_get_stats(double *ticks, int64_t *boundary) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.stats_port)};
    inet_pton(AF_INET, opt.stats_host, &a.sin_addr);
    struct timeval tv = {15, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
    int n = snprintf(reqbuf, sizeof reqbuf, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                     opt.stats_path, opt.stats_host, opt.stats_port);
    if (send(fd, reqbuf, (size_t)n, MSG_NOSIGNAL) != n) { close(fd); return -1; }
    char buf[65536];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) {
        got += (size_t)r;
        buf[got] = 0;
        char *body = strstr(buf, "\r\n\r\n"); /* the JSON object read whole: done */
        if (body && strchr(body, '}')) break;
    }
    close(fd);
    buf[got] = 0;
    char *t = strstr(buf, "\"ticks\""), *b = strstr(buf, "\"boundary_ms\"");
    if (!t || !b) return -1;
    *ticks = strtod(strchr(t + 7, ':') + 1, NULL);
    *boundary = strtoll(strchr(b + 13, ':') + 1, NULL, 10);
    return 0;
}

/* (ticks stamped before the boundary, the boundary in epoch ms): loadclient.snapshot */
static void snapshot(double *ticks, int64_t *boundary) {
    if (opt.schedule_rate > 0) {
        *boundary = (int64_t)floor(now_s() * 1000.0);
        *ticks = opt.schedule_rate * (double)*boundary / 1000.0;
        return;
    }
    if (http_get_stats(ticks, boundary) < 0) die("stats: GET failed");
}

static int gcd(int a, int b) { while (b) { int t = a % b; a = b; b = t; } return a; }

static int fresh_stride(void) {
    if (opt.fresh_stride || opt.fresh_pairs <= 0) return opt.fresh_stride;
    int period = opt.nsymbols / gcd(opt.nsymbols, opt.per_client);
    double r = nearbyint((double)opt.clients * opt.per_client / opt.fresh_pairs);
    int stride = r < 1 ? 1 : (int)r;
    while (gcd(stride, period) != 1) stride++;
    return stride;
}

/* probes: one extra connect + subscribe every --probe-interval s during the window */
static double *probe_ms;
static int nprobes, nprobe_fail;
static double next_probe;

static void probe_tick(double t) {
    Conn *p = &probe_conn;
    if (probe_active) {
        if (p->acked) {
            probe_ms[nprobes++ - nprobe_fail] = (p->t_ack - p->t0) * 1000.0;
            conn_close(p);
            probe_active = 0;
        } else if (p->state == C_CLOSED || t - p->t0 > opt.connect_timeout) {
            conn_close(p);
            nprobes++;
            nprobe_fail++;
            probe_active = 0;
        }
    }
    if (!probe_active && t >= next_probe && opt.probe_interval > 0) {
        probe_active = conn_open(p) == 0;
        if (!probe_active) { nprobes++; nprobe_fail++; }
        next_probe = t + opt.probe_interval;
    }
}

static double fresh_start;
static int64_t fresh_k;
static void window_tick(double t) {
    if (opt.probe_interval > 0) probe_tick(t);
    while (t >= fresh_start + fresh_k * opt.fresh_interval) {
        fresh_sample(t);
        fresh_k++;
    }
}

/* loadclient.coverage */
static void coverage(int64_t b0, int64_t b1, double t0, int strict, double *frac, int64_t *uncovered) {
    int64_t *newest = calloc((size_t)opt.nsymbols, sizeof(int64_t)); /* 0: none */
    for (int i = 0; i < opt.clients; i++) {
        Conn *c = &conns[i];
        if (!c->acked) continue;
        for (int j = 0; j < c->nsym; j++) {
            int64_t l = c->last[j];
            if (l >= 0 && l >= b0 && l < b1 && l > newest[c->sym[j]]) newest[c->sym[j]] = l;
        }
    }
    double sum = 0;
    int64_t pairs = 0, unc = 0;
    int sym[4096];
    for (int i = 0; i < opt.clients; i++) {
        Conn *c = &conns[i];
        int ns = c->acked ? c->nsym : symbols_for(i, sym);
        for (int j = 0; j < ns; j++) {
            pairs++;
            if (!c->acked) { unc++; continue; }
            int64_t target = newest[c->sym[j]], last = c->last[j];
            if (!target && !strict) { sum += 1.0; continue; }
            if (c->after[j] || (last >= 0 && (last >= b1 || (target && last >= target)))) { sum += 1.0; continue; }
            unc++;
            if (last >= 0 && target && last / 1000.0 > b0 / 1000.0) {
                double span = target / 1000.0 - t0;
                double f = span > 0 ? (last / 1000.0 - t0) / span : 0.0;
                sum += span > 0 ? fmax(0.0, fmin(1.0, f)) : 0.0;
            }
        }
    }
    free(newest);
    *frac = pairs ? sum / (double)pairs : 0.0;
    *uncovered = unc;
}

static int summary_stdin(int64_t b0, int64_t b1, int every) {
    /* the pure summary: "ts_ms now_s" lines through record() (as the hot path takes them) */
    opt.sample_every = every;
    base_ms = b0 - 600000;
    nbuckets = (size_t)(b1 - base_ms + 600000);
    counts = calloc(nbuckets, sizeof(int64_t));
    last_recv = calloc(nbuckets, sizeof(double));
    long long ts;
    double t;
    while (scanf("%lld %lf", &ts, &t) == 2) record(ts, t);
    double *lat;
    size_t n = latencies(b0, b1, &lat);
    double mx = 0;
    int has = 0;
    for (int64_t x = b0; x < b1; x++) {
        uint64_t b = (uint64_t)(x - base_ms);
        if (counts[b]) {
            double v = (last_recv[b] - x / 1000.0) * 1000.0;
            if (!has || v > mx) mx = v;
            has = 1;
        }
    }
    printf("{\"received_in_window\": %lld, \"latency_samples\": %zu", (long long)in_window(b0, b1), n);
    put_pct("latency_p50_ms", lat, n, 0.5);
    put_pct("latency_p99_ms", lat, n, 0.99);
    put_num("latency_max_ms", mx, has);
    printf("}\n");
    return 0;
}

static void emit_connected(const char *event, int ok, int errs, int timeouts, double elapsed) {
    printf("{\"event\": \"%s\", \"client\": \"c\", \"clients_requested\": %d, \"clients_connected\": %d, "
           "\"connect_errors\": {", event, opt.clients, ok);
    int first = 1;
    if (errs) { printf("\"ConnectionError\": %d", errs); first = 0; }
    if (timeouts) printf("%s\"ConnectPhaseTimeout\": %d", first ? "" : ", ", timeouts);
    printf("}, \"connect_seconds\": %.3f", elapsed);
    put_num("connects_per_s", elapsed > 0 ? round(ok / elapsed * 10) / 10 : 0, elapsed > 0);
}

int main(int argc, char **argv) {
    char url[600] = "", stats_url[600] = "";
    if (argc >= 2 && !strcmp(argv[1], "--summary-stdin")) {
        if (argc < 5) return 2;
        return summary_stdin(atoll(argv[2]), atoll(argv[3]), atoi(argv[4]));
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
#define S(name, dst) if (!strcmp(a, name)) { snprintf(dst, sizeof dst, "%s", v); i++; continue; }
#define I(name, dst) if (!strcmp(a, name)) { dst = atoi(v); i++; continue; }
#define F(name, dst) if (!strcmp(a, name)) { dst = atof(v); i++; continue; }
        S("--url", url) S("--stats-url", stats_url) S("--stats-kind", opt.stats_kind)
        I("--clients", opt.clients) I("--per-client", opt.per_client) I("--nsymbols", opt.nsymbols)
        I("--concurrency", opt.concurrency) I("--sample-every", opt.sample_every)
        I("--fresh-stride", opt.fresh_stride) I("--fresh-pairs", opt.fresh_pairs)
        F("--warmup", opt.warmup) F("--duration", opt.duration) F("--drain-min", opt.drain_min)
        F("--drain-stall", opt.drain_stall) F("--drain-max", opt.drain_max)
        F("--connect-timeout", opt.connect_timeout) F("--connect-phase-timeout", opt.connect_phase_timeout)
        F("--probe-interval", opt.probe_interval) F("--fresh-interval", opt.fresh_interval)
        if (!strcmp(a, "--conflated")) { opt.conflated = 1; continue; }
        if (!strcmp(a, "--track-latest")) { opt.track_latest = 1; continue; }
        if (!strcmp(a, "--protocol")) { if (strcmp(v, "native")) die("the C client speaks only the native protocol"); i++; continue; }
        if (!strcmp(a, "--symbol-format")) { if (strcmp(v, "S{:03d}")) die("the C client knows only S{:03d}"); i++; continue; }
        fprintf(stderr, "[cclient] unknown option %s\n", a);
        die("unknown option");
    }
    if (!*url || !*stats_url) die("--url and --stats-url are required");
    if (opt.sample_every < 1) opt.sample_every = 1;
    parse_url(url, opt.host, &opt.port, opt.path);
    parse_url(stats_url, opt.stats_host, &opt.stats_port, opt.stats_path);
    if (!strncmp(opt.stats_kind, "schedule:", 9)) opt.schedule_rate = atof(opt.stats_kind + 9);
    else if (strcmp(opt.stats_kind, "peer")) die("the C client reads schedule:RATE or peer stats only");
    track = opt.conflated || opt.track_latest;

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t want = (rlim_t)opt.clients * 2 + 256;
    if (rl.rlim_cur < want) { rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }

    double start = now_s();
    base_ms = (int64_t)(start * 1000) - 600000;
    nbuckets = (size_t)((600 + opt.connect_phase_timeout + opt.warmup + opt.duration + opt.drain_max + 900) * 1000);
    counts = calloc(nbuckets, sizeof(int64_t));
    last_recv = calloc(nbuckets, sizeof(double));
    seen = calloc((size_t)opt.nsymbols, sizeof(int64_t *));
    nseen = calloc((size_t)opt.nsymbols, sizeof(size_t));
    capseen = calloc((size_t)opt.nsymbols, sizeof(size_t));
    conns = calloc((size_t)opt.clients, sizeof(Conn));
    ep = epoll_create1(EPOLL_CLOEXEC);
    int stride = fresh_stride();
    for (int i = 0; i < opt.clients; i++) {
        Conn *c = &conns[i];
        c->index = i;
        c->state = C_CLOSED;
        c->sym = malloc((size_t)opt.per_client * sizeof(int));
        c->nsym = symbols_for(i, c->sym);
        c->last = malloc((size_t)c->nsym * sizeof(int64_t));
        c->after = calloc((size_t)c->nsym, 1);
        c->held = malloc((size_t)c->nsym * sizeof(int64_t));
        for (int j = 0; j < c->nsym; j++) c->last[j] = c->held[j] = -1;
        c->fresh = stride > 0 && i % stride == 0;
    }
    probe_conn.probe = 1;
    probe_conn.sym = malloc(sizeof(int));
    probe_conn.sym[0] = 0;
    probe_conn.nsym = 1;

    /* connect phase: at most --concurrency connects in flight (connect to subscribed) */
    int next = 0, inflight = 0, ok = 0, errs = 0;
    double t_last_ack = start;
    int *pending = calloc((size_t)opt.clients, sizeof(int));
    while (next < opt.clients || inflight) {
        double t = now_s();
        if (t - start > opt.connect_phase_timeout) break;
        while (inflight < opt.concurrency && next < opt.clients) {
            if (conn_open(&conns[next]) == 0) { pending[next] = 1; inflight++; }
            else errs++;
            next++;
        }
        poll_once(10);
        t = now_s();
        for (int i = 0; i < next; i++) {
            if (!pending[i]) continue;
            Conn *c = &conns[i];
            if (c->acked) { pending[i] = 0; inflight--; ok++; if (c->t_ack > t_last_ack) t_last_ack = c->t_ack; }
            else if (c->state == C_CLOSED || t - c->t0 > opt.connect_timeout) {
                conn_close(c); c->acked = 0; pending[i] = 0; inflight--; errs++;
            }
        }
    }
    int timeouts = 0;
    for (int i = 0; i < opt.clients; i++)
        if (!conns[i].acked) {
            if (pending[i] || i >= next) { timeouts++; if (pending[i]) conn_close(&conns[i]); }
            conns[i].disconnected = 0;
        }
    double elapsed = ok ? t_last_ack - start : 0.0;
    emit_connected("connected", ok, errs, timeouts, elapsed);
    printf("}\n");
    fflush(stdout);
    if (!ok) die("no connection succeeded");

    loop_until(now_s() + opt.warmup, NULL);
    double ticks0, ticks1;
    int64_t bound0, bound1;
    snapshot(&ticks0, &bound0);
    double cpu0 = cpu_s(), wall0 = now_s();
    int64_t recv0 = total;
    printf("{\"event\": \"measure_start\", \"boundary\": %lld}\n", (long long)bound0);
    fflush(stdout);
    probe_ms = calloc((size_t)(opt.duration / (opt.probe_interval > 0 ? opt.probe_interval : 1) + 16), sizeof(double));
    next_probe = wall0 + opt.probe_interval;
    fresh_start = wall0;
    loop_until(wall0 + opt.duration, window_tick);
    if (probe_active) { conn_close(&probe_conn); probe_active = 0; }
    snapshot(&ticks1, &bound1);
    window_limit = bound1;
    double cpu1 = cpu_s(), wall1 = now_s();
    int64_t recv1 = total;
    printf("{\"event\": \"measure_end\", \"boundary\": %lld}\n", (long long)bound1);
    fflush(stdout);

    int64_t b0 = bound0, b1 = bound1;
    double window = (double)(bound1 - bound0) / 1000.0, ticks = ticks1 - ticks0;
    double subs = (double)opt.clients * opt.per_client / opt.nsymbols;
    double expected = ticks * subs, frac = 0;
    int64_t unc = 0;
    /* drain: until done, or stalled after --drain-min, or --drain-max */
    double dstart = now_s(), last_value = -1, last_change = dstart, t;
    for (;;) {
        double value;
        int done;
        if (opt.conflated) {
            coverage(b0, b1, bound0 / 1e3, 1, &frac, &unc);
            done = unc == 0, value = frac;
        } else {
            value = (double)in_window(b0, b1);
            done = value >= expected;
        }
        t = now_s();
        if (done) break;
        if (value != last_value) last_value = value, last_change = t;
        if (t - dstart >= opt.drain_min && t - last_change >= opt.drain_stall) break;
        if (t - dstart >= opt.drain_max) break;
        loop_until(t + 0.2, NULL);
    }
    double drained = now_s() - dstart;
    int64_t received = in_window(b0, b1);
    int has_latest = track;
    if (track) coverage(b0, b1, bound0 / 1e3, 0, &frac, &unc);
    double per_tick = expected ? (double)received / expected : 0.0;
    double *lat;
    size_t nlat = latencies(b0, b1, &lat);
    double mx = 0;
    int has_mx = 0;
    for (int64_t x = b0; x < b1; x++) {
        uint64_t b = (uint64_t)(x - base_ms);
        if (b < nbuckets && counts[b]) {
            double v = (last_recv[b] - x / 1000.0) * 1000.0;
            if (!has_mx || v > mx) mx = v;
            has_mx = 1;
        }
    }
    int64_t pmin = INT64_MAX, pmax = 0;
    int disc = 0, fresh_pairs = 0;
    for (int i = 0; i < opt.clients; i++) {
        Conn *c = &conns[i];
        if (!c->acked) continue;
        if (c->received < pmin) pmin = c->received;
        if (c->received > pmax) pmax = c->received;
        disc += c->disconnected;
        if (c->fresh) fresh_pairs += c->nsym;
    }
    if (pmin == INT64_MAX) pmin = 0;

    emit_connected("result", ok, errs, timeouts, elapsed);
    printf(", \"protocol\": \"native\", \"conflated\": %s, \"window_s\": %.3f, \"boundary_uncertainty_ms\": 0.0",
           opt.conflated ? "true" : "false", window);
    printf(", \"ticks_in_window\": %.17g", ticks);
    put_num("tick_rate_achieved", window > 0 ? round(ticks / window * 10) / 10 : 0, window > 0);
    printf(", \"subscribers_per_symbol\": %.17g, \"expected_deliveries\": %.17g", subs, expected);
    put_num("deliveries_per_s", window > 0 ? round(expected / window * 10) / 10 : 0, window > 0);
    printf(", \"received_in_window\": %lld", (long long)received);
    printf(", \"received_msgs_per_s\": %.1f", (double)(recv1 - recv0) / (wall1 - wall0));
    printf(", \"delivered_ratio\": %.6f, \"per_tick_delivered_ratio\": %.6f", per_tick, per_tick);
    put_num("latest_delivered_ratio", round(frac * 1e6) / 1e6, has_latest);
    if (has_latest) printf(", \"uncovered_pairs\": %lld", (long long)unc);
    else printf(", \"uncovered_pairs\": null");
    printf(", \"fresh_pairs\": %d, \"fresh_interval_s\": %g", fresh_pairs, opt.fresh_interval);
    fresh_summary();
    printf(", \"drain_s\": %.2f, \"disconnected_during_run\": %d", drained, disc);
    printf(", \"per_client_received_min\": %lld, \"per_client_received_max\": %lld", (long long)pmin, (long long)pmax);
    printf(", \"latency_samples\": %zu", nlat);
    put_pct("latency_p50_ms", lat, nlat, 0.5);
    put_pct("latency_p99_ms", lat, nlat, 0.99);
    put_num("latency_max_ms", mx, has_mx);
    printf(", \"client_cpu_pct\": %.1f", 100.0 * (cpu1 - cpu0) / (wall1 - wall0));
    qsort(probe_ms, (size_t)(nprobes - nprobe_fail), sizeof(double), cmp_double);
    int np = nprobes - nprobe_fail;
    printf(", \"probes\": %d, \"probe_failures\": %d", nprobes, nprobe_fail);
    put_pct("probe_connect_p50_ms", probe_ms, (size_t)np, 0.5);
    put_num("probe_connect_max_ms", np ? probe_ms[np - 1] : 0, np > 0);
    printf("}\n");
    fflush(stdout);
    return 0;
}
