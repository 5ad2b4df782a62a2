#!/usr/bin/env bash
# Installs the Debian 12 packages sockmapd needs to build, test and benchmark. Run as root.
# Usage: install-deps.sh [--build-only | --with-bench]
set -euo pipefail

# --build-only: just what building sockmapd and sockmapctl needs (the container image's build stage uses it).
build_packages=(
  build-essential cmake pkg-config git
  clang llvm bpftool libbpf-dev linux-libc-dev
  libspdlog-dev libcli11-dev nlohmann-json3-dev libsystemd-dev libcpp-httplib-dev
  libyaml-cpp-dev libssl-dev
)
# Tests and benchmarks; libclang-rt-dev holds libFuzzer for the policy parser's fuzz target (tests/fuzz).
# systemd brings systemd-analyze for checking the unit file; installing it does not make it PID 1 (that is
# systemd-sysv) and its maintainer scripts skip their systemctl calls when it is not running.
# The compatibility tier (tests/compat) runs real software: nginx with its stream module, haproxy, Go's io.Copy
# (golang-go builds the splice relay) and Python for the blocking half-closing client. The kernel matrix
# (scripts/kernel-matrix.sh) boots Debian kernel packages under qemu-system-x86 (its qemu-system-common brings
# virtiofsd) with an initramfs of busybox-static made with cpio; kmod's depmod indexes each unpacked kernel's
# modules and its modprobe loads them in the VM.
test_packages=(
  libgtest-dev libclang-rt-dev
  iproute2 iptables haproxy procps strace systemd
  nginx libnginx-mod-stream golang-go python3
  qemu-system-x86 busybox-static cpio kmod xz-utils
)
# --with-bench adds what only bench/run.sh uses (it installs them itself when missing): wrk for the mesh
# scenario's saturation rate, gnuplot for the plots, jq for the report, linux-perf for --profile.
bench_packages=(wrk gnuplot-nox jq linux-perf)
packages=("${build_packages[@]}")
case "${1:-}" in
  ""|--build-only|--with-bench) ;;
  *) echo "install-deps: unknown option '$1'; use --build-only, --with-bench or nothing" >&2; exit 2 ;;
esac
if [ "${1:-}" != "--build-only" ]; then
  packages+=("${test_packages[@]}")
fi
if [ "${1:-}" = "--with-bench" ]; then
  packages+=("${bench_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installing nginx starts a system nginx on port 80 unless service starts are denied; the tests start their own.
# Deny them for this install only, where no policy exists yet (container images usually ship one).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
