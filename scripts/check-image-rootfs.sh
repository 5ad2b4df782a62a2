#!/usr/bin/env bash
# Checks deploy/Dockerfile's runtime stage where Docker cannot run: debootstrap builds a minbase Debian 12 root
# (the package set of debian:12-slim), the runtime stage's RUN lines run in it, the binaries go in as the build
# stage installs them (cmake --install --strip), and the daemon then runs in it the way daemonset.yaml runs it:
# read-only sysfs with the host's bpffs and cgroup tree bound in, only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON,
# no-new-privs, its own network namespace. /readyz must answer 200, sockmapctl must read the pins, SIGTERM must
# stop it, and the init container's mount command must work with and without bpffs.
#
# Needs root, debootstrap and curl, and the Debian archive (about 40 s and 250 MB in a temporary directory).
# Not run by CI: it downloads packages. Usage: sudo scripts/check-image-rootfs.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=$(realpath "${1:-build}")
mirror=${SOCKMAPD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in debootstrap curl nsenter unshare; do
  command -v "$tool" > /dev/null || { echo "check-image-rootfs: $tool is missing" >&2; exit 1; }
done
[ -x "$build_dir/sockmapd" ] || { echo "check-image-rootfs: no $build_dir/sockmapd; build first" >&2; exit 1; }

work=$(mktemp -d /var/tmp/sockmapd-image-XXXXXX)
root="$work/rootfs"
tag="smd-image-$$"
netns="$tag"
pin_path="/sys/fs/bpf/$tag"
cgroup_mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
cgroup="$cgroup_mount/$tag"
cleanup() {
  ip netns del "$netns" 2> /dev/null || true
  rm -rf "$pin_path"
  rmdir "$cgroup" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== debootstrap minbase bookworm"
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log"; exit 1; }

echo "== the runtime stage's RUN lines"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The last stage of the Dockerfile, continuation lines joined; every RUN runs in the root with /bin/sh.
awk '/^FROM /{ stage++ ; delete runs; n = 0 } /^RUN /{ line = $0; while (line ~ /\\$/) { sub(/\\$/, "", line); getline next_line; line = line " " next_line } runs[n++] = substr(line, 5) } END { for (i = 0; i < n; i++) print runs[i] }' \
  deploy/Dockerfile > "$work/runtime-run.txt"
while IFS= read -r run; do
  echo "RUN $run" | cut -c1-100
  chroot "$root" /bin/sh -c "$run" > "$work/run.log" 2>&1 || { tail -20 "$work/run.log"; exit 1; }
done < "$work/runtime-run.txt"

echo "== the binaries, as the build stage installs them"
DESTDIR="$work/out" cmake --install "$build_dir" --prefix /usr --strip > /dev/null
cp "$work/out/usr/sbin/sockmapd" "$work/out/usr/sbin/sockmapctl" "$root/usr/sbin/"
if chroot "$root" ldd /usr/sbin/sockmapd /usr/sbin/sockmapctl | grep "not found"; then
  echo "check-image-rootfs: a library is missing from the runtime stage" >&2
  exit 1
fi
chroot "$root" /usr/sbin/sockmapd --version

echo "== the daemon as daemonset.yaml runs it"
mkdir -p "$cgroup" "$root/sys" "$root/proc" "$root/host/sys/fs/cgroup"
ip netns add "$netns"
ip -n "$netns" link set lo up
cat > "$work/in-container.sh" << EOF
set -eu
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount --bind /sys/fs/bpf "$root/sys/fs/bpf"
mount --rbind /sys/fs/cgroup "$root/host/sys/fs/cgroup"
chroot "$root" /bin/sh -c 'mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700 bpffs /sys/fs/bpf'
echo "init container with the host's bpffs: ok"
nsenter --net=/run/netns/$netns chroot "$root" \
  setpriv --bounding-set -all,+bpf,+net_admin,+perfmon --inh-caps -all --no-new-privs -- \
  /usr/sbin/sockmapd --cgroup "/host$cgroup" --pin-path "$pin_path" --log-level info --max-sockets 65536 \
  --metrics-address 0.0.0.0:9476 > "$work/daemon.log" 2>&1 &
daemon=\$!
code=000
for _ in \$(seq 1 100); do
  code=\$(nsenter --net=/run/netns/$netns curl -s -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:9476/readyz || true)
  [ "\$code" = 200 ] && break
  sleep 0.1
done
[ "\$code" = 200 ] || { echo "/readyz: \$code"; cat "$work/daemon.log"; kill -KILL \$daemon; exit 1; }
echo "/readyz: 200"
chroot "$root" /usr/sbin/sockmapctl status --pin-path "$pin_path" | head -3
kill -TERM \$daemon
wait \$daemon
echo "SIGTERM: exit 0"
umount "$root/sys/fs/bpf"
chroot "$root" /bin/sh -c 'mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700 bpffs /sys/fs/bpf'
chroot "$root" mountpoint -q /sys/fs/bpf
echo "init container without bpffs: mounted it"
EOF
# A mount namespace for the container's mounts and a PID namespace, so nothing outlives the check.
timeout 120 unshare --mount --pid --fork bash "$work/in-container.sh"
echo "check-image-rootfs: the runtime stage runs sockmapd"
