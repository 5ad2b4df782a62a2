// The cgroup v2 directory the sock_ops program attaches to.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "sockmapd/fd.hpp"

namespace sockmapd {

// The cgroup v2 mount point of this host, found in /proc/self/mountinfo.
std::string detect_cgroup2_root();

// Throws with one actionable sentence if path is missing, not a directory, or not on cgroup2.
void validate_cgroup_dir(const std::string& path);

Fd open_cgroup_dir(const std::string& path);

// The cgroup id the kernel reports (bpf_get_current_cgroup_id, bpftool): the directory's inode.
std::uint64_t cgroup_id(const std::string& path);

// cgroup v2 paths by id (the id sock_diag and BPF report). Opens the directory through a file handle built
// from the id instead of walking the hierarchy; needs CAP_DAC_READ_SEARCH. Results are cached.
class CgroupPaths {
public:
    // Without a cgroup v2 mount (or the right to open handles) nothing resolves; nothing throws.
    CgroupPaths();
    // The directory's path in this mount namespace, e.g. /sys/fs/cgroup/unified/app; empty if the cgroup
    // was removed or cannot be opened.
    std::optional<std::string> path(std::uint64_t id);

private:
    Fd root_;
    int handle_type_ = -1;
    std::map<std::uint64_t, std::optional<std::string>> cache_;
};

} // namespace sockmapd
