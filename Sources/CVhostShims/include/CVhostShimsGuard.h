// Guest memory fault containment. A front-end that shrinks the file behind its guest memory
// (or its dirty log), or whose hugetlbfs pages cannot be faulted in, makes our next access
// there raise SIGBUS. The handler is C because a signal handler may only do async-signal-safe
// work: it finds the faulting address in a registry of guest mappings, maps anonymous
// memory over that whole mapping (so the access completes, reading zeros), sets the owner's
// fault word and writes its eventfd; the control thread then closes that session alone.
// A fault outside every registered mapping goes to the previous handler (or the default
// action), as if we had never installed one.
#ifndef CVHOSTSHIMS_GUARD_H
#define CVHOSTSHIMS_GUARD_H

#include <stdint.h>
#include <stddef.h>

/// Registry slots: one per guarded guest mapping in the whole process, at most. A session
/// holds at most 510 (509 memory slots and a dirty log), so this is 128 sessions at the full
/// 509 slots; it matches the kernel's default vm.max_map_count (65530), past which mmap
/// itself fails. The table grows by chunks as mappings register (8 KiB of slots at a time).
#define VHOST_SHIMS_GUARD_MAX_SLOTS 65536
#define VHOST_SHIMS_GUARD_CHUNKS 256
/// The bit the handler sets in a mapping's fault word.
#define VHOST_SHIMS_GUARD_MEMORY_FAULT 1u

/// Installs the SIGBUS handler once per process (later calls do nothing). 0 or an errno.
int vhost_shims_guard_install(void);

/// Guards [base, base + length): a SIGBUS inside it is contained as above. `fault_word` and
/// `notify_fd` (an eventfd, or -1) must stay valid until the slot is released. Returns the
/// slot, or -1 when the limit is reached (or a chunk of the table cannot be mapped).
int vhost_shims_guard_register(void *base, size_t length, uint32_t *fault_word, int notify_fd);

/// Releases a slot; call before the mapping is unmapped.
void vhost_shims_guard_unregister(int slot);

/// Slots in use now.
int vhost_shims_guard_registered(void);

/// The most slots that may be in use at once: VHOST_SHIMS_GUARD_MAX_SLOTS unless lowered
/// (tests lower it to reach exhaustion without 65,536 mappings). Clamped to 0...MAX.
int vhost_shims_guard_limit(void);
void vhost_shims_guard_set_limit(int limit);

/// Faults contained since the process started.
uint64_t vhost_shims_guard_contained(void);

/// Atomic fault word access from Swift.
static inline void vhost_shims_guard_raise(uint32_t *word, uint32_t bits) {
    __atomic_fetch_or(word, bits, __ATOMIC_SEQ_CST);
}
static inline uint32_t vhost_shims_guard_load(const uint32_t *word) {
    return __atomic_load_n(word, __ATOMIC_SEQ_CST);
}

#endif
