// Base fixture: root or loud failure, own child cgroup joined by the test process, kernel log watched.
#pragma once

#include <gtest/gtest.h>

#include <optional>

#include "cgroup.hpp"
#include "daemon.hpp"
#include "env.hpp"
#include "kmsg.hpp"
#include "netns.hpp"
#include "process.hpp"
#include "sockets.hpp"
#include "stream.hpp"

namespace smdtest {

class IntegrationTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    const std::string& cgroup_path() const { return cgroup_->path(); }
    // The daemon for this test's cgroup; created (not started) on first use.
    Daemon& daemon();

    std::optional<KernelLogWatch> kmsg_;
    std::optional<TestCgroup> cgroup_;
    std::optional<Daemon> daemon_;
};

// Both directions arrived whole: lengths and SHA-256 equal what the seeded streams produce.
void expect_intact(const DuplexResult& r, std::uint64_t seed_ab, std::uint64_t len_ab, std::uint64_t seed_ba,
                   std::uint64_t len_ba);

} // namespace smdtest
