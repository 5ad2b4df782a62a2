#!/usr/bin/env bash
# One pod of the Istio-style mesh the integration tests (tests/integration/support/pods.cpp) and bench/run.sh build.
#
#   mesh-pod.sh redirect NETNS [UID OUTBOUND_PORT INBOUND_PORT]   install the REDIRECT capture inside NETNS
#   mesh-pod.sh haproxy-config [OUTBOUND_PORT INBOUND_PORT]       print the sidecar's haproxy.cfg
#
# Defaults are Istio's: the sidecar runs as uid 1337, outbound listener 15001, inbound listener 15006.
# Kept in one place so that what the tests prove correct is exactly what the benchmarks measure.
set -euo pipefail

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "mesh-pod.sh: $*" >&2; exit 2; }
port_ok() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

# Istio's capture, reduced: the sidecar's own traffic and loopback go out as they are, every other outgoing TCP
# connection to the outbound listener; every incoming TCP connection to the inbound listener.
redirect() {
  local netns=$1 uid=${2:-1337} out=${3:-15001} in=${4:-15006} tool loopback
  [ -e "/run/netns/$netns" ] || die "no network namespace $netns under /run/netns; create it first (ip netns add)"
  [[ $uid =~ ^[0-9]+$ ]] || die "uid '$uid' is not a number"
  port_ok "$out" && port_ok "$in" || die "ports '$out' '$in' must be 1-65535"
  for tool in iptables ip6tables; do
    loopback=127.0.0.0/8
    [ "$tool" = iptables ] || loopback=::1/128
    rule() { ip netns exec "$netns" "$tool" -w 10 -t nat -A "$@"; }
    rule OUTPUT -p tcp -m owner --uid-owner "$uid" -j RETURN
    rule OUTPUT -p tcp -d "$loopback" -j RETURN
    rule OUTPUT -p tcp -j REDIRECT --to-ports "$out"
    rule PREROUTING -p tcp -j REDIRECT --to-ports "$in"
  done
}

# TCP mode, forwarding to the destination the client asked for (`server orig 0.0.0.0:0` reads SO_ORIGINAL_DST).
# IPv4 listeners only: HAProxy 2.6 reads SO_ORIGINAL_DST for AF_INET only, so an IPv6 REDIRECTed connection would
# make it connect to its own listener, over and over. `nosplice`: splice(2) never sees data that sockmap
# redirected (a known kernel incompatibility), and HAProxy splices in TCP mode once an option asks for it.
# `log stdout` with `option logasap`: one line per connection as soon as the server side is connected; %si:%sp
# is where haproxy connected, the original destination.
haproxy_config() {
  local out=${1:-15001} in=${2:-15006}
  port_ok "$out" && port_ok "$in" || die "ports '$out' '$in' must be 1-65535"
  cat <<EOF
global
    maxconn 512
    nbthread 1
    nosplice
    log stdout format raw local0
defaults
    mode tcp
    log global
    option logasap
    log-format "conn client=%ci:%cp orig_dst=%si:%sp upstream=%bi:%bp"
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend outbound
    bind 0.0.0.0:$out
    default_backend original_destination
frontend inbound
    bind 0.0.0.0:$in
    default_backend original_destination
backend original_destination
    server orig 0.0.0.0:0
EOF
}

case "${1:-}" in
  redirect) [ $# -ge 2 ] && [ $# -le 5 ] || die "usage: mesh-pod.sh redirect NETNS [UID OUTBOUND_PORT INBOUND_PORT]"
            shift; redirect "$@" ;;
  haproxy-config) [ $# -le 3 ] || die "usage: mesh-pod.sh haproxy-config [OUTBOUND_PORT INBOUND_PORT]"
            shift; haproxy_config "$@" ;;
  -h|--help) usage ;;
  *) die "unknown command '${1:-}'; expected redirect or haproxy-config (--help)" ;;
esac
