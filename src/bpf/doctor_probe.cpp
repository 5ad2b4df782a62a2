// The doctor's facts, probed from this node: kernel, BTF, program and map types, the helpers the BPF object
// calls, cgroup, bpffs, privileges and conflicting programs. doctor.cpp judges them.
#include "sockmapd/doctor.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cerrno>
#include <filesystem>
#include <map>

#include "sockmapd/backpressure.hpp"
#include "sockmapd/bpffs.hpp"
#include "sockmapd/capabilities.hpp"
#include "sockmapd/cgroup.hpp"
#include "sockmapd/conflicts.hpp"
#include "sockmapd/datapath.hpp"
#include "sockmapd/fd.hpp"
#include "sockmapd/kernel_object.hpp"

namespace sockmapd {
namespace {

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

} // namespace

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

} // namespace sockmapd
