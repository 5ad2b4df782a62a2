// Counter names (an output and metrics contract) and per-CPU summing.
#include "sockmapd/counters.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace sockmapd {
namespace {

bool is_snake_case(std::string_view name)
{
    if (name.empty() || name.front() == '_' || name.back() == '_' || name.find("__") != std::string_view::npos)
        return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    return name.front() >= 'a' && name.front() <= 'z';
}

TEST(CounterName, EveryCounterHasADistinctSnakeCaseName)
{
    std::set<std::string_view> seen;
    for (int i = 0; i < SMD_CTR_MAX; ++i) {
        auto name = counter_name(static_cast<enum smd_counter>(i));
        EXPECT_TRUE(is_snake_case(name)) << "counter " << i << " is named '" << name << "'";
        EXPECT_TRUE(seen.insert(name).second) << "counter " << i << " repeats the name '" << name << "'";
    }
    EXPECT_FALSE(seen.contains("unknown"));
}

// Pins both ends of the table: a counter added in shared.h but named out of order shifts these.
TEST(CounterName, NamesFollowTheEnumOrder)
{
    EXPECT_EQ(counter_name(SMD_CTR_SYN_HINTS), "syn_hints");
    EXPECT_EQ(counter_name(SMD_CTR_MSGS_REDIRECTED), "redirected_messages");
    EXPECT_EQ(counter_name(SMD_CTR_BYTES_REDIRECTED), "redirected_bytes");
    EXPECT_EQ(counter_name(SMD_CTR_KEY_COLLISION), "key_collisions");
    EXPECT_EQ(counter_name(SMD_CTR_PAIRS_CLOSED), "pairs_closed");
    EXPECT_EQ(counter_name(SMD_CTR_HINTS_FULL), "hints_full");
    EXPECT_EQ(counter_name(SMD_CTR_LEFT_BACKPRESSURE), "left_backpressure");
    EXPECT_EQ(counter_name(SMD_CTR_SKIPPED_BLOCKING), "skipped_blocking");
    EXPECT_EQ(counter_name(SMD_CTR_RELEASE_WAKEUPS), "release_wakeups");
    EXPECT_EQ(counter_name(SMD_CTR_LEFT_MEMCG), "left_memcg");
    EXPECT_EQ(counter_name(SMD_CTR_LEFT_TCP_PRESSURE), "left_tcp_memory_pressure");
    EXPECT_EQ(SMD_CTR_LEFT_TCP_PRESSURE, SMD_CTR_MAX - 1) << "new counters go at the end: pinned maps keep their indexes";
}

TEST(CounterName, OutOfRangeIsUnknown)
{
    EXPECT_EQ(counter_name(SMD_CTR_MAX), "unknown");
    EXPECT_EQ(counter_name(static_cast<enum smd_counter>(SMD_CTR_MAX + 7)), "unknown");
}

TEST(SumPerCpu, AddsEachCounterAcrossCpus)
{
    std::vector<struct smd_counters> per_cpu(3);
    for (int i = 0; i < SMD_CTR_MAX; ++i) {
        per_cpu[0].value[i] = i;
        per_cpu[1].value[i] = 100 * i;
        per_cpu[2].value[i] = 10000;
    }
    per_cpu[2].value[SMD_CTR_BYTES_REDIRECTED] = 1ull << 40; // byte counters exceed 32 bits

    auto total = sum_per_cpu(per_cpu.data(), 3);
    for (int i = 0; i < SMD_CTR_MAX; ++i) {
        std::uint64_t expected = i == SMD_CTR_BYTES_REDIRECTED ? 101ull * i + (1ull << 40) : 101ull * i + 10000;
        EXPECT_EQ(total[i], expected) << counter_name(static_cast<enum smd_counter>(i));
    }
}

TEST(SumPerCpu, ReadsOnlyTheGivenCpus)
{
    std::vector<struct smd_counters> per_cpu(2);
    per_cpu[0].value[SMD_CTR_PAIRS_MADE] = 5;
    per_cpu[1].value[SMD_CTR_PAIRS_MADE] = 7;
    EXPECT_EQ(sum_per_cpu(per_cpu.data(), 1)[SMD_CTR_PAIRS_MADE], 5u);
    EXPECT_EQ(sum_per_cpu(per_cpu.data(), 0), CounterValues{});
}

} // namespace
} // namespace sockmapd
