#!/usr/bin/env bash
# Reproduce haproxy's early end of stream (docs/testing.md, "Known data loss") without sockmapd.
#
#   sudo scripts/debug/haproxy-hup-repro.sh [RUNS] [-- HELPER_ARGS...]
#
# Runs the installed haproxy (TCP mode, one thread, no splicing) in a network namespace of its own
# (smd-hup-PID), with a client and a server on its loopback, and drives one connection per run through
# scripts/debug/haproxy_hup_repro.py: a FIN queued on haproxy's client socket behind a lot of unread data,
# while haproxy is blocked writing to that socket. Prints the byte counts and SHA-256 of both directions.
# haproxy is restarted for every run. HELPER_ARGS go to the helper (--up, --down, --client-read, --variant,
# --no-stop; see its --help). Environment: HUP_REPRO_SNDBUF_SERVER (default 16384) and HUP_REPRO_RCVBUF_CLIENT
# (default 2097152) are haproxy's tune.sndbuf.server and tune.rcvbuf.client, empty for the kernel's default;
# HUP_REPRO_STRACE=FILE straces haproxy's socket calls into FILE.
# Exit status: 0 no run lost data, 1 at least one run lost data, 2 set-up error.
# Everything it creates (namespace, haproxy, temp dir) is removed on exit, also on failure or Ctrl-C.
set -euo pipefail

runs=1
if [ $# -gt 0 ] && [ "$1" != "--" ]; then runs=$1; shift; fi
[ "${1:-}" = "--" ] && shift
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then echo "usage: $0 [RUNS] [-- HELPER_ARGS...]" >&2; exit 2; fi
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespace)" >&2; exit 2; }
command -v haproxy >/dev/null || { echo "$0: haproxy not installed" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
ns=smd-hup-$$
tmp=$(mktemp -d /tmp/smd-hup-XXXXXX)
hapid=

cleanup() {
  if [ -n "$hapid" ]; then
    kill -CONT "$hapid" 2>/dev/null || true
    kill "$hapid" 2>/dev/null || true
    wait "$hapid" 2>/dev/null || true
  fi
  # Anything else still in the namespace (a helper killed mid-run): only processes in our namespace.
  if ip netns pids "$ns" >/dev/null 2>&1; then
    for p in $(ip netns pids "$ns"); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up

fe=15001 be=18080
# A small send buffer toward the server, so haproxy stops reading the client when the server does; a large
# receive buffer on the client side, so the client's FIN can be queued behind ~1 MB. Set either variable
# empty to leave the kernel's default (autotuning).
tunings=
[ -z "${HUP_REPRO_SNDBUF_SERVER-16384}" ] || tunings+="    tune.sndbuf.server ${HUP_REPRO_SNDBUF_SERVER-16384}"$'\n'
[ -z "${HUP_REPRO_RCVBUF_CLIENT-2097152}" ] || tunings+="    tune.rcvbuf.client ${HUP_REPRO_RCVBUF_CLIENT-2097152}"$'\n'
cat >"$tmp/haproxy.cfg" <<EOF
global
    maxconn 64
    nbthread 1
    nosplice
${tunings%$'\n'}
    log stdout format raw local0
defaults
    mode tcp
    log global
    log-format "conn %ci:%cp bytes_from_client=%U bytes_from_server=%B term=%ts"
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$fe
    default_backend be
backend be
    server s1 127.0.0.1:$be
EOF

echo "$(haproxy -v | head -1), kernel $(uname -r), namespace $ns"
lost=0
for ((i = 1; i <= runs; i++)); do
  ip netns exec "$ns" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
  hapid=$!
  for _ in $(seq 100); do
    ip netns exec "$ns" ss -Htln "sport = :$fe" | grep -q . && break
    sleep 0.05
  done
  echo "--- run $i"
  if [ -n "${HUP_REPRO_STRACE:-}" ]; then  # debugging: haproxy's socket calls in $HUP_REPRO_STRACE
    strace -qq -tt -p "$hapid" -o "$HUP_REPRO_STRACE" -e trace=epoll_wait,epoll_ctl,recvfrom,sendto,shutdown,close &
    sleep 0.5
  fi
  rc=0
  ip netns exec "$ns" python3 "$here/haproxy_hup_repro.py" --haproxy-pid "$hapid" \
    --frontend "$fe" --backend "$be" "$@" || rc=$?
  sleep 0.2
  kill "$hapid" 2>/dev/null || true
  wait "$hapid" 2>/dev/null || true
  hapid=
  sed 's/^/  haproxy: /' "$tmp/haproxy.log" | grep -v -e '^  haproxy: $' || true
  case $rc in
    0) ;;
    1) lost=$((lost + 1)) ;;
    *) echo "run $i: set-up error ($rc)" >&2; exit 2 ;;
  esac
done
echo "runs $runs, runs with data loss $lost"
[ "$lost" -eq 0 ]
