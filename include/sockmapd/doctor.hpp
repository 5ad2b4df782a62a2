// sockmapd --check and sockmapctl doctor: what this node offers sockmapd, as a report with a verdict.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sockmapd {

enum class CheckStatus { ok, warn, fail };

struct CheckResult {
    std::string name;   // "kernel", "btf", "map type sockhash", ...
    CheckStatus status = CheckStatus::ok;
    std::string detail; // what was found
    std::string remedy; // what to do; empty when ok
};

// The raw facts, probed from the running system or made up by a unit test.
struct EnvironmentFacts {
    std::string kernel_release; // uname -r
    bool btf = false;
    std::vector<std::pair<std::string, bool>> program_types; // name, supported
    std::vector<std::pair<std::string, bool>> map_types;
    std::vector<std::pair<std::string, bool>> helpers;
    std::string backpressure_missing; // empty when sk_msg can read a receiver's redirect queue
    std::string fionread_missing;     // empty when FIONREAD counts a paired socket's redirect queue
    std::string cgroup2_mount;  // empty: no cgroup v2 mount
    std::string cgroup;         // the cgroup sockmapd would attach to
    std::string cgroup_error;   // empty when cgroup is a usable cgroup v2 directory
    std::string pin_path;
    std::string bpffs_error;    // empty when pin_path is (or can be) on bpffs
    bool bpffs_mount_needed = false; // nothing at /sys/fs/bpf: the daemon would mount it
    bool cap_sys_admin = false;      // what mounting it takes
    std::string privileges_error; // empty when the privileges suffice
    std::vector<std::string> other_sockmapd;   // another sockmapd's sock_ops on the cgroup or above it
    std::vector<std::string> foreign_sock_ops; // "name (id N)" on the cgroup or above it, not sockmapd's
    std::vector<std::string> cilium_programs;  // cil_* socket-LB programs attached to the cgroup
    std::vector<std::string> foreign_sk_msg;   // sk_msg programs on our pinned sockhash that are not ours
};

// A sockmap fix that sockmapd cares about, by the mainline release that first carries it.
struct KnownKernelBug {
    int fixed_major;
    int fixed_minor;
    const char* subject; // the upstream commit subject
    const char* effect;  // what goes wrong for sockmapd without it
    bool data_loss;      // on sockmapd's data path: refuse; otherwise warn
};
const std::vector<KnownKernelBug>& known_kernel_bugs();

// Whether the kernel has "bpf: tcp: Fix use-after-free in bpf_iter_tcp_established_batch()" (CVE-2026-74714),
// judged by its release: mainline 7.2, or 7.1.9, 6.18.45, 6.12.104, 6.6.152, 6.1.183 or later in those stable
// series. Without it, an iter/tcp run can take a reference on a request socket that a concurrent SYN is inserting
// into the established hash, and the reference is lost (a refcount warning, then a leaked or freed socket): the
// more often the release iterator runs in a namespace that accepts connections, the likelier. nullopt: the release
// cannot be read. A distribution kernel may carry the fix under an older number.
std::optional<bool> iter_tcp_refcount_fixed(const std::string& release);

struct DoctorReport {
    std::vector<CheckResult> checks;
    bool usable() const; // no check failed
};

DoctorReport evaluate(const EnvironmentFacts& facts);
// Only the checks on the kernel (version, known bugs, BTF, program and map types, helpers): what the daemon
// refuses to start without.
DoctorReport evaluate_kernel(const EnvironmentFacts& facts);
void probe_kernel(EnvironmentFacts& facts);

// Probes this machine for sockmapd attaching to `cgroup` (empty: the cgroup v2 root) with pins at pin_path.
EnvironmentFacts probe_environment(const std::string& cgroup, const std::string& pin_path);

std::string format_doctor_text(const DoctorReport& report);
std::string format_doctor_json(const DoctorReport& report);

// The shared body of `sockmapd --check` and `sockmapctl doctor`: prints the report, returns 0 usable, 1 not.
int run_doctor(const std::string& cgroup, const std::string& pin_path, bool json);

} // namespace sockmapd
