// The bpf(2) commands of an AF_XDP port (see CVhostShimsXDP.h for why they are in C).
#include <linux/bpf.h>
#include "CVhostShims.h"

static int vhost_shims_bpf(int cmd, union bpf_attr *attr) {
    return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

int vhost_shims_xdp_map_create(uint32_t entries) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_XSKMAP;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = entries;
    attr.map_flags = 0;
    memcpy(attr.map_name, "vhost_xsks", sizeof("vhost_xsks"));
    return vhost_shims_bpf(BPF_MAP_CREATE, &attr);
}

int vhost_shims_xdp_program_load(int map_fd, char *log, uint32_t log_size) {
    // r2 = ctx->rx_queue_index; r1 = &xsks (ld_imm64, two slots); r3 = XDP_PASS;
    // r0 = bpf_redirect_map(r1, r2, r3); exit. XDP_PASS in the flags is the action when
    // the map has no socket at that index (kernel 5.3+).
    struct bpf_insn program[] = {
        { .code = BPF_LDX | BPF_W | BPF_MEM, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_1,
          .off = offsetof(struct xdp_md, rx_queue_index) },
        { .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD,
          .imm = map_fd },
        { .code = 0 },
        { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = XDP_PASS },
        { .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map },
        { .code = BPF_JMP | BPF_EXIT },
    };
    static const char license[] = "Dual BSD/GPL";
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.expected_attach_type = BPF_XDP;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.insn_cnt = sizeof(program) / sizeof(program[0]);
    attr.license = (uint64_t)(uintptr_t)license;
    if (log != NULL && log_size > 0) {
        log[0] = 0;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    memcpy(attr.prog_name, "vhost_xsk_redir", sizeof("vhost_xsk_redir"));
    int fd = vhost_shims_bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0 && log != NULL && log_size > 0 && errno == ENOSPC) {
        // The log was too small: retry without it, so the load error is the real one.
        attr.log_buf = 0;
        attr.log_size = 0;
        attr.log_level = 0;
        fd = vhost_shims_bpf(BPF_PROG_LOAD, &attr);
    }
    return fd;
}

int vhost_shims_xdp_link_create(int prog_fd, int ifindex, uint32_t xdp_flags) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.link_create.prog_fd = (uint32_t)prog_fd;
    attr.link_create.target_ifindex = (uint32_t)ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = xdp_flags;
    return vhost_shims_bpf(BPF_LINK_CREATE, &attr);
}

int vhost_shims_xdp_map_set(int map_fd, uint32_t queue, int socket_fd) {
    uint32_t value = (uint32_t)socket_fd;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)map_fd;
    attr.key = (uint64_t)(uintptr_t)&queue;
    attr.value = (uint64_t)(uintptr_t)&value;
    attr.flags = BPF_ANY;
    return vhost_shims_bpf(BPF_MAP_UPDATE_ELEM, &attr);
}
