// CVhostShims, AF_XDP part: the bpf(2) commands an AF_XDP port needs (its XSKMAP, the
// redirect program, the link that attaches it, the map entry). Swift cannot fill
// `union bpf_attr` (anonymous structs inside a union) or say BPF_LD_IMM64 with a map fd;
// glibc has no bpf() wrapper. Each function is one bpf(2) call; the logic (order,
// fallbacks, cleanup) is in Swift (VhostSystem/XDPSocket.swift).
// Included from CVhostShims.h.
#ifndef CVHOSTSHIMS_XDP_H
#define CVHOSTSHIMS_XDP_H

#include <stdint.h>
#include <linux/if_xdp.h>
#include <linux/if_link.h>

/// BPF_MAP_CREATE of an XSKMAP with `entries` slots (one per queue id). Returns the map's
/// fd (close-on-exec) or -1 with errno set.
int vhost_shims_xdp_map_create(uint32_t entries);

/// BPF_PROG_LOAD of the XDP program every AF_XDP port uses:
///   return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
/// (frames of queues without a socket go on to the kernel's stack). `log` receives the
/// verifier's message on failure (may be NULL). Returns the program's fd or -1 with errno.
int vhost_shims_xdp_program_load(int map_fd, char *log, uint32_t log_size);

/// BPF_LINK_CREATE attaching the program to `ifindex` with XDP_FLAGS_DRV_MODE or
/// XDP_FLAGS_SKB_MODE. The program stays attached exactly as long as the returned fd is
/// open (closing it, or the process dying, detaches it). Returns the fd or -1 with errno
/// (EBUSY: another XDP program is attached; EOPNOTSUPP/EINVAL: the mode is not supported).
int vhost_shims_xdp_link_create(int prog_fd, int ifindex, uint32_t xdp_flags);

/// BPF_MAP_UPDATE_ELEM: XSKMAP[queue] = socket. 0 or -1 with errno.
int vhost_shims_xdp_map_set(int map_fd, uint32_t queue, int socket_fd);

#endif
