#!/usr/bin/env bash
# Installs dependencies, builds, and runs unit, privileged integration and application compatibility tests
# (tests/compat) with ctest, then fuzzes the policy parser for a bounded time. The privileged tiers need root
# and BPF; on machines without them set SOCKMAPD_SKIP_PRIVILEGED=1. SOCKMAPD_FUZZ_SECONDS: how long to fuzz
# (default 60; 0 skips).
# SOCKMAPD_KERNEL_MATRIX=0 skips the kernel-matrix smoke run (one Debian kernel under qemu; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds="${SOCKMAPD_FUZZ_SECONDS:-60}"
if ! [[ "$fuzz_seconds" =~ ^[0-9]+$ ]]; then
  echo "test.sh: SOCKMAPD_FUZZ_SECONDS=$fuzz_seconds is not a number of seconds; use e.g. 60, or 0 to skip fuzzing" >&2
  exit 2
fi

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure --timeout 600 "$@")

# Kernel-matrix smoke run: a Debian kernel other than the host's, booted under qemu without KVM
# (scripts/kernel-matrix.sh, docs/testing.md), runs a handful of loopback and receive-semantics tests.
# Bounded: the VM is killed after 300 s and reported as TIMEOUT.
if [ "${SOCKMAPD_KERNEL_MATRIX:-1}" != 0 ] && [ "${SOCKMAPD_SKIP_PRIVILEGED:-0}" != 1 ]; then
  scripts/kernel-matrix.sh --smoke --kernels 6.12 --timeout 300 --test-timeout 120
fi

# The policy parser under libFuzzer with ASan and UBSan, in its own build directory. New inputs go to
# build-fuzz/corpus (the seeds stay untouched); a crash leaves build-fuzz/crash-* and fails the run.
if [ "$fuzz_seconds" -gt 0 ]; then
  cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DSOCKMAPD_FUZZ=ON -DSOCKMAPD_BUILD_TESTS=OFF > /dev/null
  cmake --build build-fuzz -j"$(nproc)" --target smd_policy_fuzz
  mkdir -p build-fuzz/corpus
  echo "test.sh: fuzzing the policy parser for ${fuzz_seconds}s"
  build-fuzz/smd_policy_fuzz -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -dict=tests/fuzz/policy.dict -artifact_prefix=build-fuzz/ -print_final_stats=1 \
    build-fuzz/corpus tests/fuzz/corpus deploy/policies
fi
