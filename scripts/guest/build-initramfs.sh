#!/usr/bin/env bash
# Builds the test guest for the QEMU tests: a Debian kernel (linux-image-amd64) and a
# busybox-static initramfs holding virtio_net, virtio_pci and their dependencies (in
# modules.dep order) and scripts/guest/init. 8021q and its dependencies go in too, not loaded
# at boot: a test that wants VLAN sub-interfaces in the guest insmods them in the order of
# /modules.8021q (the output line says vlan=yes|no; no when this kernel has no 8021q). When
# the host has iperf3 (Debian's iperf3), it goes in too, with the shared libraries ldd finds
# and the dynamic loader, for the TCP throughput test; the output line says iperf3=yes|no.
#
#   scripts/guest/build-initramfs.sh OUTDIR [KERNEL_VERSION]
#
# Writes OUTDIR/vmlinuz and OUTDIR/initramfs.cpio.gz and prints "kernel=... initrd=...".
# Cached: nothing is rebuilt while OUTDIR/stamp matches the kernel, busybox and this
# directory's scripts.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build-initramfs.sh OUTDIR [KERNEL_VERSION]}"
version="${2:-}"
modules_wanted=(virtio_net virtio_pci)
# Dynamically linked host programs copied in when present (with their libraries).
tools_wanted=(/usr/bin/iperf3)

die() { echo "build-initramfs: $*" >&2; exit 1; }

busybox=/bin/busybox
[ -x "$busybox" ] || busybox=/usr/bin/busybox
[ -x "$busybox" ] || die "busybox not found (apt-get install busybox-static)"
# The initramfs has no libc: busybox must be the static one.
if file_out="$(LC_ALL=C ldd "$busybox" 2>&1)"; then
    case "$file_out" in *"not a dynamic"*|*"statically linked"*) ;; *) die "$busybox is dynamically linked (install busybox-static)";; esac
fi

if [ -z "$version" ]; then
    kernel="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1 || true)"
    [ -n "$kernel" ] || die "no kernel in /boot (apt-get install linux-image-amd64)"
    version="${kernel#/boot/vmlinuz-}"
fi
kernel="/boot/vmlinuz-$version"
moddir="/lib/modules/$version"
[ -r "$kernel" ] || die "$kernel is missing or unreadable"
[ -r "$moddir/modules.dep" ] || die "$moddir/modules.dep is missing"

tools=()
for tool in "${tools_wanted[@]}"; do [ -x "$tool" ] && tools+=("$tool"); done
iperf3=no
for tool in "${tools[@]}"; do [ "$(basename "$tool")" = iperf3 ] && iperf3=yes; done
stamp="$version $(cat "$busybox" "$here/init" "$here/build-initramfs.sh" "${tools[@]}" | sha256sum | cut -c1-16) iperf3=$iperf3"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/initramfs.cpio.gz" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/vlan" ]; then
    echo "kernel=$out/vmlinuz initrd=$out/initramfs.cpio.gz version=$version iperf3=$iperf3 $(cat "$out/vlan") cached=yes"
    exit 0
fi

# Module closure in load order: a module's dependencies (modules.dep lists them so that
# the last one must be loaded first) before the module itself.
declare -A seen=()
order=()
path_of() {  # module name -> its path relative to $moddir
    local name="$1" line
    line="$(grep -E "(^|/)${name//_/[_-]}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n1 || true)"
    [ -n "$line" ] || return 1
    echo "${line%%:*}"
}
visit() {  # path relative to $moddir
    local path="$1" line deps dep i
    [ -n "${seen[$path]:-}" ] && return 0
    seen[$path]=1
    line="$(grep -E "^${path//./\\.}:" "$moddir/modules.dep" | head -n1)"
    deps=(${line#*:})
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do visit "${deps[$i]}"; done
    order+=("$path")
}
for name in "${modules_wanted[@]}"; do
    if path="$(path_of "$name")"; then
        visit "$path"
    elif grep -qE "/${name}\.ko$" "$moddir/modules.builtin" 2>/dev/null; then
        :  # built into this kernel
    else
        die "module $name not found for $version"
    fi
done
boot_modules=${#order[@]}
# 8021q's closure after the boot modules, sharing `seen` (nothing is packed twice); packed but
# not loaded at boot, so the other tests' guests stay as they were.
vlan=yes
if path="$(path_of 8021q)"; then
    visit "$path"
elif ! grep -qE "/8021q\.ko$" "$moddir/modules.builtin" 2>/dev/null; then
    vlan=no  # this kernel has no 802.1Q at all
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
: > "$root/modules.order"
: > "$root/modules.8021q"
index=0
for path in "${order[@]}"; do
    base="$(basename "$path")"
    case "$base" in
        *.ko.xz)  xz -dc "$moddir/$path" > "$root/lib/modules/${base%.xz}"; base="${base%.xz}" ;;
        *.ko.zst) zstd -qdc "$moddir/$path" > "$root/lib/modules/${base%.zst}"; base="${base%.zst}" ;;
        *.ko.gz)  gzip -dc "$moddir/$path" > "$root/lib/modules/${base%.gz}"; base="${base%.gz}" ;;
        *)        cp "$moddir/$path" "$root/lib/modules/$base" ;;
    esac
    if [ $index -lt $boot_modules ]; then echo "$base" >> "$root/modules.order"; else echo "$base" >> "$root/modules.8021q"; fi
    index=$((index + 1))
done
# Each tool at its host path, and every library ldd resolves for it (the loader included)
# at its host path too, so the loader's built-in search path finds them.
for tool in "${tools[@]}"; do
    mkdir -p "$root$(dirname "$tool")"
    cp "$tool" "$root$tool"
    for library in $(ldd "$tool" | grep -oE '/[^ ]+'); do
        [ -e "$root$library" ] && continue
        mkdir -p "$root$(dirname "$library")"
        cp -L "$library" "$root$library"
    done
done
# /dev/console for the kernel to open before /init runs (devtmpfs is mounted later).
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true

mkdir -p "$out"
(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 > "$work/initramfs.cpio.gz"
cp "$kernel" "$work/vmlinuz"
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
mv "$work/vmlinuz" "$out/vmlinuz"
echo "vlan=$vlan" > "$out/vlan"
echo "$stamp" > "$out/stamp"
echo "kernel=$out/vmlinuz initrd=$out/initramfs.cpio.gz version=$version iperf3=$iperf3 vlan=$vlan modules=$(paste -sd, "$root/modules.order") on-demand=$(paste -sd, "$root/modules.8021q") cached=no"
