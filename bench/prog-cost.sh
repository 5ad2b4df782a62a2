#!/usr/bin/env bash
# BPF run time per program run, with and without a daemon option, in one run: the daemon from --build-dir
# attaches to a cgroup of its own, smd_bench rr runs inside it, and the kernel's run-time statistics
# (kernel.bpf_stats_enabled, on only while measuring) give ns per sk_msg and sock_ops run. Client and server
# threads share CPU 0, as bench/run.sh pins them: cross-vCPU wake-ups in a VM swamp what is measured.
#   sudo bench/prog-cost.sh [--workload rr|connrate] [--rounds N] [--count N] [--build-dir DIR] -- DAEMON-OPTION...
# rr (default): round trips of 64 B and 16 KiB, --count each. connrate: connect, 64 B each way, close, for 3 s
# at 1 client: what each connection costs sock_ops.
# Example: the cost of backpressure:  sudo bench/prog-cost.sh -- --max-queued-bytes 0
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 count=100000 build=build workload=rr
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --workload) workload="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "prog-cost.sh: unknown option $1; see the comment at the top of bench/prog-cost.sh" >&2; exit 2 ;;
  esac
done
option=("$@")
case "$workload" in
  rr) points=(64 16384) ;;
  connrate) points=(1) ;;
  *) echo "prog-cost.sh: --workload $workload: use rr or connrate" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "prog-cost.sh: run as root (it loads BPF and writes kernel.bpf_stats_enabled)" >&2; exit 2; }
cg_root=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$cg_root" ] || { echo "prog-cost.sh: no cgroup v2 mount" >&2; exit 2; }
cg="$cg_root/smd-prog-cost-$$" pin="/sys/fs/bpf/smd-prog-cost-$$" daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  "$build/sockmapctl" uninstall --pin-path "$pin" >/dev/null 2>&1 || true
  rm -rf "$pin"; rmdir "$cg" 2>/dev/null || true
  sysctl -qw kernel.bpf_stats_enabled=0
}
trap cleanup EXIT
mkdir "$cg"
echo "| round | daemon options | $workload point | mean µs | sk_msg ns/run | sock_ops ns/run | sock_ops runs |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  for variant in with without; do
    args=(); [ "$variant" = with ] && args=("${option[@]}")
    "$build/sockmapd" --cgroup "$cg" --pin-path "$pin" --metrics-address "" --log-level error "${args[@]}" &
    daemon=$!
    for _ in $(seq 50); do "$build/sockmapctl" status --pin-path "$pin" >/dev/null 2>&1 && break; sleep 0.1; done
    for point in "${points[@]}"; do
      sysctl -qw kernel.bpf_stats_enabled=1
      before=$("$build/sockmapctl" status --json --pin-path "$pin")
      if [ "$workload" = rr ]; then
        cmd="'$build/smd_bench' rr --size $point --count $count --server-cpu 0 --client-cpu 0"
      else
        cmd="'$build/smd_bench' connrate --concurrency $point --duration 3 --warmup 0.5"
      fi
      result=$(bash -c "echo \$\$ > '$cg/cgroup.procs'; exec $cmd")
      after=$("$build/sockmapctl" status --json --pin-path "$pin")
      sysctl -qw kernel.bpf_stats_enabled=0
      python3 - "$round" "${args[*]:-(none)}" "$point" "$result" "$before" "$after" <<'PY'
import json, sys
round_, opts, point, result, before, after = sys.argv[1:]
b = {p["name"]: p for p in json.loads(before)["programs"]}
a = {p["name"]: p for p in json.loads(after)["programs"]}
def ns(name):
    runs = a[name]["run_count"] - b[name]["run_count"]
    return "%.0f" % ((a[name]["run_time_ns"] - b[name]["run_time_ns"]) / runs) if runs else "-"
r = json.loads(result)
mean = r["mean_us"] if "mean_us" in r else r["conn_mean_us"]
runs = a["smd_sockops"]["run_count"] - b["smd_sockops"]["run_count"]
print(f"| {round_} | `{opts}` | {point} | {mean:.2f} | {ns('smd_sk_msg')} | {ns('smd_sockops')} | {runs} |")
PY
    done
    kill "$daemon"; wait "$daemon" || true; daemon=
    "$build/sockmapctl" uninstall --pin-path "$pin" >/dev/null
  done
done
