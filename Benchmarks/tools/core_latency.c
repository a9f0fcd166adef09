// Cache-line round trip between two CPUs (ns): one thread on each bounces a flag. On a
// shared virtual machine the host may place the two vCPUs on one core's siblings, on one
// chiplet or across chiplets, and every vhost back-end's cost per packet follows that
// distance (the front-end's core writes what the back-end's core reads, and back). The
// benchmark records it around every window so that figures are read with it.
// Usage: core_latency CPU_A CPU_B [ROUND_TRIPS]
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) _Atomic long flag;
static long round_trips = 100000;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *cpu) {
    pin((int)(long)cpu);
    for (long i = 0; i < round_trips; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 1) {}
        atomic_store_explicit(&flag, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CPU_A CPU_B [ROUND_TRIPS]\n", argv[0]);
        return 2;
    }
    if (argc > 3) round_trips = atol(argv[3]);
    pthread_t peer;
    pin(atoi(argv[1]));
    pthread_create(&peer, NULL, answer, (void *)(long)atoi(argv[2]));
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < round_trips; i++) {
        atomic_store_explicit(&flag, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 2) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    pthread_join(peer, NULL);
    printf("%.0f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / round_trips);
    return 0;
}
