#!/usr/bin/env bash
# Runs the README's quick-start trial as written: the four shell blocks marked `<!-- walkthrough: ... -->`,
# terminal 1's daemon in the background, terminal 2's blocks in one shell (its $$, its job %1), Ctrl-C as SIGINT.
# Needs root. Usage: check-readme-walkthrough.sh [--build-dir DIR]   (default: build)
#
# It changes only what a reader on this host would: `sudo` runs the command directly when we are root already;
# /sys/fs/cgroup/ becomes this host's cgroup v2 mount (the hybrid-host note on every CG= line); the cgroup gets a
# unique name so that runs side by side do not share it; and build/ is --build-dir. It runs in its own mount and
# network namespaces with a fresh bpffs at /sys/fs/bpf, so the default pin path and port 8080 are its own. On
# any exit it kills what is left in the cgroup, removes the cgroup, and the namespaces (and their pins) go.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
case "${1:-}" in
  "") ;;
  --build-dir) build_dir="${2:?--build-dir needs a directory}" ;;
  *) echo "check-readme-walkthrough: unknown option '$1'; use --build-dir DIR" >&2; exit 2 ;;
esac
build_dir=$(cd "$build_dir" && pwd)
if [ "${SOCKMAPD_SKIP_PRIVILEGED:-}" = 1 ]; then
  echo "check-readme-walkthrough: SOCKMAPD_SKIP_PRIVILEGED=1: skipped"
  exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "check-readme-walkthrough: needs root (cgroups, BPF, namespaces)" >&2
  exit 1
fi

if [ "${SMD_WALKTHROUGH_IN_NS:-}" != 1 ]; then
  exec env SMD_WALKTHROUGH_IN_NS=1 unshare --mount --net --propagation private "$0" --build-dir "$build_dir"
fi

ip link set lo up
mount -t bpf bpf /sys/fs/bpf
cgroup2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$cgroup2" ] || { echo "check-readme-walkthrough: no cgroup v2 mount" >&2; exit 1; }
name="sockmapd-try-walkthrough-$$"
work=$(mktemp -d /tmp/smd-walkthrough-XXXXXX)

# The block after the marker line containing "walkthrough: $1", with the reader's substitutions.
block() {
  awk -v marker="walkthrough: $1" '
    index($0, "<!-- " marker) == 1 { found = 1; next }
    found && /^```sh$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }' README.md |
    sed -e "s|/sys/fs/cgroup/unified/sockmapd-try|$cgroup2/$name|g" \
        -e "s|/sys/fs/cgroup/sockmapd-try|$cgroup2/$name|g" \
        -e "s|build/|$build_dir/|g"
}
prelude='sudo() { "$@"; }; set -e'
for part in "terminal 1" "terminal 2" "end, terminal 2" "end, terminal 1"; do
  if [ -z "$(block "$part")" ]; then
    echo "check-readme-walkthrough: README.md has no block after <!-- walkthrough: $part" >&2
    exit 1
  fi
done

daemon_pid=""
cleanup() {
  status=$?
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2> /dev/null && wait "$daemon_pid" 2> /dev/null || true
  if [ -d "$cgroup2/$name" ]; then
    echo 1 > "$cgroup2/$name/cgroup.kill" 2> /dev/null || true
    for _ in $(seq 50); do rmdir "$cgroup2/$name" 2> /dev/null && break; sleep 0.1; done
  fi
  [ -d "$cgroup2/$name" ] && echo "check-readme-walkthrough: could not remove $cgroup2/$name" >&2 && status=1
  [ "$status" -ne 0 ] && echo "check-readme-walkthrough: failed; logs in $work" >&2 || rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

echo "== terminal 1"
block "terminal 1"
bash -c "$prelude; $(block "terminal 1")" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 150); do
  grep -q "ready: accelerating" "$work/daemon.log" && break
  kill -0 "$daemon_pid" 2> /dev/null || { cat "$work/daemon.log"; exit 1; }
  sleep 0.1
done
grep -q "ready: accelerating" "$work/daemon.log" || { cat "$work/daemon.log"; exit 1; }
# The shell of terminal 1 waits for the daemon: Ctrl-C reaches the daemon, its child.
daemon_pid=$(pgrep -P "$daemon_pid" -x sockmapd || echo "$daemon_pid")

echo "== terminal 2, and the end of the trial in terminal 2"
block "terminal 2"
block "end, terminal 2"
# One shell for both blocks, as a terminal would be; between them, what the comment after `status` promises.
check='c=$(sudo '"$build_dir"'/sockmapctl status --json); echo "$c" > '"$work"'/status.json
python3 -c "import json,sys; c=json.load(open(sys.argv[1]))[\"counters\"]; sys.exit(0 if c[\"pairs_made\"] > 0 and c[\"redirected_messages\"] > 0 else 1)" '"$work"'/status.json || { echo "no pair made: $c" >&2; exit 1; }'
bash -c "$prelude; $(block "terminal 2")
$check
$(block "end, terminal 2")
[ \"\$(sed -n 's/^0:://p' /proc/\$\$/cgroup)\" = \"\$ORIG\" ] || { echo 'still in the cgroup' >&2; exit 1; }" \
  2>&1 | tee "$work/terminal2.log"

echo "== end of the trial in terminal 1 (Ctrl-C first)"
kill -INT "$daemon_pid"
for _ in $(seq 100); do kill -0 "$daemon_pid" 2> /dev/null || break; sleep 0.1; done
! kill -0 "$daemon_pid" 2> /dev/null || { echo "the daemon did not stop on SIGINT" >&2; exit 1; }
daemon_pid=""
block "end, terminal 1"
bash -c "$prelude; CG=$cgroup2/$name; $(block "end, terminal 1")" 2>&1 | tee "$work/end.log"
grep -q "no sockmapd BPF object left" "$work/end.log"
[ ! -e "$cgroup2/$name" ] && [ ! -e /sys/fs/bpf/sockmapd ]
echo "check-readme-walkthrough: ok"
