// Which SYN hints the aging sweep deletes: older than the bound, by the clock bpf_ktime_get_ns() uses.
#include "sockmapd/hints.hpp"

#include <gtest/gtest.h>

namespace sockmapd {
namespace {

using namespace std::chrono_literals;

HintEntry hint(std::uint16_t port, std::uint64_t syn_ns)
{
    HintEntry entry {};
    entry.key.port = port;
    entry.value.syn_ns = syn_ns;
    return entry;
}

std::vector<std::uint16_t> ports(const std::vector<struct smd_hint_key>& keys)
{
    std::vector<std::uint16_t> out;
    for (const auto& key : keys)
        out.push_back(key.port);
    return out;
}

TEST(ExpiredHints, OnlyThoseOlderThanTheBound)
{
    constexpr std::uint64_t now = 1000'000'000'000; // 1000 s after boot
    std::vector<HintEntry> entries = {
        hint(1, now - 31'000'000'000), // 31 s old
        hint(2, now - 30'000'000'000), // exactly the bound: kept
        hint(3, now - 29'999'999'999),
        hint(4, now),
        hint(5, 0),                    // recorded right after boot
    };
    EXPECT_EQ(ports(expired_hints(entries, now, 30s)), (std::vector<std::uint16_t>{1, 5}));
    EXPECT_EQ(ports(expired_hints(entries, now, 1000s)), std::vector<std::uint16_t>{});
}

// The map is read after the clock: a SYN in between is stamped later than "now", and is the youngest of all.
TEST(ExpiredHints, ASynStampedAfterNowIsYoung)
{
    constexpr std::uint64_t now = 5'000'000'000;
    EXPECT_EQ(ports(expired_hints({hint(7, now + 1), hint(8, now + 40'000'000'000)}, now, 1s)),
              std::vector<std::uint16_t>{});
}

TEST(MonotonicNs, Advances)
{
    auto first = monotonic_ns();
    EXPECT_GT(first, 0u);
    EXPECT_GE(monotonic_ns(), first);
}

} // namespace
} // namespace sockmapd
