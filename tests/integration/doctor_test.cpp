// sockmapd --check and sockmapctl doctor on this machine: usable; a foreign sock_ops program and another
// sockmapd reported; an unmounted bpffs judged as the systemd unit's capabilities allow.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "bpf_inventory.hpp"
#include "deployed.hpp"
#include "fixture.hpp"
#include "split_command.hpp"
#include "systemd_unit.hpp"

namespace smdtest {
namespace {

class Doctor : public IntegrationTest {};

TEST_F(Doctor, CheckAndDoctorSayUsableHere)
{
    auto check = run_split({sockmapd_bin(), "--check", "--cgroup", cgroup_path(), "--pin-path", daemon().pin_path()});
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    EXPECT_NE(check.out.find("\nverdict: usable\n"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("ok    btf: "), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("ok    helper bpf_msg_redirect_hash (sk_msg): available"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("ok    conflicts: "), std::string::npos) << check.out;

    auto doctor = run_split({sockmapctl_bin(), "doctor", "--json", "--cgroup", cgroup_path(), "--pin-path",
                             daemon().pin_path()});
    EXPECT_EQ(doctor.exit_code, 0) << doctor.out << doctor.err;
    auto report = nlohmann::json::parse(doctor.out, nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << doctor.out;
    EXPECT_EQ(report["usable"], true);
    EXPECT_GE(report["checks"].size(), 20u);
    EXPECT_FALSE(std::filesystem::exists(daemon().pin_path())) << "a check must change nothing";
}

TEST_F(Doctor, BadCgroupIsReportedAndFails)
{
    auto check = run_split({sockmapd_bin(), "--check", "--cgroup", "/nonexistent-smd", "--pin-path",
                            daemon().pin_path()});
    EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
    EXPECT_NE(check.out.find("FAIL  target cgroup: "), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("\nverdict: NOT usable\n"), std::string::npos) << check.out;
}

// A trivial sock_ops program (return 1) attached to the test's own cgroup only, detached again by the fixture.
class ForeignSockOps {
public:
    explicit ForeignSockOps(const std::string& cgroup)
    {
        struct bpf_insn insns[] = {
            {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 1},
            {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
        };
        prog_ = Fd(bpf_prog_load(BPF_PROG_TYPE_SOCK_OPS, "foreign_sockops", "GPL", insns, 2, nullptr));
        EXPECT_TRUE(prog_) << "load a sock_ops program: " << std::strerror(errno);
        cgroup_ = Fd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        EXPECT_TRUE(cgroup_) << cgroup;
        if (prog_ && cgroup_)
            attached_ = bpf_prog_attach(prog_.get(), cgroup_.get(), BPF_CGROUP_SOCK_OPS, BPF_F_ALLOW_MULTI) == 0;
        EXPECT_TRUE(attached_) << "attach to " << cgroup << ": " << std::strerror(errno);
    }
    ~ForeignSockOps()
    {
        if (attached_) {
            EXPECT_EQ(bpf_prog_detach2(prog_.get(), cgroup_.get(), BPF_CGROUP_SOCK_OPS), 0) << std::strerror(errno);
        }
    }

private:
    Fd prog_, cgroup_;
    bool attached_ = false;
};

TEST_F(Doctor, ForeignSockOpsOnTheCgroupIsAConflict)
{
    {
        ForeignSockOps foreign(cgroup_path());
        auto doctor = run_split({sockmapctl_bin(), "doctor", "--cgroup", cgroup_path(), "--pin-path",
                                 daemon().pin_path()});
        EXPECT_EQ(doctor.exit_code, 0) << "a conflict warns, the node stays usable: " << doctor.out;
        EXPECT_NE(doctor.out.find("warn  conflict: other sock_ops programs run in " + cgroup_path() +
                                  ": foreign_sockops (id "),
                  std::string::npos)
            << doctor.out;
        EXPECT_EQ(doctor.out.find("ok    conflicts"), std::string::npos) << doctor.out;
        EXPECT_EQ(cgroup_programs(cgroup_path()), std::vector<std::string>{"foreign_sockops (cgroup_sock_ops)"});
    }
    EXPECT_EQ(cgroup_programs(cgroup_path()), std::vector<std::string>{}) << "the foreign program was not detached";
}

// The daemon starts next to another agent's sock_ops program, and says once that it may take sockets first.
TEST_F(Doctor, ForeignSockOpsIsAWarningForTheDaemonToo)
{
    ForeignSockOps foreign(cgroup_path());
    daemon().start();
    EXPECT_TRUE(daemon().running());
    auto log = daemon().log();
    auto at = log.find("other sock_ops programs run for cgroup " + cgroup_path() + ": foreign_sockops (prog id ");
    EXPECT_NE(at, std::string::npos) << log;
    EXPECT_NE(log.rfind(" warning ", at), std::string::npos) << log;
    daemon().stop();
}

// Another sockmapd attached to the cgroup (or above it): doctor for a second one, on another pin path, fails with
// the first one's program and pins; doctor for the running one's own pin path sees no conflict.
TEST_F(Doctor, ReportsAnotherSockmapdOnTheCgroupOrAbove)
{
    std::string grandchild = cgroup_path() + "/child/grandchild";
    ASSERT_TRUE(std::filesystem::create_directories(grandchild));
    daemon().start();
    std::string other_pins = "/sys/fs/bpf/" + unique_name("smd-other");
    for (const auto& target : {cgroup_path(), grandchild}) {
        SCOPED_TRACE(target);
        auto doctor = run_split({sockmapctl_bin(), "doctor", "--cgroup", target, "--pin-path", other_pins});
        EXPECT_EQ(doctor.exit_code, 1) << doctor.out << doctor.err;
        EXPECT_NE(doctor.out.find("FAIL  conflict: another sockmapd already runs sock_ops for " + target +
                                  ": smd_sockops (prog id "),
                  std::string::npos)
            << doctor.out;
        EXPECT_NE(doctor.out.find(", pins at " + daemon().pin_path() + ") attached to " + cgroup_path()),
                  std::string::npos)
            << doctor.out;
        EXPECT_EQ(doctor.out.find("no conflicts"), std::string::npos) << doctor.out;
        EXPECT_EQ(doctor.out.find("ok    conflicts"), std::string::npos) << doctor.out;

        auto check = run_split({sockmapd_bin(), "--check", "-o", "json", "--cgroup", target, "--pin-path", other_pins});
        EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
        auto report = nlohmann::json::parse(check.out, nullptr, false);
        ASSERT_TRUE(report.is_object()) << check.out;
        EXPECT_EQ(report["usable"], false);
        bool found = false;
        for (const auto& c : report["checks"])
            found = found || (c["name"] == "conflict" && c["status"] == "fail" &&
                              c["detail"].get<std::string>().find(daemon().pin_path()) != std::string::npos);
        EXPECT_TRUE(found) << check.out;
    }
    auto own = run_split({sockmapctl_bin(), "doctor", "--cgroup", cgroup_path(), "--pin-path", daemon().pin_path()});
    EXPECT_EQ(own.exit_code, 0) << own.out;
    EXPECT_NE(own.out.find("ok    conflicts: "), std::string::npos) << own.out;
    EXPECT_FALSE(std::filesystem::exists(other_pins)) << "a check must change nothing";
    daemon().stop();
    ::rmdir(grandchild.c_str());
    ::rmdir((cgroup_path() + "/child").c_str());
}

// Nothing mounted at /sys/fs/bpf (unmounted in a private mount namespace): --check says the daemon will mount
// it, which needs CAP_SYS_ADMIN. With the systemd unit's capability set that is a failure, and the daemon
// refuses with the same words before it changes anything.
TEST_F(Doctor, UnmountedBpffsAgreesWithTheSystemdUnit)
{
    auto unit = smdtest::UnitFile::parse(std::string(SMD_SOURCE_DIR) + "/deploy/systemd/sockmapd.service");
    auto unit_caps = restricted_privileges(split_words(unit.value("Service", "CapabilityBoundingSet")), true);
    ASSERT_FALSE(unit_caps.empty());
    std::string pins = "/sys/fs/bpf/" + unique_name("smd-nobpffs");
    auto without_bpffs = [&](const std::vector<std::string>& command) {
        std::vector<std::string> argv{"unshare", "--mount", "--propagation", "private", "sh", "-c",
                                      "umount -l /sys/fs/bpf && exec \"$@\"", "sh"};
        argv.insert(argv.end(), command.begin(), command.end());
        return run_split(argv, std::nullopt, std::chrono::seconds(30));
    };
    std::vector<std::string> check{sockmapd_bin(), "--check", "--cgroup", cgroup_path(), "--pin-path", pins};

    auto as_root = without_bpffs(check);
    EXPECT_EQ(as_root.exit_code, 0) << as_root.out << as_root.err;
    EXPECT_NE(as_root.out.find("warn  bpffs: /sys/fs/bpf: not mounted; the daemon will mount it (needs "
                               "CAP_SYS_ADMIN)\n"),
              std::string::npos)
        << as_root.out;

    std::vector<std::string> restricted = unit_caps;
    restricted.insert(restricted.end(), check.begin(), check.end());
    auto as_unit = without_bpffs(restricted);
    EXPECT_EQ(as_unit.exit_code, 1) << as_unit.out << as_unit.err;
    EXPECT_NE(as_unit.out.find("FAIL  bpffs: /sys/fs/bpf: not mounted; the daemon would mount it, but that needs "
                               "CAP_SYS_ADMIN, which this process lacks"),
              std::string::npos)
        << as_unit.out;
    EXPECT_NE(as_unit.out.find("mount -t bpf bpf /sys/fs/bpf"), std::string::npos) << as_unit.out;

    std::vector<std::string> daemon = unit_caps;
    for (const auto& word : {sockmapd_bin(), std::string("--cgroup"), cgroup_path(), std::string("--pin-path"), pins,
                             std::string("--metrics-address"), std::string("")})
        daemon.push_back(word);
    auto refused = without_bpffs(daemon);
    EXPECT_EQ(refused.exit_code, 1) << refused.err;
    EXPECT_EQ(lines_of(refused.err).size(), 1u) << refused.err;
    EXPECT_NE(refused.err.find("sockmapd: /sys/fs/bpf: not mounted; the daemon would mount it, but that needs "
                               "CAP_SYS_ADMIN"),
              std::string::npos)
        << refused.err;
    EXPECT_EQ(cgroup_programs(cgroup_path()), std::vector<std::string>{});
    EXPECT_FALSE(std::filesystem::exists(pins));
}

} // namespace
} // namespace smdtest
