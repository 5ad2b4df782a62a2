// The acceleration policy: an ordered list of rules, first match wins, then a default action.
// Parsing and validation only; compiling it into BPF maps is policy_maps.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sockmapd/shared.h"

namespace sockmapd {

// Limits that keep the BPF side at fixed cost: rule matches are one 64-bit mask per selector kind. They are
// the sizes of the BPF maps, so they come from shared.h.
inline constexpr std::size_t kPolicyMaxRules = SMD_POLICY_MAX_RULES;
inline constexpr std::size_t kPolicyMaxNameLength = SMD_POLICY_NAME_MAX - 1; // NUL-terminated in smd_pol_rules
inline constexpr std::size_t kPolicyMaxUids = SMD_POLICY_MAX_SELECTORS;    // over all rules
inline constexpr std::size_t kPolicyMaxCgroups = SMD_POLICY_MAX_SELECTORS; // over all rules
inline constexpr std::size_t kPolicyMaxCidrs = SMD_POLICY_MAX_SELECTORS;   // over all rules
inline constexpr std::size_t kPolicyMaxFileBytes = 1 << 20;

enum class PolicyAction { accelerate, bypass };

std::string_view action_name(PolicyAction action);

// Where something was written in the policy file; 1-based, 0 when unknown.
struct SourcePosition {
    int line = 0;
    int column = 0;
};

struct PortRange {
    std::uint16_t first = 0;
    std::uint16_t last = 0; // inclusive, >= first
};

// An IPv4 or IPv6 network. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) with prefix_len + 96, which is how
// the BPF side sees every address; text keeps what the user wrote, for messages and `policy show`.
struct Cidr {
    std::array<std::uint8_t, 16> addr{}; // network byte order, host bits zero
    unsigned prefix_len = 0;             // 0..128, in the IPv6 (mapped) space
    std::string text;
};

struct CgroupSelector {
    std::string path; // as written: a path in the cgroup v2 hierarchy, e.g. /kubepods.slice (see docs/policy.md)
    SourcePosition position;
};

struct PolicyRule {
    std::string name;
    PolicyAction action = PolicyAction::accelerate;
    std::vector<std::uint32_t> uids;      // empty: any
    std::vector<CgroupSelector> cgroups;  // empty: any
    std::vector<PortRange> ports;         // empty: any
    std::vector<Cidr> cidrs;              // empty: any
    SourcePosition position;              // of the rule's first key
};

struct Policy {
    PolicyAction default_action = PolicyAction::accelerate;
    std::vector<PolicyRule> rules;
    std::string source;  // file it was read from; "" for the built-in default
    std::string sha256;  // hex digest of the file's bytes; "" for the built-in default
};

// A policy error: "FILE:LINE:COLUMN: what is wrong; what was expected" (line/column omitted when unknown).
class PolicyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The policy in force without --policy: no rules, accelerate every local pair.
Policy default_policy();

// Parses and validates YAML text; file names the source in messages. Throws PolicyError. Does not look at
// the file system (cgroup paths are checked by resolve_cgroup_ids).
Policy parse_policy(std::string_view text, const std::string& file);

// Reads path (following symlinks), refusing a missing or non-regular file, a world-writable one and one
// larger than kPolicyMaxFileBytes, then parse_policy. Throws PolicyError.
Policy load_policy_file(const std::string& path);

// The cgroup ids (kernfs inode numbers) of a rule's cgroup selectors, resolved below cgroup2_root (the cgroup
// v2 mount point). Throws PolicyError naming file:line:column when a path does not exist or is not a cgroup v2
// directory.
std::vector<std::uint64_t> resolve_cgroup_ids(const Policy& policy, const PolicyRule& rule,
                                              const std::string& cgroup2_root);

// Human-readable one-line summary of a rule's selectors, e.g. "uid=1337 ports=15001,15006 cidrs=10.0.0.0/8".
std::string describe_selectors(const PolicyRule& rule);

} // namespace sockmapd
