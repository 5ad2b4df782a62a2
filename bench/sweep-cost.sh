#!/usr/bin/env bash
# The daemon's own CPU while one leaving connection stays pending among many paired ones: its reader stopped, so
# the connection left the redirect for its queue cap, and its sockets wait in the sockhash until the reader reads
# (docs/design.md, "Releasing"). The daemon sweeps for it until then; this is what that costs, per daemon binary,
# in one run. Each daemon attaches to a cgroup of its own; `smd_bench hold` keeps --pairs loopback connections
# paired in a namespace of the script's own, and a Python client makes the stalled one next to them.
#   sudo bench/sweep-cost.sh [--pairs N] [--seconds S] [--rounds R] [--build-dir DIR] DAEMON-BINARY...
# Prints one line per round and binary: pairs held, connections that left the redirect (the stalled one), daemon CPU
# in ms per second. SWEEP_COST_DEBUG=1 prints the counters of each round too.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=5000 seconds=10 rounds=2 build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --*) echo "sweep-cost.sh: unknown option $1; see the comment at the top of bench/sweep-cost.sh" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || set -- "$build/sockmapd"
[ "$(id -u)" = 0 ] || { echo "sweep-cost.sh: run as root (it loads BPF and creates a namespace)" >&2; exit 2; }
for bin in "$@"; do [ -x "$bin" ] || { echo "sweep-cost.sh: $bin is not an executable daemon" >&2; exit 2; }; done
cg_root=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$cg_root" ] || { echo "sweep-cost.sh: no cgroup v2 mount" >&2; exit 2; }
cg="$cg_root/smd-sweep-cost-$$" pin="/sys/fs/bpf/smd-sweep-cost-$$" ns="smd-sweep-cost-$$" daemon= hold= stall=

stop_workload() {
  for p in $stall $hold; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  stall= hold=
}
stop_daemon() {
  [ -z "$daemon" ] || { kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; }
  daemon=
  rm -rf "$pin"
}
cleanup() {
  stop_workload
  stop_daemon
  if [ -d "$cg" ]; then
    while read -r p; do kill "$p" 2>/dev/null || true; done < "$cg/cgroup.procs"
    for _ in $(seq 50); do [ -z "$(cat "$cg/cgroup.procs")" ] && break; sleep 0.1; done
    rmdir "$cg"
  fi
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
mkdir "$cg"
ip netns add "$ns"
ip -n "$ns" link set lo up

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status() { "$build/sockmapctl" status --json --pin-path "$pin"; }

for round in $(seq "$rounds"); do
  for bin in "$@"; do
    "$bin" --cgroup "$cg" --pin-path "$pin" --metrics-address "" --log-level error --max-sockets $((pairs * 2 + 1024)) &
    daemon=$!
    for _ in $(seq 100); do [ -e "$pin/smd_info" ] && status >/dev/null 2>&1 && break; sleep 0.1; done
    bash -c "echo \$\$ > '$cg/cgroup.procs'; exec '$build/smd_bench' hold --pairs $pairs --hold 600 \
      --server-netns $ns --client-netns $ns" > "/tmp/smd-sweep-cost-$$.hold" &
    hold=$!
    for _ in $(seq 600); do [ -s "/tmp/smd-sweep-cost-$$.hold" ] && break; sleep 0.1; done
    # The stalled connection: non-blocking (so it is paired), written until the kernel takes nothing more, never read.
    # ip netns exec mounts a sysfs of the namespace's own, without the cgroup tree: join the cgroup first.
    bash -c "echo \$\$ > '$cg/cgroup.procs'; exec ip netns exec '$ns' python3 -c '
import select, socket, time
l = socket.socket(); l.bind((\"127.0.0.1\", 0)); l.listen()
c = socket.socket(); c.setblocking(False)
try: c.connect(l.getsockname())
except BlockingIOError: pass
select.select([], [c], [], 5); s, _ = l.accept(); s.setblocking(False)
deadline = time.time() + 5
while time.time() < deadline:
    try: c.send(b\"x\" * 65536)
    except BlockingIOError: select.select([], [c], [], 0.2)
time.sleep(600)
'" &
    stall=$!
    sleep 6
    [ -z "${SWEEP_COST_DEBUG:-}" ] || status | jq -c .counters >&2
    pending=$(status | jq "[.counters.left_backpressure, .counters.left_other, .counters.left_blocking_reader] | add")
    held=$(status | jq '.pairs')
    t0=$(cpu_ticks "$daemon")
    sleep "$seconds"
    t1=$(cpu_ticks "$daemon")
    hz=$(getconf CLK_TCK)
    awk -v r="$round" -v b="$bin" -v h="$held" -v p="$pending" -v t="$((t1 - t0))" -v s="$seconds" -v hz="$hz" \
      'BEGIN { printf "round %s %s: %s pairs, %s left the redirect, daemon CPU %.1f ms/s\n", r, b, h, p, t * 1000 / hz / s }'
    stop_workload
    rm -f "/tmp/smd-sweep-cost-$$.hold"
    stop_daemon
  done
done
