#!/bin/busybox sh
# /init of the test-kernel initramfs (built by test/kernel/initramfs.sh, run under qemu by
# test/kernel/run.sh): loads the virtio and 9p modules of the booted kernel, mounts the host's
# root (tag "hostroot") read-only and hands over to the guest script named on the kernel command
# line (palisade_guest=…, passed to us by the kernel as an environment variable).
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev

fail() {
	echo "test-kernel initramfs: $*" >&2
	echo 'test-kernel: status 125' >/dev/ttyS1
	echo o >/proc/sysrq-trigger
	/bin/busybox sleep 60
}

while read -r module; do
	/bin/busybox insmod "/modules/$module" || fail "cannot load $module"
done </modules/order
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /newroot ||
	fail 'cannot mount the host root over 9p'
[ -n "$palisade_guest" ] && [ -x "/newroot$palisade_guest" ] || fail "guest script '$palisade_guest' is not executable on the host root"
/bin/busybox umount /dev
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot "$palisade_guest"
