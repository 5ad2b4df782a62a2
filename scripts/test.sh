#!/usr/bin/env bash
# Installs dependencies, builds, and runs unit and privileged integration tests with ctest.
# Integration tests need root and BPF; on machines without them set SOCKMAPD_SKIP_PRIVILEGED=1.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 600 "$@"
