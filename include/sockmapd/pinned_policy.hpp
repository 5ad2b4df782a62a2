// The policy in force as the pinned maps hold it, with per-rule decision counts: for `sockmapctl policy show`
// and the policy metrics. Works with or without a running daemon.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sockmapd/fd.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {

struct PolicyRuleReport {
    std::string name;
    std::string selectors; // summary as compiled, e.g. "uid=1337 ports=15001,15006"
    std::string action;    // "accelerate" or "bypass"
    std::uint64_t decisions = 0; // connections this rule decided since the policy was loaded
};

struct PolicyReport {
    std::string source; // "" for the built-in default
    std::string sha256;
    std::uint32_t generation = 0; // 0: no policy was ever loaded (the maps' zero state: accelerate everything)
    std::uint64_t loaded_unix = 0;
    std::string default_action;
    std::uint64_t default_decisions = 0; // connections no rule matched
    std::vector<PolicyRuleReport> rules;
};

class PinnedPolicy {
public:
    // Throws with a clear message if the policy maps are not pinned at pin_path.
    explicit PinnedPolicy(const std::string& pin_path);
    PolicyReport read() const;

private:
    Fd ctl_, slots_, rules_, hits_;
};

std::string format_policy_text(const PolicyReport& report);
std::string format_policy_json(const PolicyReport& report);

} // namespace sockmapd
