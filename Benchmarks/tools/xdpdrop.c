// xdpdrop IFACE [native|generic]: attaches an XDP program that drops every frame to IFACE
// (in the calling network namespace) and keeps it attached until SIGTERM/SIGINT. The
// benchmark's namespace end runs it so that vhost->kernel figures measure the switch's I/O
// cost, not the namespace's IP stack. The program (r0 = XDP_DROP; exit) is two instructions,
// loaded with bpf(2) and attached through a bpf link: it goes away with this process, so
// nothing is left on the interface however the benchmark ends. Prints "attached <mode>".
// Build: gcc -O2 -Wall -o xdpdrop xdpdrop.c
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int bpf(int cmd, union bpf_attr *attr) { return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

static void on_signal(int sig) { (void)sig; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s IFACE [native|generic]\n", argv[0]);
        return 2;
    }
    unsigned ifindex = if_nametoindex(argv[1]);
    if (ifindex == 0) {
        fprintf(stderr, "xdpdrop: no interface %s\n", argv[1]);
        return 1;
    }
    int generic = argc > 2 && strcmp(argv[2], "generic") == 0;
    struct bpf_insn program[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_DROP},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.expected_attach_type = BPF_XDP;
    attr.insns = (unsigned long)program;
    attr.insn_cnt = 2;
    attr.license = (unsigned long)"Dual BSD/GPL";
    int prog = bpf(BPF_PROG_LOAD, &attr);
    if (prog < 0) {
        fprintf(stderr, "xdpdrop: BPF_PROG_LOAD: %s\n", strerror(errno));
        return 1;
    }
    memset(&attr, 0, sizeof(attr));
    attr.link_create.prog_fd = prog;
    attr.link_create.target_ifindex = ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    int link = bpf(BPF_LINK_CREATE, &attr);
    if (link < 0) {
        fprintf(stderr, "xdpdrop: attach to %s (%s): %s\n", argv[1], generic ? "generic" : "native", strerror(errno));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("attached %s\n", generic ? "generic" : "native");
    fflush(stdout);
    pause();
    close(link);
    return 0;
}
