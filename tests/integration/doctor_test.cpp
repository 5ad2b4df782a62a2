// sockmapd --check and sockmapctl doctor on this machine: usable, and a foreign sock_ops program reported.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>

#include <nlohmann/json.hpp>

#include "bpf_inventory.hpp"
#include "fixture.hpp"
#include "split_command.hpp"

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

} // namespace
} // namespace smdtest
