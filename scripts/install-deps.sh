#!/usr/bin/env bash
# Installs the Debian 12 packages sockmapd needs to build, test and benchmark. Run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  clang llvm bpftool libbpf-dev linux-libc-dev
  libspdlog-dev libcli11-dev nlohmann-json3-dev libgtest-dev libssl-dev
  iproute2 iptables haproxy procps
)

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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
