#!/usr/bin/env bash
# Benchmarks sockmapd against plain TCP in one run (own cgroup, own netns) and writes bench/results/<date>-<host>.md.
#
#   sudo bench/run.sh [--quick] [--reps N] [--scenario local,nonlocal,connrate,mesh,scale] [--out FILE.md]
#   sudo make -C build bench        (or bench-quick)
#
# Every point runs R times with and without sockmapd, alternating which goes first; the table shows medians,
# min-max spread and the ratio sockmapd/baseline. The daemon's counters are read around every accelerated
# sample so the report can show that local points were redirected and non-local ones were left alone.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir="$repo/build"
reps=5
duration=5
warmup=1
rr_count=100000
scenarios="local,nonlocal,connrate,mesh,scale"
mesh_rate=2000
mesh_conc="1,4,16,64"
sat_conc="16,64"
scale_pairs="10000,100000"
out=""
quick=0
cpus="0,0"
report_only=""
profile=""

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --quick            smoke run: 1 s per point, 20000 round trips, R=3
  --reps N           repetitions per point and variant (default $reps)
  --duration S       measured seconds for stream, connrate and mesh points (default $duration)
  --warmup S         seconds before measuring on those points (default $warmup; wrk measures both)
  --rr-count N       measured round trips per rr point (default $rr_count)
  --scenario LIST    comma-separated subset of: local, nonlocal, connrate, mesh, scale (default all)
  --mesh-rate R      mesh: fixed request rate over all connections (default $mesh_rate)
  --mesh-concurrency LIST   mesh: connections at the fixed rate (default $mesh_conc)
  --saturation-concurrency LIST   mesh: wrk connections for the saturation rate (default $sat_conc)
  --scale-pairs LIST scale: connection pairs held open (default $scale_pairs)
  --cpus S,C         pin stream/rr server and client threads to these CPUs (default $cpus; "none": unpinned)
  --build-dir DIR    where smd_bench, sockmapd and sockmapctl are (default build/; built if missing)
  --out FILE         markdown report (default bench/results/<date>-<host>.md; raw samples next to it as .jsonl)
  --report-only RAW  rewrite RAW's markdown report (RAW.jsonl -> RAW.md) from its samples; measures nothing
  --profile LIST     after the samples, run these points (ids as in the report: local-rr-64, mesh-sat-16, ...)
                     once more per variant under "perf record -a -g" and write the top kernel and user symbols
                     to <out>-profile-<point>-<variant>.txt; these extra runs are not samples
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; reps=3; duration=1; warmup=0.5; rr_count=20000 ;;
    --reps) reps=$2; shift ;;
    --duration) duration=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --rr-count) rr_count=$2; shift ;;
    --scenario) scenarios=$2; shift ;;
    --mesh-rate) mesh_rate=$2; shift ;;
    --mesh-concurrency) mesh_conc=$2; shift ;;
    --saturation-concurrency) sat_conc=$2; shift ;;
    --scale-pairs) scale_pairs=$2; shift ;;
    --cpus) cpus=$2; shift ;;
    --build-dir) build_dir=$(realpath "$2"); shift ;;
    --out) out=$(realpath -m "$2"); shift ;;
    --report-only) report_only=$(realpath "$2"); shift ;;
    --profile) profile=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
has() { [[ ",$scenarios," == *,$1,* ]]; }

# Bad options are refused before anything is created.
for sc in ${scenarios//,/ }; do
  [[ $sc =~ ^(local|nonlocal|connrate|mesh|scale)$ ]] ||
    { echo "run.sh: unknown scenario '$sc' in --scenario; use local, nonlocal, connrate, mesh, scale" >&2; exit 2; }
done
for list in "$mesh_conc" "$sat_conc" "$scale_pairs"; do
  [[ $list =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
    { echo "run.sh: '$list' is not a comma-separated list of positive integers" >&2; exit 2; }
done
for n in "$reps" "$mesh_rate"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: '$n' is not a positive integer (--reps, --mesh-rate)" >&2; exit 2; }
done

# --- report ----------------------------------------------------------------------------------------
# Helpers read the samples of the report being written from $samples.
samples=""
# "median min max" of a metric over the samples of one point and variant.
stat() {
  jq -rs --arg p "$1" --arg v "$2" --arg m "$3" '
    [.[] | select(.point == $p and .variant == $v) | .[$m] | select(. != null)] | sort |
    if length == 0 then "" else
      (if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end) as $med |
      "\($med) \(.[0]) \(.[-1])" end' "$samples"
}
# "min max" of the per-repetition ratio sockmapd/baseline (the two samples of a rep ran back to back).
paired() {
  jq -rs --arg p "$1" --arg m "$2" '
    [group_by(.rep)[] | [.[] | select(.point == $p)] |
      ((map(select(.variant == "sockmapd"))[0][$m]) / (map(select(.variant == "baseline"))[0][$m]))] |
    "\(min) \(max)"' "$samples"
}
counter_sum() {
  jq -rs --arg p "$1" --arg c "$2" '[.[] | select(.point == $p and .variant == "sockmapd") | .counters[$c] // 0] | add' "$samples"
}
fmt() { awk -v d="$2" -v x="$1" 'BEGIN { printf "%.*f", d, x }'; }
cell() { # "median min max" -> "median (min-max)"
  [ -n "$1" ] || { echo "-"; return; }
  read -r med lo hi <<<"$1"
  echo "$(fmt "$med" "$2") ($(fmt "$lo" "$2")–$(fmt "$hi" "$2"))"
}
ratio() { # two "median ..." strings -> median ratio
  if [ -z "$1" ] || [ -z "$2" ]; then echo "-"; return; fi
  awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { printf "%.3f", a / b }'
}
ratio_cell() { # point metric
  local base smd pr
  base=$(stat "$1" baseline "$2")
  smd=$(stat "$1" sockmapd "$2")
  pr=$(paired "$1" "$2")
  read -r lo hi <<<"$pr"
  echo "**$(ratio "$smd" "$base")** ($(fmt "$lo" 3)–$(fmt "$hi" 3))"
}
cpu_pair() { # point -> "proxies, + sockmapd (ratio)" CPU µs per request, or "-" for runs that did not record it
  local b s
  b=$(stat "$1" baseline cpu_us_per_req); s=$(stat "$1" sockmapd cpu_us_per_req)
  if [ -z "$b" ] || [ -z "$s" ]; then echo "-"; return; fi
  echo "$(fmt "${b%% *}" 0), $(fmt "${s%% *}" 0) ($(ratio "$s" "$b"))"
}
accel_note() { # proves what the daemon did on this point
  local redirected inserted
  redirected=$(counter_sum "$1" redirected_bytes)
  inserted=$(counter_sum "$1" sockets_inserted)
  echo "$inserted sockets inserted, $(awk -v b="$redirected" 'BEGIN { printf "%.0f MiB", b / 1048576 }') redirected"
}

# One row of the goals table: "| goal | point metric | measured ratio | met? |". $4 is "le" or "ge" the bound $5.
goal_row() { # label point metric le|ge bound
  local r
  r=$(ratio "$(stat "$2" sockmapd "$3")" "$(stat "$2" baseline "$3")")
  if [ "$r" = - ]; then
    echo "| $1 | \`$2\` $3 | not measured | - |"
    return
  fi
  local met
  met=$(awk -v r="$r" -v b="$5" -v op="$4" 'BEGIN { print ((op == "le" ? r <= b : r >= b) ? "met" : "**not met**") }')
  # For the goals plot: short label, ratio, bound.
  local short=${3%_s}
  short=${short%_us}; short=${short/conns_per/conn\/s}; short=${short/gbit/Gbit\/s}; short=${short/rps/req\/s}
  [ -z "${goals_dat:-}" ] || echo "\"${2#local-} $short\" $r $5" >>"$goals_dat"
  echo "| $1 | \`$2\` $3 | $r ($([ "$4" = le ] && echo "<=" || echo ">=") $5) | $met |"
}

# The goals of issue 14 against this run's medians; a point the run did not measure says so.
write_goals() {
  echo "## Goals (issue 14): sockmapd / plain TCP, medians of this run"
  echo
  echo "| Goal | Point, metric | Ratio (bound) | |"
  echo "|---|---|---|---|"
  local c s
  for c in $(jq -rs '[.[] | select(.mode == "http-load") | .concurrency] | unique | map(select(. == 16 or . == 64)) | .[]' "$samples"); do
    goal_row "mesh mean request time, $c connections, >= 25% lower" "mesh-rate-$c" mean_us le 0.75
    goal_row "mesh P99 request time, $c connections, >= 25% lower" "mesh-rate-$c" p99_us le 0.75
  done
  for c in $(jq -rs '[.[] | select(.mode == "wrk") | .concurrency] | unique | .[]' "$samples"); do
    goal_row "mesh saturation rate, $c connections, >= 1.5x" "mesh-sat-$c" rps ge 1.5
  done
  # No bound in the issue: reported so that a faster request is not bought with more CPU.
  for c in $(jq -rs '[.[] | select(.mode == "http-load" or .mode == "wrk") | .concurrency] | unique | map(select(. == 16 or . == 64)) | .[]' "$samples"); do
    for p in "mesh-rate-$c" "mesh-sat-$c"; do
      local r
      r=$(ratio "$(stat "$p" sockmapd cpu_us_per_req)" "$(stat "$p" baseline cpu_us_per_req)")
      [ "$r" = - ] || echo "| mesh CPU per request (reported, no bound) | \`$p\` cpu_us_per_req | $r | - |"
    done
  done
  for s in 64 1024 16384; do
    goal_row "loopback request/response mean, <= 0.6x" "local-rr-$s" mean_us le 0.6
    goal_row "loopback request/response P99, <= 0.6x" "local-rr-$s" p99_us le 0.6
  done
  for s in 1024 16384; do
    goal_row "loopback bulk, never below 1.0x" "local-stream-$s" gbit_s ge 1.0
  done
  goal_row "loopback bulk 64 KiB, >= 1.5x" local-stream-65536 gbit_s ge 1.5
  for c in 1 8; do
    goal_row "short-lived local connections, >= 0.97x" "local-connrate-$c" conns_per_s ge 0.97
    goal_row "non-local connections (nothing to redirect), >= 0.97x" "nonlocal-connrate-$c" conns_per_s ge 0.97
  done
  goal_row "non-local bulk 64 KiB, >= 0.97x" nonlocal-stream-65536 gbit_s ge 0.97
  goal_row "non-local request/response mean (latency), <= 1.03x" nonlocal-rr-64 mean_us le 1.03
  echo
}

# PNG plots next to the report: mesh request time vs connections per data path, and the local ratios
# sockmapd / TCP per message size. gnuplot, from Debian; a missing gnuplot costs the plots, not the report.
write_plots() {
  local out=$1 dat
  command -v gnuplot >/dev/null || { log "warning: no gnuplot, no plots"; return 0; }
  dat=$(mktemp /tmp/smd-bench-plot.XXXXXX)
  if has mesh && jq -e -s 'any(.[]; .mode == "http-load")' "$samples" >/dev/null; then
    : >"$dat"
    for c in $(jq -rs '[.[] | select(.mode == "http-load") | .concurrency] | unique | .[]' "$samples"); do
      line="$c"
      for m in mean p99; do for v in direct baseline sockmapd; do
        st=$(stat "mesh-rate-$c" "$v" "${m}_us"); line="$line ${st:-NaN NaN NaN}"
      done; done
      echo "$line" >>"$dat"
    done
    gnuplot 2> >(grep -v "empty x range" >&2) <<GP
set terminal pngcairo size 1100,450 font ",10"
set output "${out%.md}-mesh.png"
set multiplot layout 1,2 title "Service mesh at a fixed $(jq -rs '[.[] | select(.mode == "http-load") | .target_rate] | first' "$samples") req/s, 16 KiB responses (median, min-max)"
set logscale x 2
set logscale y
set xlabel "connections"
set ylabel "request time (µs)"
set key top left
set grid
set title "mean"
plot "$dat" u 1:2:3:4 w yerrorlines t "direct", "" u 1:5:6:7 w yerrorlines t "proxies", "" u 1:8:9:10 w yerrorlines t "proxies + sockmapd"
set title "P99"
plot "$dat" u 1:11:12:13 w yerrorlines t "direct", "" u 1:14:15:16 w yerrorlines t "proxies", "" u 1:17:18:19 w yerrorlines t "proxies + sockmapd"
unset multiplot
GP
  fi
  if has local && jq -e -s 'any(.[]; .point == "local-rr-64")' "$samples" >/dev/null; then
    : >"$dat"
    for sz in 64 1024 16384 65536; do
      r() { ratio "$(stat "$1" sockmapd "$2")" "$(stat "$1" baseline "$2")" | sed 's/^-$/NaN/'; }
      echo "$sz $(r "local-stream-$sz" gbit_per_core) $(r "local-rr-$sz" mean_us) $(r "local-rr-$sz" p99_us)" >>"$dat"
    done
    gnuplot 2> >(grep -v "empty x range" >&2) <<GP
set terminal pngcairo size 700,450 font ",10"
set output "${out%.md}-local.png"
set title "Loopback: sockmapd / TCP per message size (median)"
set logscale x 2
set xlabel "message size (bytes)"
set ylabel "ratio (1 = plain TCP)"
set yrange [0:*]
set grid
set key top left
plot "$dat" u 1:2 w lp t "bandwidth per core (higher is better)", "" u 1:3 w lp t "rr mean latency (lower is better)", "" u 1:4 w lp t "rr P99 latency (lower is better)", 1 w l lc "black" dt 2 notitle
GP
  fi
  if [ -s "$goals_dat" ]; then
    gnuplot <<GP
set terminal pngcairo size 1200,520 font ",9" noenhanced
set output "${out%.md}-goals.png"
set rmargin 8
set title "Issue 14 goals: sockmapd / plain TCP, medians of this run (bars), and each goal's bound (dots)"
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
set grid ytics
set xtics rotate by -40 left
set ylabel "ratio (1 = plain TCP)"
set key top right
set bmargin 9
plot "$goals_dat" u 0:2:xtic(1) w boxes t "measured", "" u 0:3 w p pt 7 ps 1.2 lc "red" t "bound", 1 w l lc "black" dt 2 notitle
GP
  fi
  rm -f "$dat" "$goals_dat"
}

# Writes the markdown for a raw sample file; the run's description is its {"run": ...} line.
write_report() {
  local raw=$1 out=$2
  samples=$(mktemp /tmp/smd-bench-report.XXXXXX)
  goals_dat=$(mktemp /tmp/smd-bench-goals.XXXXXX)
  # Samples only, plus stream throughput per core used: under load, a thread pinned to a shared CPU gets
  # less of it, and that (unlike the data path) varies from sample to sample. Mesh samples get the CPU per
  # request: everything the run's cgroup used over the sample (client, sidecars, server app, daemon) divided by
  # the requests its achieved rate makes over the sample's whole time (warm-up included, as is the CPU).
  jq -c 'select(.point) | if .mode == "stream" then . + {gbit_per_core: (.gbit_s / .cpu_util)}
         elif (.mode == "http-load" or .mode == "wrk") and (.cgroup_cpu_s // 0) > 0 and .rps > 0
         then . + {cpu_us_per_req: (.cgroup_cpu_s * 1e6 / (.rps * .elapsed_s))} else . end' \
    "$raw" >"$samples"
  meta() { jq -r --arg k "$1" 'select(.run) | .run[$k] // ""' "$raw"; }
  local stamp host reps duration warmup rr_count cpus scenarios tag suffix=""
  stamp=$(meta stamp); host=$(meta host); reps=$(meta reps); duration=$(meta duration); warmup=$(meta warmup)
  rr_count=$(meta rr_count); cpus=$(meta cpus); scenarios=$(meta scenarios); tag=$(meta tag)
  [ "$(meta quick)" -eq 0 ] || suffix="-quick"
  local virt ncpu
  virt=$(meta virt); ncpu=$(meta ncpu)

  {
    echo "# sockmapd benchmark, $stamp on $host${suffix:+ (quick smoke run)}"
    echo
    echo "## Machine"
    echo
    echo "- CPU: $(meta cpu_model), $ncpu cores${virt:+ ($virt guest)}"
    echo "- Kernel: $(meta kernel); memory $(meta memory)"
    echo "- sockmapd: $(meta version), built from commit $(meta commit)"
    echo "- Load average (1/5/15 min) at start: $(meta load_start); at end: $(meta load_end)"
    echo "- CPU used by other processes while samples ran (user + system time of the machine minus that of this run's cgroup):" \
      "$(jq -rs '[.[] | select(.scenario != "scale") | .other_cpu] | sort | "median \(.[length / 2 | floor]) cores, max \(.[-1]) cores"' "$samples")" \
      "of $ncpu"
    echo
    echo "## Method"
    echo
    echo "- Tool: \`smd_bench\` (bench/smd_bench.cpp): client and server threads of one process, non-blocking sockets"
    echo "  waiting in poll() (sockmapd pairs only those), each thread in its network namespace. stream: one connection, writes and reads of the message size,"
    echo "  ${duration} s measured after ${warmup} s warm-up, rate at the receiver. rr: ping-pong of equal-size request and"
    echo "  reply, TCP_NODELAY, ${rr_count} timed round trips after $((rr_count / 50)) warm-up ones. connrate: connect, 64 B"
    echo "  request, 64 B reply, client closes; N client threads each served by a server thread; ${duration} s measured."
    if [ "$cpus" = none ]; then
      echo "- Threads were not pinned: the scheduler placed them."
    else
      echo "- stream and rr: the server thread was pinned to CPU ${cpus%,*} and the client thread to CPU ${cpus#*,}."
      echo "  connrate threads were not pinned."
    fi
    echo "- Everything ran in a fresh child cgroup ($tag) and fresh network namespaces: loopback points inside one"
    echo "  namespace on 127.0.0.1; non-local points with the client in namespace A and the server in namespace B,"
    echo "  joined by a veth pair (10.250.0.1 -> 10.250.0.2), which sockmapd must leave on plain TCP."
    echo "- Each point ran $reps times with sockmapd and $reps times without, back to back and alternating which came"
    echo "  first. For every sockmapd sample a fresh daemon was started (\`sockmapd --cgroup <that cgroup>\`) and stopped"
    echo "  afterwards with its pins removed, so baseline samples ran with nothing attached."
    echo "- Cells: median (min–max) over the $reps repetitions. Ratio: median(sockmapd) / median(baseline), then in"
    echo "  parentheses the range of the per-repetition ratios of the back-to-back pairs."
    echo "- Counters: the daemon's redirect counters, read before and after every sockmapd sample, are summed in the"
    echo "  last column: they show that local points were accelerated and non-local ones were not."
    echo
    write_goals
    [ ! -s "$goals_dat" ] || echo "![every goal: measured ratio and its bound]($(basename "${out%.md}")-goals.png)"
    echo
    if [[ ",$scenarios," == *,local,* ]]; then
      echo "## Local loopback: bandwidth (Gbit/s, higher is better)"
      echo
      echo "| Message | TCP | TCP + sockmapd | sockmapd / TCP | AF_UNIX | AF_UNIX / TCP | Daemon counters |"
      echo "|---|---|---|---|---|---|---|"
      for s in 1024 16384 65536; do
        b=$(stat "local-stream-$s" baseline gbit_s)
        u=$(stat "unix-stream-$s" unix gbit_s)
        echo "| $((s / 1024)) KiB | $(cell "$b" 2) | $(cell "$(stat "local-stream-$s" sockmapd gbit_s)" 2)" \
          "| $(ratio_cell "local-stream-$s" gbit_s) | $(cell "$u" 2) | $(ratio "$u" "$b") | $(accel_note "local-stream-$s") |"
      done
      echo
      echo "The same points per core used (Gbit/s divided by the benchmark process's user + system time per wall"
      echo "second; softirq work done in its context counts, work on other threads such as ksoftirqd does not). This"
      echo "corrects for samples whose pinned CPU was shared with other load:"
      echo
      echo "| Message | TCP | TCP + sockmapd | sockmapd / TCP | AF_UNIX | AF_UNIX / TCP | Cores used: TCP / sockmapd / AF_UNIX |"
      echo "|---|---|---|---|---|---|---|"
      for s in 1024 16384 65536; do
        b=$(stat "local-stream-$s" baseline gbit_per_core)
        u=$(stat "unix-stream-$s" unix gbit_per_core)
        cpu="$(fmt "$(stat "local-stream-$s" baseline cpu_util)" 2) / $(fmt "$(stat "local-stream-$s" sockmapd cpu_util)" 2)"
        cpu="$cpu / $(fmt "$(stat "unix-stream-$s" unix cpu_util)" 2)"
        echo "| $((s / 1024)) KiB | $(cell "$b" 2) | $(cell "$(stat "local-stream-$s" sockmapd gbit_per_core)" 2)" \
          "| $(ratio_cell "local-stream-$s" gbit_per_core) | $(cell "$u" 2) | $(ratio "$u" "$b") | $cpu |"
      done
      echo
      echo "## Local loopback: request/response latency (µs, lower is better)"
      echo
      echo "| Message | Metric | TCP | TCP + sockmapd | sockmapd / TCP | AF_UNIX | AF_UNIX / TCP |"
      echo "|---|---|---|---|---|---|---|"
      for s in 64 1024 16384; do
        for m in mean p50 p90 p99; do
          b=$(stat "local-rr-$s" baseline "${m}_us")
          u=$(stat "unix-rr-$s" unix "${m}_us")
          label=$([ "$s" -ge 1024 ] && echo "$((s / 1024)) KiB" || echo "$s B")
          echo "| $label | $m | $(cell "$b" 1) | $(cell "$(stat "local-rr-$s" sockmapd "${m}_us")" 1)" \
            "| $(ratio_cell "local-rr-$s" "${m}_us") | $(cell "$u" 1) | $(ratio "$u" "$b") |"
        done
      done
      echo
      echo "Daemon counters on the rr points: $(for s in 64 1024 16384; do printf '%s: %s; ' "$s B" "$(accel_note "local-rr-$s")"; done)"
      echo
      echo "![sockmapd / TCP per message size]($(basename "${out%.md}")-local.png)"
      echo
    fi
    if [[ ",$scenarios," == *,nonlocal,* ]]; then
      echo "## Non-local peer (client and server in different namespaces over veth): what sockmapd costs where it cannot help"
      echo
      echo "| Point | Metric | TCP | TCP + sockmapd | sockmapd / TCP | Daemon counters |"
      echo "|---|---|---|---|---|---|"
      row() { echo "| $1 | $3 | $(cell "$(stat "$2" baseline "$4")" "$5") | $(cell "$(stat "$2" sockmapd "$4")" "$5") | $(ratio_cell "$2" "$4") | $6 |"; }
      nl_note() { echo "$(counter_sum "$1" skipped_not_local) skipped as not local, $(counter_sum "$1" sockets_inserted) inserted"; }
      row "stream 64 KiB" nonlocal-stream-65536 "Gbit/s" gbit_s 2 "$(nl_note nonlocal-stream-65536)"
      row "stream 64 KiB" nonlocal-stream-65536 "Gbit/s per core used" gbit_per_core 2 ""
      for m in mean p99; do row "rr 64 B" nonlocal-rr-64 "$m µs" "${m}_us" 1 "$(nl_note nonlocal-rr-64)"; done
      for c in 1 8; do
        row "connrate, $c client(s)" "nonlocal-connrate-$c" "conn/s" conns_per_s 0 "$(nl_note "nonlocal-connrate-$c")"
        row "connrate, $c client(s)" "nonlocal-connrate-$c" "mean conn µs" conn_mean_us 1 ""
      done
      echo
    fi
    if [[ ",$scenarios," == *,connrate,* ]]; then
      echo "## Local short-lived connections (loopback connect, 64 B request, 64 B reply, close)"
      echo
      echo "| Clients | Metric | TCP | TCP + sockmapd | sockmapd / TCP | Daemon counters |"
      echo "|---|---|---|---|---|---|"
      for c in 1 8; do
        p="local-connrate-$c"
        echo "| $c | conn/s | $(cell "$(stat "$p" baseline conns_per_s)" 0) | $(cell "$(stat "$p" sockmapd conns_per_s)" 0) | $(ratio_cell "$p" conns_per_s) | $(counter_sum "$p" pairs_made) pairs made, $(counter_sum "$p" redirected_messages) messages redirected |"
        for m in conn_mean conn_p99; do
          echo "| $c | ${m#conn_} conn µs | $(cell "$(stat "$p" baseline "${m}_us")" 1) | $(cell "$(stat "$p" sockmapd "${m}_us")" 1) | $(ratio_cell "$p" "${m}_us") | |"
        done
      done
      echo
    fi
    if has mesh; then
      echo "## Service mesh: two pods, haproxy sidecars, Istio-style REDIRECT (16 KiB responses)"
      echo
      echo "Request time in µs at a fixed $(jq -rs '[.[] | select(.mode == "http-load") | .target_rate] | first // "-"' "$samples") requests/s,"
      echo "measured from each request's due time (open loop, no coordinated omission). proxies: app → sidecar A →"
      echo "veth → sidecar B → app; direct: the same client and server over veth with no sidecars."
      echo
      echo "| Connections | Metric | direct | proxies | proxies + sockmapd | sockmapd / proxies | proxies / direct | Daemon counters |"
      echo "|---|---|---|---|---|---|---|---|"
      for c in $(jq -rs '[.[] | select(.mode == "http-load") | .concurrency] | unique | .[]' "$samples"); do
        p="mesh-rate-$c"
        for m in mean p50 p90 p99; do
          d=$(stat "$p" direct "${m}_us"); b=$(stat "$p" baseline "${m}_us")
          note=""
          [ "$m" != mean ] || note="$(accel_note "$p"), $(counter_sum "$p" pairs_made) pairs made"
          echo "| $c | $m | $(cell "$d" 0) | $(cell "$b" 0) | $(cell "$(stat "$p" sockmapd "${m}_us")" 0)" \
            "| $(ratio_cell "$p" "${m}_us") | $(ratio "$b" "$d") | $note |"
        done
        if [ -n "$(stat "$p" sockmapd cpu_us_per_req)" ]; then
          echo "| $c | CPU µs per request | $(cell "$(stat "$p" direct cpu_us_per_req)" 0)" \
            "| $(cell "$(stat "$p" baseline cpu_us_per_req)" 0) | $(cell "$(stat "$p" sockmapd cpu_us_per_req)" 0)" \
            "| $(ratio_cell "$p" cpu_us_per_req) | $(ratio "$(stat "$p" baseline cpu_us_per_req)" "$(stat "$p" direct cpu_us_per_req)") | |"
        fi
        echo "| $c | achieved req/s | $(cell "$(stat "$p" direct rps)" 0) | $(cell "$(stat "$p" baseline rps)" 0)" \
          "| $(cell "$(stat "$p" sockmapd rps)" 0) | | | late sends (>1 ms behind): $(jq -rs --arg p "$p" \
          '[.[] | select(.point == $p)] | group_by(.variant) | map("\(.[0].variant) \(map(.late_sends) | add)") | join(", ")' "$samples") |"
      done
      echo
      echo "Saturation request rate (wrk, 1 thread, keep-alive, requests/s, higher is better):"
      echo
      echo "| Connections | direct | proxies | proxies + sockmapd | sockmapd / proxies | CPU µs per request: proxies, + sockmapd (ratio) | Daemon counters |"
      echo "|---|---|---|---|---|---|---|"
      for c in $(jq -rs '[.[] | select(.mode == "wrk") | .concurrency] | unique | .[]' "$samples"); do
        p="mesh-sat-$c"
        echo "| $c | $(cell "$(stat "$p" direct rps)" 0) | $(cell "$(stat "$p" baseline rps)" 0)" \
          "| $(cell "$(stat "$p" sockmapd rps)" 0) | $(ratio_cell "$p" rps)" \
          "| $(cpu_pair "$p")" \
          "| $(accel_note "$p") |"
      done
      echo
      echo "![request time vs connections]($(basename "${out%.md}")-mesh.png)"
      echo
    fi
    if has scale; then
      echo "## Scale: loopback pairs held open"
      echo
      echo "Kernel memory is the change in \`Slab\` (whole machine, so other people's work shows up in it) and in the"
      echo "\`TCP\` slab cache alone while the pairs were held; BPF map memory is the kernel's \`memlock\` accounting of"
      echo "the pinned maps (\`bpftool map show\`), idle → with the pairs."
      echo
      echo "| Pairs | Variant | Set-up | Pairs in smd_pairs | Sockets in smd_sockhash | Daemon RSS | BPF maps | Slab Δ | TCP slab Δ |"
      echo "|---|---|---|---|---|---|---|---|---|"
      jq -r 'select(.scenario == "scale") |
        "| \(.pairs_held // .pairs) | \(.variant) | \(.setup_s * 10 | round / 10) s | \(if .variant == "sockmapd" then .pairs else "-" end)" +
        " | \(if .variant == "sockmapd" then "\(.sockets) of \(.max_sockets), \(.sockets_after_close) after close" else "-" end)" +
        " | \(if .variant == "sockmapd" then "\(.daemon_rss_kib / 1024 * 10 | round / 10) MiB" else "-" end)" +
        " | \(if .variant == "sockmapd" then "\(.map_bytes_idle / 1048576 * 10 | round / 10) → \(.map_bytes / 1048576 * 10 | round / 10) MiB" else "-" end)" +
        " | \(.slab_kib / 1024 | round) MiB | \(.tcp_slab_kib / 1024 | round) MiB |"' "$samples"
      echo
      jq -rs 'map(select(.scenario == "scale")) | group_by(.point)[] |
        (map(select(.variant == "baseline"))[0]) as $b | (map(select(.variant == "sockmapd"))[0]) as $s |
        select($b and $s) |
        "- \($s.pairs_held // $b.pairs_held) pairs: the daemon adds \((($s.slab_kib - $b.slab_kib) * 1024 / $s.pairs_held) | round) B of slab per pair" +
        " (sockmapd \(($s.slab_kib * 1024 / $s.pairs_held) | round) B, plain TCP \(($b.slab_kib * 1024 / $b.pairs_held) | round) B per pair)" +
        " and \((($s.map_bytes - $s.map_bytes_idle) / $s.pairs_held) | round) B of BPF map memory per pair."' "$samples"
      echo
    fi
    echo "Raw samples: \`$(basename "${out%.md}.jsonl")\` (one JSON line per sample, with the daemon's counter deltas)."
  } >"$out"

  write_plots "$out"

  # A local point that was never redirected means the benchmark measured nothing: say so loudly.
  local id scenario r i
  while read -r id scenario; do
    r=$(counter_sum "$id" redirected_bytes)
    i=$(counter_sum "$id" sockets_inserted)
    if [ "$scenario" = nonlocal ] && [ "$i" != 0 ]; then log "warning: $id inserted $i sockets although non-local"; fi
    if [ "$scenario" != nonlocal ] && [ "$r" = 0 ]; then log "warning: $id was never redirected"; fi
  done < <(jq -r 'select(.variant == "sockmapd" and .scenario != "scale") | "\(.point) \(.scenario)"' "$samples" | sort -u)
  rm -f "$samples"
  log "report: $out"
}

if [ -n "$report_only" ]; then
  command -v jq >/dev/null || die "--report-only needs jq"
  write_report "$report_only" "${report_only%.jsonl}.md"
  exit 0
fi

# --- measuring starts here ---------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "needs root (BPF, cgroups, network namespaces): sudo $0"

# --- tools -----------------------------------------------------------------------------------------
need_pkgs=()
command -v jq >/dev/null || need_pkgs+=(jq)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v gnuplot >/dev/null || need_pkgs+=(gnuplot-nox) # the PNG plots
if has mesh; then
  command -v wrk >/dev/null || need_pkgs+=(wrk)
  command -v haproxy >/dev/null || need_pkgs+=(haproxy)
  command -v iptables >/dev/null || need_pkgs+=(iptables)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
bench_bin="$build_dir/smd_bench"
sockmapd_bin="$build_dir/sockmapd"
sockmapctl_bin="$build_dir/sockmapctl"
if [ ! -x "$bench_bin" ] || [ ! -x "$sockmapd_bin" ] || [ ! -x "$sockmapctl_bin" ]; then
  log "building smd_bench, sockmapd and sockmapctl in $build_dir"
  "$repo/scripts/install-deps.sh"
  cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build_dir" -j"$(nproc)" --target smd_bench sockmapd sockmapctl >/dev/null
fi

# --- everything this run creates, and its removal on any exit ---------------------------------------
tag="smd-bench-$$"
cg_root=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
  /proc/self/mountinfo | head -n1)
[ -n "$cg_root" ] || die "no cgroup v2 mount in /proc/self/mountinfo"
cg_orig="$cg_root$(sed -n 's/^0:://p' /proc/self/cgroup)"
cgroup="$cg_root/$tag"
pin_path="/sys/fs/bpf/$tag"
ns_lo="$tag-lo"   # loopback scenarios: client and server share it
ns_a="$tag-a"     # non-local: client
ns_b="$tag-b"     # non-local: server, over a veth pair; also the mesh scenario's direct path
ns_pa="$tag-pa"   # mesh: pod A (client app + sidecar)
ns_pb="$tag-pb"   # mesh: pod B (sidecar + server app)
tmp=$(mktemp -d "/tmp/$tag.XXXXXX")
daemon_pid=""
helpers=()        # sidecars and servers this run started in the background
created_ns=()
cgroup_made=0

stop_daemon() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
  fi
  rm -rf "$pin_path"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_daemon
  for pid in "${helpers[@]+"${helpers[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${helpers[@]+"${helpers[@]}"}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$cgroup_made" -eq 1 ]; then
    echo $$ >"$cg_orig/cgroup.procs" 2>/dev/null || echo $$ >"$cg_root/cgroup.procs" || true
    for _ in $(seq 50); do
      # Anything still in our cgroup is ours (a bench client interrupted mid-run).
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$cgroup/cgroup.procs"
      rmdir "$cgroup" 2>/dev/null && break
      sleep 0.1
    done
    [ -d "$cgroup" ] && log "warning: could not remove $cgroup"
  fi
  for ns in "${created_ns[@]}"; do ip netns del "$ns" 2>/dev/null || log "warning: could not delete netns $ns"; done
  [ -z "${kallsyms_was:-}" ] || sysctl -qw net.core.bpf_jit_kallsyms="$kallsyms_was"
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
trap 'log "interrupted"; exit 130' INT TERM

mkdir "$cgroup"
cgroup_made=1
echo $$ >"$cgroup/cgroup.procs"

make_ns() {
  ip netns add "$1"
  created_ns+=("$1")
  ip -n "$1" link set lo up
  # Short-lived connections must not run out of ports; these sysctls are per network namespace.
  ip netns exec "$1" sysctl -qw net.ipv4.tcp_tw_reuse=1 "net.ipv4.ip_local_port_range=1024 65000"
}
make_ns "$ns_lo"
make_ns "$ns_a"
make_ns "$ns_b"
ip -n "$ns_a" link add veth0 type veth peer name veth0 netns "$ns_b"
ip -n "$ns_a" addr add 10.250.0.1/24 dev veth0
ip -n "$ns_b" addr add 10.250.0.2/24 dev veth0
ip -n "$ns_a" link set veth0 up
ip -n "$ns_b" link set veth0 up

# --- mesh: two pods with Istio-style REDIRECT and haproxy sidecars (uid 1337), as the mesh tests build them ---
mesh_pod="$repo/scripts/mesh-pod.sh"
app_port=8080
wait_listening() { # netns, "addr:port" ...: bounded wait for listeners, checked over netlink
  local ns=$1 listening w all
  shift
  for _ in $(seq 100); do
    listening=$(ip netns exec "$ns" ss -Htln)
    all=1
    for w in "$@"; do [[ $listening == *"$w "* ]] || all=0; done
    [ "$all" -eq 0 ] || return 0
    sleep 0.1
  done
  die "nothing listening on $* in $ns after 10 s: $(cat "$tmp"/*.log 2>/dev/null | tail -n 5)"
}
start_http_server() { # netns: the mesh's server app, serving a 16 KiB body on $app_port
  "$bench_bin" http-server --server-netns "$1" --listen-addr 0.0.0.0 --port "$app_port" --size 16384 \
    >"$tmp/http-server-$1.log" 2>&1 &
  helpers+=($!)
  wait_listening "$1" "0.0.0.0:$app_port"
}
if has mesh; then
  make_ns "$ns_pa"
  make_ns "$ns_pb"
  ip -n "$ns_pa" link add eth0 type veth peer name eth0 netns "$ns_pb"
  ip -n "$ns_pa" addr add 10.251.0.1/24 dev eth0
  ip -n "$ns_pb" addr add 10.251.0.2/24 dev eth0
  ip -n "$ns_pa" link set eth0 up
  ip -n "$ns_pb" link set eth0 up
  chmod 755 "$tmp" # the sidecars read their config as uid 1337
  "$mesh_pod" haproxy-config >"$tmp/haproxy.cfg"
  chmod 644 "$tmp/haproxy.cfg"
  for ns in "$ns_pa" "$ns_pb"; do
    "$mesh_pod" redirect "$ns"
    # Started from this script, so in the run's cgroup: the sidecars' sockets are in the daemon's scope.
    ip netns exec "$ns" setpriv --reuid 1337 --regid 1337 --clear-groups haproxy -db -f "$tmp/haproxy.cfg" \
      >"$tmp/haproxy-$ns.log" 2>&1 &
    helpers+=($!)
    wait_listening "$ns" 0.0.0.0:15001 0.0.0.0:15006
  done
  start_http_server "$ns_pb" # behind pod B's sidecar
  start_http_server "$ns_b"  # the direct path: no sidecars, no REDIRECT
fi

# --- the daemon ------------------------------------------------------------------------------------
# Daemons that serve metrics over HTTP get none: a fixed port could collide with another sockmapd on the host.
daemon_args=(--cgroup "$cgroup" --pin-path "$pin_path" --log-level warn)
if "$sockmapd_bin" --help 2>/dev/null | grep -q -- --metrics-address; then daemon_args+=(--metrics-address ""); fi

start_daemon() {
  "$sockmapd_bin" "${daemon_args[@]}" >>"$tmp/sockmapd.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 150); do
    kill -0 "$daemon_pid" 2>/dev/null || die "sockmapd exited during start-up: $(tail -n 5 "$tmp/sockmapd.log")"
    if "$sockmapctl_bin" status --json --pin-path "$pin_path" 2>/dev/null |
      jq -e --argjson pid "$daemon_pid" '.daemon_running and (.programs | length) >= 2 and .daemon_pid == $pid' \
        >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  die "sockmapd not ready after 15 s"
}

counters() { "$sockmapctl_bin" status --json --pin-path "$pin_path" | jq -c '.counters'; }

# --- points ----------------------------------------------------------------------------------------
# id|scenario|kind|smd_bench arguments; kind "tcp" runs with and without sockmapd, "ref" once (AF_UNIX),
# "ref:NAME" once as variant NAME (the mesh's direct path). Arguments starting with "wrk" run wrk instead.
points=()
lo_args="--server-netns $ns_lo --client-netns $ns_lo --listen-addr 127.0.0.1"
nl_args="--server-netns $ns_b --client-netns $ns_a --listen-addr 10.250.0.2"
pin=""
[ "$cpus" = none ] || pin="--server-cpu ${cpus%,*} --client-cpu ${cpus#*,}"
cr="--duration $duration --warmup $warmup"
st="$cr $pin"
rr="--count $rr_count --warmup-count $((rr_count / 50)) $pin"
if [[ ",$scenarios," == *,local,* ]]; then
  for s in 1024 16384 65536; do
    points+=("local-stream-$s|local|tcp|stream --size $s $st $lo_args")
    points+=("unix-stream-$s|local|ref|stream --transport unix --size $s $st")
  done
  for s in 64 1024 16384; do
    points+=("local-rr-$s|local|tcp|rr --size $s $rr $lo_args")
    points+=("unix-rr-$s|local|ref|rr --transport unix --size $s $rr")
  done
fi
if [[ ",$scenarios," == *,nonlocal,* ]]; then
  points+=("nonlocal-stream-65536|nonlocal|tcp|stream --size 65536 $st $nl_args")
  points+=("nonlocal-rr-64|nonlocal|tcp|rr --size 64 $rr $nl_args")
  for c in 1 8; do points+=("nonlocal-connrate-$c|nonlocal|tcp|connrate --concurrency $c $cr $nl_args"); done
fi
if [[ ",$scenarios," == *,connrate,* ]]; then
  for c in 1 8; do points+=("local-connrate-$c|connrate|tcp|connrate --concurrency $c $cr $lo_args"); done
fi
if has mesh; then
  # Pod A's app -> sidecar A (REDIRECT) -> veth -> sidecar B (REDIRECT) -> pod B's app; "baseline" is the proxies
  # alone, "sockmapd" the same with the daemon; "direct" the same client and server over veth, no sidecars.
  mesh_load="--duration $duration --warmup $warmup --rate $mesh_rate --port $app_port"
  for c in ${mesh_conc//,/ }; do
    points+=("mesh-rate-$c|mesh|ref:direct|http-load $mesh_load --concurrency $c --client-netns $ns_a --connect-addr 10.250.0.2")
    points+=("mesh-rate-$c|mesh|tcp|http-load $mesh_load --concurrency $c --client-netns $ns_pa --connect-addr 10.251.0.2")
  done
  for c in ${sat_conc//,/ }; do
    points+=("mesh-sat-$c|mesh|ref:direct|wrk $ns_a $c http://10.250.0.2:$app_port/")
    points+=("mesh-sat-$c|mesh|tcp|wrk $ns_pa $c http://10.251.0.2:$app_port/")
  done
fi
has scale || [ ${#points[@]} -gt 0 ] || die "no points selected by --scenario $scenarios"

# Raw samples go straight to their final place, so an interrupted run keeps what it measured.
host=$(hostname -s)
stamp=$(date +%Y-%m-%d)
suffix=""
[ "$quick" -eq 0 ] || suffix="-quick"
[ -n "$out" ] || out="$repo/bench/results/$stamp-$host$suffix.md"
mkdir -p "$(dirname "$out")"
raw="${out%.md}.jsonl"
: >"$raw"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
total=0
for p in "${points[@]+"${points[@]}"}"; do [[ $p == *"|tcp|"* ]] && total=$((total + 2 * reps)) || total=$((total + reps)); done
done_n=0

# CPU seconds used on the whole machine and in our cgroup: their difference over a sample is other people's load.
machine_cpu_s() { awk '/^cpu / { print ($2 + $3 + $4) / 100; exit }' /proc/stat; }
cgroup_cpu_s() { awk '/^usage_usec/ { print $2 / 1e6 }' "$cgroup/cpu.stat"; }

# wrk NETNS CONNECTIONS URL: the saturation request rate, as one JSON line like smd_bench's. wrk checks no
# content, so any non-2xx answer or socket error fails the sample; one thread, as the machine has 2 cores.
run_wrk() {
  local out
  out=$(ip netns exec "$1" wrk -t1 -c"$2" -d"$(awk -v d="$duration" -v w="$warmup" 'BEGIN { printf "%d", d + w + 0.5 }')s" \
    --timeout 10s --latency "$3")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then echo "wrk reported errors: $out" >&2; return 1; fi
  awk -v c="$2" '
    function us(x) { if (x ~ /us$/) return x + 0; if (x ~ /ms$/) return x * 1000; if (x ~ /s$/) return x * 1e6; return x }
    /^ +Latency / && !lat { mean = us($2); lat = 1 }
    /^ +50%/ { p50 = us($2) } /^ +90%/ { p90 = us($2) } /^ +99%/ { p99 = us($2) }
    /requests in/ { n = $1 }
    /^Requests\/sec:/ { rps = $2 }
    END { if (rps == "") exit 1
          printf "{\"mode\":\"wrk\",\"concurrency\":%d,\"requests\":%d,\"rps\":%s,\"mean_us\":%s,\"p50_us\":%s,\"p90_us\":%s,\"p99_us\":%s}\n", c, n, rps, mean, p50, p90, p99 }' <<<"$out"
}
measure() { # smd_bench ARGS, or wrk NETNS CONNECTIONS URL
  if [ "$1" = wrk ]; then shift; run_wrk "$@"; else "$bench_bin" "$@"; fi
}

# One sample: run smd_bench, tag its JSON line, and for sockmapd samples attach the counter deltas.
run_sample() {
  local id=$1 scenario=$2 variant=$3 rep=$4 args=$5 before="{}" after="{}" result m0 c0 t0 other
  if [ "$variant" = sockmapd ]; then
    start_daemon
    before=$(counters)
  fi
  m0=$(machine_cpu_s); c0=$(cgroup_cpu_s); t0=$(date +%s.%N)
  # shellcheck disable=SC2086  # args is a word list built above
  if ! result=$(measure $args 2>"$tmp/bench.err"); then
    die "$id ($variant, rep $rep) failed: $(cat "$tmp/bench.err")"
  fi
  read -r other cpu elapsed < <(awk -v m0="$m0" -v m1="$(machine_cpu_s)" -v c0="$c0" -v c1="$(cgroup_cpu_s)" \
    -v t0="$t0" -v t1="$(date +%s.%N)" \
    'BEGIN { x = ((m1 - m0) - (c1 - c0)) / (t1 - t0); printf "%.3f %.3f %.3f\n", x < 0 ? 0 : x, c1 - c0, t1 - t0 }')
  if [ "$variant" = sockmapd ]; then
    after=$(counters)
    stop_daemon
  fi
  jq -c --arg id "$id" --arg sc "$scenario" --arg v "$variant" --argjson rep "$rep" \
    --argjson b "$before" --argjson a "$after" --argjson other "$other" --argjson cpu "$cpu" \
    --argjson elapsed "$elapsed" \
    '. + {point: $id, scenario: $sc, variant: $v, rep: $rep, other_cpu: $other, cgroup_cpu_s: $cpu, elapsed_s: $elapsed,
          counters: ($a | with_entries(.value -= ($b[.key] // 0)))}' <<<"$result" >>"$raw"
  done_n=$((done_n + 1))
  log "[$done_n/$total] $id $variant rep $rep: $(jq -r \
    'if .mode == "stream" then "\(.gbit_s * 100 | round / 100) Gbit/s"
     elif .mode == "rr" or .mode == "http-load" then "mean \(.mean_us * 10 | round / 10) us, p99 \(.p99_us * 10 | round / 10) us"
     elif .mode == "wrk" then "\(.rps | round) req/s"
     else "\(.conns_per_s | round) conn/s" end' <<<"$result") (other load $other cores)"
}

log "cgroup $cgroup, netns $ns_lo/$ns_a/$ns_b, ${#points[@]} points x $reps reps, $total samples"
for rep in $(seq "$reps"); do
  for p in "${points[@]+"${points[@]}"}"; do
    IFS='|' read -r id scenario kind args <<<"$p"
    if [ "$kind" = ref ]; then
      run_sample "$id" "$scenario" unix "$rep" "$args"
    elif [[ $kind == ref:* ]]; then
      run_sample "$id" "$scenario" "${kind#ref:}" "$rep" "$args"
    elif [ $((rep % 2)) -eq 1 ]; then
      run_sample "$id" "$scenario" baseline "$rep" "$args"
      run_sample "$id" "$scenario" sockmapd "$rep" "$args"
    else
      run_sample "$id" "$scenario" sockmapd "$rep" "$args"
      run_sample "$id" "$scenario" baseline "$rep" "$args"
    fi
  done
done

# --- profiles: each --profile point once more per variant under perf, outside the samples ----------------
# perf runs in the cgroup the script started in, so that its own work is not the run's; BPF programs get
# symbols (bpf_prog_<tag>_<name>) through net.core.bpf_jit_kallsyms, on only while profiling.
profile_sample() { # id variant args
  local id=$1 variant=$2 args=$3 data="$tmp/perf-$1-$2.data" txt="${out%.md}-profile-$1-$2.txt" perf_pid
  [ "$variant" = sockmapd ] && start_daemon
  bash -c "echo \$\$ >'$cg_orig/cgroup.procs'; exec perf record -q -a -g -F 1999 -o '$data'" 2>/dev/null &
  perf_pid=$!
  sleep 0.5
  # shellcheck disable=SC2086  # args is a word list built above
  measure $args >"$tmp/profile.json" 2>"$tmp/bench.err" || die "profile of $id ($variant) failed: $(cat "$tmp/bench.err")"
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  [ "$variant" = sockmapd ] && stop_daemon
  {
    echo "# perf profile of $id, $variant: perf record -a -g -F 1999 over the whole run, both CPUs"
    echo "# result: $(cat "$tmp/profile.json")"
    echo "# self time by symbol (perf report --no-children --sort sym), top entries"
    perf report -q -i "$data" --no-children --sort sym --percent-limit 0.4 --stdio -g none 2>/dev/null | sed '/^$/d' | head -70
    echo "# time including callees (perf report --children --sort sym), top entries: where the CPU goes by path"
    perf report -q -i "$data" --children --sort sym --percent-limit 1.5 --stdio -g none 2>/dev/null | sed '/^$/d' | head -90
  } >"$txt"
  rm -f "$data"
  log "profile: $txt"
}
if [ -n "$profile" ]; then
  command -v perf >/dev/null || die "--profile needs perf (apt-get install linux-perf)"
  kallsyms_was=$(sysctl -n net.core.bpf_jit_kallsyms)
  sysctl -qw net.core.bpf_jit_kallsyms=1
  for want in ${profile//,/ }; do
    found=""
    for p in "${points[@]+"${points[@]}"}"; do
      IFS='|' read -r id scenario kind args <<<"$p"
      [ "$id" = "$want" ] && [ "$kind" = tcp ] || continue
      found=1
      profile_sample "$id" baseline "$args"
      profile_sample "$id" sockmapd "$args"
    done
    [ -n "$found" ] || log "warning: --profile $want: no such point in this run (see the report's ids)"
  done
  sysctl -qw net.core.bpf_jit_kallsyms="$kallsyms_was"
fi

# --- scale: N loopback pairs held open; what the daemon holds and what memory it takes ---------------------
meminfo_kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
# The TCP socket slab alone (active objects x object size): unlike Slab, other people's builds hardly move it.
tcp_slab_kib() { awk '$1 == "TCP" { printf "%d", $2 * $4 / 1024 }' /proc/slabinfo; }
# Bytes of BPF map memory of the maps pinned under the run's pin path (memlock: the kernel's own accounting).
map_bytes() {
  local f total=0 m
  while read -r f; do
    m=$(bpftool -j map show pinned "$f" 2>/dev/null | jq -r '.bytes_memlock // 0') || m=0
    total=$((total + ${m:-0}))
  done < <(find "$pin_path" -type f 2>/dev/null)
  echo "$total"
}
scale_sample() { # pairs variant: one held set of pairs, measured with everything settled
  local n=$1 variant=$2 slab0 slab1 pcpu0 pcpu1 tcp0 tcp1 rss=0 maps0=0 maps1=0 status="{}" hold_pid ready="" t
  if [ "$variant" = sockmapd ]; then
    daemon_args_saved=("${daemon_args[@]}")
    daemon_args+=(--max-sockets $((n * 2 + n / 2)))
    start_daemon
    daemon_args=("${daemon_args_saved[@]}")
    maps0=$(map_bytes)
  fi
  slab0=$(meminfo_kib Slab); pcpu0=$(meminfo_kib Percpu); tcp0=$(tcp_slab_kib)
  # Each process holds 2 fds per pair under its hard RLIMIT_NOFILE, so large points take several processes.
  local per=$((($(ulimit -Hn) - 256) / 2)) procs i hold_pids=() t_start lines
  procs=$(((n + per - 1) / per))
  t_start=$(date +%s.%N)
  for i in $(seq "$procs"); do
    "$bench_bin" hold --pairs $((n / procs + (i <= n % procs ? 1 : 0))) --hold 600 --server-netns "$ns_lo" \
      --client-netns "$ns_lo" --listen-addr 127.0.0.1 >"$tmp/hold-$i.out" 2>"$tmp/hold-$i.err" &
    hold_pids+=($!)
  done
  for t in $(seq $((n / 100 + 600))); do # 100 ms steps: 1 ms per pair plus a minute
    lines=$(cat "$tmp"/hold-*.out | wc -l)
    [ "$lines" -lt "$procs" ] || break
    for i in $(seq "$procs"); do
      kill -0 "${hold_pids[$((i - 1))]}" 2>/dev/null || [ -s "$tmp/hold-$i.out" ] ||
        die "hold $n failed: $(cat "$tmp/hold-$i.err")"
    done
    sleep 0.1
  done
  [ "$lines" -ge "$procs" ] || die "hold $n: pairs not set up in time"
  ready=$(cat "$tmp"/hold-*.out | jq -cs --argjson t "$(awk -v t0="$t_start" -v t1="$(date +%s.%N)" 'BEGIN { print t1 - t0 }')" \
    '{mode: "hold", pairs: (map(.pairs) | add), processes: length, setup_s: $t}')
  sleep 1
  slab1=$(meminfo_kib Slab); pcpu1=$(meminfo_kib Percpu); tcp1=$(tcp_slab_kib)
  if [ "$variant" = sockmapd ]; then
    status=$("$sockmapctl_bin" status --json --pin-path "$pin_path" | jq -c '{sockets, pairs, half_pairs, max_sockets}')
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status")
    maps1=$(map_bytes)
  fi
  for hold_pid in "${hold_pids[@]}"; do kill -TERM "$hold_pid"; wait "$hold_pid" 2>/dev/null || true; done
  rm -f "$tmp"/hold-*
  if [ "$variant" = sockmapd ]; then
    for _ in $(seq 300); do # closed pairs leave the maps through the state callbacks
      [ "$("$sockmapctl_bin" status --json --pin-path "$pin_path" | jq '.sockets')" = 0 ] && break
      sleep 0.1
    done
    status=$(jq -c --argjson left "$("$sockmapctl_bin" status --json --pin-path "$pin_path" | jq '.sockets')" \
      '. + {sockets_after_close: $left}' <<<"$status")
    stop_daemon
  fi
  jq -c --arg v "$variant" --argjson n "$n" --argjson st "$status" --argjson s0 "$slab0" --argjson s1 "$slab1" \
    --argjson p0 "$pcpu0" --argjson p1 "$pcpu1" --argjson t0 "$tcp0" --argjson t1 "$tcp1" --argjson rss "$rss" --argjson m0 "$maps0" --argjson m1 "$maps1" \
    '. + {point: "scale-\($n)", scenario: "scale", variant: $v, rep: 1, other_cpu: 0, counters: {}, pairs_held: .pairs,
          slab_kib: ($s1 - $s0), tcp_slab_kib: ($t1 - $t0), percpu_kib: ($p1 - $p0), daemon_rss_kib: $rss,
          map_bytes_idle: $m0, map_bytes: $m1} + $st' <<<"$ready" >>"$raw"
  log "scale $n pairs, $variant: $(tail -n1 "$raw" | jq -r '"set up in \(.setup_s * 10 | round / 10) s, slab +\(.slab_kib / 1024 | round) MiB" +
    (if .variant == "sockmapd" then ", \(.pairs) pairs held, daemon RSS \(.daemon_rss_kib / 1024 | round) MiB, maps \(.map_bytes / 1048576 * 10 | round / 10) MiB" else "" end)')"
}
if has scale; then
  for n in ${scale_pairs//,/ }; do
    # Both sockets of a pair, their files and the psocks: refuse a point that could push the VM into OOM.
    last=$(jq -rs 'map(select(.scenario == "scale" and .variant == "sockmapd")) | last | if . then .slab_kib / .pairs_held else 12 end' "$raw")
    need_kib=$(awk -v p="$last" -v n="$n" 'BEGIN { printf "%d", p * n * 2 }')
    avail_kib=$(meminfo_kib MemAvailable)
    if [ "$need_kib" -gt $((avail_kib / 2)) ]; then
      log "scale $n pairs skipped: needs about $((need_kib / 1024)) MiB (twice the measured kernel memory per pair), half of MemAvailable is $((avail_kib / 2048)) MiB"
      continue
    fi
    scale_sample "$n" baseline
    scale_sample "$n" sockmapd
  done
fi

# Everything the report says about the run goes into the raw file too, so --report-only can rewrite it.
src_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
jq -n -c --arg stamp "$stamp" --arg host "$host" --arg quick "$quick" \
  --arg cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" --arg ncpu "$(nproc)" \
  --arg virt "$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p')" --arg kernel "$(uname -r)" \
  --arg memory "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
  --arg version "$("$sockmapd_bin" --version 2>/dev/null || echo unknown)" \
  --arg commit "$(git -C "${src_dir:-$repo}" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)" \
  --arg load_start "$load_start" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg reps "$reps" --arg duration "$duration" --arg warmup "$warmup" --arg rr_count "$rr_count" \
  --arg cpus "$cpus" --arg scenarios "$scenarios" --arg tag "$tag" \
  '{run: ($ARGS.named)}' >>"$raw"
write_report "$raw" "$out"

