#!/bin/bash
# make test-kernel: boots Debian 12's kernel (linux-image-amd64 of bookworm, 6.1.x) under
# qemu-system-x86_64 in software emulation (TCG: no KVM needed) and runs privileged suites in it.
#
#   test/kernel/run.sh SPEC...        spec files relative to the checkout (dist/test/…/x.test.js)
#
# The kernel package is fetched with `apt-get download` (never installed on the host) into a
# cache in the checkout (.cache/test-kernel/, or $TEST_KERNEL_CACHE), unpacked there with its
# modules indexed (depmod); a small initramfs (busybox-static, the virtio and 9p modules,
# test/kernel/initramfs-init.sh) is built once per kernel and init script. The guest's root is the
# host's / shared read-only over 9p — the same Node, libraries, iproute2 and this checkout at the
# same path — with tmpfs where the suite writes (test/kernel/guest.sh). Prints the kernel it ran
# on, mocha's output, the boot and suite times; exits with mocha's status (125: the guest broke).
# Settings: TEST_KERNEL_PACKAGE (default: what linux-image-amd64 depends on), TEST_KERNEL_CPUS (2),
# TEST_KERNEL_MEMORY (3G), TEST_KERNEL_TIMEOUT (seconds for the whole run, 1800),
# TEST_KERNEL_TIME_SCALE (10: every deadline of the harness and mocha is that much longer, see
# test/harness/time.ts; software emulation runs the suite about ten times slower).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${TEST_KERNEL_CACHE:-$repo/.cache/test-kernel}"
[ $# -gt 0 ] || { echo "usage: $0 SPEC..." >&2; exit 2; }
for spec in "$@"; do
	[ -f "$repo/$spec" ] || { echo "test-kernel: no spec file $spec in $repo (run make build)" >&2; exit 2; }
	case "$spec" in *,* | *' '*) echo "test-kernel: spec path '$spec' has a comma or space" >&2; exit 2 ;; esac
done
specs="$(IFS=,; echo "$*")"
started=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- the kernel package: resolved from apt's lists, downloaded and unpacked once -------------
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'; }
pkg="${TEST_KERNEL_PACKAGE:-$(kernel_package)}"
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg="$(kernel_package)"
fi
[ -n "$pkg" ] || { echo 'test-kernel: apt knows no linux-image-amd64 (is this Debian 12?)' >&2; exit 1; }
version="$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')"
[ -n "$version" ] || { echo "test-kernel: apt knows no $pkg" >&2; exit 1; }
kver="${pkg#linux-image-}"
kdir="$cache/${pkg}_$version"
modroot="$kdir/root"
if [ ! -e "$kdir/unpacked" ]; then
	echo "test-kernel: fetching $pkg $version"
	rm -rf "$kdir" && mkdir -p "$kdir"
	# As root, apt would hand the download to its _apt user, who cannot write here.
	sandbox=(); [ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
	(cd "$kdir" && apt-get download -q "${sandbox[@]}" "$pkg=$version" >/dev/null)
	dpkg-deb -x "$kdir"/*.deb "$modroot"
	depmod -b "$modroot" "$kver"
	rm -f "$kdir"/*.deb
	touch "$kdir/unpacked"
	for old in "$cache"/linux-image-*; do [ "$old" = "$kdir" ] || rm -rf "$old"; done
fi
vmlinuz="$modroot/boot/vmlinuz-$kver"

# --- the initramfs: busybox, the modules that mount 9p over virtio, our /init ----------------
busybox=/bin/busybox
key="$(cat "$busybox" "$here/initramfs-init.sh" "$modroot/lib/modules/$kver/modules.dep" | sha256sum | cut -c1-16)"
initramfs="$kdir/initramfs-$key.cpio.gz"
if [ ! -e "$initramfs" ]; then
	echo "test-kernel: building the initramfs"
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work/bin" "$work/modules"
	cp "$busybox" "$work/bin/busybox"
	cp "$here/initramfs-init.sh" "$work/init"
	modprobe -d "$modroot" -S "$kver" --show-depends -a 9p 9pnet_virtio virtio_pci |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }' |
		while read -r ko; do
			cp "$ko" "$work/modules/"
			basename "$ko" >>"$work/modules/order"
		done
	(cd "$work" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$initramfs.part"
	rm -f "$kdir"/initramfs-*.cpio.gz
	mv "$initramfs.part" "$initramfs"
	rm -rf "$work"
	trap - EXIT
fi

# --- the run -------------------------------------------------------------------------------
# -cpu qemu64: TCG emulates wide vector instructions (AVX2, which -cpu max offers) slowly; on the
# baseline CPU V8 and OpenSSL stay on scalar code, measured no slower and often faster.
status_file="$(mktemp)"
trap 'rm -f "$status_file"' EXIT
cpus="${TEST_KERNEL_CPUS:-2}"
echo "test-kernel: booting $pkg $version under qemu (TCG, $cpus vCPUs) with $repo shared read-only"
boot_started=$(date +%s.%N)
set +e
timeout -k 10 "${TEST_KERNEL_TIMEOUT:-1800}" qemu-system-x86_64 \
	-machine q35 -accel tcg -cpu qemu64 -smp "$cpus" -m "${TEST_KERNEL_MEMORY:-3G}" \
	-nodefaults -no-reboot -display none \
	-chardev stdio,id=console,signal=on -serial chardev:console -serial "file:$status_file" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-kernel "$vmlinuz" -initrd "$initramfs" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 palisade_guest=$here/guest.sh palisade_repo=$repo palisade_modroot=$modroot palisade_specs=$specs palisade_time_scale=${TEST_KERNEL_TIME_SCALE:-10}"
qemu_status=$?
set -e
report() { tr -d '\r' <"$status_file" | awk -v k="$1" '$1 == k { print $2 }' | tail -1; }
status="$(report status)"
if [ -z "$status" ]; then
	echo "test-kernel: the guest reported no result (qemu exited $qemu_status; 124: timed out)" >&2
	exit 125
fi
echo "test-kernel: ran on Linux $(report kernel) ($pkg $version); boot $(report booted) s, suite $(report suite) s," \
	"whole run $(since "$started") s (qemu $(since "$boot_started") s); mocha exited $status"
exit "$status"
