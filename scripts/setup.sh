#!/usr/bin/env bash
# One-time (idempotent) machine set-up for vhost-switch: system packages and hugepages.
# Works as root on a fresh Debian 12 machine and in CI (CI=true, no stdin). Re-runs are quick:
# packages are checked with dpkg first and hugepages are only ever raised, never lowered.
set -euo pipefail

# qemu-system-x86, linux-image-amd64, busybox-static and cpio are for the QEMU guest tests
# (Tests/TestSupport/QemuGuest.swift, scripts/guest/): linux-image-amd64 only puts a guest
# kernel in /boot and its modules in /lib/modules; nothing boots from it here. iperf3 is
# copied into the guest initramfs for the guest-to-guest throughput test (no daemon runs).
PACKAGES=(libmicrohttpd-dev libjansson-dev dpdk dpdk-dev iproute2 iputils-ping curl procps prometheus
          qemu-system-x86 linux-image-amd64 busybox-static cpio ethtool iperf3
          python3)  # python3: scripts/vlan-responder.py (the VLAN tests' 802.1Q peer)
HUGEPAGES_WANTED="${VHOST_SWITCH_HUGEPAGES:-1024}"   # 2 MiB pages (1024 = 2 GiB)
HUGEPAGES_SYSFS=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
HUGETLBFS_MOUNT=/dev/hugepages

log() { printf 'setup: %s\n' "$*"; }

is_root() { [ "$(id -u)" -eq 0 ]; }

as_root() {
    if is_root; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1
    fi
}

# --- packages -------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    # dpkg-query, not `dpkg -s | grep -q`: with pipefail, grep quitting early makes a long
    # package description fail the pipe and the package look missing.
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "packages: all present (${PACKAGES[*]})"
elif ! command -v apt-get >/dev/null 2>&1; then
    log "packages: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
    exit 1
else
    log "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get update -q </dev/null; then
        log "packages: cannot run apt-get as root (not root, no passwordless sudo); install ${missing[*]} by hand" >&2
        exit 1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# --- toolchain (not installed here: Swift comes from swift.org, not from Debian) ----------
if command -v swift >/dev/null 2>&1; then
    log "swift: $(swift --version 2>/dev/null | head -n1)"
else
    log "swift: not found in PATH; install Swift 6.x from https://swift.org/install (needed to build)" >&2
fi

# --- hugepages ------------------------------------------------------------------------
if ! is_root; then
    log "hugepages: skipped (not root); integration tests with dpdk-testpmd will skip themselves"
    exit 0
fi

if [ ! -w "$HUGEPAGES_SYSFS" ]; then
    log "hugepages: skipped ($HUGEPAGES_SYSFS is not writable here, e.g. an unprivileged container)"
else
    current="$(cat "$HUGEPAGES_SYSFS")"
    if [ "$current" -ge "$HUGEPAGES_WANTED" ]; then
        log "hugepages: $current x 2 MiB reserved (>= $HUGEPAGES_WANTED), unchanged"
    else
        log "hugepages: raising 2 MiB pages from $current to $HUGEPAGES_WANTED"
        echo "$HUGEPAGES_WANTED" > "$HUGEPAGES_SYSFS" || true
        now="$(cat "$HUGEPAGES_SYSFS")"
        if [ "$now" -lt "$HUGEPAGES_WANTED" ]; then
            log "hugepages: kernel granted only $now pages (memory fragmented or short)" >&2
        else
            log "hugepages: $now x 2 MiB reserved"
        fi
    fi
fi

if grep -qs " $HUGETLBFS_MOUNT hugetlbfs " /proc/mounts; then
    log "hugetlbfs: already mounted at $HUGETLBFS_MOUNT"
else
    log "hugetlbfs: mounting at $HUGETLBFS_MOUNT"
    mkdir -p "$HUGETLBFS_MOUNT"
    if ! mount -t hugetlbfs -o pagesize=2M nodev "$HUGETLBFS_MOUNT"; then
        log "hugetlbfs: mount failed (no CAP_SYS_ADMIN?); integration tests will skip themselves" >&2
    fi
fi

log "hugepages: $(grep -E '^HugePages_(Total|Free)' /proc/meminfo | tr -s ' ' | paste -sd ' ')"
log "done"
