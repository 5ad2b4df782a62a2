// Checks made before the daemon changes anything: privileges and kernel features.
#pragma once

#include <string>
#include <vector>

#include "sockmapd/bpffs.hpp"

namespace sockmapd {

struct PreflightIssue {
    std::string what;  // what is wrong
    std::string remedy; // what to do
};

// Capabilities the daemon needs: CAP_SYS_ADMIN, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON.
std::vector<PreflightIssue> check_privileges();

// A plan that mounts bpffs needs CAP_SYS_ADMIN: without it, say so before anything changes.
std::vector<PreflightIssue> check_bpffs_mount(const PinPathPlan& plan);

// What the running kernel offers, probed once (BTF, map and program types, helpers, known bugs).
struct KernelReport {
    std::vector<PreflightIssue> refusals; // features the data path cannot do without
    // Checks that only warn (known kernel bugs off sockmapd's data path, iter/tcp): logged once the daemon is past
    // every refusal, so that a refusal stays one line.
    std::vector<std::string> warnings;
    std::string release; // uname -r
};
KernelReport check_kernel();

} // namespace sockmapd
