// BPF objects in the kernel by fd, id or pin: the one place that asks the kernel about them.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sockmapd/fd.hpp"

namespace sockmapd {

// The object pinned at path; an empty Fd, errno set, when nothing is pinned there or it cannot be opened.
Fd open_pin(const std::string& path);

// What the kernel says of the map behind fd; throws "inspect <what>: <errno>" when it will not say.
struct bpf_map_info map_info(int fd, const std::string& what);

struct ProgramSummary {
    std::uint32_t id = 0;
    std::string name;
    enum bpf_prog_type type = BPF_PROG_TYPE_UNSPEC;
    std::vector<std::uint32_t> map_ids; // the first 64 maps it uses
    std::uint64_t run_count = 0;         // needs sysctl kernel.bpf_stats_enabled=1
    std::uint64_t run_time_ns = 0;
};

// The program behind fd, or by id; nothing when it is gone or cannot be opened (that takes CAP_SYS_ADMIN).
std::optional<ProgramSummary> program_summary(int fd);
std::optional<ProgramSummary> program_by_id(std::uint32_t id);

// Ids of the programs attached to target_fd (a cgroup, or a sockhash for sk_msg) at `type`; with
// BPF_F_QUERY_EFFECTIVE, those inherited from ancestor cgroups too. Empty when the query fails.
std::vector<std::uint32_t> attached_program_ids(int target_fd, enum bpf_attach_type type, std::uint32_t flags = 0);

} // namespace sockmapd
