// Parsing /proc/self/mountinfo: where cgroup v2 and bpffs are mounted.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sockmapd {

struct MountEntry {
    std::string mount_point;
    std::string fs_type;
};

// Lines that do not parse are skipped; octal escapes (\040) in mount points are decoded.
std::vector<MountEntry> parse_mountinfo(std::string_view text);

// The first cgroup2 mount point, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified on hybrid hosts.
std::optional<std::string> find_mount(const std::vector<MountEntry>& mounts, std::string_view fs_type);

std::vector<MountEntry> read_mountinfo();

} // namespace sockmapd
