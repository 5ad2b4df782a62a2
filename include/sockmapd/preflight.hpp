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

// BTF, map and program types and helpers the data path uses (probed in the running kernel).
std::vector<PreflightIssue> check_kernel_features();
// The kernel checks that only warn (known kernel bugs off sockmapd's data path, iter/tcp): one log line each, once
// the daemon is past every refusal, so that a refusal stays one line.
void log_kernel_warnings();

} // namespace sockmapd
