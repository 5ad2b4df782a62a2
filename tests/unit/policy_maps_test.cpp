// compile_policy: the masks the BPF side decides with, checked without a kernel.
#include "sockmapd/policy_maps.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace sockmapd {
namespace {

Policy parse(const std::string& text)
{
    return parse_policy(text, "policy.yaml");
}

// The mask stored for a network, found by its text as written in the policy.
std::uint64_t cidr_rules(const CompiledPolicy& compiled, const std::string& text)
{
    auto it = std::find_if(compiled.cidrs.begin(), compiled.cidrs.end(),
                           [&](const auto& entry) { return entry.first.text == text; });
    EXPECT_NE(it, compiled.cidrs.end()) << text << " not compiled";
    return it == compiled.cidrs.end() ? 0 : it->second;
}

TEST(CompilePolicy, TheBuiltInDefaultHasNoRulesAndAccelerates)
{
    auto compiled = compile_policy(default_policy(), {});
    EXPECT_EQ(compiled.slot.rules, 0u);
    EXPECT_EQ(compiled.slot.default_action, static_cast<std::uint32_t>(SMD_ACTION_ACCELERATE));
    EXPECT_TRUE(compiled.ports.empty());
    EXPECT_TRUE(compiled.uids.empty());
    EXPECT_TRUE(compiled.cidrs.empty());
}

// Bit i stands for rule i in every mask; a selector a rule lacks sets its bit in the matching any_* mask.
TEST(CompilePolicy, EveryRuleIsOneBitInEveryMask)
{
    auto compiled = compile_policy(parse("default: bypass\n"
                                         "rules:\n"
                                         "  - name: proxy\n"
                                         "    action: accelerate\n"
                                         "    uid: 1337\n"
                                         "  - name: admin\n"
                                         "    action: bypass\n"
                                         "    ports: [15000, \"15020-15021\"]\n"
                                         "  - name: both\n"
                                         "    action: accelerate\n"
                                         "    uid: [1337, 2102]\n"
                                         "    ports: [15021]\n"),
                                   {{}, {}, {}});
    EXPECT_EQ(compiled.slot.rules, 0b111u);
    EXPECT_EQ(compiled.slot.bypass, 0b010u);
    EXPECT_EQ(compiled.slot.default_action, static_cast<std::uint32_t>(SMD_ACTION_BYPASS));
    EXPECT_EQ(compiled.slot.any_uid, 0b010u);
    EXPECT_EQ(compiled.slot.any_port, 0b001u);
    EXPECT_EQ(compiled.slot.any_cgroup, 0b111u);
    EXPECT_EQ(compiled.slot.any_cidr, 0b111u);
    EXPECT_EQ(compiled.uids.at(1337), 0b101u) << "a uid named by two rules carries both bits";
    EXPECT_EQ(compiled.uids.at(2102), 0b100u);
    EXPECT_EQ(compiled.ports.at(15000), 0b010u);
    EXPECT_EQ(compiled.ports.at(15020), 0b010u) << "ranges are expanded";
    EXPECT_EQ(compiled.ports.at(15021), 0b110u);
    EXPECT_EQ(compiled.ports.count(15022), 0u);
    ASSERT_EQ(compiled.rules.size(), 3u);
    EXPECT_STREQ(compiled.rules[1].name, "admin");
    EXPECT_EQ(compiled.rules[1].action, static_cast<std::uint32_t>(SMD_ACTION_BYPASS));
}

// An LPM lookup returns only the longest match, so a network's mask also carries the rules of every network
// that contains it: here the /32 must carry rule 0's /8 bit, or first-match would pick rule 1 for 10.1.2.3.
TEST(CompilePolicy, ANetworkCarriesTheRulesOfTheNetworksThatContainIt)
{
    auto compiled = compile_policy(parse("rules:\n"
                                         "  - name: wide\n"
                                         "    action: bypass\n"
                                         "    cidrs: [10.0.0.0/8, \"fd00::/8\"]\n"
                                         "  - name: host\n"
                                         "    action: accelerate\n"
                                         "    cidrs: [10.1.2.3, \"11.0.0.0/8\"]\n"
                                         "  - name: everything-v6\n"
                                         "    action: accelerate\n"
                                         "    cidrs: [\"::/0\"]\n"),
                                   {{}, {}, {}});
    EXPECT_EQ(cidr_rules(compiled, "10.0.0.0/8"), 0b101u) << "IPv4 is IPv4-mapped, so ::/0 holds it too";
    EXPECT_EQ(cidr_rules(compiled, "10.1.2.3"), 0b111u);
    EXPECT_EQ(cidr_rules(compiled, "11.0.0.0/8"), 0b110u) << "10.0.0.0/8 does not hold 11.0.0.0/8";
    EXPECT_EQ(cidr_rules(compiled, "fd00::/8"), 0b101u);
    EXPECT_EQ(cidr_rules(compiled, "::/0"), 0b100u);
}

TEST(CompilePolicy, CgroupIdsComeFromTheResolverPerRule)
{
    auto compiled = compile_policy(parse("rules:\n"
                                         "  - name: a\n"
                                         "    action: bypass\n"
                                         "    cgroup: /a\n"
                                         "  - name: b\n"
                                         "    action: bypass\n"
                                         "    cgroup: [/a, /b]\n"),
                                   {{11}, {11, 22}});
    EXPECT_EQ(compiled.cgroups.at(11), 0b11u);
    EXPECT_EQ(compiled.cgroups.at(22), 0b10u);
    EXPECT_EQ(compiled.slot.any_cgroup, 0u);
}

} // namespace
} // namespace sockmapd
