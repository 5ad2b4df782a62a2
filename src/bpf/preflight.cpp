// Privilege and kernel-feature probes run before the daemon touches the system.
#include "sockmapd/preflight.hpp"

#include "sockmapd/doctor.hpp"

#include <linux/capability.h>
#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace sockmapd {
namespace {

std::uint64_t effective_capabilities()
{
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("CapEff:", 0) == 0)
            return std::stoull(line.substr(7), nullptr, 16);
    return 0;
}

bool has_cap(std::uint64_t caps, int cap)
{
    return caps & (std::uint64_t{1} << cap);
}

} // namespace

std::vector<PreflightIssue> check_privileges()
{
    std::uint64_t caps = effective_capabilities();
    bool admin = has_cap(caps, CAP_SYS_ADMIN);
    bool split = has_cap(caps, CAP_BPF) && has_cap(caps, CAP_NET_ADMIN) && has_cap(caps, CAP_PERFMON);
    if (admin || split)
        return {};
    return {{"missing privileges: sockmapd needs CAP_SYS_ADMIN, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON",
             "run it as root or grant those capabilities (systemd AmbientCapabilities=, Kubernetes securityContext)"}};
}

bool has_cap_sys_admin()
{
    return has_cap(effective_capabilities(), CAP_SYS_ADMIN);
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

} // namespace sockmapd
