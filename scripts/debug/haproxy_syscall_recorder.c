// LD_PRELOAD recorder for haproxy: recv/send/epoll events/shutdown/close/accept/connect of every socket, one
// 32-byte record each, into /tmp/dl/h/hl.PID (a MAP_SHARED file, so it survives SIGKILL). strace slows haproxy
// enough that the stress test's early EOF no longer shows; this does not. Only a process named haproxy records.
// Build: gcc -O2 -shared -fPIC -o /tmp/dl/shim/hlog.so haproxy_syscall_recorder.c -ldl
// Use:   mkdir -p -m 1777 /tmp/dl/h; LD_PRELOAD=/tmp/dl/shim/hlog.so SOCKMAPD_STRESS_DAEMON=steady
//        SOCKMAPD_RUN_KNOWN_BUGS=1 build/smd_integration_tests --gtest_filter='Stress.*'
// then scripts/debug/haproxy_early_eof.py /tmp/dl/h/hl.PID PEER_PORT... (see docs/testing.md).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct rec { uint64_t ns; int32_t fd; uint16_t op; uint16_t err; int64_t arg; int64_t ret; };
#define MAXREC (64u << 20) / sizeof(struct rec) * 8
static struct rec *ring; static atomic_ulong idx; static int on = -1;

static void init(void) {
    if (on >= 0) return;
    on = strcmp(program_invocation_short_name, "haproxy") == 0;
    if (!on) return;
    char path[64]; snprintf(path, sizeof path, "/tmp/dl/h/hl.%d", getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    size_t sz = MAXREC * sizeof(struct rec);
    ftruncate(fd, sz);
    ring = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
}
static void put(int fd, int op, long arg, long ret, int err) {
    init(); if (!on || ring == MAP_FAILED || !ring) return;
    unsigned long i = atomic_fetch_add(&idx, 1); if (i >= MAXREC) return;
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    ring[i] = (struct rec){ts.tv_sec * 1000000000ull + ts.tv_nsec, fd, op, err, arg, ret};
}
static int port_of(int fd, int peer) {
    struct sockaddr_storage s; socklen_t l = sizeof s;
    if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&s, &l)) return -1;
    return ntohs(((struct sockaddr_in *)&s)->sin_port);
}
#define REAL(name) static typeof(name) *real_##name; if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)
ssize_t recv(int fd, void *b, size_t n, int f) { REAL(recv); ssize_t r = real_recv(fd, b, n, f); int e = errno; put(fd, 1, n, r, r < 0 ? e : 0); errno = e; return r; }
ssize_t send(int fd, const void *b, size_t n, int f) { REAL(send); ssize_t r = real_send(fd, b, n, f); int e = errno; put(fd, 2, n, r, r < 0 ? e : 0); errno = e; return r; }
int epoll_wait(int ep, struct epoll_event *ev, int max, int to) { REAL(epoll_wait); int r = real_epoll_wait(ep, ev, max, to); int e = errno; for (int i = 0; i < r; i++) put(ev[i].data.fd, 3, ev[i].events, r, 0); errno = e; return r; }
int shutdown(int fd, int how) { REAL(shutdown); int r = real_shutdown(fd, how); int e = errno; put(fd, 4, how, r, r < 0 ? e : 0); errno = e; return r; }
int close(int fd) { REAL(close); put(fd, 5, 0, 0, 0); return real_close(fd); }
int accept4(int s, struct sockaddr *a, socklen_t *l, int f) { REAL(accept4); int r = real_accept4(s, a, l, f); int e = errno; if (r >= 0) put(r, 6, port_of(r, 1), port_of(r, 0), 0); errno = e; return r; }
int connect(int fd, const struct sockaddr *a, socklen_t l) { REAL(connect); int r = real_connect(fd, a, l); int e = errno; put(fd, 7, port_of(fd, 0), r, r < 0 ? e : 0); errno = e; return r; }
int setsockopt(int fd, int lv, int o, const void *v, socklen_t l) { REAL(setsockopt); int r = real_setsockopt(fd, lv, o, v, l); int e = errno; put(fd, 8, lv * 1000 + o, (l >= 4 && v) ? *(const int *)v : -1, 0); errno = e; return r; }
