// Privilege and kernel-feature probes run before the daemon touches the system.
#include "sockmapd/preflight.hpp"

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
KernelReport check_kernel()
{
    EnvironmentFacts facts;
    probe_kernel(facts);
    KernelReport report;
    report.release = facts.kernel_release;
    for (const auto& check : evaluate_kernel(facts).checks) {
        if (check.status == CheckStatus::fail)
            report.refusals.push_back(
                {check.name + ": " + check.detail, check.remedy + " (sockmapd --check shows all checks)"});
        else if (check.status == CheckStatus::warn)
            report.warnings.push_back(check.name + ": " + check.detail +
                                      (check.remedy.empty() ? "" : "; " + check.remedy));
    }
    return report;
}

} // namespace sockmapd
