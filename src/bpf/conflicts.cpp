// Finding the sock_ops programs on a cgroup and its ancestors, and telling another sockmapd from other agents.
#include "sockmapd/conflicts.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "sockmapd/fd.hpp"
#include "sockmapd/kernel_object.hpp"
#include "sockmapd/mountinfo.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {
namespace {

namespace fs = std::filesystem;

bool on_cgroup2(const fs::path& dir)
{
    struct statfs st {};
    return ::statfs(dir.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

std::uint64_t inode_of(const fs::path& dir)
{
    struct stat st {};
    return ::stat(dir.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::uint32_t map_id(int fd)
{
    try {
        return map_info(fd, "pinned smd_sockhash").id;
    } catch (const std::exception&) {
        return 0;
    }
}

// Name and maps of a program; nothing when it cannot be opened (that takes CAP_SYS_ADMIN).
void describe_program(CgroupProgram& program)
{
    auto prog = program_by_id(program.id);
    if (!prog)
        return;
    program.name = prog->name;
    program.map_ids = prog->map_ids;
}

bool is_sockmapd_name(const std::string& name)
{
    return name.rfind("smd_", 0) == 0;
}

const PinnedInstance* instance_of(const CgroupProgram& program, const std::vector<PinnedInstance>& instances)
{
    for (const auto& instance : instances)
        if (std::find(program.map_ids.begin(), program.map_ids.end(), instance.sockhash_id) != program.map_ids.end())
            return &instance;
    if (program.name)
        return nullptr;
    for (const auto& instance : instances)
        if (instance.daemon_pid != 0 && instance.cgroup_id == program.cgroup_id)
            return &instance;
    return nullptr;
}

// "/sys/fs/bpf/a/" and "/sys/fs/bpf//a" are the pin path "/sys/fs/bpf/a".
fs::path normal_dir(const std::string& path)
{
    auto normal = fs::path(path).lexically_normal();
    return normal.has_filename() ? normal : normal.parent_path();
}

std::string join(const std::vector<SockOpsUser>& users)
{
    std::string text;
    for (const auto& user : users)
        text += (text.empty() ? "" : "; ") + describe_sock_ops_user(user);
    return text;
}

} // namespace

SockOpsConflicts classify_sock_ops(const std::vector<CgroupProgram>& programs,
                                   const std::vector<PinnedInstance>& instances, const std::string& own_pin_path)
{
    SockOpsConflicts conflicts;
    auto own = normal_dir(own_pin_path);
    for (const auto& program : programs) {
        const PinnedInstance* instance = instance_of(program, instances);
        SockOpsUser user{program, instance ? instance->pin_path : ""};
        if (instance && !own_pin_path.empty() && normal_dir(instance->pin_path) == own)
            continue;
        bool sockmapd = program.name ? is_sockmapd_name(*program.name) : instance != nullptr;
        (sockmapd ? conflicts.sockmapd : conflicts.others).push_back(std::move(user));
    }
    return conflicts;
}

std::vector<CgroupProgram> sock_ops_programs_up_from(const std::string& cgroup)
{
    std::vector<CgroupProgram> programs;
    std::error_code ec;
    fs::path dir = fs::weakly_canonical(cgroup, ec);
    if (ec)
        dir = fs::path(cgroup).lexically_normal();
    while (on_cgroup2(dir)) {
        Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        for (std::uint32_t id : fd ? attached_program_ids(fd.get(), BPF_CGROUP_SOCK_OPS) : std::vector<std::uint32_t>{}) {
            CgroupProgram program;
            program.cgroup = dir.string();
            program.cgroup_id = inode_of(dir);
            program.id = id;
            describe_program(program);
            programs.push_back(std::move(program));
        }
        if (!dir.has_parent_path() || dir.parent_path() == dir)
            break;
        dir = dir.parent_path();
    }
    return programs;
}

std::vector<PinnedInstance> pinned_instances()
{
    std::vector<PinnedInstance> instances;
    std::set<std::string> mounts;
    for (const auto& mount : read_mountinfo())
        if (mount.fs_type == "bpf")
            mounts.insert(mount.mount_point);
    for (const auto& mount : mounts) {
        std::error_code ec;
        fs::recursive_directory_iterator it(mount, fs::directory_options::skip_permission_denied, ec), end;
        for (; !ec && it != end; it.increment(ec)) {
            if (it.depth() > 3)
                it.disable_recursion_pending();
            if (it->path().filename() != "smd_sockhash")
                continue;
            Fd sockhash = open_pin(it->path());
            if (!sockhash)
                continue;
            PinnedInstance instance;
            instance.pin_path = it->path().parent_path().string();
            instance.sockhash_id = map_id(sockhash.get());
            Fd info = open_pin(instance.pin_path + "/smd_info");
            struct smd_info value {};
            std::uint32_t zero = 0;
            if (info && bpf_map_lookup_elem(info.get(), &zero, &value) == 0) {
                instance.cgroup_id = value.cgroup_id;
                instance.daemon_pid = value.daemon_pid;
            }
            instances.push_back(std::move(instance));
        }
    }
    return instances;
}

SockOpsConflicts find_sock_ops_conflicts(const std::string& cgroup, const std::string& own_pin_path)
{
    auto programs = sock_ops_programs_up_from(cgroup);
    if (programs.empty())
        return {};
    return classify_sock_ops(programs, pinned_instances(), own_pin_path);
}

std::string describe_sock_ops_user(const SockOpsUser& user)
{
    const auto& p = user.program;
    std::string text = p.name ? *p.name + " (prog id " + std::to_string(p.id) : "prog id " + std::to_string(p.id) + " (name unknown without CAP_SYS_ADMIN";
    if (!user.pin_path.empty())
        text += ", pins at " + user.pin_path;
    return text + ") attached to " + p.cgroup;
}

std::string another_sockmapd_message(const std::string& cgroup, const std::vector<SockOpsUser>& sockmapd)
{
    return "another sockmapd already runs sock_ops for cgroup " + cgroup + ": " + join(sockmapd) +
           "; a socket can be in only one sockmapd's sockhash, so this one would pair nothing. Stop that sockmapd, "
           "or pass a --cgroup outside its scope";
}

std::string other_sock_ops_message(const std::string& cgroup, const std::vector<SockOpsUser>& others)
{
    return "other sock_ops programs run for cgroup " + cgroup + ": " + join(others) +
           "; if one puts sockets into its own sockmap, sockmapd cannot pair them (insert_failed_refused)";
}

} // namespace sockmapd
