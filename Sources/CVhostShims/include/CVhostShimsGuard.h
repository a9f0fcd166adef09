// Guest memory fault containment. A front-end that shrinks the file behind its guest memory
// (or its dirty log), or whose hugetlbfs pages cannot be faulted in, makes our next access
// there raise SIGBUS. The handler is C because a signal handler may only do async-signal-safe
// work: it finds the faulting address in a fixed registry of guest mappings, maps anonymous
// memory over that whole mapping (so the access completes, reading zeros), sets the owner's
// fault word and writes its eventfd; the control thread then closes that session alone.
// A fault outside every registered mapping goes to the previous handler (or the default
// action), as if we had never installed one.
#ifndef CVHOSTSHIMS_GUARD_H
#define CVHOSTSHIMS_GUARD_H

#include <stdint.h>
#include <stddef.h>

/// Registry slots: one per guarded guest mapping in the whole process.
#define VHOST_SHIMS_GUARD_SLOTS 8192
/// The bit the handler sets in a mapping's fault word.
#define VHOST_SHIMS_GUARD_MEMORY_FAULT 1u

/// Installs the SIGBUS handler once per process (later calls do nothing). 0 or an errno.
int vhost_shims_guard_install(void);

/// Guards [base, base + length): a SIGBUS inside it is contained as above. `fault_word` and
/// `notify_fd` (an eventfd, or -1) must stay valid until the slot is released. Returns the
/// slot, or -1 when every slot is taken.
int vhost_shims_guard_register(void *base, size_t length, uint32_t *fault_word, int notify_fd);

/// Releases a slot; call before the mapping is unmapped.
void vhost_shims_guard_unregister(int slot);

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
