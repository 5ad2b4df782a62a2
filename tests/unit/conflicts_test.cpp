// Telling another sockmapd's sock_ops from another agent's, from made-up programs and pins.
#include "sockmapd/conflicts.hpp"

#include <gtest/gtest.h>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

CgroupProgram program(std::uint32_t id, std::optional<std::string> name, std::string cgroup, std::uint64_t cgroup_id,
                      std::vector<std::uint32_t> maps = {})
{
    CgroupProgram p;
    p.id = id;
    p.name = std::move(name);
    p.cgroup = std::move(cgroup);
    p.cgroup_id = cgroup_id;
    p.map_ids = std::move(maps);
    return p;
}

PinnedInstance instance(std::string pin_path, std::uint32_t sockhash_id, std::uint64_t cgroup_id, std::uint32_t pid)
{
    PinnedInstance i;
    i.pin_path = std::move(pin_path);
    i.sockhash_id = sockhash_id;
    i.cgroup_id = cgroup_id;
    i.daemon_pid = pid;
    return i;
}

TEST(ClassifySockOps, SmdNamesAreSockmapdWithTheirPinPath)
{
    auto conflicts = classify_sock_ops({program(812, "smd_sockops", "/sys/fs/cgroup/test", 50, {3, 7, 9}),
                                        program(900, "other_sockops", "/sys/fs/cgroup", 1, {4})},
                                       {instance("/sys/fs/bpf/a", 7, 50, 1234)}, "/sys/fs/bpf/b");
    ASSERT_EQ(conflicts.sockmapd.size(), 1u);
    EXPECT_EQ(conflicts.sockmapd[0].program.id, 812u);
    EXPECT_EQ(conflicts.sockmapd[0].pin_path, "/sys/fs/bpf/a");
    ASSERT_EQ(conflicts.others.size(), 1u);
    EXPECT_EQ(conflicts.others[0].program.id, 900u);
    EXPECT_EQ(conflicts.others[0].pin_path, "");
}

TEST(ClassifySockOps, OwnPinPathIsNotAConflict)
{
    auto conflicts = classify_sock_ops({program(812, "smd_sockops", "/sys/fs/cgroup/test", 50, {7})},
                                       {instance("/sys/fs/bpf/a/", 7, 50, 1234)}, "/sys/fs/bpf/a");
    EXPECT_TRUE(conflicts.sockmapd.empty());
    EXPECT_TRUE(conflicts.others.empty());
}

// An smd_ program whose pins are gone is still another sockmapd: the pin path is then unknown.
TEST(ClassifySockOps, SmdProgramWithoutPinsIsStillSockmapd)
{
    auto conflicts = classify_sock_ops({program(812, "smd_sockops", "/sys/fs/cgroup", 1, {7})}, {}, "/sys/fs/bpf/b");
    ASSERT_EQ(conflicts.sockmapd.size(), 1u);
    EXPECT_EQ(describe_sock_ops_user(conflicts.sockmapd[0]), "smd_sockops (prog id 812) attached to /sys/fs/cgroup");
}

// Without CAP_SYS_ADMIN a program's name is unknown; a running sockmapd's smd_info naming that cgroup says whose.
TEST(ClassifySockOps, NamelessProgramIsSockmapdWhenARunningInstanceServesThatCgroup)
{
    auto conflicts = classify_sock_ops({program(812, std::nullopt, "/sys/fs/cgroup/test", 50),
                                        program(813, std::nullopt, "/sys/fs/cgroup", 1)},
                                       {instance("/sys/fs/bpf/a", 7, 50, 1234), instance("/sys/fs/bpf/old", 8, 1, 0)},
                                       "/sys/fs/bpf/b");
    ASSERT_EQ(conflicts.sockmapd.size(), 1u);
    EXPECT_EQ(conflicts.sockmapd[0].program.id, 812u);
    EXPECT_EQ(conflicts.sockmapd[0].pin_path, "/sys/fs/bpf/a");
    ASSERT_EQ(conflicts.others.size(), 1u) << "a stopped sockmapd (pid 0) attaches nothing";
    EXPECT_EQ(conflicts.others[0].program.id, 813u);
    EXPECT_CONTAINS(describe_sock_ops_user(conflicts.others[0]), "prog id 813 (name unknown without CAP_SYS_ADMIN");
}

TEST(ConflictMessages, RefusalNamesTheOtherAttachmentAndWhatToDo)
{
    SockOpsUser other{program(812, "smd_sockops", "/sys/fs/cgroup/a", 50, {7}), "/sys/fs/bpf/a"};
    auto message = another_sockmapd_message("/sys/fs/cgroup/a/b", {other});
    EXPECT_CONTAINS(message, "another sockmapd already runs sock_ops for cgroup /sys/fs/cgroup/a/b");
    EXPECT_CONTAINS(message, "smd_sockops (prog id 812, pins at /sys/fs/bpf/a) attached to /sys/fs/cgroup/a");
    EXPECT_CONTAINS(message, "would pair nothing");
    EXPECT_CONTAINS(message, "Stop that sockmapd");
    EXPECT_EQ(message.find('\n'), std::string::npos);
    auto warning = other_sock_ops_message("/sys/fs/cgroup/a", {{program(9, "cil_sockops", "/sys/fs/cgroup", 1), ""}});
    EXPECT_CONTAINS(warning, "cil_sockops (prog id 9) attached to /sys/fs/cgroup");
    EXPECT_CONTAINS(warning, "insert_failed_refused");
}

} // namespace
} // namespace sockmapd
