#!/usr/bin/env bash
# BPF run time per program run, with and without a daemon option, in one run: the daemon from --build-dir
# attaches to a cgroup of its own, smd_bench rr runs inside it, and the kernel's run-time statistics
# (kernel.bpf_stats_enabled, on only while measuring) give ns per sk_msg and sock_ops run. Client and server
# threads share CPU 0, as bench/run.sh pins them: cross-vCPU wake-ups in a VM swamp what is measured.
#   sudo bench/prog-cost.sh [--workload rr|connrate] [--rounds N] [--count N] [--build-dir DIR] [--minimal] [--tcp]
#                           [--pin] [--profile DIR] -- DAEMON-OPTION...
# --minimal: compare sockmapd (with the options given, if any) against bench/minimal/redirect.bpf.c, the smallest
# sock_ops + sk_msg redirect (built with smd_bench), loaded and attached with bpftool, instead of with and without.
# rr (default): round trips of 64 B and 16 KiB, --count each. connrate: connect, 64 B each way, close, for 3 s
# at 1 client: what each connection costs sock_ops.
# --tcp: a third variant, plain TCP with nothing attached, in the same rounds. --pin: connrate's client and server
# threads share CPU 0 too (rr's always do), so that "CPU µs" (the threads' CPU time per round trip or connection,
# softirq work included as it runs on their CPU) counts the work, not cross-vCPU wake-ups.
# --profile DIR: perf record -a -g runs around each point and DIR gets one text profile per round, variant and point
# (self time by symbol, and the time of the BPF programs' and maps' paths with callees). perf's own overhead
# inflates the times of such a run alike in every variant: profile in a run of its own (--rounds 1), not in one
# whose times are reported.
# sk_msg runs/RT and TCP segs/RT (rr; segments sent in this network namespace, warm-up included) show the round
# trips were redirected: about 2 and 0 when they were; 2 or more TCP segments per round trip when they stayed on TCP.
# Example: the cost of backpressure:  sudo bench/prog-cost.sh -- --max-queued-bytes 0
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 count=100000 build=build workload=rr minimal= tcp= pin= profile=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --workload) workload="$2"; shift 2 ;;
    --minimal) minimal=1; shift ;;
    --tcp) tcp=1; shift ;;
    --pin) pin=1; shift ;;
    --profile) profile="$2"; shift 2 ;;
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
if [ -n "$profile" ]; then
  command -v perf >/dev/null || { echo "prog-cost.sh: --profile needs perf (apt install linux-perf)" >&2; exit 2; }
  mkdir -p "$profile"
fi
[ "$(id -u)" = 0 ] || { echo "prog-cost.sh: run as root (it loads BPF and writes kernel.bpf_stats_enabled)" >&2; exit 2; }
cg_root=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$cg_root" ] || { echo "prog-cost.sh: no cgroup v2 mount" >&2; exit 2; }
cg="$cg_root/smd-prog-cost-$$" pin="/sys/fs/bpf/smd-prog-cost-$$" daemon=
# --minimal: the reference redirect's programs and sockhash are pinned under $mpin while it is attached.
mobj="$build/bench/minimal/redirect.bpf.o" mpin="/sys/fs/bpf/smd-prog-cost-$$-minimal"
if [ -n "$minimal" ]; then
  [ -f "$mobj" ] || { echo "prog-cost.sh: no $mobj; build the smd_bench target" >&2; exit 2; }
  command -v bpftool >/dev/null || { echo "prog-cost.sh: --minimal needs bpftool" >&2; exit 2; }
  variants=(sockmapd minimal)
else
  variants=(with without)
fi
[ -z "$tcp" ] || variants+=(tcp)
minimal_detach() {
  bpftool cgroup detach "$cg" sock_ops pinned "$mpin/minimal_sockops" 2>/dev/null || true
  bpftool prog detach pinned "$mpin/minimal_sk_msg" msg_verdict pinned "$mpin/minimal_socks" 2>/dev/null || true
  rm -rf "$mpin"
}
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  "$build/sockmapctl" uninstall --pin-path "$pin" >/dev/null 2>&1 || true
  [ -z "$minimal" ] || minimal_detach
  rm -rf "$pin"
  if [ -d "$cg" ]; then
    # Killed mid-point, the script leaves smd_bench running in the cgroup, and rmdir would fail: stop it first.
    while read -r p; do kill "$p" 2>/dev/null || true; done < "$cg/cgroup.procs"
    for _ in $(seq 50); do [ -z "$(cat "$cg/cgroup.procs")" ] && break; sleep 0.1; done
    rmdir "$cg" 2>/dev/null || true
  fi
  sysctl -qw kernel.bpf_stats_enabled=0
}
trap cleanup EXIT
mkdir "$cg"
# The variant's program statistics as JSON: sockmapctl status, or bpftool's view of each minimal program.
prog_stats() {
  if [ "$1" = tcp ]; then
    echo '{}'
  elif [ "$1" = minimal ]; then
    printf '{"sk_msg": %s, "sock_ops": %s}' "$(bpftool prog show pinned "$mpin/minimal_sk_msg" -j)" \
      "$(bpftool prog show pinned "$mpin/minimal_sockops" -j)"
  else
    "$build/sockmapctl" status --json --pin-path "$pin"
  fi
}
# TCP segments this network namespace sent (/proc/net/snmp Tcp OutSegs): a redirected round trip sends none.
tcp_out_segs() { awk '/^Tcp:/ && ++n == 2 { print $12 }' /proc/net/snmp; }
warmup=2000
echo "| round | daemon options | $workload point | mean µs | CPU µs | sk_msg ns/run | sock_ops ns/run | sock_ops runs | sk_msg runs/RT | TCP segs/RT |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  for variant in "${variants[@]}"; do
    args=(); [ "$variant" = without ] || args=("${option[@]}")
    if [ "$variant" = tcp ]; then
      label="plain TCP"
    elif [ "$variant" = minimal ]; then
      label="minimal redirect"
      if [ -n "$(bpftool cgroup show "$cg")" ]; then
        echo "prog-cost.sh: $cg still has programs attached before the minimal redirect" >&2; exit 1
      fi
      bpftool prog loadall "$mobj" "$mpin" pinmaps "$mpin"
      bpftool cgroup attach "$cg" sock_ops pinned "$mpin/minimal_sockops"
      bpftool prog attach pinned "$mpin/minimal_sk_msg" msg_verdict pinned "$mpin/minimal_socks"
    else
      label="\`${args[*]:-(none)}\`"
      "$build/sockmapd" --cgroup "$cg" --pin-path "$pin" --metrics-address "" --log-level error "${args[@]}" &
      daemon=$!
      for _ in $(seq 50); do "$build/sockmapctl" status --pin-path "$pin" >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    for point in "${points[@]}"; do
      sysctl -qw kernel.bpf_stats_enabled=1
      before=$(prog_stats "$variant")
      segs_before=$(tcp_out_segs)
      if [ "$workload" = rr ]; then
        cmd="'$build/smd_bench' rr --size $point --count $count --warmup-count $warmup --server-cpu 0 --client-cpu 0"
      else
        cmd="'$build/smd_bench' connrate --concurrency $point --duration 3 --warmup 0.5"
        [ -z "$pin" ] || cmd="$cmd --server-cpu 0 --client-cpu 0"
      fi
      # The workload runs in the test cgroup, under perf with --profile.
      in_cgroup=(bash -c "echo \$\$ > '$cg/cgroup.procs'; exec $cmd")
      if [ -n "$profile" ]; then
        pdata="$profile/$workload-$point-${variant}-round$round"
        result=$(perf record -a -g -F 1999 -o "$pdata.data" -- "${in_cgroup[@]}" 2>/dev/null)
        {
          echo "# bench/prog-cost.sh --profile: $workload point $point, variant $variant, round $round (perf record -a -g -F 1999)"
          echo "# result: $result"
          echo "# self time by symbol, top entries"
          perf report -i "$pdata.data" --no-children --sort sym -g none 2>/dev/null | grep '%' | head -60 || true
          echo "# BPF programs, helpers and maps, time including callees"
          perf report -i "$pdata.data" --children --sort sym -g none 2>/dev/null | grep '%' |
            grep -E 'bpf|htab|storage|psock|sock_map|sock_hash|sk_msg|sock_ops|tcp_set_state' | head -40 || true
        } > "$pdata.txt"
        rm -f "$pdata.data"
      else
        result=$("${in_cgroup[@]}")
      fi
      segs_after=$(tcp_out_segs)
      after=$(prog_stats "$variant")
      sysctl -qw kernel.bpf_stats_enabled=0
      python3 - "$round" "$label" "$point" "$result" "$before" "$after" "$warmup" "$segs_before" "$segs_after" <<'PY'
import json, sys
round_, label, point, result, before, after, warmup, segs_before, segs_after = sys.argv[1:]
def stats(text):
    j = json.loads(text)
    if "programs" in j:  # sockmapctl status --json
        p = {p["name"]: p for p in j["programs"]}
        return {k: (p[n]["run_count"], p[n]["run_time_ns"])
                for k, n in (("sk_msg", "smd_sk_msg"), ("sock_ops", "smd_sockops"))}
    if not j:  # plain TCP: no programs
        return {"sk_msg": (0, 0), "sock_ops": (0, 0)}
    # bpftool prog show -j: the counters appear once the program has run with bpf_stats_enabled
    return {k: (v.get("run_cnt", 0), v.get("run_time_ns", 0)) for k, v in j.items()}
b, a = stats(before), stats(after)
def runs(k):
    return a[k][0] - b[k][0]
def ns(k):
    return "%.0f" % ((a[k][1] - b[k][1]) / runs(k)) if runs(k) else "-"
r = json.loads(result)
mean = r["mean_us"] if "mean_us" in r else r["conn_mean_us"]
cpu = "%.2f" % (mean * r["cpu_util"]) if "cpu_util" in r else "-"  # the bench threads' CPU, softirqs on it included
if "mean_us" in r:  # rr: every round trip, warm-up included, ran the programs
    rts = r["count"] + int(warmup)
    per_rt = "%.2f | %.2f" % (runs("sk_msg") / rts, (int(segs_after) - int(segs_before)) / rts)
else:
    per_rt = "- | -"
print(f"| {round_} | {label} | {point} | {mean:.2f} | {cpu} | {ns('sk_msg')} | {ns('sock_ops')} | "
      f"{runs('sock_ops') or '-'} | {per_rt} |")
PY
    done
    if [ "$variant" = minimal ]; then
      minimal_detach
    elif [ "$variant" != tcp ]; then
      kill "$daemon"; wait "$daemon" || true; daemon=
      "$build/sockmapctl" uninstall --pin-path "$pin" >/dev/null
    fi
  done
done
