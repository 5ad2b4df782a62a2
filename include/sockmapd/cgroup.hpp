// The cgroup v2 directory the sock_ops program attaches to.
#pragma once

#include <cstdint>
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

} // namespace sockmapd
