// Where the binaries under test are, and the rule for privileged tests: run, or fail loudly, unless opted out.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace smdtest {

inline std::string sockmapd_bin() { return SMD_SOCKMAPD_BIN; }
inline std::string sockmapctl_bin() { return SMD_SOCKMAPCTL_BIN; }

// Unique per test process, so parallel ctest runs never share a cgroup, namespace or pin path.
std::string unique_name(const std::string& prefix);

// A bulk transfer's wall-clock budget times SOCKMAPD_TEST_TIME_SCALE (a whole number, default 1): the kernel
// matrix sets it under qemu's TCG, which moves bytes several times slower than the host. Only budgets that
// bound how long work may take scale; bounds a test asserts (a latency, a wake-up delay) do not.
std::chrono::seconds time_budget(std::chrono::seconds budget);

} // namespace smdtest

// SOCKMAPD_SKIP_PRIVILEGED=1 skips; otherwise a test that cannot get root fails instead of passing quietly.
#define SMD_REQUIRE_PRIVILEGED()                                                                          \
    do {                                                                                                  \
        const char* skip = std::getenv("SOCKMAPD_SKIP_PRIVILEGED");                                       \
        if (skip && std::string(skip) == "1")                                                             \
            GTEST_SKIP() << "SOCKMAPD_SKIP_PRIVILEGED=1: privileged integration test skipped";            \
        ASSERT_EQ(::geteuid(), 0u) << "integration tests need root with BPF; run as root or set "         \
                                      "SOCKMAPD_SKIP_PRIVILEGED=1 on unprivileged machines";              \
    } while (0)
