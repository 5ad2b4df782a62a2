#!/usr/bin/env bash
# Soak: runs only the mesh stress test (Stress.*) for as long as asked, then makes sure the run left nothing
# behind (cgroup, network namespaces, BPF pins, sidecars, daemons), also when it was interrupted or killed.
#
#   sudo scripts/soak.sh SECONDS [SEED]
#
# SECONDS: how long connections are opened (set-up and the final checks add about 15 s). SEED replays an
# earlier run's connections (the seed is printed at the start of every run). SOCKMAPD_BUILD_DIR: the build tree
# (default: build/ next to this script's directory). docs/testing.md describes what is checked.
set -u

fail() {
    echo "soak.sh: $*" >&2
    exit 2
}

whole_number() {
    [[ "$1" =~ ^[0-9]+$ ]]
}

[ $# -ge 1 ] && [ $# -le 2 ] || fail "usage: scripts/soak.sh SECONDS [SEED], e.g. scripts/soak.sh 3600"
whole_number "$1" && [ "$1" -gt 0 ] || fail "SECONDS must be a whole number of seconds above 0, not '$1'"
[ $# -lt 2 ] || whole_number "$2" || fail "SEED must be a whole number (as printed by an earlier run), not '$2'"
[ "$(id -u)" -eq 0 ] || fail "needs root (BPF, cgroups, network namespaces); run it with sudo"
build=${SOCKMAPD_BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}
tests=$build/smd_integration_tests
[ -x "$tests" ] || fail "$tests not found; build first (cmake -S . -B build && make -C build -j2) or set SOCKMAPD_BUILD_DIR"

cgroup_root=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cgroup_root" ] || fail "no cgroup2 file system is mounted"

export SOCKMAPD_SOAK_SECONDS=$1
[ $# -lt 2 ] || export SOCKMAPD_STRESS_SEED=$2
"$tests" --gtest_filter='Stress.*' &
test_pid=$!

# Everything the test creates carries its pid: smd-test-PID-N (cgroup, pin directory, logs) and
# smd-poda-PID-N / smd-podb-PID-N (network namespaces, sidecar logs and configs).
leftovers() {
    ls -d "$cgroup_root"/smd-test-"$test_pid"-* /sys/fs/bpf/smd-test-"$test_pid"-* 2>/dev/null
    ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E "^smd-[a-z]+-$test_pid-" | sed 's/^/netns /'
}

# The test removes its objects itself unless it was killed; then its sidecars and daemons (all in its cgroup)
# still run, and its namespaces and pins remain.
clean_up() {
    local cg ns
    for cg in "$cgroup_root"/smd-test-"$test_pid"-*; do
        [ -d "$cg" ] || continue
        echo 1 >"$cg/cgroup.kill"
        for _ in $(seq 50); do
            [ -s "$cg/cgroup.procs" ] || break
            sleep 0.1
        done
        find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E "^smd-[a-z]+-$test_pid-"); do
        ip netns del "$ns"
    done
    rm -rf /sys/fs/bpf/smd-test-"$test_pid"-*
    rm -f /tmp/smd-pod*-"$test_pid"-*-haproxy.cfg
}

show_logs() {
    local logs
    logs=$(ls /tmp/smd-*-"$test_pid"-*.log 2>/dev/null)
    [ -z "$logs" ] || echo "soak.sh: logs of the run (remove them when done):" $logs >&2
}

interrupted() {
    kill -KILL "$test_pid" 2>/dev/null
    wait "$test_pid" 2>/dev/null
    echo "soak.sh: interrupted; removing what the test left" >&2
    clean_up
    show_logs
    exit 130
}
trap interrupted INT TERM

wait "$test_pid"
status=$?
trap - INT TERM
left=$(leftovers)
if [ -n "$left" ]; then
    echo "soak.sh: the run left these behind; removing them:" >&2
    echo "$left" >&2
    clean_up
    [ "$status" -ne 0 ] || status=1
fi
show_logs
exit "$status"
