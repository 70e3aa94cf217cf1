#!/bin/bash
# PID 1 of the test-kernel guest (see test/kernel/run.sh): runs on the host's root, shared
# read-only over 9p, with fresh kernel filesystems and tmpfs wherever the suite writes. Mounts
# them, makes the booted kernel's modules loadable from the host-side cache (the host has none of
# its own for this kernel), runs mocha on the spec files given on the kernel command line with the
# checkout's pinned Node, and reports on the second serial port (what run.sh reads):
#   kernel <uname -r> / booted <s> / suite <s> / status <mocha's exit status>
# then powers off. Parameters come from the kernel command line as environment variables:
# palisade_repo (the checkout), palisade_modroot (extracted kernel package), palisade_specs
# (comma-separated spec files relative to the checkout), palisade_time_scale (how much longer every
# deadline of the harness and mocha is: test/harness/time.ts).
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

halt() {
	sync
	echo o >/proc/sysrq-trigger
	# PID 1 must not exit (a panic) while the power-off runs; the root is going away meanwhile.
	sleep 60 2>/dev/null
}
trap halt EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
report() { echo "$*" >/dev/ttyS1; }
fail() {
	echo "test-kernel guest: $*" >&2
	report 'status 125'
	exit 125
}
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts || fail 'cannot mount devpts'
for dir in /dev/shm /run /tmp /var/tmp /root; do
	mount -t tmpfs -o mode=0755 tmpfs "$dir" || fail "cannot mount a tmpfs on $dir"
done
chmod 1777 /tmp /var/tmp /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail 'cannot mount cgroup2'
mount -t bpf bpf /sys/fs/bpf || fail 'cannot mount bpffs'
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
hostname palisade-test-kernel
ip link set lo up || fail 'cannot bring up lo'

mkdir -p /run/test-kernel
printf '#!/bin/sh\nexec /usr/sbin/modprobe -d %q "$@"\n' "$palisade_modroot" >/run/test-kernel/modprobe
chmod 0755 /run/test-kernel/modprobe
echo /run/test-kernel/modprobe >/proc/sys/kernel/modprobe

read -r up _ </proc/uptime
report "kernel $(uname -r)"
report "booted $up"
echo "test-kernel: Linux $(uname -r) up in ${up}s"

cd "$palisade_repo" || fail "no checkout at $palisade_repo"
node_dir="$palisade_repo/.tools/node-v$(cat .node-version)/bin"
[ -x "$node_dir/node" ] || fail "the pinned Node is not installed in $node_dir (run make build)"
export PATH="$node_dir:$PATH" CI=true HOME=/root TMPDIR=/tmp PALISADE_TEST_TIME_SCALE="${palisade_time_scale:-1}"
IFS=, read -r -a specs <<<"$palisade_specs"
node node_modules/mocha/bin/mocha.js --no-config --timeout 30000 --exit --enable-source-maps \
	--require dist/test/kernel/time-scale.js "${specs[@]}" </dev/null
status=$?
read -r end _ </proc/uptime
report "suite $(awk -v a="$up" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
echo "test-kernel: the suite ran on Linux $(uname -r)"
report "status $status"
exit "$status"
