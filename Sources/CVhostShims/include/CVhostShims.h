// CVhostShims: the C that Swift cannot say. Every function here exists because Swift
// cannot import the macro or builtin it wraps (CMSG_*, __atomic_*, rdtsc) or because
// glibc declares it behind a feature macro. Keep it small; logic belongs in Swift.
#ifndef CVHOSTSHIMS_H
#define CVHOSTSHIMS_H

#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <arpa/inet.h>

/// The most file descriptors one vhost-user message may carry (vhost-user.rst).
#define VHOST_SHIMS_MAX_FDS 8

/// sendmsg with the fds as one SCM_RIGHTS control message: CMSG_* are macros.
/// Returns bytes sent, or -1 with errno set.
static inline ssize_t vhost_shims_send_with_fds(int sock, const void *buf, size_t len,
                                                const int *fds, int nfds) {
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    union { char buf[CMSG_SPACE(sizeof(int) * VHOST_SHIMS_MAX_FDS)]; struct cmsghdr align; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > VHOST_SHIMS_MAX_FDS) { errno = EINVAL; return -1; }
    if (nfds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/// recvmsg that collects SCM_RIGHTS fds into `fds` (at most `maxfds`, the rest closed).
/// `*nfds` gets the count kept; `*truncated` is set when the kernel cut the control data
/// (MSG_CTRUNC) or more fds came than fit, so the caller can refuse the message.
/// fds are received with MSG_CMSG_CLOEXEC. Returns bytes read, or -1 with errno.
static inline ssize_t vhost_shims_recv_with_fds(int sock, void *buf, size_t len, int *fds,
                                                int maxfds, int *nfds, int *truncated) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    // Room for more than we accept, so an excess is seen (and closed) rather than lost.
    union { char buf[CMSG_SPACE(sizeof(int) * (VHOST_SHIMS_MAX_FDS * 4))]; struct cmsghdr align; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    *nfds = 0;
    *truncated = 0;
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) return n;
    if (msg.msg_flags & MSG_CTRUNC) *truncated = 1;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *data = (int *)CMSG_DATA(cmsg);
        for (size_t i = 0; i < count; i++) {
            if (*nfds < maxfds) {
                fds[(*nfds)++] = data[i];
            } else {
                close(data[i]);
                *truncated = 1;
            }
        }
    }
    return n;
}

// Guest memory is shared with another process: Swift has no atomics on raw pointers into
// foreign memory, so the ring index loads/stores and fences are done here.
static inline uint16_t vhost_shims_load_acquire_u16(const void *p) {
    return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}
static inline void vhost_shims_store_release_u16(void *p, uint16_t v) {
    __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
}
static inline uint16_t vhost_shims_load_relaxed_u16(const void *p) {
    return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
}
static inline void vhost_shims_store_relaxed_u16(void *p, uint16_t v) {
    __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED);
}
static inline void vhost_shims_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void vhost_shims_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void vhost_shims_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
// 64-bit words shared between poll threads (MAC table slots): relaxed, tear-free.
static inline uint32_t vhost_shims_load_relaxed_u32(const void *p) {
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
}
static inline void vhost_shims_store_relaxed_u32(void *p, uint32_t v) {
    __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED);
}
static inline uint64_t vhost_shims_load_relaxed_u64(const void *p) {
    return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
}
static inline void vhost_shims_store_relaxed_u64(void *p, uint64_t v) {
    __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED);
}
// MAC table slots, shared by every poll thread, housekeeping and the control side: a slot
// changes only through a compare-and-swap of its key word (claim), and per-port entry
// counts are added atomically, so concurrent writers never lose a count.
static inline uint64_t vhost_shims_load_acquire_u64(const void *p) {
    return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
}
static inline void vhost_shims_store_release_u64(void *p, uint64_t v) {
    __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
}
/// True when *p held `expected` and now holds `desired` (acquire-release on success).
static inline int vhost_shims_compare_exchange_u64(void *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n((uint64_t *)p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}
/// Adds `delta` (two's complement: subtracts too); returns the previous value.
static inline uint32_t vhost_shims_fetch_add_relaxed_u32(void *p, uint32_t delta) {
    return __atomic_fetch_add((uint32_t *)p, delta, __ATOMIC_RELAXED);
}
/// A CPU hint for spin-wait loops.
static inline void vhost_shims_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Dirty-page log bits are shared with QEMU, which reads them concurrently. Release: the
/// guest-memory stores a mark covers are never moved after it (QEMU copies a page once it
/// has seen and cleared its bit). On x86 the same locked instruction as relaxed.
static inline void vhost_shims_atomic_or_u8(void *p, uint8_t bits) {
    __atomic_fetch_or((uint8_t *)p, bits, __ATOMIC_RELEASE);
}

/// Cache prefetch hints (a read or a write soon) for guest rings and buffers the other core
/// wrote last. Hints only: the address need not be valid.
static inline void vhost_shims_prefetch_read(const void *p) { __builtin_prefetch(p, 0, 3); }
static inline void vhost_shims_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }

/// The time-stamp counter, for per-poll-thread busy/idle cycle accounting.
static inline uint64_t vhost_shims_rdtsc(void) {
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

// Defined in shims.c, which is compiled with _GNU_SOURCE: defining it in this header
// would make the header disagree with Swift's Glibc module.

/// memfd_create(2).
int vhost_shims_memfd_create(const char *name, unsigned int flags);
/// getrusage(RUSAGE_THREAD) (a GNU name): times the calling thread was preempted, -1 on error.
long vhost_shims_thread_involuntary_switches(void);
/// MFD_CLOEXEC, from <sys/mman.h> under _GNU_SOURCE.
#define VHOST_SHIMS_MFD_CLOEXEC 0x0001U
/// POLLRDHUP (the peer closed or shut down writing), from <poll.h> under _GNU_SOURCE.
#define VHOST_SHIMS_POLLRDHUP 0x2000
/// CPU_ZERO/CPU_SET are macros; pthread_setaffinity_np is a GNU extension. Returns 0 or an errno.
int vhost_shims_set_thread_affinity(pthread_t thread, const int *cpus, int count);
/// pthread_setname_np, a GNU extension (names are cut to 15 bytes).
int vhost_shims_set_thread_name(const char *name);
/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC.
int vhost_shims_accept_nonblocking(int listener);

/// The errno of this thread (a macro in glibc).
static inline int vhost_shims_errno(void) { return errno; }

// AF_PACKET ring layout and interface ioctls.
#include "CVhostShimsPacket.h"
#include "CVhostShimsGuard.h"
// AF_XDP: the bpf(2) commands of the XSKMAP, the redirect program and its link.
#include "CVhostShimsXDP.h"

#endif
