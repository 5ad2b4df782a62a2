// sockmapd --check / sockmapctl doctor: the verdict and the report from made-up probe results.
#include "sockmapd/doctor.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sockmapd {
namespace {

EnvironmentFacts healthy()
{
    EnvironmentFacts facts;
    facts.kernel_release = "6.18.45-generic";
    facts.btf = true;
    facts.program_types = {{"sock_ops", true}, {"sk_msg", true}};
    facts.map_types = {{"sockhash", true}, {"sk_storage", true}};
    facts.helpers = {{"bpf_msg_redirect_hash (sk_msg)", true}};
    facts.cgroup2_mount = "/sys/fs/cgroup";
    facts.cgroup = "/sys/fs/cgroup/app";
    facts.pin_path = "/sys/fs/bpf/sockmapd";
    return facts;
}

const CheckResult* find_check(const DoctorReport& report, const std::string& name, CheckStatus status)
{
    for (const auto& check : report.checks)
        if (check.name == name && check.status == status)
            return &check;
    return nullptr;
}

TEST(Doctor, HealthyNodeIsUsableWithNoWarnings)
{
    auto report = evaluate(healthy());
    EXPECT_TRUE(report.usable());
    for (const auto& check : report.checks)
        EXPECT_EQ(check.status, CheckStatus::ok) << check.name << ": " << check.detail;
    auto text = format_doctor_text(report);
    EXPECT_NE(text.find("ok    kernel: 6.18.45-generic\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nverdict: usable\n"), std::string::npos) << text;
}

TEST(Doctor, EachMissingFeatureFailsWithItsName)
{
    struct Case {
        const char* what;
        void (*spoil)(EnvironmentFacts&);
        const char* check;
    };
    const Case cases[] = {
        {"old kernel", [](EnvironmentFacts& f) { f.kernel_release = "5.10.0-28-amd64"; }, "kernel"},
        {"no BTF", [](EnvironmentFacts& f) { f.btf = false; }, "btf"},
        {"no sk_msg", [](EnvironmentFacts& f) { f.program_types[1].second = false; }, "program type sk_msg"},
        {"no sockhash", [](EnvironmentFacts& f) { f.map_types[0].second = false; }, "map type sockhash"},
        {"no helper", [](EnvironmentFacts& f) { f.helpers[0].second = false; }, "helper bpf_msg_redirect_hash (sk_msg)"},
        {"no cgroup2", [](EnvironmentFacts& f) { f.cgroup2_mount.clear(); }, "cgroup v2"},
        {"bad cgroup", [](EnvironmentFacts& f) { f.cgroup_error = "/x is not a directory"; }, "target cgroup"},
        {"no bpffs", [](EnvironmentFacts& f) { f.bpffs_error = "/sys/fs/bpf is not bpffs"; }, "bpffs"},
        {"no privileges", [](EnvironmentFacts& f) { f.privileges_error = "missing privileges"; }, "privileges"},
        {"foreign sk_msg", [](EnvironmentFacts& f) { f.foreign_sk_msg = {"other (id 7)"}; }, "conflict"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto facts = healthy();
        c.spoil(facts);
        auto report = evaluate(facts);
        EXPECT_FALSE(report.usable());
        const CheckResult* failed = find_check(report, c.check, CheckStatus::fail);
        ASSERT_NE(failed, nullptr);
        EXPECT_FALSE(failed->remedy.empty()) << "a failure must say what to do";
        auto text = format_doctor_text(report);
        EXPECT_NE(text.find("FAIL  " + std::string(c.check) + ": "), std::string::npos) << text;
        EXPECT_NE(text.find("      -> " + failed->remedy), std::string::npos) << text;
        EXPECT_NE(text.find("\nverdict: NOT usable\n"), std::string::npos) << text;
    }
}

// Another agent's sock_ops program or Cilium's socket-LB change what is accelerated, not whether it works.
TEST(Doctor, ForeignSockOpsAndCiliumAreWarnedConflicts)
{
    auto facts = healthy();
    facts.foreign_sock_ops = {"other_sockops (id 42)"};
    facts.cilium_programs = {"cil_sock4_connect (id 43) on cgroup_inet4_connect"};
    auto report = evaluate(facts);
    EXPECT_TRUE(report.usable());
    const CheckResult* conflict = find_check(report, "conflict", CheckStatus::warn);
    ASSERT_NE(conflict, nullptr);
    EXPECT_NE(conflict->detail.find("other_sockops (id 42)"), std::string::npos);
    auto text = format_doctor_text(report);
    EXPECT_NE(text.find("cil_sock4_connect (id 43)"), std::string::npos) << text;
    EXPECT_EQ(text.find("ok    conflicts"), std::string::npos) << text;
}

// Another sockmapd on the cgroup or above it pairs every socket first: this one would pair nothing, so the
// node is not usable for it (the daemon refuses the same).
TEST(Doctor, AnotherSockmapdOnTheCgroupOrAboveFails)
{
    auto facts = healthy();
    facts.other_sockmapd = {"smd_sockops (prog id 812, pins at /sys/fs/bpf/a) attached to /sys/fs/cgroup"};
    auto report = evaluate(facts);
    EXPECT_FALSE(report.usable());
    const CheckResult* conflict = find_check(report, "conflict", CheckStatus::fail);
    ASSERT_NE(conflict, nullptr);
    EXPECT_NE(conflict->detail.find("another sockmapd"), std::string::npos) << conflict->detail;
    EXPECT_NE(conflict->detail.find("prog id 812, pins at /sys/fs/bpf/a"), std::string::npos) << conflict->detail;
    EXPECT_NE(conflict->remedy.find("stop that sockmapd"), std::string::npos) << conflict->remedy;
    EXPECT_EQ(format_doctor_text(report).find("no conflicts"), std::string::npos);
    EXPECT_EQ(format_doctor_text(report).find("ok    conflicts"), std::string::npos);
}

// Nothing at /sys/fs/bpf: the daemon mounts it only with CAP_SYS_ADMIN, which the systemd unit does not grant.
TEST(Doctor, UnmountedBpffsSaysTheDaemonWillMountItOnlyWithCapSysAdmin)
{
    auto facts = healthy();
    facts.bpffs_mount_needed = true;
    facts.cap_sys_admin = true;
    auto with_admin = evaluate(facts);
    EXPECT_TRUE(with_admin.usable());
    const CheckResult* warned = find_check(with_admin, "bpffs", CheckStatus::warn);
    ASSERT_NE(warned, nullptr);
    EXPECT_EQ(warned->detail, "/sys/fs/bpf: not mounted; the daemon will mount it (needs CAP_SYS_ADMIN)");
    EXPECT_NE(warned->remedy.find("mount -t bpf bpf /sys/fs/bpf"), std::string::npos) << warned->remedy;

    facts.cap_sys_admin = false;
    auto without = evaluate(facts);
    EXPECT_FALSE(without.usable());
    const CheckResult* failed = find_check(without, "bpffs", CheckStatus::fail);
    ASSERT_NE(failed, nullptr);
    EXPECT_NE(failed->detail.find("not mounted"), std::string::npos);
    EXPECT_NE(failed->detail.find("CAP_SYS_ADMIN, which this process lacks"), std::string::npos) << failed->detail;
}

// Without a way to read the receiver's queue a stalled reader would be unbounded: sockmapd does not start.
TEST(Doctor, MissingBackpressureRefusesAndSaysWhatWouldBeUnbounded)
{
    auto facts = healthy();
    facts.backpressure_missing = "struct sk_psock has no msg_tot_len (Linux 6.2 or newer)";
    auto report = evaluate(facts);
    EXPECT_FALSE(report.usable());
    const CheckResult* failed = find_check(report, "backpressure", CheckStatus::fail);
    ASSERT_NE(failed, nullptr);
    EXPECT_NE(failed->detail.find("msg_tot_len"), std::string::npos) << failed->detail;
    EXPECT_NE(failed->detail.find("without bound"), std::string::npos) << failed->detail;
    EXPECT_FALSE(failed->remedy.empty());
}

// A kernel whose FIONREAD hides redirected bytes would stall readers like nginx: refused, naming the fix.
TEST(Doctor, FionreadThatHidesRedirectedBytesRefusesAndNamesTheFix)
{
    auto facts = healthy();
    facts.fionread_missing = "FIONREAD ... fixed by 929e30f93125 in 6.12.75";
    auto report = evaluate(facts);
    EXPECT_FALSE(report.usable());
    const CheckResult* failed = find_check(report, "FIONREAD", CheckStatus::fail);
    ASSERT_NE(failed, nullptr);
    EXPECT_NE(failed->detail.find("929e30f93125"), std::string::npos) << failed->detail;
    EXPECT_NE(failed->remedy.find("6.12.75"), std::string::npos) << failed->remedy;
    EXPECT_TRUE(evaluate(healthy()).usable());
}

// Known bugs apply below the release that fixed them; none listed today is on sockmapd's data path.
TEST(Doctor, KnownBugsApplyBelowTheirFixingRelease)
{
    auto facts = healthy();
    facts.kernel_release = "6.1.90";
    auto report = evaluate(facts);
    std::size_t applying = 0;
    for (const auto& check : report.checks)
        applying += check.name == "kernel bug";
    std::size_t expected = 0;
    for (const auto& bug : known_kernel_bugs()) {
        EXPECT_NE(std::string(bug.subject).find("sockmap"), std::string::npos) << bug.subject;
        expected += bug.fixed_major > 6 || (bug.fixed_major == 6 && bug.fixed_minor > 1);
    }
    EXPECT_EQ(applying, expected);
    EXPECT_EQ(report.usable(), true);
    EXPECT_EQ(find_check(evaluate(healthy()), "kernel bug", CheckStatus::warn), nullptr) << "6.18 has every fix";
}

// CVE-2026-74714: fixed in mainline 7.2 and in five stable series; every other series ended without it.
TEST(Doctor, IterTcpRefcountFixIsJudgedByStableRelease)
{
    for (const char* fixed : {"7.2.0", "7.3-rc1", "8.0.1", "7.1.9", "6.18.45-generic", "6.18.100", "6.12.104",
                              "6.12.118+deb12-cloud-amd64", "6.6.152", "6.1.183", "6.1.192-1"})
        EXPECT_EQ(iter_tcp_refcount_fixed(fixed), true) << fixed;
    for (const char* affected : {"7.1.8", "7.0.30", "6.19.5", "6.18.44-fc-v1272", "6.18", "6.13.2", "6.12.103",
                                 "6.11.11", "6.6.151", "6.2.16", "6.1.182", "5.15.190"})
        EXPECT_EQ(iter_tcp_refcount_fixed(affected), false) << affected;
    EXPECT_EQ(iter_tcp_refcount_fixed("weird"), std::nullopt);

    auto facts = healthy();
    facts.kernel_release = "6.18.44-fc-v1272";
    auto report = evaluate(facts);
    const CheckResult* check = find_check(report, "iter/tcp", CheckStatus::warn);
    ASSERT_NE(check, nullptr);
    EXPECT_NE(check->detail.find("CVE-2026-74714"), std::string::npos) << check->detail;
    EXPECT_NE(check->remedy.find("--raise-receive-buffers on"), std::string::npos) << check->remedy;
    EXPECT_TRUE(report.usable()) << "a warning, not a refusal: the release iterator is needed on every kernel";
    EXPECT_EQ(find_check(evaluate(healthy()), "iter/tcp", CheckStatus::warn), nullptr);
}

TEST(Doctor, JsonCarriesVerdictAndEveryCheck)
{
    auto facts = healthy();
    facts.btf = false;
    auto report = evaluate(facts);
    auto out = nlohmann::json::parse(format_doctor_json(report));
    EXPECT_EQ(out["usable"], false);
    ASSERT_EQ(out["checks"].size(), report.checks.size());
    bool btf_failed = false;
    for (const auto& check : out["checks"])
        btf_failed |= check["name"] == "btf" && check["status"] == "fail" && !check["remedy"].get<std::string>().empty();
    EXPECT_TRUE(btf_failed) << out.dump(2);
}

TEST(Doctor, UnreadableKernelVersionIsAWarningNotAFailure)
{
    auto facts = healthy();
    facts.kernel_release = "weird";
    auto report = evaluate(facts);
    EXPECT_TRUE(report.usable());
    EXPECT_NE(find_check(report, "kernel", CheckStatus::warn), nullptr);
}

} // namespace
} // namespace sockmapd
