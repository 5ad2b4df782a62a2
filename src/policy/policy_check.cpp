// `sockmapctl policy check`: load, validate and resolve a policy file, and report it in one line or JSON.
#include "sockmapd/policy_check.hpp"

#include <nlohmann/json.hpp>

#include "sockmapd/cgroup.hpp"
#include "sockmapd/json_output.hpp"

namespace sockmapd {

std::string check_policy_file(const std::string& path, bool json, const std::string& cgroup2_root)
{
    auto policy = load_policy_file(path);
    std::string root = cgroup2_root;
    for (const auto& rule : policy.rules) {
        if (rule.cgroups.empty())
            continue;
        if (root.empty())
            root = detect_cgroup2_root();
        resolve_cgroup_ids(policy, rule, root);
    }
    return format_policy_check(policy, json);
}

std::string format_policy_check(const Policy& policy, bool json)
{
    auto default_action = std::string(action_name(policy.default_action));
    if (!json) {
        auto count = policy.rules.size();
        return policy.source + ": ok: " + std::to_string(count) + (count == 1 ? " rule" : " rules") + ", default " +
               default_action + "\n";
    }
    auto rules = nlohmann::ordered_json::array();
    for (const auto& rule : policy.rules)
        rules.push_back({{"name", rule.name},
                         {"action", std::string(action_name(rule.action))},
                         {"selectors", describe_selectors(rule)},
                         {"line", rule.position.line}});
    nlohmann::ordered_json report{{"file", policy.source}, {"ok", true},          {"sha256", policy.sha256},
                                  {"default", default_action}, {"rules", rules}};
    return format_json(report);
}

std::string format_policy_check_error(const std::string& path, const std::string& message)
{
    return format_error_json(message, {{"file", path}, {"ok", false}});
}

} // namespace sockmapd
