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

// The registry grows by chunks, so a process with few sessions keeps a small table and one
// with many (509 regions and a log each) is not capped by a fixed array. A chunk is mapped
// once and never freed, and is published with a release store: the handler reads the chunk
// pointers with acquire loads and takes no lock (a lock could be held by the thread it
// interrupted).
#define CHUNK_SLOTS (VHOST_SHIMS_GUARD_MAX_SLOTS / VHOST_SHIMS_GUARD_CHUNKS)
_Static_assert(CHUNK_SLOTS * VHOST_SHIMS_GUARD_CHUNKS == VHOST_SHIMS_GUARD_MAX_SLOTS, "whole chunks");

static struct guard_slot *chunks[VHOST_SHIMS_GUARD_CHUNKS];
static int slot_limit = VHOST_SHIMS_GUARD_MAX_SLOTS;
static int registered;
static struct sigaction previous_action;
static int installed;
static uint64_t contained;

static int contain(uintptr_t address) {
    for (int c = 0; c < VHOST_SHIMS_GUARD_CHUNKS; c++) {
        struct guard_slot *chunk = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
        if (!chunk) return 0;  // chunks are published in order
        for (int i = 0; i < CHUNK_SLOTS; i++) {
            struct guard_slot *slot = &chunk[i];
            uintptr_t base = __atomic_load_n(&slot->base, __ATOMIC_ACQUIRE);
            if (base <= 1) continue;
            size_t length = __atomic_load_n(&slot->length, __ATOMIC_RELAXED);
            if (address < base || address - base >= length) continue;
            // The whole mapping: a hugetlbfs mapping cannot be split at a small page.
            void *replaced = mmap((void *)base, length, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
            if (replaced == MAP_FAILED) return 0;
            uint32_t *word = __atomic_load_n(&slot->fault_word, __ATOMIC_RELAXED);
            if (word) __atomic_fetch_or(word, VHOST_SHIMS_GUARD_MEMORY_FAULT, __ATOMIC_SEQ_CST);
            int fd = __atomic_load_n(&slot->notify_fd, __ATOMIC_RELAXED);
            if (fd >= 0) {
                uint64_t one = 1;
                ssize_t ignored = write(fd, &one, sizeof(one));
                (void)ignored;
            }
            __atomic_fetch_add(&contained, 1, __ATOMIC_RELAXED);
            return 1;
        }
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

// Chunk c, mapped and published on first use; NULL when it cannot be mapped. Two threads
// may race to map it: one publishes, the other unmaps its own and takes the winner's.
static struct guard_slot *chunk_at(int c) {
    struct guard_slot *chunk = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
    if (chunk) return chunk;
    size_t bytes = sizeof(struct guard_slot) * CHUNK_SLOTS;
    void *mapped = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return NULL;
    struct guard_slot *fresh = mapped;
    for (int i = 0; i < CHUNK_SLOTS; i++) fresh[i].notify_fd = -1;  // base 0: free
    struct guard_slot *expected = NULL;
    if (__atomic_compare_exchange_n(&chunks[c], &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return fresh;
    munmap(mapped, bytes);
    return expected;
}

int vhost_shims_guard_register(void *base, size_t length, uint32_t *fault_word, int notify_fd) {
    if ((uintptr_t)base <= 1 || length == 0) return -1;
    int limit = __atomic_load_n(&slot_limit, __ATOMIC_RELAXED);
    // Counted first, so concurrent registrations never hold more than the limit together.
    if (__atomic_add_fetch(&registered, 1, __ATOMIC_ACQ_REL) > limit) {
        __atomic_sub_fetch(&registered, 1, __ATOMIC_ACQ_REL);
        return -1;
    }
    for (int c = 0; c < VHOST_SHIMS_GUARD_CHUNKS; c++) {
        struct guard_slot *chunk = chunk_at(c);
        if (!chunk) break;
        for (int i = 0; i < CHUNK_SLOTS; i++) {
            struct guard_slot *slot = &chunk[i];
            uintptr_t expected = 0;
            if (!__atomic_compare_exchange_n(&slot->base, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
            __atomic_store_n(&slot->length, length, __ATOMIC_RELAXED);
            __atomic_store_n(&slot->fault_word, fault_word, __ATOMIC_RELAXED);
            __atomic_store_n(&slot->notify_fd, notify_fd, __ATOMIC_RELAXED);
            __atomic_store_n(&slot->base, (uintptr_t)base, __ATOMIC_RELEASE);
            return c * CHUNK_SLOTS + i;
        }
    }
    __atomic_sub_fetch(&registered, 1, __ATOMIC_ACQ_REL);
    return -1;
}

void vhost_shims_guard_unregister(int index) {
    if (index < 0 || index >= VHOST_SHIMS_GUARD_MAX_SLOTS) return;
    struct guard_slot *chunk = __atomic_load_n(&chunks[index / CHUNK_SLOTS], __ATOMIC_ACQUIRE);
    if (!chunk) return;
    struct guard_slot *slot = &chunk[index % CHUNK_SLOTS];
    __atomic_store_n(&slot->base, 1, __ATOMIC_SEQ_CST);  // invisible to the handler first
    __atomic_store_n(&slot->fault_word, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->notify_fd, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->base, 0, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&registered, 1, __ATOMIC_ACQ_REL);
}

int vhost_shims_guard_registered(void) {
    return __atomic_load_n(&registered, __ATOMIC_RELAXED);
}

int vhost_shims_guard_limit(void) {
    return __atomic_load_n(&slot_limit, __ATOMIC_RELAXED);
}

void vhost_shims_guard_set_limit(int limit) {
    if (limit < 0) limit = 0;
    if (limit > VHOST_SHIMS_GUARD_MAX_SLOTS) limit = VHOST_SHIMS_GUARD_MAX_SLOTS;
    __atomic_store_n(&slot_limit, limit, __ATOMIC_RELAXED);
}

uint64_t vhost_shims_guard_contained(void) {
    return __atomic_load_n(&contained, __ATOMIC_RELAXED);
}
