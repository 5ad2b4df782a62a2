// Privilege and kernel-feature probes run before the daemon touches the system.
#include "sockmapd/preflight.hpp"

#include <spdlog/spdlog.h>

#include <string>

#include "sockmapd/capabilities.hpp"
#include "sockmapd/doctor.hpp"

namespace sockmapd {

std::vector<PreflightIssue> check_privileges()
{
    std::string missing = missing_privileges();
    if (missing.empty())
        return {};
    return {{missing,
             "run it as root or grant those capabilities (systemd AmbientCapabilities=, Kubernetes securityContext)"}};
}

std::vector<PreflightIssue> check_bpffs_mount(const PinPathPlan& plan)
{
    if (!plan.mount_bpffs || has_cap_sys_admin())
        return {};
    return {{bpffs_unmounted_without_admin(), bpffs_mount_remedy()}};
}

// The kernel half of sockmapd --check (doctor.cpp), so that the daemon and the report never disagree.
std::vector<PreflightIssue> check_kernel_features()
{
    EnvironmentFacts facts;
    probe_kernel(facts);
    std::vector<PreflightIssue> issues;
    for (const auto& check : evaluate_kernel(facts).checks)
        if (check.status == CheckStatus::fail)
            issues.push_back({check.name + ": " + check.detail, check.remedy + " (sockmapd --check shows all checks)"});
    return issues;
}

void log_kernel_warnings()
{
    EnvironmentFacts facts;
    probe_kernel(facts);
    for (const auto& check : evaluate_kernel(facts).checks)
        if (check.status == CheckStatus::warn)
            spdlog::warn("{}: {}{}", check.name, check.detail, check.remedy.empty() ? "" : "; " + check.remedy);
}

} // namespace sockmapd
