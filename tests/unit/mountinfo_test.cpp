// parse_mountinfo and find_mount on the mount tables of real host layouts.
#include "sockmapd/mountinfo.hpp"

#include <gtest/gtest.h>

namespace sockmapd {
namespace {

// A systemd host with the unified hierarchy only.
constexpr std::string_view kPureV2Host =
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n"
    "25 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "26 24 0:27 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:5 - bpf bpf rw,mode=700\n";

// This build machine's /proc/self/mountinfo: tmpfs at /sys/fs/cgroup, v1 controllers, cgroup2 in unified/.
constexpr std::string_view kHybridHost =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "42 23 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw,mode=700\n";

TEST(ParseMountinfo, PureV2HostFindsCgroupRootAndBpffs)
{
    auto mounts = parse_mountinfo(kPureV2Host);
    ASSERT_EQ(mounts.size(), 5u);
    EXPECT_EQ(mounts[3].mount_point, "/sys/fs/cgroup");
    EXPECT_EQ(mounts[3].fs_type, "cgroup2");
    EXPECT_EQ(find_mount(mounts, "cgroup2"), "/sys/fs/cgroup");
    EXPECT_EQ(find_mount(mounts, "bpf"), "/sys/fs/bpf");
}

TEST(ParseMountinfo, HybridHostFindsUnifiedNotTheTmpfsOrV1Controllers)
{
    auto mounts = parse_mountinfo(kHybridHost);
    ASSERT_EQ(mounts.size(), 9u);
    EXPECT_EQ(mounts[3].fs_type, "tmpfs");
    EXPECT_EQ(mounts[4].fs_type, "cgroup");
    EXPECT_EQ(find_mount(mounts, "cgroup2"), "/sys/fs/cgroup/unified");
    EXPECT_EQ(find_mount(mounts, "bpf"), "/sys/fs/bpf");
}

TEST(ParseMountinfo, OptionalFieldsBeforeTheSeparatorAreSkipped)
{
    auto mounts = parse_mountinfo("30 25 0:40 / /mnt/cg rw shared:1 master:2 propagate_from:3 unbindable - "
                                  "cgroup2 none rw\n");
    ASSERT_EQ(mounts.size(), 1u);
    EXPECT_EQ(mounts[0].mount_point, "/mnt/cg");
    EXPECT_EQ(mounts[0].fs_type, "cgroup2");
}

TEST(ParseMountinfo, OctalEscapesInMountPointsAreDecoded)
{
    // The kernel escapes space, tab, newline and backslash in paths; \040 may end the field.
    auto mounts = parse_mountinfo("30 25 0:40 / /mnt/my\\040cgroup\\011dir\\134x rw - cgroup2 none rw\n"
                                  "31 25 0:41 / /mnt/trailing\\040 rw - bpf bpf rw\n");
    ASSERT_EQ(mounts.size(), 2u);
    EXPECT_EQ(mounts[0].mount_point, "/mnt/my cgroup\tdir\\x");
    EXPECT_EQ(mounts[1].mount_point, "/mnt/trailing ");
}

TEST(ParseMountinfo, MalformedLinesAreSkippedAndTheRestKept)
{
    auto mounts = parse_mountinfo("\n"
                                  "garbage\n"
                                  "30 25 0:40 / /no/separator rw shared:1 cgroup2 none rw\n"
                                  "31 25 0:41 / /nothing/after/separator rw -\n"
                                  "32 25 0:42 /\n"
                                  "33 25 0:43 / /good rw - cgroup2 none rw");
    ASSERT_EQ(mounts.size(), 1u);
    EXPECT_EQ(mounts[0].mount_point, "/good");
}

TEST(FindMount, ReturnsTheFirstMatchInFileOrder)
{
    std::vector<MountEntry> mounts = {
        {"/sys/fs/cgroup", "tmpfs"}, {"/first", "cgroup2"}, {"/second", "cgroup2"}, {"/sys/fs/bpf", "bpf"}};
    EXPECT_EQ(find_mount(mounts, "cgroup2"), "/first");
    EXPECT_EQ(find_mount(mounts, "bpf"), "/sys/fs/bpf");
}

TEST(FindMount, NulloptWhenTheFilesystemIsAbsent)
{
    auto v1_only = parse_mountinfo("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                                   "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
    EXPECT_EQ(find_mount(v1_only, "cgroup2"), std::nullopt);
    EXPECT_EQ(find_mount(v1_only, "bpf"), std::nullopt);
    EXPECT_EQ(find_mount({}, "cgroup2"), std::nullopt);
}

} // namespace
} // namespace sockmapd
