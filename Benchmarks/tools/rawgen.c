/* rawgen: a minimal AF_PACKET traffic generator for the vhost-to-kernel benchmark.
 * Sends fixed UDP/IPv4 frames out of one interface as fast as it can, in batches with
 * sendmmsg() and PACKET_QDISC_BYPASS, for a given number of seconds (or until SIGTERM/SIGINT),
 * then prints "sent N" on stdout.
 * usage: rawgen IFACE DST_MAC SRC_MAC FRAME_LEN SECONDS */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static int parse_mac(const char *text, unsigned char mac[6]) {
    return sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s IFACE DST_MAC SRC_MAC FRAME_LEN SECONDS\n", argv[0]); return 2; }
    unsigned char dst[6], src[6];
    if (parse_mac(argv[2], dst) || parse_mac(argv[3], src)) { fprintf(stderr, "bad MAC\n"); return 2; }
    int len = atoi(argv[4]);
    if (len < 60 || len > 9000) { fprintf(stderr, "bad length\n"); return 2; }
    double seconds = atof(argv[5]);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int fd = socket(AF_PACKET, SOCK_RAW, 0);  /* protocol 0: transmit only, no receive queue */
    if (fd < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    struct sockaddr_ll addr = {0};
    addr.sll_family = AF_PACKET;
    addr.sll_ifindex = (int)if_nametoindex(argv[1]);
    if (addr.sll_ifindex == 0) { perror("if_nametoindex"); return 1; }
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }

    unsigned char frame[9000] = {0};
    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = 0x08; frame[13] = 0x00;                       /* IPv4 */
    unsigned char *ip = frame + 14;
    int iplen = len - 14;
    ip[0] = 0x45; ip[2] = (unsigned char)(iplen >> 8); ip[3] = (unsigned char)iplen;
    ip[8] = 64; ip[9] = 17;                                    /* TTL, UDP */
    ip[12] = 198; ip[13] = 18; ip[14] = 0; ip[15] = 1;         /* 198.18.0.1 -> 198.18.0.2 */
    ip[16] = 198; ip[17] = 18; ip[18] = 0; ip[19] = 2;
    unsigned sum = 0;
    for (int i = 0; i < 20; i += 2) sum += (ip[i] << 8) | ip[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    sum = ~sum & 0xffff; ip[10] = (unsigned char)(sum >> 8); ip[11] = (unsigned char)sum;
    unsigned char *udp = ip + 20;
    udp[0] = 0x04; udp[1] = 0xd2; udp[2] = 0x16; udp[3] = 0x2e;
    udp[4] = (unsigned char)((iplen - 20) >> 8); udp[5] = (unsigned char)(iplen - 20);

    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = frame; iov[i].iov_len = (size_t)len;
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    unsigned long long sent = 0;
    for (unsigned long iteration = 0; !stop; iteration++) {
        int n = sendmmsg(fd, msgs, BATCH, 0);
        if (n > 0) sent += (unsigned)n;
        if ((iteration & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >= seconds) break;
        }
    }
    printf("sent %llu\n", sent);
    return 0;
}
