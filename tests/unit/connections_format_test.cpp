// sockmapctl connections output: one row or object per pair entry, with both socket cookies and the state.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sockmapd/pinned.hpp"
#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

std::vector<PairEntry> sample_pairs()
{
    PairEntry paired {};
    paired.key = {.netns_cookie = 4096, .active_seq = 111, .passive_seq = 222, .active_port = 41000, .pad0 = 0, .pad1 = 0};
    paired.state.cookie[SMD_ROLE_ACTIVE] = 7001;
    paired.state.cookie[SMD_ROLE_PASSIVE] = 7002;
    paired.state.created_ns = 1'000'000'000;
    paired.state.flags = SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN;
    PairEntry waiting = paired;
    waiting.key.active_port = 41001;
    waiting.state.cookie[SMD_ROLE_PASSIVE] = 0;
    waiting.state.flags = SMD_PAIR_ACTIVE_IN;
    return {paired, waiting};
}

TEST(PairStateName, FlagsInWords)
{
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN), "paired");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN), "waiting");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_POISONED), "poisoned");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN | SMD_PAIR_ACTIVE_CLOSED),
              "paired,active-closed");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN | SMD_PAIR_ACTIVE_CLOSED |
                              SMD_PAIR_PASSIVE_CLOSED),
              "paired,active-closed,passive-closed");
}

TEST(FormatConnectionsJson, OneObjectPerEntryWithBothCookies)
{
    auto out = nlohmann::json::parse(format_connections_json(sample_pairs(), 3'500'000'000));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0]["netns_cookie"], 4096);
    EXPECT_EQ(out[0]["client_port"], 41000);
    EXPECT_EQ(out[0]["active_seq"], 111);
    EXPECT_EQ(out[0]["passive_seq"], 222);
    EXPECT_EQ(out[0]["active_cookie"], 7001);
    EXPECT_EQ(out[0]["passive_cookie"], 7002);
    EXPECT_EQ(out[0]["state"], "paired");
    EXPECT_DOUBLE_EQ(out[0]["age_seconds"].get<double>(), 2.5);
    EXPECT_EQ(out[1]["passive_cookie"], 0);
    EXPECT_EQ(out[1]["state"], "waiting");
    EXPECT_EQ(nlohmann::json::parse(format_connections_json({}, 0)), nlohmann::json::array());
}

TEST(FormatConnectionsText, HeaderRowsAndCount)
{
    std::string out = format_connections_text(sample_pairs(), 3'500'000'000);
    EXPECT_EQ(out.rfind("NETNS_COOKIE", 0), 0u) << out;
    EXPECT_CONTAINS(out, "41000");
    EXPECT_CONTAINS(out, "7002");
    EXPECT_CONTAINS(out, "2.5  paired\n");
    EXPECT_CONTAINS(out, "waiting\n");
    EXPECT_CONTAINS(out, "\n2 connections\n");
    EXPECT_CONTAINS(format_connections_text({}, 0), "\n0 connections\n");
}

} // namespace
} // namespace sockmapd
