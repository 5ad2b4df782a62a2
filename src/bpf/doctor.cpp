// sockmapd --check / sockmapctl doctor: judge the facts, print a report with a verdict. Probing is apart
// (doctor_probe.cpp), so the verdict logic is unit-tested with made-up facts.
#include "sockmapd/doctor.hpp"

#include <cstdio>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/json_output.hpp"

namespace sockmapd {
namespace {

constexpr int kMinMajor = 5;
constexpr int kMinMinor = 15;

struct Version {
    int major = 0, minor = 0;
};

std::optional<Version> parse_release(const std::string& release)
{
    Version v;
    if (std::sscanf(release.c_str(), "%d.%d", &v.major, &v.minor) != 2)
        return std::nullopt;
    return v;
}

bool older(Version v, int major, int minor)
{
    return v.major < major || (v.major == major && v.minor < minor);
}

std::string join(const std::vector<std::string>& items)
{
    std::string out;
    for (const auto& item : items)
        out += (out.empty() ? "" : ", ") + item;
    return out;
}

void add(DoctorReport& report, std::string name, CheckStatus status, std::string detail, std::string remedy = "")
{
    report.checks.push_back({std::move(name), status, std::move(detail), std::move(remedy)});
}

const char* status_word(CheckStatus status)
{
    switch (status) {
    case CheckStatus::ok:
        return "ok";
    case CheckStatus::warn:
        return "warn";
    case CheckStatus::fail:
        return "FAIL";
    }
    return "?";
}

} // namespace

// Fixes by the mainline release that first carries them (stable kernels may carry backports: a warning then
// says to check the distribution's changelog). See docs/operations.md for the list and why each matters.
const std::vector<KnownKernelBug>& known_kernel_bugs()
{
    static const std::vector<KnownKernelBug> bugs{
        {6, 2, "bpf, sockmap: Fix data loss caused by using apply_bytes on ingress redirect",
         "ingress redirects limited by bpf_msg_apply_bytes() lose data; sockmapd never calls apply_bytes", false},
        {6, 2, "bpf, sockmap: Fix missing BPF_F_INGRESS flag when using apply_bytes",
         "the rest of an apply_bytes message goes to the wrong queue; sockmapd never calls apply_bytes", false},
        {6, 4, "bpf, sockmap: TCP data stall on recv before accept",
         "data queued to a socket before accept() can stall (sk_skb verdict path; sockmapd uses sk_msg)", false},
    };
    return bugs;
}

std::optional<bool> iter_tcp_refcount_fixed(const std::string& release)
{
    int major = 0, minor = 0, patch = 0;
    int fields = std::sscanf(release.c_str(), "%d.%d.%d", &major, &minor, &patch);
    if (fields < 2)
        return std::nullopt;
    if (major > 7 || (major == 7 && minor >= 2))
        return true;
    // The stable series that carry the fix, with the first release that does; the other series ended without it.
    static constexpr struct {
        int major, minor, patch;
    } kFixedIn[] = {{7, 1, 9}, {6, 18, 45}, {6, 12, 104}, {6, 6, 152}, {6, 1, 183}};
    for (const auto& fixed : kFixedIn)
        if (major == fixed.major && minor == fixed.minor)
            return patch >= fixed.patch;
    return false;
}

bool DoctorReport::usable() const
{
    for (const auto& check : checks)
        if (check.status == CheckStatus::fail)
            return false;
    return true;
}

DoctorReport evaluate_kernel(const EnvironmentFacts& facts)
{
    DoctorReport report;
    auto version = parse_release(facts.kernel_release);
    if (!version)
        add(report, "kernel", CheckStatus::warn, "cannot read the version in \"" + facts.kernel_release + "\"",
            "make sure it is Linux 5.15 or newer");
    else if (older(*version, kMinMajor, kMinMinor))
        add(report, "kernel", CheckStatus::fail, facts.kernel_release + " is older than 5.15",
            "use Linux 5.15 or newer");
    else
        add(report, "kernel", CheckStatus::ok, facts.kernel_release);

    if (version)
        for (const auto& bug : known_kernel_bugs())
            if (older(*version, bug.fixed_major, bug.fixed_minor))
                add(report, "kernel bug", bug.data_loss ? CheckStatus::fail : CheckStatus::warn,
                    std::string("without \"") + bug.subject + "\" (mainline " + std::to_string(bug.fixed_major) +
                        "." + std::to_string(bug.fixed_minor) + "): " + bug.effect,
                    bug.data_loss ? "upgrade the kernel, or check that your distribution backported the fix"
                                  : "");

    add(report, "btf", facts.btf ? CheckStatus::ok : CheckStatus::fail,
        facts.btf ? "/sys/kernel/btf/vmlinux present" : "/sys/kernel/btf/vmlinux is missing",
        facts.btf ? "" : "use a kernel built with CONFIG_DEBUG_INFO_BTF=y");
    for (const auto& [name, supported] : facts.program_types)
        add(report, "program type " + name, supported ? CheckStatus::ok : CheckStatus::fail,
            supported ? "supported" : "not supported by this kernel",
            supported ? "" : "use a kernel with CONFIG_CGROUP_BPF=y and CONFIG_BPF_STREAM_PARSER=y");
    for (const auto& [name, supported] : facts.map_types)
        add(report, "map type " + name, supported ? CheckStatus::ok : CheckStatus::fail,
            supported ? "supported" : "not supported by this kernel",
            supported ? "" : "use a kernel with CONFIG_BPF_STREAM_PARSER=y, 5.15 or newer");
    for (const auto& [name, supported] : facts.helpers)
        add(report, "helper " + name, supported ? CheckStatus::ok : CheckStatus::fail,
            supported ? "available" : "not available to this program type", supported ? "" : "use Linux 5.15 or newer");
    // Either gap would let an application tell that its connection is accelerated: sockmapd does not start.
    if (facts.backpressure_missing.empty())
        add(report, "backpressure", CheckStatus::ok,
            "sk_msg reads the receiver's redirect queue (sk_psock.msg_tot_len, bpf_rdonly_cast)");
    else
        add(report, "backpressure", CheckStatus::fail,
            facts.backpressure_missing + ": a receiver that stops reading would let its sender queue without bound",
            "use Linux 6.2 or newer");
    if (auto fixed = iter_tcp_refcount_fixed(facts.kernel_release); fixed && !*fixed)
        add(report, "iter/tcp", CheckStatus::warn,
            "without \"bpf: tcp: Fix use-after-free in bpf_iter_tcp_established_batch()\" (CVE-2026-74714): each "
            "run of the release iterator can, rarely, take a reference on a socket a SYN is being accepted on, which "
            "is then lost (refcount warning, leaked or freed socket). sockmapd runs it only for connections that leave "
            "the redirect, and by default raises no receive buffers (--raise-receive-buffers)",
            "use Linux 7.2, 7.1.9, 6.18.45, 6.12.104, 6.6.152, 6.1.183 or newer in their series; if your "
            "distribution backported the fix, pass --raise-receive-buffers on");
    if (facts.fionread_missing.empty())
        add(report, "FIONREAD", CheckStatus::ok, "counts the redirect queue of a socket in the sockhash (tcp_bpf_ioctl)");
    else
        add(report, "FIONREAD", CheckStatus::fail, facts.fionread_missing,
            "use a kernel with that fix (Linux 7.0, 6.18.14, 6.12.75, 6.6.128 or newer in their series)");
    return report;
}

DoctorReport evaluate(const EnvironmentFacts& facts)
{
    DoctorReport report = evaluate_kernel(facts);

    add(report, "cgroup v2", facts.cgroup2_mount.empty() ? CheckStatus::fail : CheckStatus::ok,
        facts.cgroup2_mount.empty() ? "no cgroup v2 mount" : "mounted at " + facts.cgroup2_mount,
        facts.cgroup2_mount.empty() ? "boot with systemd.unified_cgroup_hierarchy=1 or mount cgroup2" : "");
    add(report, "target cgroup", facts.cgroup_error.empty() ? CheckStatus::ok : CheckStatus::fail,
        facts.cgroup_error.empty() ? facts.cgroup : facts.cgroup_error,
        facts.cgroup_error.empty() ? "" : "pass --cgroup with a cgroup v2 directory");
    if (!facts.bpffs_error.empty())
        add(report, "bpffs", CheckStatus::fail, facts.bpffs_error, "mount bpffs at /sys/fs/bpf or pass another --pin-path");
    else if (facts.bpffs_mount_needed && facts.cap_sys_admin)
        add(report, "bpffs", CheckStatus::warn, bpffs_unmounted_with_admin(), bpffs_mount_remedy());
    else if (facts.bpffs_mount_needed)
        add(report, "bpffs", CheckStatus::fail, bpffs_unmounted_without_admin(), bpffs_mount_remedy());
    else
        add(report, "bpffs", CheckStatus::ok, "pin path " + facts.pin_path + " is usable");
    add(report, "privileges", facts.privileges_error.empty() ? CheckStatus::ok : CheckStatus::fail,
        facts.privileges_error.empty() ? "sufficient" : facts.privileges_error,
        facts.privileges_error.empty() ? "" : "run as root or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON");

    // Another sockmapd above or on the cgroup takes every socket first: this one would pair nothing (the daemon
    // refuses to start). Other agents do not stop sockmapd from working, but change what it accelerates.
    if (!facts.other_sockmapd.empty())
        add(report, "conflict", CheckStatus::fail,
            "another sockmapd already runs sock_ops for " + facts.cgroup + ": " + join(facts.other_sockmapd),
            "a socket can be in only one sockmapd's sockhash: stop that sockmapd, or use a cgroup outside its scope");
    if (!facts.foreign_sock_ops.empty())
        add(report, "conflict", CheckStatus::warn,
            "other sock_ops programs run in " + facts.cgroup + ": " + join(facts.foreign_sock_ops),
            "if one puts sockets into its own sockmap, sockmapd cannot insert them (insert_failed_refused); "
            "scope sockmapd to a cgroup the other agent does not manage");
    if (!facts.cilium_programs.empty())
        add(report, "conflict", CheckStatus::warn, "Cilium socket-LB programs run in " + facts.cgroup + ": " +
                                                       join(facts.cilium_programs),
            "do not run Cilium's sockops acceleration together with sockmapd; socket-LB alone is compatible");
    if (!facts.foreign_sk_msg.empty())
        add(report, "conflict", CheckStatus::fail,
            "sk_msg programs not from sockmapd are attached to " + facts.pin_path +
                "/smd_sockhash: " + join(facts.foreign_sk_msg),
            "detach them (bpftool prog detach ... msg_verdict pinned " + facts.pin_path + "/smd_sockhash)");
    if (facts.other_sockmapd.empty() && facts.foreign_sock_ops.empty() && facts.cilium_programs.empty() &&
        facts.foreign_sk_msg.empty())
        add(report, "conflicts", CheckStatus::ok,
            "no other sockmapd, sock_ops, Cilium socket-LB or sk_msg programs on " + facts.cgroup + " or above it");
    return report;
}

std::string format_doctor_text(const DoctorReport& report)
{
    std::ostringstream out;
    for (const auto& check : report.checks) {
        char status[8];
        std::snprintf(status, sizeof(status), "%-4s", status_word(check.status));
        out << status << "  " << check.name << ": " << check.detail << "\n";
        if (!check.remedy.empty() && check.status != CheckStatus::ok)
            out << "      -> " << check.remedy << "\n";
    }
    out << "verdict: " << (report.usable() ? "usable" : "NOT usable") << "\n";
    return out.str();
}

std::string format_doctor_json(const DoctorReport& report)
{
    nlohmann::ordered_json out;
    out["usable"] = report.usable();
    auto& checks = out["checks"] = nlohmann::ordered_json::array();
    for (const auto& check : report.checks)
        checks.push_back({{"name", check.name},
                          {"status", check.status == CheckStatus::ok     ? "ok"
                                     : check.status == CheckStatus::warn ? "warn"
                                                                         : "fail"},
                          {"detail", check.detail},
                          {"remedy", check.remedy}});
    return format_json(out);
}

int run_doctor(const std::string& cgroup, const std::string& pin_path, bool json)
{
    auto report = evaluate(probe_environment(cgroup, pin_path));
    std::cout << (json ? format_doctor_json(report) : format_doctor_text(report));
    return report.usable() ? 0 : 1;
}

} // namespace sockmapd
