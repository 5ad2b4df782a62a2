#!/usr/bin/env bash
# Kernel matrix: integration tests on Debian kernel packages under qemu (no KVM) and on the host; one table.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/kernel-matrix.sh [options]   (as root)

Boots each kernel under qemu-system-x86_64 with the host's root file system shared read-only (virtiofs, a
tmpfs overlay for writes), runs build/smd_integration_tests there one test per process, and prints a table.

  --kernels LIST       comma-separated (default: 6.1,6.12,host)
                         6.1, 6.12, X.Y     the newest linux-image-X.Y*-cloud-amd64 apt offers
                                            (6.1: Debian 12's default, linux-image-cloud-amd64)
                         linux-image-NAME   that exact Debian package
                         host               the running kernel, tests run directly, no VM
  --filter F           gtest filter (default: the transparency subset, see docs/testing.md)
  --smoke              CI's short filter: ten loopback, receive-semantics, shutdown and backpressure cases
  --build-dir DIR      build directory holding smd_integration_tests (default: the repository's build/)
  --timeout S          seconds per kernel, boot included; on expiry the VM is killed: TIMEOUT (default 3000)
  --test-timeout S     seconds per test case (default 300; in a VM, times the time scale)
  --time-scale N       in a VM, multiply the tests' transfer budgets by N (SOCKMAPD_TEST_TIME_SCALE): TCG
                       runs a bulk transfer several times slower than the host (default 3; the host: 1)
  --cache DIR          kernel packages, downloaded and unpacked once (default ~/.cache/sockmapd-kernels)
  --memory SIZE        VM memory (default 2G)      --cpus N   VM CPUs (default 2)
  -h, --help

A kernel that `sockmapd --check` refuses (it names the missing kernel fix) runs no case: its result is REFUSED,
which is what the daemon must do there. Logs: BUILD_DIR/kernel-matrix/KERNEL/ (console.log, tests.log, summary).
Exit status 1 when a kernel failed or timed out, 2 on bad usage or a missing tool.
EOF
}

default_filter='Loopback.*:ReceiveSemantics.*:*/TransparentEnd.*:*/TransparentEndAfterStop.*:ShutdownTest.*:Backpressure.*:*/PingPong.*:*/HalfClose.*:*/SenderGone.*:*/ReceiverGone.*:KilledPeer.*:*/Splice.*:*/WriteSizes.*:MemoryBound.*:TcpMemoryPressure.*:Policy.*:Capacity.HalfInsertedConnectionIsPlainTcp:StaleState.*:Hints.AnActiveEndThatFoundAnotherHandshakesHintLeavesTheSockhash'

# CI's smoke run (--smoke): short cases that depend on no timing the emulator cannot keep (no 100 ms
# latency bound, no reader that must keep up with a bulk writer), about 90 s under TCG.
smoke_filter='Loopback.PairEntriesAreRemovedAfterClose:Loopback.IdenticalTuplesInTwoNamespacesNeverCrossTalk:ReceiveSemantics.PeekThenReadReturnsTheSameBytes:ReceiveSemantics.RecvOfZeroBytesNeverHangsNorConsumes:ReceiveSemantics.FionreadRecorded:ReceiveSemantics.MsgWaitallRecorded:ReceiveSemantics.DataWrittenBeforeAcceptArrivesIntact:ShutdownTest.CloseWithUnreadRedirectedDataRecorded:ShutdownTest.BlockingClientWaitsForTheReplyAfterItsHalfClose:Backpressure.StalledReaderMakesTheConnectionLeaveAndBothSocketsAreReleased'

die() { echo "kernel-matrix: $*" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------------------
# --run-tests BIN FILTER TEST_TIMEOUT [DEADLINE]: one process per test case, like ctest, so a hang costs one
# case. Used on the host and inside the VM. Prints gtest's output and, per case, "KMX-TEST STATUS NAME SECONDS";
# "KMX-DEADLINE" when the epoch second DEADLINE came before the last case ended.
run_tests() {
  local bin=$1 filter=$2 per_case=$3 deadline=${4:-0} case start rc status out pidfile limit
  [ -x "$bin" ] || { echo "KMX-ERROR no test binary $bin"; return 1; }
  # A kernel the daemon refuses (sockmapd --check names the missing fix) has nothing to accelerate: that refusal
  # is its result, not 55 failed cases.
  local daemon check
  daemon=$(dirname "$bin")/sockmapd
  if [ -x "$daemon" ] && ! check=$("$daemon" --check 2>&1); then
    echo "$check"
    echo "KMX-REFUSED $(echo "$check" | grep '^FAIL' | sed 's/^FAIL *//' | paste -sd';' - | sed 's/;/; /g')"
    return 0
  fi
  mapfile -t cases < <("$bin" --gtest_list_tests --gtest_filter="$filter" |
    awk '/^[^ ]/ { suite = $1; next } { print suite $1 }')
  echo "KMX-CASES ${#cases[@]}"
  out=$(mktemp /tmp/kmx-case-XXXXXX)
  pidfile=$(mktemp /tmp/kmx-pid-XXXXXX)
  for case in "${cases[@]}"; do
    start=$(date +%s)
    limit=$per_case
    if [ "$deadline" -gt 0 ]; then
      [ "$start" -lt "$deadline" ] || { echo "KMX-DEADLINE"; break; }
      [ $((deadline - start)) -ge "$limit" ] || limit=$((deadline - start))
    fi
    rc=0
    timeout --kill-after=10 "$limit" bash -c 'echo $$ > "$1"; exec "$2" --gtest_filter="$3" --gtest_color=no' \
      _ "$pidfile" "$bin" "$case" > "$out" 2>&1 || rc=$?
    cat "$out"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      status=TIMEOUT
      cleanup_case "$(cat "$pidfile")"
    elif [ "$rc" -eq 0 ] && grep -q '^\[  SKIPPED \] ' "$out"; then
      status=SKIPPED
    elif [ "$rc" -eq 0 ] && grep -q '^\[       OK \] ' "$out"; then
      status=PASSED
    elif grep -q '^\[  FAILED  \] .* ms)$' "$out"; then
      status=FAILED
    else
      status=CRASHED
    fi
    # Inside the VM the daemon's log and a stress test's stall snapshots die with the guest's /tmp: keep the log's
    # end and the snapshots in the output.
    if [ "$status" != PASSED ] && [ "$status" != SKIPPED ]; then
      sed -n 's/^sockmapd log kept at //p' "$out" | while read -r log; do
        [ -f "$log" ] || continue
        echo "--- last 40 lines of $log"
        tail -n 40 "$log"
      done
      { grep -o 'sockets of both pods kept at [^;]*' "$out" || true; } | sed 's/^sockets of both pods kept at //' |
        sort -u | head -n 3 | while read -r snapshot; do
          [ -f "$snapshot" ] || continue
          echo "--- $snapshot"
          cat "$snapshot"
        done
    fi
    echo "KMX-TEST $status $case $(($(date +%s) - start))"
    [ "$status" != TIMEOUT ] || [ "$limit" -eq "$per_case" ] || { echo "KMX-DEADLINE"; break; }
  done
  rm -f "$out" "$pidfile"
}

# What a killed test process leaves: processes in its cgroups, its cgroups, pins, network namespaces (all named
# with its pid by tests/integration/support/env.cpp).
cleanup_case() {
  local pid=$1 root cg ns
  [ -n "$pid" ] || return 0
  root=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
  for cg in "$root"/smd-test-"$pid"-* "$root"/*/smd-test-"$pid"-*; do
    [ -d "$cg" ] || continue
    xargs -r kill -9 < "$cg/cgroup.procs" 2>/dev/null || true
    sleep 0.5
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf /sys/fs/bpf/smd-test-"$pid"-* 2>/dev/null || true
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -- "-$pid-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

if [ "${1:-}" = "--run-tests" ]; then
  shift
  run_tests "$@"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------
kernels="6.1,6.12,host"
filter="$default_filter"
build_dir=
timeout_s=3000
test_timeout=300
time_scale=3
cache="${HOME:-/root}/.cache/sockmapd-kernels"
memory=2G
cpus=2
while [ $# -gt 0 ]; do
  case "$1" in
    --kernels) kernels=${2:?}; shift 2 ;;
    --filter) filter=${2:?}; shift 2 ;;
    --smoke) filter=$smoke_filter; shift ;;
    --build-dir) build_dir=${2:?} build_dir_arg=$2; shift 2 ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --test-timeout) test_timeout=${2:?}; shift 2 ;;
    --time-scale) time_scale=${2:?}; shift 2 ;;
    --cache) cache=${2:?}; shift 2 ;;
    --memory) memory=${2:?}; shift 2 ;;
    --cpus) cpus=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "kernel-matrix: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$timeout_s" =~ ^[0-9]+$ && "$test_timeout" =~ ^[0-9]+$ && "$cpus" =~ ^[0-9]+$ ]] ||
  die "--timeout, --test-timeout and --cpus take whole numbers"
[[ "$time_scale" =~ ^[1-9][0-9]?$ ]] || die "--time-scale takes a whole number from 1 to 99"
[[ "$memory" =~ ^[0-9]+[MG]$ ]] || die "--memory takes a size like 2G or 1536M"
# The filter travels into the VM inside a shell file; keep it to gtest's own characters.
[[ "$filter" =~ ^[A-Za-z0-9_*?.:/-]+$ ]] || die "--filter may hold only letters, digits and _ * ? . : / -"
[ "$(id -u)" -eq 0 ] || die "needs root (the integration tests load BPF programs; the VMs share / read-only)"

# Paths given relative to where the script was started; the default build directory is the repository's.
[ -z "$build_dir" ] || build_dir=$(cd "$build_dir" 2>/dev/null && pwd) || die "no build directory '$build_dir_arg'"
mkdir -p "$cache" && cache=$(cd "$cache" && pwd) || die "cannot create the cache directory '$cache'"
cd "$(dirname "$0")/.."
repo=$(pwd)
script="$repo/scripts/kernel-matrix.sh"
[ -n "$build_dir" ] || build_dir=$(cd build 2>/dev/null && pwd) ||
  die "no build directory $repo/build; build first (README)"
test_bin="$build_dir/smd_integration_tests"
[ -x "$test_bin" ] || die "$test_bin is missing; build first: cmake --build $build_dir"
out_root="$build_dir/kernel-matrix"
mkdir -p "$out_root"

needs_vm=0
IFS=',' read -r -a kernel_list <<< "$kernels"
for k in "${kernel_list[@]}"; do
  [ "$k" = host ] || needs_vm=1
done
virtiofsd=
if [ "$needs_vm" = 1 ]; then
  command -v qemu-system-x86_64 > /dev/null ||
    die "qemu-system-x86_64 not found; install it with: apt-get install qemu-system-x86 (or pass --kernels host)"
  for v in /usr/lib/qemu/virtiofsd /usr/libexec/virtiofsd "$(command -v virtiofsd || true)"; do
    [ -n "$v" ] && [ -x "$v" ] && { virtiofsd=$v; break; }
  done
  [ -n "$virtiofsd" ] ||
    die "virtiofsd not found; install it with: apt-get install qemu-system-x86 (Debian 12) or virtiofsd"
  command -v depmod > /dev/null || die "depmod not found; install it with: apt-get install kmod"
  busybox=$(command -v busybox || true)
  { [ -n "$busybox" ] && ! ldd "$busybox" > /dev/null 2>&1; } ||
    die "a static busybox is needed for the VM's initramfs; install it with: apt-get install busybox-static"
fi

# ---------------------------------------------------------------------------------------------------------
# Temporary files and child processes of this run; removed and ended on any exit.
stage_dirs=()
child_pids=()
cleanup() {
  local p d
  for p in "${child_pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for d in "${stage_dirs[@]}"; do
    rm -rf "$d"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The package leaves modules.dep to its postinst: generate it (the initramfs and the guest's modprobe need it).
depmod_tree() {
  local root=$1 kver
  kver=$(ls "$root/lib/modules" | head -n 1)
  [ -n "$kver" ] && depmod -b "$root" "$kver"
}

# Kernel spec -> Debian package name, from apt's lists (updated once per run if they do not know it).
apt_updated=0
resolve_package() {
  local pkg
  pkg=$(resolve_package_from_lists "$1") && { echo "$pkg"; return; }
  [ "$apt_updated" = 0 ] || return 1
  apt_updated=1
  echo "kernel-matrix: no package for '$1' in apt's lists; apt-get update" >&2
  apt-get update -qq > /dev/null 2>&1 || return 1
  resolve_package_from_lists "$1"
}
resolve_package_from_lists() {
  local spec=$1 meta dep
  case "$spec" in
    linux-image-*) echo "$spec"; return ;;
  esac
  for meta in "linux-image-$spec-cloud-amd64" linux-image-cloud-amd64; do
    dep=$(apt-cache depends --important "$meta" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
    case "$dep" in
      linux-image-"$spec".*|linux-image-"$spec"-*) echo "$dep"; return ;;
    esac
  done
  return 1
}

# Downloads and unpacks a kernel package into the cache once; prints its directory.
fetch_kernel() {
  local spec=$1 pkg ver dir tmp deb
  if pkg=$(resolve_package "$spec") &&
     ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ { print $2; exit }') &&
     [ -n "$ver" ]; then
    dir="$cache/${pkg}_$ver"
    if [ ! -e "$dir/.complete" ]; then
      echo "kernel-matrix: downloading $pkg $ver into $cache" >&2
      # Called in a condition, where set -e does not apply: every step checks itself.
      mkdir -p "$cache" && rm -rf "$dir" && tmp=$(mktemp -d "$cache/.download-XXXXXX") || return 1
      if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" > /dev/null) ||
         ! deb=$(ls "$tmp"/*.deb) || ! mkdir "$tmp/root" || ! dpkg-deb -x "$deb" "$tmp/root" ||
         ! mv "$deb" "$tmp/package.deb" || ! depmod_tree "$tmp/root" || ! echo "$ver" > "$tmp/version" ||
         ! touch "$tmp/.complete" ||
         ! mv "$tmp" "$dir"; then
        rm -rf "$tmp"
        echo "downloading or unpacking $pkg=$ver failed" >&2
        return 1
      fi
    fi
  else
    # Offline, or apt lists not updated: the newest matching package already in the cache.
    dir=$(ls -d "$cache"/linux-image-"$spec"[.-]*/ "$cache"/"$spec"_*/ 2>/dev/null | sort -V | tail -n 1)
    dir=${dir%/}
    [ -n "$dir" ] && [ -e "$dir/.complete" ] ||
      { echo "no package for kernel '$spec' (run apt-get update, or see --help)" >&2; return 1; }
  fi
  echo "$dir"
}

# Writes the initramfs: static busybox, /init, the modules that mounting the shared root needs (with their
# dependencies from modules.dep, in load order, decompressed for busybox insmod).
build_initramfs() {
  local kdir=$1 kver=$2 stage=$3 moddir name path out
  moddir="$kdir/root/lib/modules/$kver"
  local root="$stage/initramfs"
  mkdir -p "$root"/{bin,dev,proc,sys,lower,upper,newroot,modules}
  cp "$busybox" "$root/bin/busybox"
  declare -A seen=()
  local order=()
  add_module() {
    local rel=$1 dep
    [ -z "${seen[$rel]:-}" ] || return 0
    seen[$rel]=1
    for dep in $(awk -v m="$rel:" '$1 == m { $1 = ""; print; exit }' "$moddir/modules.dep"); do
      add_module "$dep"
    done
    order+=("$rel")
  }
  for name in virtio_pci virtiofs overlay; do
    path=$(awk -F: -v n="$name" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko.*/, "", f); if (f == n) { print $1; exit } }' \
      "$moddir/modules.dep")
    if [ -n "$path" ]; then
      add_module "$path"
    elif ! grep -q "/$name\.ko\$" "$moddir/modules.builtin"; then
      echo "kernel $kver has no $name (module or built in); the VM cannot mount the shared root" >&2
      return 1
    fi
  done
  for path in "${order[@]}"; do
    out="$root/modules/$(basename "${path%%.ko*}").ko"
    case "$path" in
      *.ko.xz) xz -dc "$moddir/$path" > "$out" ;;
      *.ko.zst) zstd -qdc "$moddir/$path" > "$out" ;;
      *.ko.gz) gzip -dc "$moddir/$path" > "$out" ;;
      *) cp "$moddir/$path" "$out" ;;
    esac
    basename "$out" >> "$root/modules/order"
  done
  touch "$root/modules/order"
  cat > "$root/kmx.env" <<EOF
KMX_MODDIR='$moddir'
KMX_SCRIPT='$script'
KMX_TEST_BIN='$test_bin'
KMX_FILTER='$filter'
KMX_TEST_TIMEOUT='$((test_timeout * time_scale))'
KMX_TIME_SCALE='$time_scale'
EOF
  cat > "$root/init" <<'EOF'
#!/bin/busybox sh
# The VM's pid 1: shared host root (read-only) + tmpfs overlay, fresh /proc /sys /dev /tmp /run, cgroup2, bpffs,
# debugfs; runs the tests in a chroot with their output on the second serial port, then powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /kmx.env
stty -F /dev/ttyS1 raw -echo 2>/dev/null
out() { echo "$*" > /dev/ttyS1; }
say() { echo "kmx-init: $*" > /dev/console; }
fail() { say "$*"; out "KMX-ERROR $*"; sync; poweroff -f; }
out "KMX-UNAME $(uname -r)"
for m in $(cat /modules/order); do
  insmod "/modules/$m" || say "insmod $m failed"
done
mount -t virtiofs -o ro hostroot /lower || fail "cannot mount the host root (virtiofs)"
mount -t tmpfs -o mode=755 tmpfs /upper && mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot ||
  fail "cannot mount the overlay root"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
ln -sfn /proc/self/fd $R/dev/fd
ln -sfn /proc/self/fd/0 $R/dev/stdin
ln -sfn /proc/self/fd/1 $R/dev/stdout
ln -sfn /proc/self/fd/2 $R/dev/stderr
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
# No fresh tmpfs on /tmp: a checkout under /tmp (CI clones there) must stay visible; the overlay's tmpfs upper
# layer already takes the writes.
chmod 1777 $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fail "cannot mount cgroup2"
mount -t bpf bpf $R/sys/fs/bpf || fail "cannot mount bpffs"
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
echo "+cpu +memory +pids" > $R/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
# Module autoloading (veth, iptables, sock_diag...) through the root's kmod and this kernel's module tree.
mkdir -p $R/lib/modules && ln -sfn "$KMX_MODDIR" "$R/lib/modules/$(uname -r)"
printf '#!/bin/sh\nexec /bin/chroot /newroot /sbin/modprobe "$@"\n' > /bin/kmx-modprobe
chmod 755 /bin/kmx-modprobe
echo /bin/kmx-modprobe > /proc/sys/kernel/modprobe
hostname kmx-guest
ip link set lo up
say "running tests"
chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  TERM=dumb SOCKMAPD_TEST_TIME_SCALE="$KMX_TIME_SCALE" \
  /bin/bash "$KMX_SCRIPT" --run-tests "$KMX_TEST_BIN" "$KMX_FILTER" "$KMX_TEST_TIMEOUT" \
  > /dev/ttyS1 2>&1
out "KMX-DONE $?"
say "tests done"
sync
poweroff -f
EOF
  chmod 755 "$root/init"
  if command -v cpio > /dev/null; then
    (cd "$root" && find . | cpio -o -H newc --quiet) > "$stage/initrd.cpio"
  else
    (cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null) > "$stage/initrd.cpio"
  fi
}

# Runs virtiofsd on a private, recursively read-only bind of / (the namespace and its mounts vanish with it).
start_virtiofsd() {
  local stage=$1 log=$2
  mkdir -p "$stage/share"
  unshare -m --propagation private bash -c '
    set -e
    share=$1; sock=$2; vfsd=$3
    mount --rbind -o ro / "$share"
    for m in proc sys dev run; do umount -R -l "$share/$m" 2>/dev/null || true; done
    if "$vfsd" --help 2>&1 | grep -q -- --shared-dir; then
      exec "$vfsd" --socket-path="$sock" --shared-dir="$share" --sandbox=chroot --cache=always
    fi
    exec "$vfsd" --socket-path="$sock" -o source="$share" -o sandbox=chroot -o cache=always
  ' _ "$stage/share" "$stage/vfs.sock" "$virtiofsd" > "$log" 2>&1 &
  child_pids+=($!)
  for _ in $(seq 100); do
    [ -S "$stage/vfs.sock" ] && return 0
    sleep 0.1
  done
  echo "virtiofsd did not start (see $log)" >&2
  return 1
}

# Results of one kernel: globals set by run_kernel for the table.
r_version= r_passed=0 r_failed=0 r_skipped=0 r_result= r_notes= r_seconds=0

summarize() {
  local log=$1 failed_names timed_out
  r_passed=$(grep -c '^KMX-TEST PASSED ' "$log" || true)
  r_failed=$(grep -c '^KMX-TEST \(FAILED\|CRASHED\|TIMEOUT\) ' "$log" || true)
  r_skipped=$(grep -c '^KMX-TEST SKIPPED ' "$log" || true)
  failed_names=$(awk '$1 == "KMX-TEST" && $2 != "PASSED" && $2 != "SKIPPED" { print $3 ($2 == "FAILED" ? "" : " (" $2 ")") }' "$log")
  if [ -n "$failed_names" ]; then
    r_notes="failed: $(echo "$failed_names" | head -n 6 | paste -sd, - | sed 's/,/, /g')"
    [ "$(echo "$failed_names" | wc -l)" -le 6 ] || r_notes="$r_notes, +$(($(echo "$failed_names" | wc -l) - 6)) more"
  fi
  timed_out=$(awk '$1 == "KMX-CASES" { n = $2 } $1 == "KMX-TEST" { d++ } END { if (n > d) print n - d }' "$log")
  [ -z "$timed_out" ] || r_notes="${r_notes:+$r_notes; }$timed_out case(s) not run"
}

run_kernel() {
  local spec=$1 dir kdir kver stage vmlinuz rc start mem_mb
  dir="$out_root/$spec"
  rm -rf "$dir"
  mkdir -p "$dir"
  r_version= r_passed=0 r_failed=0 r_skipped=0 r_result= r_notes=
  start=$(date +%s)
  if [ "$spec" = host ]; then
    r_version=$(uname -r)
    rc=0
    # No VM to kill: the runner itself stops at the deadline, ending the case that runs then.
    bash "$script" --run-tests "$test_bin" "$filter" "$test_timeout" "$((start + timeout_s))" \
      > "$dir/tests.log" 2>&1 || rc=$?
    ! grep -q '^KMX-DEADLINE' "$dir/tests.log" || rc=124
  else
    if ! kdir=$(fetch_kernel "$spec" 2> "$dir/fetch.log"); then
      r_version=- r_result=ERROR r_notes=$(tail -n 1 "$dir/fetch.log")
      r_seconds=$(($(date +%s) - start))
      return
    fi
    kver=$(ls "$kdir/root/lib/modules" | head -n 1)
    r_version="$(cat "$kdir/version") ($kver)"
    vmlinuz="$kdir/root/boot/vmlinuz-$kver"
    stage=$(mktemp -d /tmp/kernel-matrix-XXXXXX)
    stage_dirs+=("$stage")
    if ! build_initramfs "$kdir" "$kver" "$stage" 2> "$dir/initramfs.log"; then
      r_result=ERROR r_notes=$(tail -n 1 "$dir/initramfs.log")
      r_seconds=$(($(date +%s) - start))
      return
    fi
    if ! start_virtiofsd "$stage" "$dir/virtiofsd.log" 2>> "$dir/initramfs.log"; then
      r_result=ERROR r_notes="virtiofsd did not start"
      r_seconds=$(($(date +%s) - start))
      return
    fi
    case "$memory" in *G) mem_mb=$((${memory%G} * 1024)) ;; *M) mem_mb=${memory%M} ;; esac
    rc=0
    timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -nodefaults -no-user-config \
      -machine pc,accel=tcg -cpu "${KMX_QEMU_CPU:-max}" -smp "$cpus" -m "${mem_mb}M" \
      -object memory-backend-memfd,id=mem,size="${mem_mb}M",share=on -numa node,memdev=mem \
      -chardev socket,id=vfs,path="$stage/vfs.sock" -device vhost-user-fs-pci,chardev=vfs,tag=hostroot \
      -kernel "$vmlinuz" -initrd "$stage/initrd.cpio" \
      -append "console=ttyS0 loglevel=4 panic=-1 mitigations=off" \
      -display none -monitor none -serial "file:$dir/console.log" -serial "file:$dir/tests.raw" \
      -no-reboot < /dev/null > "$dir/qemu.log" 2>&1 || rc=$?
    # virtiofsd ends when qemu closes the socket; end it ourselves if it did not.
    local p
    for p in "${child_pids[@]}"; do
      kill "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    done
    child_pids=()
    rm -rf "$stage"
    tr -d '\r' < "$dir/tests.raw" > "$dir/tests.log" 2>/dev/null || touch "$dir/tests.log"
    rm -f "$dir/tests.raw"
  fi
  r_seconds=$(($(date +%s) - start))
  summarize "$dir/tests.log"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    r_result=TIMEOUT
    r_notes="killed after ${timeout_s}s${r_notes:+; $r_notes}"
  elif grep -q '^KMX-ERROR ' "$dir/tests.log"; then
    r_result=ERROR
    r_notes="$(grep -m1 '^KMX-ERROR ' "$dir/tests.log" | cut -d' ' -f2-)${r_notes:+; $r_notes}"
  elif [ "$spec" != host ] && ! grep -q '^KMX-DONE ' "$dir/tests.log"; then
    r_result=ERROR
    r_notes="VM ended before the tests finished (qemu exit $rc; see console.log)${r_notes:+; $r_notes}"
  elif [ "$rc" -ne 0 ]; then
    r_result=ERROR
    r_notes="exit $rc${r_notes:+; $r_notes}"
  elif grep -q '^KMX-REFUSED ' "$dir/tests.log"; then
    r_result=REFUSED
    r_notes="sockmapd --check: $(grep -m1 '^KMX-REFUSED ' "$dir/tests.log" | cut -d' ' -f2-)"
  elif [ "$r_failed" -gt 0 ]; then
    r_result=FAIL
  elif [ "$((r_passed + r_skipped))" -eq 0 ]; then
    r_result=ERROR
    r_notes="no test ran${r_notes:+; $r_notes}"
  else
    r_result=PASS
  fi
  printf 'kernel: %s\nversion: %s\npassed: %s\nfailed: %s\nskipped: %s\nresult: %s\nseconds: %s\nnotes: %s\n' \
    "$spec" "$r_version" "$r_passed" "$r_failed" "$r_skipped" "$r_result" "$r_seconds" "$r_notes" > "$dir/summary"
}

rows=()
status=0
for k in "${kernel_list[@]}"; do
  [[ "$k" =~ ^[A-Za-z0-9._+-]+$ ]] || die "bad kernel name '$k'"
  echo "kernel-matrix: $k: running $filter" >&2
  run_kernel "$k"
  echo "kernel-matrix: $k: $r_result in ${r_seconds}s ($r_passed passed, $r_failed failed, $r_skipped skipped;" \
    "logs in $out_root/$k)" >&2
  rows+=("| $k | $r_version | $r_passed | $r_failed | $r_skipped | $r_result | ${r_seconds}s | $r_notes |")
  [ "$r_result" = PASS ] || [ "$r_result" = REFUSED ] || status=1
done

echo "| kernel | version | passed | failed | skipped | result | time | notes |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit "$status"
