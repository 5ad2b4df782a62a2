// The acceleration policy's YAML: text in, a validated Policy out, every error one line with file:line:column.
#include "sockmapd/policy.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "policy_text.hpp"

namespace sockmapd {
namespace {

using policy_text::join;
using policy_text::shown;
using policy_text::suggestion;

constexpr std::uint32_t kMaxUid = 4294967294u; // (uid_t)-1 is the kernel's "no uid"
constexpr std::size_t kMaxCgroupPathLength = 4095;

const std::vector<std::string> kTopLevelKeys{"default", "rules"};
const std::vector<std::string> kRuleKeys{"name", "action", "uid", "cgroup", "ports", "cidrs"};
const char* const kNameExpectation = "1-63 characters of A-Z a-z 0-9 _ . -";
const char* const kPortExpectation = "a port 1..65535 or a range \"A-B\" with A <= B, e.g. \"8000-8999\"";
const char* const kCidrExpectation = "an IPv4 or IPv6 network such as 10.0.0.0/8 or fd00::/8, or a bare address";

std::string location(const std::string& file, const YAML::Mark& mark)
{
    if (mark.is_null() || mark.line < 0 || mark.column < 0)
        return file;
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// Only decimal digits, no sign, no leading zero (YAML 1.1 reads 010 as octal, so it would mean 8 elsewhere).
enum class Number { ok, not_a_number, leading_zero, too_large };

Number parse_decimal(std::string_view text, std::uint64_t limit, std::uint64_t& value)
{
    if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
        return Number::not_a_number;
    if (text.size() > 1 && text[0] == '0')
        return Number::leading_zero;
    value = 0;
    for (char c : text) {
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
        if (value > limit)
            return Number::too_large;
    }
    return Number::ok;
}

std::string node_kind(const YAML::Node& node)
{
    switch (node.Type()) {
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Null:
        return "empty";
    default:
        return "a scalar";
    }
}

class PolicyParser {
public:
    explicit PolicyParser(const std::string& file) : file_(file) {}

    Policy parse(std::string_view text)
    {
        if (auto nul = text.find('\0'); nul != std::string_view::npos)
            fail(mark_at(text, nul), "the file contains a NUL byte; expected YAML text");
        YAML::Node top;
        try {
            check_one_document(text);
            top = YAML::Load(std::string(text));
        } catch (const YAML::Exception& e) {
            // yaml-cpp reports a tab in the indentation as whatever it broke ("illegal map value", ...).
            if (auto tab = indentation_tab(text, e.mark))
                fail(mark_at(text, *tab), "YAML syntax error: a tab in the indentation; tabs are not allowed in "
                                          "YAML indentation, indent with spaces");
            fail(e.mark, "YAML syntax error: " + e.msg + "; check the indentation and quoting there");
        }
        if (top.IsNull())
            throw PolicyError(file_ + ": policy file is empty; write `default: accelerate` to accelerate everything");

        if (top.IsSequence())
            fail(top.Mark(), "the top level is a list; expected a mapping with the keys `default` and `rules` "
                             "(put the rules under `rules:`)");
        if (!top.IsMap())
            fail(top.Mark(), "the top level is " + node_kind(top) +
                                 "; expected a mapping with the keys `default` and `rules`");

        Policy policy;
        for (const auto& [key, value] : keys_of(top, "at the top level")) {
            if (key == "default") {
                policy.default_action = parse_action(value.key, value.value, "default");
            } else if (key == "rules") {
                parse_rules(value.key, value.value, policy);
            } else {
                bool rule_key = std::find(kRuleKeys.begin(), kRuleKeys.end(), key) != kRuleKeys.end();
                fail(value.key.Mark(),
                     "unknown top-level key " + shown(key) +
                         (rule_key ? "; expected default or rules (rule keys belong in an entry of `rules`)"
                                   : "; expected default or rules" + suggestion(key, kTopLevelKeys)));
            }
        }
        return policy;
    }

private:
    struct Entry {
        YAML::Node key;
        YAML::Node value;
    };

    // Where each YAML document of the stream starts; nothing else is recorded.
    class DocumentStarts : public YAML::EventHandler {
    public:
        std::vector<YAML::Mark> starts;
        void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
        void OnDocumentEnd() override {}
        void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
        void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
        void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
        void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override
        {
        }
        void OnSequenceEnd() override {}
        void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
        void OnMapEnd() override {}
    };

    // Refuses a second document. Not with YAML::LoadAll: yaml-cpp 0.7 loops forever, allocating, on a token no
    // node can start with, such as a ',' outside a flow collection (jbeder/yaml-cpp#1040, fixed after 0.8 by
    // #1319). Here a document that starts where the previous one did is that token, reported as an error.
    void check_one_document(std::string_view text) const
    {
        std::istringstream stream{std::string(text)};
        YAML::Parser parser(stream);
        DocumentStarts documents;
        while (documents.starts.size() < 3 && parser.HandleNextDocument(documents)) {
            auto count = documents.starts.size();
            if (count >= 2 && documents.starts[count - 1].pos == documents.starts[count - 2].pos) {
                auto mark = documents.starts[count - 1];
                auto at = static_cast<std::size_t>(mark.pos);
                fail(mark, "YAML syntax error: unexpected " + shown(text.substr(at, at < text.size() ? 1 : 0)) +
                               "; expected a value (quote it if it is part of one)");
            }
        }
        if (documents.starts.size() > 1)
            fail(documents.starts[1], "a second YAML document; a policy file holds exactly one");
    }

    [[noreturn]] void fail(const YAML::Mark& mark, const std::string& message) const
    {
        throw PolicyError(location(file_, mark) + ": " + message);
    }

    // The mark of the value, or of its key when the value is empty (yaml-cpp marks an empty value where the
    // next token starts, often on the next line).
    static YAML::Mark mark_of(const Entry& entry)
    {
        auto mark = entry.value.Mark();
        return mark.is_null() || entry.value.IsNull() ? entry.key.Mark() : mark;
    }

    // The first tab in the leading whitespace of a line, up to the line of the error (or anywhere if it has none).
    static std::optional<std::size_t> indentation_tab(std::string_view text, const YAML::Mark& error)
    {
        std::size_t line_start = 0;
        for (int line = 0; line_start < text.size(); ++line) {
            if (!error.is_null() && error.line >= 0 && line > error.line)
                break;
            auto indent_end = text.find_first_not_of(" \t", line_start);
            auto tab = text.find('\t', line_start);
            if (tab != std::string_view::npos && tab < indent_end)
                return tab;
            auto next = text.find('\n', line_start);
            if (next == std::string_view::npos)
                break;
            line_start = next + 1;
        }
        return std::nullopt;
    }

    static YAML::Mark mark_at(std::string_view text, std::size_t offset)
    {
        YAML::Mark mark;
        mark.pos = static_cast<int>(offset);
        auto line_start = text.rfind('\n', offset);
        mark.line = static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n'));
        mark.column = static_cast<int>(line_start == std::string_view::npos ? offset : offset - line_start - 1);
        return mark;
    }

    // A mapping's entries in file order, keyed by their text; refuses non-scalar and repeated keys, which
    // yaml-cpp would otherwise keep silently (a lookup sees only the first).
    std::vector<std::pair<std::string, Entry>> keys_of(const YAML::Node& map, const std::string& where) const
    {
        std::vector<std::pair<std::string, Entry>> entries;
        std::map<std::string, int> first_line;
        for (const auto& item : map) {
            if (!item.first.IsScalar())
                fail(item.first.Mark(), "a key " + where + " is " + node_kind(item.first) + "; expected a word");
            const auto& key = item.first.Scalar();
            auto [it, inserted] = first_line.emplace(key, item.first.Mark().line + 1);
            if (!inserted)
                fail(item.first.Mark(), "key " + shown(key) + " appears twice " + where + " (first on line " +
                                            std::to_string(it->second) + "); keep one");
            entries.push_back({key, Entry{item.first, item.second}});
        }
        return entries;
    }

    PolicyAction parse_action(const YAML::Node& key, const YAML::Node& value, const std::string& what) const
    {
        Entry entry{key, value};
        if (!value.IsScalar())
            fail(mark_of(entry), what + " is " + node_kind(value) + "; expected accelerate or bypass");
        if (value.Scalar() == "accelerate")
            return PolicyAction::accelerate;
        if (value.Scalar() == "bypass")
            return PolicyAction::bypass;
        fail(value.Mark(), what + " " + shown(value.Scalar()) + " is not an action; expected accelerate or bypass");
    }

    void parse_rules(const YAML::Node& key, const YAML::Node& value, Policy& policy)
    {
        Entry entry{key, value};
        if (value.IsNull())
            fail(mark_of(entry), "rules has no value; expected a list of rules (or remove the key)");
        if (!value.IsSequence())
            fail(mark_of(entry), "rules is " + node_kind(value) + "; expected a list of rules, each starting with "
                                 "`- name:`");
        std::size_t index = 0;
        for (const auto& rule_node : value) {
            ++index;
            if (index > kPolicyMaxRules)
                fail(rule_node.Mark(), "rule " + std::to_string(index) + " is one too many; a policy has at most " +
                                           std::to_string(kPolicyMaxRules) +
                                           " rules (a selector takes a list: merge rules with the same action)");
            policy.rules.push_back(parse_rule(rule_node, index));
        }
    }

    PolicyRule parse_rule(const YAML::Node& node, std::size_t index)
    {
        auto where = "in rule " + std::to_string(index);
        if (!node.IsMap())
            fail(node.Mark(), "rule " + std::to_string(index) + " is " + node_kind(node) +
                                  "; expected a mapping with name, action and optional selectors");
        PolicyRule rule;
        rule.position = {node.Mark().line + 1, node.Mark().column + 1};
        bool has_name = false;
        bool has_action = false;
        for (const auto& [key, entry] : keys_of(node, where)) {
            if (key == "name") {
                rule.name = parse_name(entry);
                has_name = true;
            } else if (key == "action") {
                rule.action = parse_action(entry.key, entry.value, "action");
                has_action = true;
            } else if (key == "uid") {
                for (const auto& item : one_or_list(entry, "uid", "a uid"))
                    rule.uids.push_back(parse_uid(item));
            } else if (key == "cgroup") {
                for (const auto& item : one_or_list(entry, "cgroup", "a cgroup path"))
                    rule.cgroups.push_back(parse_cgroup(item));
            } else if (key == "ports") {
                for (const auto& item : one_or_list(entry, "ports", "a port or range"))
                    rule.ports.push_back(parse_port_range(item));
            } else if (key == "cidrs") {
                for (const auto& item : one_or_list(entry, "cidrs", "a network"))
                    rule.cidrs.push_back(parse_cidr(item));
            } else {
                fail(entry.key.Mark(), "unknown key " + shown(key) + " " + where + "; expected one of " +
                                           join(kRuleKeys, ", ") + suggestion(key, kRuleKeys));
            }
        }
        if (!has_name)
            fail(node.Mark(), "rule " + std::to_string(index) + " has no name; add `name:` with " + kNameExpectation);
        if (!has_action)
            fail(node.Mark(), "rule " + shown(rule.name) + " has no action; add `action: accelerate` or "
                                                          "`action: bypass`");
        return rule;
    }

    std::string parse_name(const Entry& entry)
    {
        if (!entry.value.IsScalar())
            fail(mark_of(entry), "name is " + node_kind(entry.value) + "; expected " + kNameExpectation);
        const auto& name = entry.value.Scalar();
        if (name.empty())
            fail(entry.value.Mark(), "name is empty; expected " + std::string(kNameExpectation));
        if (name.size() > kPolicyMaxNameLength)
            fail(entry.value.Mark(), "name " + shown(name) + " is " + std::to_string(name.size()) +
                                         " characters long; expected " + kNameExpectation);
        auto bad = std::find_if(name.begin(), name.end(), [](unsigned char c) {
            return !(std::isalnum(c) && c < 0x80) && c != '_' && c != '.' && c != '-';
        });
        if (bad != name.end())
            fail(entry.value.Mark(), "name " + shown(name) + " contains " + shown(std::string(1, *bad)) +
                                         "; expected " + kNameExpectation);
        if (name == "default")
            fail(entry.value.Mark(), "rule name 'default' is reserved for the default action in metrics and "
                                     "`policy show`; choose another name");
        auto [it, inserted] = name_lines_.emplace(name, entry.value.Mark().line + 1);
        if (!inserted)
            fail(entry.value.Mark(), "rule name " + shown(name) + " is already used by the rule on line " +
                                         std::to_string(it->second) + "; rule names must be unique");
        return name;
    }

    // A selector's value: one scalar or a non-empty flat list of scalars.
    std::vector<YAML::Node> one_or_list(const Entry& entry, const std::string& key, const std::string& one) const
    {
        const auto& value = entry.value;
        if (value.IsNull())
            fail(mark_of(entry), key + " has no value; expected " + one + " or a list of them (remove the key to "
                                                                          "match anything)");
        if (value.IsScalar())
            return {value};
        if (!value.IsSequence())
            fail(mark_of(entry), key + " is " + node_kind(value) + "; expected " + one + " or a list of them");
        if (value.size() == 0)
            fail(mark_of(entry), key + " is an empty list, which would match nothing; remove the key to match "
                                       "anything");
        std::vector<YAML::Node> items;
        for (const auto& item : value) {
            if (!item.IsScalar())
                fail(item.Mark().is_null() ? value.Mark() : item.Mark(),
                     "an element of " + key + " is " + node_kind(item) + "; expected " + one);
            items.push_back(item);
        }
        return items;
    }

    std::uint32_t parse_uid(const YAML::Node& node)
    {
        const auto& text = node.Scalar();
        std::uint64_t uid = 0;
        auto expected = "expected a numeric uid 0.." + std::to_string(kMaxUid);
        switch (parse_decimal(text, kMaxUid, uid)) {
        case Number::ok:
            break;
        case Number::not_a_number:
            if (text.size() > 1 && text[0] == '-' && parse_decimal(text.substr(1), UINT64_MAX, uid) == Number::ok)
                fail(node.Mark(), "uid " + text + " is negative; " + expected);
            fail(node.Mark(), "uid " + shown(text) + " is not a number; " + expected + " (user names are not looked "
                                                                                      "up)");
        case Number::leading_zero:
            fail(node.Mark(), "uid " + text + " has a leading zero; write it without");
        case Number::too_large:
            fail(node.Mark(), "uid " + shown(text) + " is too large; " + expected +
                                  " (4294967295 is the kernel's invalid uid)");
        }
        auto value = static_cast<std::uint32_t>(uid);
        uids_.insert(value);
        if (uids_.size() > kPolicyMaxUids)
            fail(node.Mark(), "uid " + text + " is one too many; a policy names at most " +
                                  std::to_string(kPolicyMaxUids) + " distinct uids over all rules");
        return value;
    }

    CgroupSelector parse_cgroup(const YAML::Node& node)
    {
        const auto& path = node.Scalar();
        auto example = "expected an absolute path in the cgroup v2 hierarchy as /proc/PID/cgroup shows it, e.g. "
                       "/kubepods.slice ('/' for all)";
        if (path.empty())
            fail(node.Mark(), std::string("cgroup path is empty; ") + example);
        if (path.rfind("0::", 0) == 0)
            fail(node.Mark(), "cgroup " + shown(path) + " is a line of /proc/PID/cgroup; write the path after '0::'");
        if (path[0] != '/')
            fail(node.Mark(), "cgroup path " + shown(path) + " is relative; " + example);
        if (path.size() > kMaxCgroupPathLength)
            fail(node.Mark(), "cgroup path " + shown(path) + " is longer than " +
                                  std::to_string(kMaxCgroupPathLength) + " characters");
        if (std::any_of(path.begin(), path.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
            fail(node.Mark(), "cgroup path " + shown(path) + " contains a control character; " + example);
        std::size_t start = 0;
        while (start <= path.size()) {
            auto end = path.find('/', start);
            if (end == std::string::npos)
                end = path.size();
            if (path.compare(start, end - start, "..") == 0)
                fail(node.Mark(), "cgroup path " + shown(path) + " contains '..'; write the path without it");
            start = end + 1;
        }
        cgroup_paths_.insert(path);
        if (cgroup_paths_.size() > kPolicyMaxCgroups)
            fail(node.Mark(), "cgroup " + shown(path) + " is one too many; a policy names at most " +
                                  std::to_string(kPolicyMaxCgroups) + " distinct cgroups over all rules");
        return CgroupSelector{path, {node.Mark().line + 1, node.Mark().column + 1}};
    }

    std::uint16_t parse_port(const YAML::Node& node, std::string_view text, const std::string& in_range) const
    {
        std::uint64_t port = 0;
        switch (parse_decimal(text, 65535, port)) {
        case Number::ok:
            if (port != 0)
                return static_cast<std::uint16_t>(port);
            [[fallthrough]];
        case Number::too_large:
            fail(node.Mark(), "port " + std::string(text) + in_range + " is out of range; expected 1..65535");
        case Number::leading_zero:
            fail(node.Mark(), "port " + std::string(text) + in_range + " has a leading zero; write it without");
        case Number::not_a_number:
            break;
        }
        fail(node.Mark(), "port " + shown(node.Scalar()) + " is malformed; expected " + kPortExpectation);
    }

    PortRange parse_port_range(const YAML::Node& node) const
    {
        const auto& text = node.Scalar();
        if (text.empty())
            fail(node.Mark(), std::string("port is an empty string; expected ") + kPortExpectation);
        std::uint64_t ignored = 0;
        if (text[0] == '-' && parse_decimal(std::string_view(text).substr(1), UINT64_MAX, ignored) == Number::ok)
            fail(node.Mark(), "port " + text + " is out of range; expected 1..65535");
        auto dash = text.find('-');
        if (dash == std::string::npos) {
            auto port = parse_port(node, text, "");
            return {port, port};
        }
        std::string_view first_text = std::string_view(text).substr(0, dash);
        std::string_view last_text = std::string_view(text).substr(dash + 1);
        if (parse_decimal(first_text, UINT64_MAX, ignored) == Number::not_a_number ||
            parse_decimal(last_text, UINT64_MAX, ignored) == Number::not_a_number)
            fail(node.Mark(), "port range " + shown(text) + " is malformed; expected " + kPortExpectation);
        auto in_range = " in range " + text;
        PortRange range{parse_port(node, first_text, in_range), parse_port(node, last_text, in_range)};
        if (range.first > range.last)
            fail(node.Mark(), "port range " + text + " is inverted; write " + std::string(last_text) + "-" +
                                  std::string(first_text));
        return range;
    }

    Cidr parse_cidr(const YAML::Node& node)
    {
        const auto& text = node.Scalar();
        auto slash = text.find('/');
        auto address_text = text.substr(0, slash);
        bool is_v6 = address_text.find(':') != std::string::npos;
        unsigned max_prefix = is_v6 ? 128 : 32;
        if (address_text.empty())
            fail(node.Mark(), "cidr " + shown(text) + " has no address; expected " + kCidrExpectation);
        // inet_pton stops at a NUL, which a quoted YAML string can hold ("\0"): refuse anything not address-like.
        if (address_text.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos)
            fail(node.Mark(), "cidr " + shown(text) + ": " + shown(address_text) + " is not an IPv4 or IPv6 "
                                  "address; expected " + kCidrExpectation);

        std::array<std::uint8_t, 16> address{};
        int parsed = is_v6 ? ::inet_pton(AF_INET6, address_text.c_str(), address.data())
                           : ::inet_pton(AF_INET, address_text.c_str(), address.data() + 12);
        if (parsed != 1)
            fail(node.Mark(), "cidr " + shown(text) + ": " + shown(address_text) + " is not an " +
                                  (is_v6 ? "IPv6" : "IPv4") + " address; expected " + kCidrExpectation);

        unsigned prefix = max_prefix;
        if (slash != std::string::npos) {
            std::uint64_t value = 0;
            auto prefix_text = std::string_view(text).substr(slash + 1);
            auto expected_prefix = "expected /0 to /" + std::to_string(max_prefix) + " for " +
                                   (is_v6 ? "IPv6" : "IPv4");
            switch (parse_decimal(prefix_text, 1000, value)) {
            case Number::ok:
                break;
            case Number::too_large:
                value = 1000;
                break;
            default:
                fail(node.Mark(), "cidr " + shown(text) + " has a malformed prefix length; " + expected_prefix);
            }
            if (value > max_prefix)
                fail(node.Mark(), "cidr " + shown(text) + ": prefix length " + std::string(prefix_text) +
                                      " is more than " + std::to_string(max_prefix) + "; " + expected_prefix);
            prefix = static_cast<unsigned>(value);
        }

        Cidr cidr;
        cidr.prefix_len = is_v6 ? prefix : prefix + 96;
        if (!is_v6) {
            address[10] = 0xff;
            address[11] = 0xff;
        }
        cidr.addr = address;
        for (unsigned bit = cidr.prefix_len; bit < 128; ++bit)
            cidr.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
        if (cidr.addr != address) {
            char network[INET6_ADDRSTRLEN] = {};
            ::inet_ntop(is_v6 ? AF_INET6 : AF_INET, is_v6 ? cidr.addr.data() : cidr.addr.data() + 12, network,
                        sizeof network);
            fail(node.Mark(), text + " has host bits set; did you mean " + network + "/" + std::to_string(prefix) +
                                  "?");
        }
        cidr.text = text;
        cidrs_.insert({cidr.addr, cidr.prefix_len});
        if (cidrs_.size() > kPolicyMaxCidrs)
            fail(node.Mark(), "cidr " + shown(text) + " is one too many; a policy names at most " +
                                  std::to_string(kPolicyMaxCidrs) + " distinct networks over all rules");
        return cidr;
    }

    const std::string& file_;
    std::map<std::string, int> name_lines_; // rule name -> line it was given on
    std::set<std::uint32_t> uids_;
    std::set<std::string> cgroup_paths_;
    std::set<std::pair<std::array<std::uint8_t, 16>, unsigned>> cidrs_;
};

} // namespace

std::string_view action_name(PolicyAction action)
{
    return action == PolicyAction::bypass ? "bypass" : "accelerate";
}

Policy default_policy()
{
    return Policy{};
}

Policy parse_policy(std::string_view text, const std::string& file)
{
    return PolicyParser(file).parse(text);
}

} // namespace sockmapd
