// Who else runs sock_ops where sockmapd would attach: another sockmapd there (or above) can only make this one
// pair nothing, so it is refused; another agent's program is a warning. Probing and judging are apart, so the
// judgement is unit-tested with made-up programs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sockmapd {

// A sock_ops program attached directly to one cgroup directory on the way from the target up to the root.
struct CgroupProgram {
    std::string cgroup;                  // the directory it is attached to
    std::uint64_t cgroup_id = 0;
    std::uint32_t id = 0;
    std::optional<std::string> name;     // unknown without CAP_SYS_ADMIN (BPF_PROG_GET_FD_BY_ID)
    std::vector<std::uint32_t> map_ids;  // the maps it uses, when it could be opened
};

// A sockmapd pin directory found on bpffs.
struct PinnedInstance {
    std::string pin_path;
    std::uint32_t sockhash_id = 0;
    std::uint64_t cgroup_id = 0;  // from its smd_info
    std::uint32_t daemon_pid = 0; // 0: no daemon runs on it
};

struct SockOpsUser {
    CgroupProgram program;
    std::string pin_path; // of the sockmapd it belongs to; empty if not known
};

struct SockOpsConflicts {
    std::vector<SockOpsUser> sockmapd; // another sockmapd's sock_ops: this one cannot work
    std::vector<SockOpsUser> others;   // another agent's: may take sockets first
};

// A program is sockmapd's when its name starts with smd_, or, nameless, when it sits on the cgroup a running
// sockmapd's smd_info names. Programs that use own_pin_path's maps are this sockmapd's own and left out.
SockOpsConflicts classify_sock_ops(const std::vector<CgroupProgram>& programs,
                                   const std::vector<PinnedInstance>& instances, const std::string& own_pin_path);

// BPF_PROG_QUERY of BPF_CGROUP_SOCK_OPS on `cgroup` and every directory above it on the same cgroup v2 mount.
std::vector<CgroupProgram> sock_ops_programs_up_from(const std::string& cgroup);
// Every directory on a bpffs mount (a few levels deep) with a pinned smd_sockhash.
std::vector<PinnedInstance> pinned_instances();

SockOpsConflicts find_sock_ops_conflicts(const std::string& cgroup, const std::string& own_pin_path);

// "smd_sockops (prog id 812, pins at /sys/fs/bpf/a) attached to /sys/fs/cgroup/x"
std::string describe_sock_ops_user(const SockOpsUser& user);

// The one-line refusal of a second sockmapd, naming the first.
std::string another_sockmapd_message(const std::string& cgroup, const std::vector<SockOpsUser>& sockmapd);
// The warning about other agents' sock_ops programs.
std::string other_sock_ops_message(const std::string& cgroup, const std::vector<SockOpsUser>& others);

} // namespace sockmapd
