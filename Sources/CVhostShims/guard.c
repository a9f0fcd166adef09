// SIGBUS containment for guest mappings: see CVhostShimsGuard.h for why this is C.
#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "CVhostShimsGuard.h"

// A slot is free when base is 0 and being filled in when base is 1 (claimed, not yet
// visible to the handler). Fields are atomics: the handler may run on any thread while
// another registers or releases a slot.
struct guard_slot {
    uintptr_t base;
    size_t length;
    uint32_t *fault_word;
    int notify_fd;
};

static struct guard_slot slots[VHOST_SHIMS_GUARD_SLOTS];
static struct sigaction previous_action;
static int installed;
static uint64_t contained;

static int contain(uintptr_t address) {
    for (int i = 0; i < VHOST_SHIMS_GUARD_SLOTS; i++) {
        uintptr_t base = __atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE);
        if (base <= 1) continue;
        size_t length = __atomic_load_n(&slots[i].length, __ATOMIC_RELAXED);
        if (address < base || address - base >= length) continue;
        // The whole mapping: a hugetlbfs mapping cannot be split at a small page.
        void *replaced = mmap((void *)base, length, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
        if (replaced == MAP_FAILED) return 0;
        uint32_t *word = __atomic_load_n(&slots[i].fault_word, __ATOMIC_RELAXED);
        if (word) __atomic_fetch_or(word, VHOST_SHIMS_GUARD_MEMORY_FAULT, __ATOMIC_SEQ_CST);
        int fd = __atomic_load_n(&slots[i].notify_fd, __ATOMIC_RELAXED);
        if (fd >= 0) {
            uint64_t one = 1;
            ssize_t ignored = write(fd, &one, sizeof(one));
            (void)ignored;
        }
        __atomic_fetch_add(&contained, 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

static void on_sigbus(int signo, siginfo_t *info, void *context) {
    int saved_errno = errno;
    if (info && contain((uintptr_t)info->si_addr)) {
        errno = saved_errno;
        return;  // the faulting access runs again, on anonymous memory
    }
    errno = saved_errno;
    // Not guest memory: a real bug. Hand it to whoever handled SIGBUS before us.
    if (previous_action.sa_flags & SA_SIGINFO) {
        if (previous_action.sa_sigaction) { previous_action.sa_sigaction(signo, info, context); return; }
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(signo);
        return;
    }
    // Default action: restore it; returning re-runs the access, which faults again and kills.
    signal(SIGBUS, SIG_DFL);
}

int vhost_shims_guard_install(void) {
    int expected = 0;
    if (!__atomic_compare_exchange_n(&installed, &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous_action) != 0) {
        int error = errno;
        __atomic_store_n(&installed, 0, __ATOMIC_SEQ_CST);
        return error;
    }
    return 0;
}

int vhost_shims_guard_register(void *base, size_t length, uint32_t *fault_word, int notify_fd) {
    if ((uintptr_t)base <= 1 || length == 0) return -1;
    for (int i = 0; i < VHOST_SHIMS_GUARD_SLOTS; i++) {
        uintptr_t expected = 0;
        if (!__atomic_compare_exchange_n(&slots[i].base, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
        __atomic_store_n(&slots[i].length, length, __ATOMIC_RELAXED);
        __atomic_store_n(&slots[i].fault_word, fault_word, __ATOMIC_RELAXED);
        __atomic_store_n(&slots[i].notify_fd, notify_fd, __ATOMIC_RELAXED);
        __atomic_store_n(&slots[i].base, (uintptr_t)base, __ATOMIC_RELEASE);
        return i;
    }
    return -1;
}

void vhost_shims_guard_unregister(int slot) {
    if (slot < 0 || slot >= VHOST_SHIMS_GUARD_SLOTS) return;
    __atomic_store_n(&slots[slot].base, 1, __ATOMIC_SEQ_CST);  // invisible to the handler first
    __atomic_store_n(&slots[slot].fault_word, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&slots[slot].notify_fd, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&slots[slot].base, 0, __ATOMIC_RELEASE);
}

uint64_t vhost_shims_guard_contained(void) {
    return __atomic_load_n(&contained, __ATOMIC_RELAXED);
}
