// CVhostShims, AF_PACKET part: the layout of the TPACKET_V3 rings and the interface
// ioctls. Swift cannot import TPACKET_ALIGN / TPACKET3_HDRLEN (function-like macros),
// cannot take offsetof() of fields behind the anonymous union in tpacket3_hdr, and
// struct ifreq is a union-of-unions that is painful and error-prone to fill from Swift.
// Included from CVhostShims.h; keep logic in Swift (VhostSystem/PacketSocket.swift).
#ifndef CVHOSTSHIMS_PACKET_H
#define CVHOSTSHIMS_PACKET_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>

/// Ring layout constants (packet_mmap.rst, "TPACKET_V3"). Offsets are from the start of
/// a block (tpacket_block_desc) or of a frame (tpacket3_hdr).
enum {
    /// Where the sockaddr_ll of a received frame starts, and where a transmitted frame's
    /// data starts when PACKET_TX_HAS_OFF is off (tp_hdrlen - sizeof(sockaddr_ll)).
    VHOST_SHIMS_TPACKET3_ALIGNED_HEADER = TPACKET_ALIGN(sizeof(struct tpacket3_hdr)),
    /// TPACKET3_HDRLEN: the aligned frame header plus its sockaddr_ll.
    VHOST_SHIMS_TPACKET3_HDRLEN = TPACKET3_HDRLEN,
    VHOST_SHIMS_TPACKET_ALIGNMENT = TPACKET_ALIGNMENT,
    VHOST_SHIMS_TP3_NEXT_OFFSET = offsetof(struct tpacket3_hdr, tp_next_offset),
    VHOST_SHIMS_TP3_SNAPLEN = offsetof(struct tpacket3_hdr, tp_snaplen),
    VHOST_SHIMS_TP3_LEN = offsetof(struct tpacket3_hdr, tp_len),
    VHOST_SHIMS_TP3_STATUS = offsetof(struct tpacket3_hdr, tp_status),
    VHOST_SHIMS_TP3_MAC = offsetof(struct tpacket3_hdr, tp_mac),
    VHOST_SHIMS_TP3_NET = offsetof(struct tpacket3_hdr, tp_net),
    VHOST_SHIMS_TP3_VLAN_TCI = offsetof(struct tpacket3_hdr, hv1.tp_vlan_tci),
    VHOST_SHIMS_TP3_VLAN_TPID = offsetof(struct tpacket3_hdr, hv1.tp_vlan_tpid),
    VHOST_SHIMS_SLL_PKTTYPE = offsetof(struct sockaddr_ll, sll_pkttype),
    VHOST_SHIMS_SLL_SIZE = sizeof(struct sockaddr_ll),
    VHOST_SHIMS_BLOCK_STATUS = offsetof(struct tpacket_block_desc, hdr.bh1.block_status),
    VHOST_SHIMS_BLOCK_NUM_PKTS = offsetof(struct tpacket_block_desc, hdr.bh1.num_pkts),
    VHOST_SHIMS_BLOCK_FIRST_PKT = offsetof(struct tpacket_block_desc, hdr.bh1.offset_to_first_pkt),
    VHOST_SHIMS_BLOCK_LEN = offsetof(struct tpacket_block_desc, hdr.bh1.blk_len),
    VHOST_SHIMS_BLOCK_DESC_SIZE = sizeof(struct tpacket_block_desc),
};

// Ring status words are shared with the kernel, which reads and writes them concurrently:
// the user/kernel hand-over needs acquire on read and release on write (packet_mmap.rst).
static inline uint32_t vhost_shims_load_acquire_u32(const void *p) {
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}
static inline void vhost_shims_store_release_u32(void *p, uint32_t v) {
    __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE);
}

/// Fills ifr_name, refusing names that do not fit (IFNAMSIZ includes the NUL).
static inline int vhost_shims_ifreq_set_name(struct ifreq *req, const char *name) {
    memset(req, 0, sizeof(*req));
    size_t length = strnlen(name, IFNAMSIZ);
    if (length == 0 || length >= IFNAMSIZ) { errno = EINVAL; return -1; }
    memcpy(req->ifr_name, name, length);
    return 0;
}

/// SIOCGIFINDEX on `sock`: resolves `name` in the socket's network namespace (unlike
/// if_nametoindex, which uses the calling thread's). Returns the index or -1 with errno.
static inline int vhost_shims_interface_index(int sock, const char *name) {
    struct ifreq req;
    if (vhost_shims_ifreq_set_name(&req, name) < 0) return -1;
    if (ioctl(sock, SIOCGIFINDEX, &req) < 0) return -1;
    return req.ifr_ifindex;
}

/// SIOCGIFFLAGS: the interface flags (IFF_UP, IFF_RUNNING, ...), or -1 with errno.
static inline int vhost_shims_interface_flags(int sock, const char *name) {
    struct ifreq req;
    if (vhost_shims_ifreq_set_name(&req, name) < 0) return -1;
    if (ioctl(sock, SIOCGIFFLAGS, &req) < 0) return -1;
    return (int)(unsigned short)req.ifr_flags;
}

/// SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP set or cleared. Returns 0 or -1 with errno.
static inline int vhost_shims_interface_set_up(int sock, const char *name, int up) {
    struct ifreq req;
    if (vhost_shims_ifreq_set_name(&req, name) < 0) return -1;
    if (ioctl(sock, SIOCGIFFLAGS, &req) < 0) return -1;
    if (up) req.ifr_flags |= IFF_UP; else req.ifr_flags &= ~IFF_UP;
    return ioctl(sock, SIOCSIFFLAGS, &req);
}

/// SIOCGIFMTU, or -1 with errno.
static inline int vhost_shims_interface_mtu(int sock, const char *name) {
    struct ifreq req;
    if (vhost_shims_ifreq_set_name(&req, name) < 0) return -1;
    if (ioctl(sock, SIOCGIFMTU, &req) < 0) return -1;
    return req.ifr_mtu;
}

/// SIOCGIFHWADDR: copies the 6-byte MAC address into `mac`. Returns 0 or -1 with errno.
static inline int vhost_shims_interface_mac(int sock, const char *name, uint8_t mac[6]) {
    struct ifreq req;
    if (vhost_shims_ifreq_set_name(&req, name) < 0) return -1;
    if (ioctl(sock, SIOCGIFHWADDR, &req) < 0) return -1;
    memcpy(mac, req.ifr_hwaddr.sa_data, 6);
    return 0;
}

/// if_nametoindex(3) in the calling thread's namespace; 0 with errno when there is none.
static inline unsigned int vhost_shims_if_nametoindex(const char *name) { return if_nametoindex(name); }

/// setns(fd, CLONE_NEWNET) for the calling thread (netns.c: needs _GNU_SOURCE).
int vhost_shims_setns_net(int fd);

#endif
