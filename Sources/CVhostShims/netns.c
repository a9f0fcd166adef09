// setns(2) is declared by glibc only under _GNU_SOURCE, which this file defines and the
// shared header must not (see CVhostShims.h).
#define _GNU_SOURCE 1
#include <sched.h>
#include "CVhostShims.h"

int vhost_shims_setns_net(int fd) {
    return setns(fd, CLONE_NEWNET);
}
