// Reads the policy in force and its decision counts from the pinned policy maps.
#include "sockmapd/pinned_policy.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <ctime>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "sockmapd/error.hpp"
#include "sockmapd/json_output.hpp"
#include "sockmapd/pinned_map.hpp"

namespace sockmapd {
namespace {

const char* action_text(std::uint32_t action)
{
    return action == SMD_ACTION_BYPASS ? "bypass" : "accelerate";
}

template <typename Value>
Value lookup(int fd, std::uint32_t index, const char* what)
{
    Value value {};
    if (bpf_map_lookup_elem(fd, &index, &value) != 0)
        throw_errno(errno, std::string("read ") + what);
    return value;
}

std::uint64_t sum_hits(int fd, std::uint32_t index, int ncpus)
{
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(ncpus));
    if (bpf_map_lookup_elem(fd, &index, per_cpu.data()) != 0)
        throw_errno(errno, "read smd_pol_hits");
    std::uint64_t total = 0;
    for (auto n : per_cpu)
        total += n;
    return total;
}

std::string format_time(std::uint64_t unix_seconds)
{
    if (!unix_seconds)
        return "-";
    auto t = static_cast<std::time_t>(unix_seconds);
    struct tm utc {};
    ::gmtime_r(&t, &utc);
    std::ostringstream out;
    out << std::put_time(&utc, "%Y-%m-%dT%H:%M:%SZ");
    return out.str();
}

} // namespace

PinnedPolicy::PinnedPolicy(const std::string& pin_path)
    : ctl_(open_pinned_map(pin_path, "smd_pol_ctl")),
      slots_(open_pinned_map(pin_path, "smd_pol_slots")),
      rules_(open_pinned_map(pin_path, "smd_pol_rules")),
      hits_(open_pinned_map(pin_path, "smd_pol_hits"))
{
}

PolicyReport PinnedPolicy::read() const
{
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus < 0)
        throw_errno(-ncpus, "count possible CPUs");
    auto ctl = lookup<struct smd_policy_ctl>(ctl_.get(), 0, "smd_pol_ctl");
    std::uint32_t slot = ctl.active_slot & (SMD_POLICY_SLOTS - 1);
    auto compiled = lookup<struct smd_policy_slot>(slots_.get(), slot, "smd_pol_slots");

    PolicyReport report;
    report.source = bounded_string(ctl.source);
    report.sha256 = bounded_string(ctl.sha256);
    report.generation = ctl.generation;
    report.loaded_unix = ctl.loaded_unix;
    report.default_action = action_text(compiled.default_action);
    report.default_decisions = sum_hits(hits_.get(), slot * SMD_POLICY_HITS_PER_SLOT + SMD_POLICY_DEFAULT_RULE, ncpus);
    for (std::uint32_t rule = 0; rule < SMD_POLICY_MAX_RULES && rule < ctl.nrules; ++rule) {
        auto value = lookup<struct smd_policy_rule>(rules_.get(), slot * SMD_POLICY_MAX_RULES + rule, "smd_pol_rules");
        report.rules.push_back({.name = bounded_string(value.name),
                                .selectors = bounded_string(value.selectors),
                                .action = action_text(value.action),
                                .decisions = sum_hits(hits_.get(), slot * SMD_POLICY_HITS_PER_SLOT + rule, ncpus)});
    }
    return report;
}

std::string format_policy_text(const PolicyReport& report)
{
    std::ostringstream out;
    if (report.generation == 0) {
        out << "policy:     none loaded (every local pair is accelerated)\n";
        return out.str();
    }
    out << "policy:     " << (report.source.empty() ? "built-in default (no --policy)" : report.source) << "\n";
    if (!report.sha256.empty())
        out << "sha256:     " << report.sha256 << "\n";
    out << "loaded:     " << format_time(report.loaded_unix) << " (generation " << report.generation << ")\n";
    out << "\n";
    std::size_t name_width = 7;
    for (const auto& rule : report.rules)
        name_width = std::max(name_width, rule.name.size());
    out << std::left << std::setw(4) << "#" << std::setw(static_cast<int>(name_width) + 2) << "RULE"
        << std::setw(12) << "ACTION" << std::right << std::setw(12) << "DECISIONS" << "  SELECTORS\n";
    std::size_t index = 0;
    for (const auto& rule : report.rules) {
        out << std::left << std::setw(4) << ++index << std::setw(static_cast<int>(name_width) + 2) << rule.name
            << std::setw(12) << rule.action << std::right << std::setw(12) << rule.decisions << "  "
            << (rule.selectors.empty() ? "(any)" : rule.selectors) << "\n";
    }
    out << std::left << std::setw(4) << "-" << std::setw(static_cast<int>(name_width) + 2) << "default"
        << std::setw(12) << report.default_action << std::right << std::setw(12) << report.default_decisions
        << "  (no rule matched)\n";
    return out.str();
}

std::string format_policy_json(const PolicyReport& report)
{
    nlohmann::ordered_json out;
    out["source"] = report.source;
    out["sha256"] = report.sha256;
    out["generation"] = report.generation;
    out["loaded_unix"] = report.loaded_unix;
    out["default"] = {{"action", report.default_action}, {"decisions", report.default_decisions}};
    auto& rules = out["rules"] = nlohmann::ordered_json::array();
    for (const auto& rule : report.rules)
        rules.push_back({{"name", rule.name},
                         {"action", rule.action},
                         {"selectors", rule.selectors},
                         {"decisions", rule.decisions}});
    return format_json(out);
}

} // namespace sockmapd
