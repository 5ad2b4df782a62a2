// The policy file: every key and form it accepts, and for every way it can be wrong, the exact file:line:column
// and the words that say what is wrong and what was expected. Plus reading it from disk (ConfigMap symlinks,
// permissions) and resolving cgroup selectors against the real cgroup v2 mount.
#include "sockmapd/policy.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "sockmapd/cgroup.hpp"
#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

namespace fs = std::filesystem;

const std::string kFile = "policy.yaml";

// The PolicyError parse_policy throws for text; fails the test if it parses.
std::string policy_error(const std::string& text)
{
    try {
        parse_policy(text, kFile);
    } catch (const PolicyError& e) {
        std::string message = e.what();
        EXPECT_NOT_CONTAINS(message, "\n");
        return message;
    }
    ADD_FAILURE() << "parsed without an error:\n" << text;
    return {};
}

// Asserts the error is at line:column and mentions every one of words.
void expect_error(const std::string& text, int line, int column, const std::vector<std::string>& words)
{
    SCOPED_TRACE(text.substr(0, 300));
    auto message = policy_error(text);
    auto position = kFile + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
    EXPECT_EQ(message.rfind(position, 0), 0u) << message;
    for (const auto& word : words)
        EXPECT_CONTAINS(message, word);
}

// A one-rule policy with `selector` (one "key: value" line) added to the rule; the selector is on line 4.
std::string rule_with(const std::string& selector)
{
    return "rules:\n  - name: r\n    action: bypass\n    " + selector + "\n";
}

std::array<std::uint8_t, 16> mapped(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d)
{
    return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

// --- What the file may say ---

TEST(ParsePolicy, TheFullExampleOfTheReference)
{
    auto policy = parse_policy(R"(# comment
default: bypass
rules:
  - name: istio-capture
    action: accelerate
    uid: 1337
    cgroup: /kubepods.slice
    ports: [15001, 15006, "8000-8999"]
    cidrs: [10.0.0.0/8, "fd00::/8", 127.0.0.1]
)",
                               kFile);
    EXPECT_EQ(policy.default_action, PolicyAction::bypass);
    ASSERT_EQ(policy.rules.size(), 1u);
    const auto& rule = policy.rules[0];
    EXPECT_EQ(rule.name, "istio-capture");
    EXPECT_EQ(rule.action, PolicyAction::accelerate);
    EXPECT_EQ(rule.position.line, 4);
    EXPECT_EQ(rule.position.column, 5);
    EXPECT_EQ(rule.uids, std::vector<std::uint32_t>{1337});
    ASSERT_EQ(rule.cgroups.size(), 1u);
    EXPECT_EQ(rule.cgroups[0].path, "/kubepods.slice");
    EXPECT_EQ(rule.cgroups[0].position.line, 7);
    EXPECT_EQ(rule.cgroups[0].position.column, 13);
    ASSERT_EQ(rule.ports.size(), 3u);
    EXPECT_EQ(rule.ports[0].first, 15001);
    EXPECT_EQ(rule.ports[0].last, 15001);
    EXPECT_EQ(rule.ports[2].first, 8000);
    EXPECT_EQ(rule.ports[2].last, 8999);
    ASSERT_EQ(rule.cidrs.size(), 3u);
    EXPECT_EQ(rule.cidrs[0].addr, mapped(10, 0, 0, 0));
    EXPECT_EQ(rule.cidrs[0].prefix_len, 104u);
    EXPECT_EQ(rule.cidrs[0].text, "10.0.0.0/8");
    EXPECT_EQ(rule.cidrs[1].addr[0], 0xfd);
    EXPECT_EQ(rule.cidrs[1].prefix_len, 8u);
    EXPECT_EQ(rule.cidrs[2].addr, mapped(127, 0, 0, 1));
    EXPECT_EQ(rule.cidrs[2].prefix_len, 128u);
    EXPECT_EQ(describe_selectors(rule),
              "uid=1337 cgroup=/kubepods.slice ports=15001,15006,8000-8999 cidrs=10.0.0.0/8,fd00::/8,127.0.0.1");
}

TEST(ParsePolicy, EverySelectorAsOneValueAndAsAList)
{
    auto policy = parse_policy(R"(rules:
  - name: one
    action: bypass
    uid: 0
    cgroup: /
    ports: "1-65535"
    cidrs: ::/0
  - name: many
    action: accelerate
    uid:
      - 1337
      - 4294967294
    cgroup: [/a.slice, /a.slice/b.scope/]
    ports: [1, 65535, 80-80, "443"]
    cidrs: [0.0.0.0/0, "2001:db8::1", ::ffff:10.0.0.0/104]
)",
                               kFile);
    ASSERT_EQ(policy.rules.size(), 2u);
    EXPECT_EQ(policy.default_action, PolicyAction::accelerate) << "the default when `default` is omitted";
    const auto& one = policy.rules[0];
    EXPECT_EQ(one.uids, std::vector<std::uint32_t>{0});
    EXPECT_EQ(one.cgroups[0].path, "/");
    EXPECT_EQ(one.ports[0].first, 1);
    EXPECT_EQ(one.ports[0].last, 65535);
    EXPECT_EQ(one.cidrs[0].prefix_len, 0u) << "::/0 matches IPv4 too";
    EXPECT_EQ(one.cidrs[0].addr, (std::array<std::uint8_t, 16>{}));

    const auto& many = policy.rules[1];
    EXPECT_EQ(many.uids, (std::vector<std::uint32_t>{1337, 4294967294u}));
    ASSERT_EQ(many.cgroups.size(), 2u);
    EXPECT_EQ(many.cgroups[1].path, "/a.slice/b.scope/");
    ASSERT_EQ(many.ports.size(), 4u);
    EXPECT_EQ(many.ports[2].first, 80);
    EXPECT_EQ(many.ports[2].last, 80);
    EXPECT_EQ(many.ports[3].first, 443);
    ASSERT_EQ(many.cidrs.size(), 3u);
    EXPECT_EQ(many.cidrs[0].addr, mapped(0, 0, 0, 0)) << "0.0.0.0/0 is ::ffff:0:0/96, IPv4 only";
    EXPECT_EQ(many.cidrs[0].prefix_len, 96u);
    EXPECT_EQ(many.cidrs[1].prefix_len, 128u) << "a bare IPv6 address is a /128";
    EXPECT_EQ(many.cidrs[2].addr, mapped(10, 0, 0, 0));
    EXPECT_EQ(many.cidrs[2].prefix_len, 104u);
}

TEST(ParsePolicy, FlowStyleRulesAndRuleOrder)
{
    auto policy = parse_policy("rules: [{name: b, action: bypass}, {name: a.1_x-Y, action: accelerate}]\n", kFile);
    ASSERT_EQ(policy.rules.size(), 2u);
    EXPECT_EQ(policy.rules[0].name, "b");
    EXPECT_EQ(policy.rules[0].action, PolicyAction::bypass);
    EXPECT_EQ(policy.rules[1].name, "a.1_x-Y");
    EXPECT_EQ(describe_selectors(policy.rules[1]), "any");
}

TEST(ParsePolicy, OnlyADefaultOrAnEmptyRuleList)
{
    auto bypass = parse_policy("default: bypass\n", kFile);
    EXPECT_EQ(bypass.default_action, PolicyAction::bypass);
    EXPECT_TRUE(bypass.rules.empty());
    auto accelerate = parse_policy("default: accelerate\nrules: []\n", kFile);
    EXPECT_EQ(accelerate.default_action, PolicyAction::accelerate);
    EXPECT_TRUE(accelerate.rules.empty());
    EXPECT_EQ(accelerate.source, "") << "parse_policy does not claim a file was read";
}

TEST(ParsePolicy, NameOfTheMaximumLength)
{
    std::string name(kPolicyMaxNameLength, 'n');
    EXPECT_EQ(parse_policy("rules: [{name: " + name + ", action: bypass}]", kFile).rules[0].name, name);
}

TEST(DefaultPolicy, AcceleratesEveryPair)
{
    auto policy = default_policy();
    EXPECT_EQ(policy.default_action, PolicyAction::accelerate);
    EXPECT_TRUE(policy.rules.empty());
    EXPECT_EQ(policy.source, "");
    EXPECT_EQ(policy.sha256, "");
    EXPECT_EQ(action_name(PolicyAction::accelerate), "accelerate");
    EXPECT_EQ(action_name(PolicyAction::bypass), "bypass");
}

// --- The document ---

TEST(PolicyErrors, YamlSyntaxError)
{
    expect_error("rules:\n  - name: a\n   action: bypass\n", 3, 4, {"YAML syntax error", "indentation"});
}

// YAML forbids tabs in indentation; yaml-cpp reports what the tab broke, which does not say so.
TEST(PolicyErrors, TabInTheIndentationSaysTabsAreNotAllowed)
{
    expect_error("rules:\n  - name: a\n\taction: bypass\n", 3, 1, {"tabs are not allowed", "spaces"});
    expect_error("default: bypass\nrules:\n\t- name: a\n\t  action: bypass\n", 3, 1, {"tabs are not allowed"});
    expect_error("rules:\n  - name: a\n  \t action: bypass\n", 3, 3, {"tabs are not allowed"});
}

// yaml-cpp 0.7's LoadAll never returns on these (jbeder/yaml-cpp#1040); found by tests/fuzz.
TEST(PolicyErrors, ATokenNoValueStartsWithIsAnErrorNotAHang)
{
    expect_error(",", 1, 1, {"YAML syntax error: unexpected ','", "expected a value"});
    expect_error("# policy\n  ,\n", 2, 3, {"unexpected ','"});
    expect_error("\"default\",", 1, 10, {"unexpected ','"});
    expect_error(", action: bypass, uid: [0,4 29496in: bypass\n    ui\n    actoin: oup: ../x\n", 1, 1,
                 {"unexpected ','"});
}

TEST(PolicyErrors, EmptyFileIsAnErrorNotTheDefault)
{
    for (const auto* text : {"", "\n\n", "# only a comment\n", "---\n", "~\n"}) {
        auto message = policy_error(text);
        EXPECT_EQ(message, kFile + ": policy file is empty; write `default: accelerate` to accelerate everything")
            << "for " << text;
    }
}

TEST(PolicyErrors, TwoDocuments)
{
    expect_error("default: bypass\n---\ndefault: accelerate\n", 2, 1, {"second YAML document", "exactly one"});
    expect_error("default: bypass\n...\n---\n", 3, 1, {"second YAML document"});
}

TEST(PolicyErrors, NulByte)
{
    expect_error(std::string("default: bypass\nrules: [\0]\n", 26), 2, 9, {"NUL byte", "expected YAML text"});
}

TEST(PolicyErrors, TopLevelNotAMapping)
{
    expect_error("- name: a\n  action: bypass\n", 1, 1, {"top level is a list", "put the rules under `rules:`"});
    expect_error("accelerate\n", 1, 1, {"top level is a scalar", "expected a mapping"});
}

TEST(PolicyErrors, UnknownTopLevelKeySuggestsTheNearest)
{
    expect_error("default: bypass\nrule: []\n", 2, 1,
                 {"unknown top-level key 'rule'", "expected default or rules", "did you mean 'rules'?"});
    expect_error("Default: bypass\n", 1, 1, {"unknown top-level key 'Default'", "did you mean 'default'?"});
    auto message = policy_error("version: 2\n");
    EXPECT_CONTAINS(message, "unknown top-level key 'version'");
    EXPECT_NOT_CONTAINS(message, "did you mean") << "no obvious candidate, no guess";
}

TEST(PolicyErrors, RuleKeyAtTheTopLevel)
{
    expect_error("name: a\naction: bypass\n", 1, 1, {"unknown top-level key 'name'", "belong in an entry of `rules`"});
}

TEST(PolicyErrors, UnknownRuleKeySuggestsTheNearest)
{
    expect_error(rule_with("uids: 1337"), 4, 5,
                 {"unknown key 'uids' in rule 1", "expected one of name, action, uid, cgroup, ports, cidrs",
                  "did you mean 'uid'?"});
    expect_error(rule_with("port: 80"), 4, 5, {"unknown key 'port'", "did you mean 'ports'?"});
    expect_error(rule_with("cidr: 10.0.0.0/8"), 4, 5, {"unknown key 'cidr'", "did you mean 'cidrs'?"});
    expect_error(rule_with("cgroups: /a"), 4, 5, {"unknown key 'cgroups'", "did you mean 'cgroup'?"});
    auto message = policy_error(rule_with("namespace: default"));
    EXPECT_CONTAINS(message, "unknown key 'namespace'");
    EXPECT_NOT_CONTAINS(message, "did you mean");
}

TEST(PolicyErrors, RepeatedKey)
{
    expect_error("rules:\n  - name: a\n    action: bypass\n    ports: 80\n    ports: 443\n", 5, 5,
                 {"key 'ports' appears twice in rule 1", "first on line 4"});
    expect_error("default: bypass\ndefault: accelerate\n", 2, 1, {"key 'default' appears twice", "first on line 1"});
}

TEST(PolicyErrors, KeyThatIsNotAWord)
{
    expect_error("? [a, b]\n: 1\n", 1, 3, {"a key at the top level is a list", "expected a word"});
}

// --- Wrong types ---

TEST(PolicyErrors, WrongTypes)
{
    expect_error("rules:\n  name: a\n", 2, 3, {"rules is a mapping", "expected a list of rules"});
    expect_error("rules:\n", 1, 1, {"rules has no value", "expected a list of rules"});
    expect_error("default: [bypass]\n", 1, 10, {"default is a list", "expected accelerate or bypass"});
    expect_error("rules:\n  - just-a-name\n", 2, 5, {"rule 1 is a scalar", "expected a mapping with name, action"});
    expect_error("rules:\n  - name: [a]\n    action: bypass\n", 2, 11, {"name is a list", "expected 1-63 characters"});
    expect_error("rules:\n  - name: a\n    action: {x: 1}\n", 3, 13, {"action is a mapping", "accelerate or bypass"});
    expect_error(rule_with("uid: {root: 0}"), 4, 10, {"uid is a mapping", "expected a uid or a list of them"});
    expect_error(rule_with("ports: [[80, 443]]"), 4, 13, {"an element of ports is a list", "expected a port"});
    expect_error(rule_with("cidrs: [{a: 1}]"), 4, 13, {"an element of cidrs is a mapping", "expected a network"});
}

TEST(PolicyErrors, EmptySelectorValue)
{
    expect_error(rule_with("cgroup:"), 4, 5,
                 {"cgroup has no value", "a cgroup path or a list of them", "remove the key to match anything"});
}

TEST(PolicyErrors, EmptyListForEachSelector)
{
    for (const std::string key : {"uid", "cgroup", "ports", "cidrs"})
        expect_error(rule_with(key + ": []"), 4, static_cast<int>(key.size()) + 7,
                     {key + " is an empty list", "remove the key to match anything"});
}

TEST(PolicyErrors, UnknownAction)
{
    expect_error("rules:\n  - name: a\n    action: accel\n", 3, 13,
                 {"action 'accel' is not an action", "expected accelerate or bypass"});
    expect_error("default: allow\n", 1, 10, {"default 'allow' is not an action", "expected accelerate or bypass"});
}

// --- Rules and names ---

TEST(PolicyErrors, MissingNameOrAction)
{
    expect_error("rules:\n  - name: a\n    action: bypass\n  - action: bypass\n    uid: 1\n", 4, 5,
                 {"rule 2 has no name", "add `name:`"});
    expect_error("rules:\n  - name: a\n    uid: 1\n", 2, 5,
                 {"rule 'a' has no action", "`action: accelerate` or `action: bypass`"});
}

TEST(PolicyErrors, BadNames)
{
    expect_error("rules:\n  - name: my rule\n    action: bypass\n", 2, 11,
                 {"name 'my rule' contains ' '", "expected 1-63 characters of A-Z a-z 0-9 _ . -"});
    expect_error("rules:\n  - name: \"\"\n    action: bypass\n", 2, 11, {"name is empty", "1-63 characters"});
    expect_error("rules:\n  - name: " + std::string(64, 'n') + "\n    action: bypass\n", 2, 11,
                 {"is 64 characters long", "expected 1-63 characters"});
    expect_error("rules:\n  - name: caf\xc3\xa9\n    action: bypass\n", 2, 11, {"contains", "A-Z a-z 0-9"});
}

TEST(PolicyErrors, DuplicateNamePointsAtTheSecondAndNamesTheFirst)
{
    expect_error("rules:\n  - name: mesh\n    action: accelerate\n  - name: other\n    action: bypass\n"
                 "  - name: mesh\n    action: bypass\n",
                 6, 11, {"rule name 'mesh' is already used by the rule on line 2", "must be unique"});
}

// "default" labels the default action's decisions in metrics and `policy show`: a rule may not take it.
TEST(PolicyErrors, RuleNamedDefaultIsRefused)
{
    expect_error("rules:\n  - name: default\n    action: bypass\n", 2, 11,
                 {"rule name 'default' is reserved", "choose another name"});
}

TEST(PolicyErrors, MoreThan64Rules)
{
    std::string text = "rules:\n";
    for (std::size_t i = 1; i <= kPolicyMaxRules + 1; ++i)
        text += "  - {name: r" + std::to_string(i) + ", action: bypass}\n";
    expect_error(text, 66, 5, {"rule 65 is one too many", "at most 64 rules"});
    text.erase(text.rfind("  - {"));
    EXPECT_EQ(parse_policy(text, kFile).rules.size(), kPolicyMaxRules);
}

// --- uid ---

TEST(PolicyErrors, BadUids)
{
    expect_error(rule_with("uid: -1"), 4, 10, {"uid -1 is negative", "expected a numeric uid 0..4294967294"});
    expect_error(rule_with("uid: 4294967295"), 4, 10, {"uid '4294967295' is too large", "0..4294967294"});
    expect_error(rule_with("uid: 99999999999999999999999"), 4, 10, {"is too large"});
    expect_error(rule_with("uid: abc"), 4, 10, {"uid 'abc' is not a number", "user names are not looked up"});
    expect_error(rule_with("uid: [1337, istio-proxy]"), 4, 17, {"uid 'istio-proxy' is not a number"});
    expect_error(rule_with("uid: 1.5"), 4, 10, {"uid '1.5' is not a number"});
    expect_error(rule_with("uid: 01337"), 4, 10, {"uid 01337 has a leading zero", "write it without"});
}

// --- cgroup ---

TEST(PolicyErrors, BadCgroupPaths)
{
    expect_error(rule_with("cgroup: kubepods.slice"), 4, 13,
                 {"cgroup path 'kubepods.slice' is relative", "absolute path in the cgroup v2 hierarchy"});
    expect_error(rule_with("cgroup: /kubepods.slice/../system.slice"), 4, 13,
                 {"contains '..'", "write the path without it"});
    expect_error(rule_with("cgroup: /a/.."), 4, 13, {"contains '..'"});
    expect_error(rule_with("cgroup: \"\""), 4, 13, {"cgroup path is empty", "'/' for all"});
    expect_error(rule_with("cgroup: 0::/kubepods.slice"), 4, 13,
                 {"is a line of /proc/PID/cgroup", "write the path after '0::'"});
    expect_error(rule_with("cgroup: \"/a\\nb\""), 4, 13, {"'/a\\x0ab' contains a control character"});
    EXPECT_NO_THROW(parse_policy(rule_with("cgroup: /a..b/.c"), kFile)) << "'..' only as a whole component";
}

// --- ports ---

TEST(PolicyErrors, PortsOutOfRange)
{
    expect_error(rule_with("ports: 0"), 4, 12, {"port 0 is out of range", "expected 1..65535"});
    expect_error(rule_with("ports: 65536"), 4, 12, {"port 65536 is out of range", "expected 1..65535"});
    expect_error(rule_with("ports: [80, 70000]"), 4, 17, {"port 70000 is out of range"});
    expect_error(rule_with("ports: -80"), 4, 12, {"port -80 is out of range"});
    expect_error(rule_with("ports: \"0-80\""), 4, 12, {"port 0 in range 0-80 is out of range"});
    expect_error(rule_with("ports: 8000-99999"), 4, 12, {"port 99999 in range 8000-99999 is out of range"});
}

TEST(PolicyErrors, EmptyInvertedAndMalformedPortRanges)
{
    expect_error(rule_with("ports: \"\""), 4, 12, {"port is an empty string", "expected a port 1..65535 or a range"});
    expect_error(rule_with("ports: \"9000-8000\""), 4, 12, {"port range 9000-8000 is inverted", "write 8000-9000"});
    for (const std::string bad : {"80-", "-", "a-b", "1-2-3", "80 - 90", "http", "0x50", "80.5"}) {
        SCOPED_TRACE(bad);
        auto message = policy_error(rule_with("ports: \"" + bad + "\""));
        EXPECT_EQ(message.rfind(kFile + ":4:12: ", 0), 0u) << message;
        EXPECT_CONTAINS(message, "is malformed; expected a port 1..65535 or a range \"A-B\" with A <= B");
    }
    expect_error(rule_with("ports: 080"), 4, 12, {"port 080 has a leading zero"});
}

// --- cidrs ---

TEST(PolicyErrors, BadCidrs)
{
    expect_error(rule_with("cidrs: 10.0.0.256/32"), 4, 12,
                 {"'10.0.0.256' is not an IPv4 address", "expected an IPv4 or IPv6 network"});
    expect_error(rule_with("cidrs: \"fd00::g/8\""), 4, 12, {"'fd00::g' is not an IPv4 or IPv6 address"});
    expect_error(rule_with("cidrs: 10/8"), 4, 12, {"'10' is not an IPv4 address"});
    expect_error(rule_with("cidrs: example.com"), 4, 12, {"not an IPv4 or IPv6 address"});
    expect_error(rule_with("cidrs: /8"), 4, 12, {"has no address"});
    expect_error(rule_with("cidrs: \"10.0.0.1\\0junk\""), 4, 12, {"'10.0.0.1\\x00junk' is not an IPv4 or IPv6"});
}

TEST(PolicyErrors, CidrPrefixTooLongOrMalformed)
{
    expect_error(rule_with("cidrs: 10.0.0.0/33"), 4, 12, {"prefix length 33 is more than 32", "/0 to /32 for IPv4"});
    expect_error(rule_with("cidrs: \"fd00::/129\""), 4, 12, {"prefix length 129 is more than 128", "for IPv6"});
    expect_error(rule_with("cidrs: 10.0.0.0/99999999999"), 4, 12, {"is more than 32"});
    expect_error(rule_with("cidrs: 10.0.0.0/"), 4, 12, {"malformed prefix length"});
    expect_error(rule_with("cidrs: 10.0.0.0/-1"), 4, 12, {"malformed prefix length"});
    expect_error(rule_with("cidrs: 10.0.0.0/8/8"), 4, 12, {"malformed prefix length"});
}

TEST(PolicyErrors, CidrWithHostBitsSuggestsTheNetwork)
{
    expect_error(rule_with("cidrs: 10.0.0.1/8"), 4, 12, {"10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"});
    expect_error(rule_with("cidrs: [10.0.0.0/8, 192.168.1.1/16]"), 4, 25,
                 {"192.168.1.1/16 has host bits set; did you mean 192.168.0.0/16?"});
    expect_error(rule_with("cidrs: \"fd00::1/8\""), 4, 12, {"fd00::1/8 has host bits set; did you mean fd00::/8?"});
    expect_error(rule_with("cidrs: 10.0.0.1/0"), 4, 12, {"did you mean 0.0.0.0/0?"});
}

// --- Limits over all rules ---

// A policy of `rules` rules whose `key` lists hold `per_rule` values each, value(i) for the i-th overall.
std::string policy_with_values(const std::string& key, std::size_t rules, std::size_t per_rule,
                               const std::function<std::string(std::size_t)>& value)
{
    std::string text = "rules:\n";
    std::size_t n = 0;
    for (std::size_t r = 0; r < rules; ++r) {
        text += "  - name: r" + std::to_string(r) + "\n    action: bypass\n    " + key + ":\n";
        for (std::size_t i = 0; i < per_rule; ++i)
            text += "      - \"" + value(n++) + "\"\n";
    }
    return text;
}

TEST(PolicyErrors, DistinctValueLimitsOverAllRules)
{
    auto uid = [](std::size_t i) { return std::to_string(1000 + i); };
    auto cgroup = [](std::size_t i) { return "/c" + std::to_string(i); };
    auto cidr = [](std::size_t i) { return "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256); };
    struct Case {
        std::string key;
        std::function<std::string(std::size_t)> value;
        std::string words;
    };
    for (const auto& c : {Case{"uid", uid, "distinct uids"}, Case{"cgroup", cgroup, "distinct cgroups"},
                          Case{"cidrs", cidr, "distinct networks"}}) {
        SCOPED_TRACE(c.key);
        // 1024 over 4 rules is fine; the 1025th, the last value of the 5th rule, is not.
        EXPECT_NO_THROW(parse_policy(policy_with_values(c.key, 4, 256, c.value), kFile));
        auto text = policy_with_values(c.key, 5, 205, c.value);
        expect_error(text, 2 + 4 * (3 + 205) + 3 + 204, 9, {"is one too many", "at most 1024 " + c.words});
        // The same value in every rule counts once.
        EXPECT_NO_THROW(parse_policy(policy_with_values(c.key, 64, 20, [&](std::size_t i) { return c.value(i % 20); }),
                                     kFile));
    }
}

// --- The file ---

class LoadPolicyFile : public test::TempDirTest {
protected:
    std::string write(const std::string& name, const std::string& text, mode_t mode = 0644)
    {
        auto path = dir_ / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path) << text;
        ::chmod(path.c_str(), mode);
        return path.string();
    }

    static std::string load_error(const std::string& path)
    {
        try {
            load_policy_file(path);
        } catch (const PolicyError& e) {
            std::string message = e.what();
            EXPECT_NOT_CONTAINS(message, "\n");
            return message;
        }
        ADD_FAILURE() << path << " loaded";
        return {};
    }
};

TEST_F(LoadPolicyFile, RecordsTheSourceAndTheDigestOfTheBytes)
{
    auto path = write("policy.yaml", "default: accelerate\n");
    auto policy = load_policy_file(path);
    EXPECT_EQ(policy.source, path);
    // printf 'default: accelerate\n' | sha256sum
    EXPECT_EQ(policy.sha256, "a00894a5b12117784c5041aaa2a7a9569d5066b3e8d6b13370033cf9a3af8524");
}

TEST_F(LoadPolicyFile, ErrorsNameTheFileWithLineAndColumn)
{
    auto path = write("policy.yaml", "rules:\n  - name: a\n    action: bypass\n    ports: 0\n");
    EXPECT_EQ(load_error(path), path + ":4:12: port 0 is out of range; expected 1..65535");
}

TEST_F(LoadPolicyFile, MissingFile)
{
    auto path = (dir_ / "missing.yaml").string();
    EXPECT_EQ(load_error(path), path + ": no such file; pass the path of an existing policy file");
}

TEST_F(LoadPolicyFile, WorldWritableFile)
{
    auto path = write("policy.yaml", "default: bypass\n", 0666);
    auto message = load_error(path);
    EXPECT_CONTAINS(message, path + " is world-writable");
    EXPECT_CONTAINS(message, "chmod o-w " + path);
    ::chmod(path.c_str(), 0664);
    EXPECT_NO_THROW(load_policy_file(path)) << "group-writable is the operator's business";
}

TEST_F(LoadPolicyFile, NotARegularFile)
{
    EXPECT_EQ(load_error(dir_.string()), dir_.string() + ": a directory, not a regular file; pass a policy file");
    auto fifo = (dir_ / "fifo").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    EXPECT_EQ(load_error(fifo), fifo + ": a FIFO, not a regular file; pass a policy file") << "and no hang";
}

TEST_F(LoadPolicyFile, TooLarge)
{
    auto path = write("policy.yaml", "# " + std::string(kPolicyMaxFileBytes, 'x') + "\ndefault: bypass\n");
    auto message = load_error(path);
    EXPECT_CONTAINS(message, path + ": the file is 1048595 bytes");
    EXPECT_CONTAINS(message, "at most 1048576 bytes");
}

TEST_F(LoadPolicyFile, EmptyFile)
{
    auto path = write("policy.yaml", "");
    EXPECT_EQ(load_error(path), path + ": policy file is empty; write `default: accelerate` to accelerate everything");
}

// A mounted ConfigMap: policy.yaml -> ..data/policy.yaml, ..data -> ..<timestamp>; an update writes a new
// timestamped directory and renames a new ..data symlink over the old one.
TEST_F(LoadPolicyFile, FollowsAConfigMapSymlinkSwapAndNoticesWhenTheTargetVanishes)
{
    write("..2026_01_01_00_00_00.1/policy.yaml", "default: bypass\n");
    fs::create_directory_symlink("..2026_01_01_00_00_00.1", dir_ / "..data");
    fs::create_symlink("..data/policy.yaml", dir_ / "policy.yaml");
    auto path = (dir_ / "policy.yaml").string();
    auto first = load_policy_file(path);
    EXPECT_EQ(first.default_action, PolicyAction::bypass);
    EXPECT_EQ(first.source, path);

    write("..2026_01_02_00_00_00.2/policy.yaml", "default: accelerate\n");
    fs::create_directory_symlink("..2026_01_02_00_00_00.2", dir_ / "..data_tmp");
    fs::rename(dir_ / "..data_tmp", dir_ / "..data");
    fs::remove_all(dir_ / "..2026_01_01_00_00_00.1");
    auto second = load_policy_file(path);
    EXPECT_EQ(second.default_action, PolicyAction::accelerate);
    EXPECT_NE(second.sha256, first.sha256);

    fs::remove_all(dir_ / "..2026_01_02_00_00_00.2");
    EXPECT_EQ(load_error(path), path + ": a symlink to a file that does not exist; pass a policy file that exists");
}

// --- cgroup selectors against the real cgroup v2 mount ---

class ResolveCgroupIds : public test::TempDirTest {
protected:
    void SetUp() override
    {
        TempDirTest::SetUp();
        root_ = detect_cgroup2_root();
        name_ = "smd-unit-policy-" + std::to_string(::getpid());
        if (::mkdir((root_ + "/" + name_).c_str(), 0755) != 0)
            GTEST_SKIP() << "cannot create a cgroup below " << root_ << " (not root?): " << std::strerror(errno);
        created_ = true;
    }
    void TearDown() override
    {
        if (created_) {
            EXPECT_EQ(::rmdir((root_ + "/" + name_).c_str()), 0) << std::strerror(errno);
        }
        TempDirTest::TearDown();
    }

    Policy policy_with_cgroup(const std::string& path)
    {
        auto file = (dir_ / "policy.yaml").string();
        std::ofstream(file) << "rules:\n  - name: pods\n    action: accelerate\n    cgroup: [/, \"" + path + "\"]\n";
        return load_policy_file(file);
    }

    std::string resolve_error(const Policy& policy, const std::string& root)
    {
        try {
            resolve_cgroup_ids(policy, policy.rules.at(0), root);
        } catch (const PolicyError& e) {
            return e.what();
        }
        ADD_FAILURE() << "resolved";
        return {};
    }

    std::string root_;
    std::string name_;
    bool created_ = false;
};

TEST_F(ResolveCgroupIds, AnExistingCgroupAndTheRoot)
{
    auto policy = policy_with_cgroup("/" + name_);
    auto ids = resolve_cgroup_ids(policy, policy.rules[0], root_);
    ASSERT_EQ(ids.size(), 2u);
    EXPECT_EQ(ids[0], cgroup_id(root_));
    EXPECT_EQ(ids[1], cgroup_id(root_ + "/" + name_));
    EXPECT_NE(ids[0], ids[1]);
    EXPECT_EQ(resolve_cgroup_ids(policy, policy.rules[0], root_ + "/"), ids) << "a trailing slash on the root";
}

TEST_F(ResolveCgroupIds, ACgroupThatDoesNotExistNamesTheSelectorAndThePathTried)
{
    auto policy = policy_with_cgroup("/" + name_ + "/missing");
    auto message = resolve_error(policy, root_);
    EXPECT_EQ(message.rfind(policy.source + ":4:17: ", 0), 0u) << message;
    EXPECT_CONTAINS(message, root_ + "/" + name_ + "/missing does not exist");
    EXPECT_CONTAINS(message, "rule pods");
}

TEST_F(ResolveCgroupIds, APathWithTheMountPointSaysToDropIt)
{
    auto policy = policy_with_cgroup(root_ + "/" + name_);
    EXPECT_CONTAINS(resolve_error(policy, root_), "write the path without the mount point " + root_ + ": /" + name_);
}

TEST_F(ResolveCgroupIds, ARegularFileOrADirectoryNotOnCgroup2)
{
    auto policy = policy_with_cgroup("/" + name_ + "/cgroup.procs");
    EXPECT_CONTAINS(resolve_error(policy, root_), "/cgroup.procs is not a directory");
    auto elsewhere = policy_with_cgroup("/");
    EXPECT_CONTAINS(resolve_error(elsewhere, dir_.string()), dir_.string() + " is not on a cgroup v2 filesystem");
}

// --- The example policies ---

TEST(ExamplePolicies, EveryFileInDeployPoliciesIsValid)
{
    std::size_t checked = 0;
    for (const auto& entry : fs::directory_iterator(fs::path(SMD_SOURCE_DIR) / "deploy/policies")) {
        if (entry.path().extension() != ".yaml")
            continue;
        SCOPED_TRACE(entry.path().string());
        EXPECT_NO_THROW({
            auto policy = load_policy_file(entry.path().string());
            EXPECT_FALSE(policy.rules.empty());
        });
        ++checked;
    }
    EXPECT_GE(checked, 2u) << "istio.yaml and linkerd.yaml";
}

} // namespace
} // namespace sockmapd
