// The bpffs directory where the daemon pins its maps.
#pragma once

#include <string>
#include <vector>

namespace sockmapd {

inline constexpr const char* kDefaultBpffsMount = "/sys/fs/bpf";
inline constexpr const char* kDefaultPinPath = "/sys/fs/bpf/sockmapd";

struct PinPathPlan {
    bool mount_bpffs = false; // bpffs is missing at kDefaultBpffsMount and must be mounted
};

// Checks, without changing anything, that pin_path is or can be a directory on bpffs.
PinPathPlan plan_pin_path(const std::string& pin_path);

// Carries out the plan: mounts bpffs if needed and creates pin_path (with parents). Returns the directories
// it created, outermost first, so that a failed start can remove them again.
std::vector<std::string> prepare_pin_path(const std::string& pin_path, const PinPathPlan& plan);

bool is_on_bpffs(const std::string& path);

// What --check and the daemon say when nothing is mounted at /sys/fs/bpf, with and without CAP_SYS_ADMIN, and
// what to do about it: one wording for both, so that they never disagree.
std::string bpffs_unmounted_with_admin();
std::string bpffs_unmounted_without_admin();
std::string bpffs_mount_remedy();

} // namespace sockmapd
