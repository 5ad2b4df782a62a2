// Set-up and tear-down shared by every integration test; tear-down runs even after a failed assertion.
#include "fixture.hpp"

namespace smdtest {

void IntegrationTest::SetUp()
{
    SMD_REQUIRE_PRIVILEGED();
    kmsg_.emplace();
    cgroup_.emplace();
    cgroup_->join();
}

void IntegrationTest::TearDown()
{
    daemon_.reset();
    if (kmsg_) {
        auto problems = kmsg_->problems();
        for (const auto& line : problems)
            ADD_FAILURE() << "kernel log: " << line;
    }
    cgroup_.reset();
}

Daemon& IntegrationTest::daemon()
{
    if (!daemon_)
        daemon_.emplace(cgroup_path());
    return *daemon_;
}

void expect_intact(const DuplexResult& r, std::uint64_t seed_ab, std::uint64_t len_ab, std::uint64_t seed_ba,
                   std::uint64_t len_ba)
{
    EXPECT_EQ(r.a_sent.error, "");
    EXPECT_EQ(r.b_sent.error, "");
    EXPECT_EQ(r.a_received.error, "");
    EXPECT_EQ(r.b_received.error, "");
    EXPECT_TRUE(r.a_received.eof);
    EXPECT_TRUE(r.b_received.eof);
    auto ab = expected_digest(seed_ab, len_ab);
    auto ba = expected_digest(seed_ba, len_ba);
    EXPECT_EQ(r.a_sent.digest, ab);
    EXPECT_EQ(r.b_sent.digest, ba);
    EXPECT_EQ(r.b_received.digest, ab) << "a->b stream damaged";
    EXPECT_EQ(r.a_received.digest, ba) << "b->a stream damaged";
}

} // namespace smdtest
