// sockmapd --check / sockmapctl doctor: probe the node, judge the facts, print a report with a verdict.
// Probing and judging are apart, so the verdict logic is unit-tested with made-up facts.
#include "sockmapd/doctor.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sockmapd/backpressure.hpp"
#include "sockmapd/bpffs.hpp"
#include "sockmapd/capabilities.hpp"
#include "sockmapd/cgroup.hpp"
#include "sockmapd/conflicts.hpp"
#include "sockmapd/datapath.hpp"
#include "sockmapd/error.hpp"
#include "sockmapd/fd.hpp"
#include "sockmapd/json_output.hpp"
#include "sockmapd/kernel_object.hpp"
#include "sockmapd/pinned.hpp"

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

// "name (id N)" of the programs attached (directly or inherited) to cgroup_fd at `type`.
std::vector<std::pair<std::string, std::uint32_t>> attached_programs(int cgroup_fd, enum bpf_attach_type type)
{
    std::vector<std::pair<std::string, std::uint32_t>> programs;
    for (std::uint32_t id : attached_program_ids(cgroup_fd, type, BPF_F_QUERY_EFFECTIVE)) {
        auto prog = program_by_id(id);
        programs.emplace_back(prog ? prog->name : "?", id);
    }
    return programs;
}

std::string named(const std::pair<std::string, std::uint32_t>& prog)
{
    return prog.first + " (id " + std::to_string(prog.second) + ")";
}

// "name (id N)", plus where it is attached when that is above the cgroup sockmapd would use.
std::string named(const SockOpsUser& user, const std::string& cgroup)
{
    const auto& p = user.program;
    std::string text = p.name.value_or("?") + " (id " + std::to_string(p.id);
    if (std::filesystem::path(p.cgroup).lexically_normal() != std::filesystem::path(cgroup).lexically_normal())
        text += ", on " + p.cgroup;
    return text + ")";
}

void probe_conflicts(EnvironmentFacts& facts)
{
    Fd cgroup(::open(facts.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup)
        return;
    auto sock_ops = find_sock_ops_conflicts(facts.cgroup, facts.pin_path);
    for (const auto& user : sock_ops.sockmapd)
        facts.other_sockmapd.push_back(describe_sock_ops_user(user));
    for (const auto& user : sock_ops.others)
        facts.foreign_sock_ops.push_back(named(user, facts.cgroup));
    for (auto type : {BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_UDP4_SENDMSG,
                      BPF_CGROUP_UDP6_SENDMSG})
        for (const auto& prog : attached_programs(cgroup.get(), type))
            if (prog.first.rfind("cil_", 0) == 0)
                facts.cilium_programs.push_back(named(prog) + " on " + libbpf_bpf_attach_type_str(type));

    std::string sockhash_pin = facts.pin_path + "/smd_sockhash";
    Fd sockhash = open_pin(sockhash_pin);
    if (!sockhash)
        return;
    for (std::uint32_t id : attached_program_ids(sockhash.get(), BPF_SK_MSG_VERDICT)) {
        auto prog = program_by_id(id);
        if (prog && prog->name != "smd_sk_msg")
            facts.foreign_sk_msg.push_back(prog->name + " (id " + std::to_string(id) + ")");
    }
}

// bpf_<name> by helper number, from the kernel's own enum bpf_func_id (its BTF); empty without BTF.
std::map<std::int32_t, std::string> kernel_helper_names()
{
    std::map<std::int32_t, std::string> names;
    struct btf* btf = btf__load_vmlinux_btf();
    if (!btf)
        return names;
    int id = btf__find_by_name_kind(btf, "bpf_func_id", BTF_KIND_ENUM);
    if (id > 0) {
        const struct btf_type* type = btf__type_by_id(btf, id);
        const struct btf_enum* value = btf_enum(type);
        for (int i = 0; i < btf_vlen(type); ++i, ++value) {
            std::string name = btf__name_by_offset(btf, value->name_off);
            if (name.rfind("BPF_FUNC_", 0) == 0)
                names[value->val] = "bpf_" + name.substr(9);
        }
    }
    btf__free(btf);
    return names;
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

void probe_kernel(EnvironmentFacts& facts)
{
    struct utsname uts {};
    if (::uname(&uts) == 0)
        facts.kernel_release = uts.release;
    struct stat st {};
    facts.btf = ::stat("/sys/kernel/btf/vmlinux", &st) == 0;

    struct ProgProbe { enum bpf_prog_type type; const char* name; };
    for (auto [type, name] : {ProgProbe{BPF_PROG_TYPE_SOCK_OPS, "sock_ops"}, ProgProbe{BPF_PROG_TYPE_SK_MSG, "sk_msg"}})
        facts.program_types.emplace_back(name, libbpf_probe_bpf_prog_type(type, nullptr) == 1);
    struct MapProbe { enum bpf_map_type type; const char* name; };
    for (auto [type, name] : {MapProbe{BPF_MAP_TYPE_SOCKHASH, "sockhash"}, MapProbe{BPF_MAP_TYPE_SK_STORAGE, "sk_storage"},
                              MapProbe{BPF_MAP_TYPE_HASH, "hash"},
                              MapProbe{BPF_MAP_TYPE_PERCPU_ARRAY, "percpu_array"},
                              MapProbe{BPF_MAP_TYPE_ARRAY, "array"}})
        facts.map_types.emplace_back(name, libbpf_probe_bpf_map_type(type, nullptr) == 1);
    // Every helper the BPF object's programs call, per program type (read from the object, not listed here).
    auto names = kernel_helper_names();
    for (auto call : helpers_called()) {
        auto type = static_cast<enum bpf_prog_type>(call.program_type);
        int probed = libbpf_probe_bpf_helper(type, static_cast<enum bpf_func_id>(call.helper), nullptr);
        if (probed == -EOPNOTSUPP) // tracing programs (the release iterator): libbpf cannot probe their helpers
            continue;
        auto name = names.count(call.helper) ? names[call.helper] : "helper " + std::to_string(call.helper);
        const char* type_name = libbpf_bpf_prog_type_str(type);
        facts.helpers.emplace_back(name + " (" + (type_name ? type_name : "?") + ")", probed == 1);
    }
    facts.backpressure_missing = backpressure_unavailable();
    facts.fionread_missing = fionread_unavailable();
}

EnvironmentFacts probe_environment(const std::string& cgroup, const std::string& pin_path)
{
    EnvironmentFacts facts;
    probe_kernel(facts);
    try {
        facts.cgroup2_mount = detect_cgroup2_root();
    } catch (const std::exception&) {
    }
    facts.cgroup = cgroup.empty() ? facts.cgroup2_mount : cgroup;
    try {
        validate_cgroup_dir(facts.cgroup);
    } catch (const std::exception& e) {
        facts.cgroup_error = e.what();
    }
    facts.pin_path = pin_path;
    try {
        facts.bpffs_mount_needed = plan_pin_path(pin_path).mount_bpffs;
    } catch (const std::exception& e) {
        facts.bpffs_error = e.what();
    }
    facts.cap_sys_admin = has_cap_sys_admin();
    facts.privileges_error = missing_privileges();
    if (facts.cgroup_error.empty())
        probe_conflicts(facts);
    return facts;
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
