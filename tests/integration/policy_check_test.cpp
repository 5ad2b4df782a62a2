// `sockmapctl policy check FILE`, the real binary: exit 0 and one summary line (or JSON) for a good policy,
// exit 1 and exactly one stderr line with file:line:column for a bad one; cgroup selectors are resolved
// against this host's cgroup v2 mount, with the test's own cgroup as the one that exists. Loads nothing.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bpf_inventory.hpp"
#include "fixture.hpp"
#include "split_command.hpp"
#include "sockmapd/cgroup.hpp"

namespace smdtest {
namespace {

namespace fs = std::filesystem;

class PolicyCheck : public IntegrationTest {
protected:
    void SetUp() override
    {
        IntegrationTest::SetUp();
        std::string pattern = (fs::temp_directory_path() / "smd-policy-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override
    {
        fs::remove_all(dir_);
        IntegrationTest::TearDown();
    }

    std::string write_policy(const std::string& text)
    {
        auto path = (dir_ / "policy.yaml").string();
        std::ofstream(path) << text;
        ::chmod(path.c_str(), 0644);
        return path;
    }

    // The test's cgroup as a policy names it: its path inside the cgroup v2 hierarchy.
    std::string cgroup_in_hierarchy() const
    {
        return cgroup_path().substr(sockmapd::detect_cgroup2_root().size());
    }

    static void expect_refusal(const CommandOutput& result, const std::string& starts_with,
                               const std::vector<std::string>& must_mention)
    {
        EXPECT_EQ(result.exit_code, 1);
        EXPECT_EQ(result.out, "") << "a refusal prints nothing on stdout";
        auto lines = lines_of(result.err);
        ASSERT_EQ(lines.size(), 1u) << "stderr must be exactly one line, got:\n" << result.err;
        EXPECT_EQ(lines[0].rfind(starts_with, 0), 0u) << lines[0];
        for (const auto& text : must_mention)
            EXPECT_NE(lines[0].find(text), std::string::npos) << "missing '" << text << "' in: " << lines[0];
    }

    fs::path dir_;
};

TEST_F(PolicyCheck, AGoodPolicyWithAnExistingCgroup)
{
    auto programs_before = smd_program_ids();
    auto path = write_policy("default: bypass\nrules:\n  - name: this-test\n    action: accelerate\n    cgroup: " +
                             cgroup_in_hierarchy() + "\n  - name: mesh\n    action: accelerate\n    uid: 1337\n");
    auto result = run_split({sockmapctl_bin(), "policy", "check", path});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(result.out, path + ": ok: 2 rules, default bypass\n");
    EXPECT_EQ(result.err, "");

    auto json = run_split({sockmapctl_bin(), "policy", "check", "--json", path});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    auto report = nlohmann::json::parse(json.out);
    EXPECT_EQ(report["ok"], true);
    EXPECT_EQ(report["file"], path);
    EXPECT_EQ(report["default"], "bypass");
    EXPECT_EQ(report["sha256"].get<std::string>().size(), 64u);
    ASSERT_EQ(report["rules"].size(), 2u);
    EXPECT_EQ(report["rules"][0]["name"], "this-test");
    EXPECT_EQ(report["rules"][1]["selectors"], "uid=1337");

    EXPECT_EQ(smd_program_ids(), programs_before) << "policy check must not load anything";
}

TEST_F(PolicyCheck, TheExamplePolicies)
{
    for (const auto* name : {"istio.yaml", "linkerd.yaml"}) {
        auto path = std::string(SMD_SOURCE_DIR) + "/deploy/policies/" + name;
        auto result = run_split({sockmapctl_bin(), "policy", "check", path});
        EXPECT_EQ(result.exit_code, 0) << result.err;
        EXPECT_EQ(result.out, path + ": ok: 3 rules, default bypass\n");
    }
}

TEST_F(PolicyCheck, ASyntaxErrorIsOneLineWithItsPosition)
{
    auto path = write_policy("rules:\n  - name: a\n    action: bypass\n    ports: [80, 0]\n");
    expect_refusal(run_split({sockmapctl_bin(), "policy", "check", path}), "sockmapctl: " + path + ":4:17: ",
                   {"port 0 is out of range", "expected 1..65535"});
    // --json: the refusal is a JSON object on stdout, formatted like the report of a good file; exit 1.
    for (const auto& args : std::vector<std::vector<std::string>>{{"policy", "check", "--json", path},
                                                                   {"-o", "json", "policy", "check", path}}) {
        std::vector<std::string> argv{sockmapctl_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        auto json = run_split(argv);
        EXPECT_EQ(json.exit_code, 1);
        EXPECT_EQ(json.err, "");
        auto report = nlohmann::json::parse(json.out, nullptr, false);
        ASSERT_TRUE(report.is_object()) << json.out;
        EXPECT_EQ(report["file"], path);
        EXPECT_EQ(report["ok"], false);
        EXPECT_EQ(report["error"].get<std::string>().rfind(path + ":4:17: port 0", 0), 0u) << report["error"];
    }
}

TEST_F(PolicyCheck, ACgroupThatDoesNotExist)
{
    auto missing = cgroup_in_hierarchy() + "/no-such-pod";
    auto path = write_policy("rules:\n  - name: pod\n    action: accelerate\n    cgroup: " + missing + "\n");
    expect_refusal(run_split({sockmapctl_bin(), "policy", "check", path}), "sockmapctl: " + path + ":4:13: ",
                   {cgroup_path() + "/no-such-pod does not exist", "rule pod"});
}

TEST_F(PolicyCheck, AMissingOrWorldWritableFile)
{
    auto missing = (dir_ / "missing.yaml").string();
    expect_refusal(run_split({sockmapctl_bin(), "policy", "check", missing}), "sockmapctl: " + missing + ": ",
                   {"no such file"});
    auto path = write_policy("default: accelerate\n");
    ::chmod(path.c_str(), 0666);
    expect_refusal(run_split({sockmapctl_bin(), "policy", "check", path}), "sockmapctl: " + path + " ",
                   {"world-writable", "chmod o-w " + path});
}

TEST_F(PolicyCheck, WithoutAFile)
{
    auto result = run_split({sockmapctl_bin(), "policy", "check"});
    EXPECT_EQ(result.exit_code, 2) << "a usage error";
    EXPECT_EQ(lines_of(result.err).size(), 1u) << result.err;
    EXPECT_NE(result.err.find("FILE"), std::string::npos) << result.err;
}

} // namespace
} // namespace smdtest
