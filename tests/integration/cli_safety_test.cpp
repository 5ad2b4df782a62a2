// Operator safety and CLI conventions with the real binaries: the whole-host default (run inside a cgroup
// namespace whose root is the test's own cgroup, so the host is never attached), sockmapctl's global flags on
// either side of the subcommand, and failures as JSON on stdout under --json.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "bpf_inventory.hpp"
#include "deployed.hpp"
#include "fixture.hpp"
#include "poll_until.hpp"
#include "sockmapd/cgroup.hpp"
#include "split_command.hpp"

namespace smdtest {
namespace {

namespace fs = std::filesystem;

class CgroupScope : public IntegrationTest {};

// No --cgroup: the daemon takes the cgroup v2 root and says so in one warning line. The root it sees is that of
// a new cgroup namespace made in the test's cgroup, with cgroup2 mounted again in place of the host's mount in a
// private mount namespace (the same superblock cannot be stacked on itself); the script checks that the mount point is the test's cgroup before it starts the
// daemon, and refuses (exit 99) otherwise.
TEST_F(CgroupScope, WithoutCgroupTheRootIsUsedWithOneWarningLine)
{
    std::string mount_point = sockmapd::detect_cgroup2_root();
    struct stat st {};
    ASSERT_EQ(::stat(cgroup_path().c_str(), &st), 0);
    auto root_before = cgroup_programs(mount_point);
    std::string pins = "/sys/fs/bpf/" + unique_name("smd-scope");
    std::string log = "/tmp/" + unique_name("smd-scope") + ".log";
    const std::string script = R"sh(set -e
umount -l "$1"
mount -t cgroup2 none "$1"
[ "$(stat -c %i "$1")" = "$2" ] || { echo "refusing: $1 is not the test cgroup here" >&2; exit 99; }
shift 2
exec "$@")sh";
    Process scoped({"unshare", "--cgroup", "--mount", "--propagation", "private", "sh", "-c", script, "sh", mount_point,
                    std::to_string(st.st_ino), sockmapd_bin(), "--pin-path", pins, "--metrics-address", ""},
                   {.output_file = log});
    bool ready = poll_until([&] { return read_file(log).find("ready: accelerating") != std::string::npos ||
                                         !scoped.running(); },
                            std::chrono::seconds(15));
    std::string text = read_file(log);
    EXPECT_TRUE(ready && scoped.running()) << text;

    std::vector<std::string> warnings;
    for (const auto& line : lines_of(text))
        if (line.find("no --cgroup") != std::string::npos)
            warnings.push_back(line);
    ASSERT_EQ(warnings.size(), 1u) << text;
    EXPECT_NE(warnings[0].find(" warning "), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("every process on this host"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("--cgroup DIR"), std::string::npos) << warnings[0];
    EXPECT_EQ(cgroup_programs(cgroup_path()), std::vector<std::string>{"smd_sockops (cgroup_sock_ops)"})
        << "the namespace's root is the test cgroup";
    EXPECT_EQ(cgroup_programs(mount_point), root_before) << "the host's root cgroup must be untouched";

    scoped.signal(SIGTERM);
    EXPECT_TRUE(scoped.wait(std::chrono::seconds(10)));
    scoped.kill_and_reap();
    remove_pins(pins);
    if (!HasFailure())
        fs::remove(log);
}

class CliConventions : public IntegrationTest {};

TEST_F(CliConventions, GlobalFlagsBeforeOrAfterTheSubcommand)
{
    daemon().start();
    const auto& pins = daemon().pin_path();
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"--pin-path", pins, "status"}, {"status", "--pin-path", pins}}) {
        std::vector<std::string> argv{sockmapctl_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        auto result = run_split(argv);
        EXPECT_EQ(result.exit_code, 0) << result.err;
        EXPECT_NE(result.out.find("pin path:    " + pins + "\n"), std::string::npos) << result.out;
    }
    for (const auto& args : std::vector<std::vector<std::string>>{{"--json", "--pin-path", pins, "status"},
                                                                  {"-o", "json", "status", "--pin-path", pins},
                                                                  {"status", "--pin-path", pins, "-o", "json"},
                                                                  {"--pin-path", pins, "connections", "--json"},
                                                                  {"-o", "json", "--pin-path", pins, "policy", "show"},
                                                                  {"version", "-o", "json"}}) {
        std::vector<std::string> argv{sockmapctl_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        auto result = run_split(argv);
        EXPECT_EQ(result.exit_code, 0) << result.err;
        EXPECT_FALSE(nlohmann::json::parse(result.out, nullptr, false).is_discarded()) << result.out;
        EXPECT_TRUE(result.out.rfind("{\n  \"", 0) == 0 || result.out.rfind("[", 0) == 0)
            << "every JSON output has the same formatting: " << result.out;
    }
}

// With --json a failure is a JSON object on stdout ({"error": ...}), nothing on stderr, exit 1.
TEST_F(CliConventions, FailuresUnderJsonAreAJsonObjectOnStdout)
{
    std::string missing = "/sys/fs/bpf/" + unique_name("smd-missing");
    for (const auto& args : std::vector<std::vector<std::string>>{{"status", "--json", "--pin-path", missing},
                                                                  {"-o", "json", "connections", "--pin-path", missing},
                                                                  {"--json", "--pin-path", missing, "policy", "show"}}) {
        std::vector<std::string> argv{sockmapctl_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        auto result = run_split(argv);
        EXPECT_EQ(result.exit_code, 1);
        EXPECT_EQ(result.err, "");
        auto error = nlohmann::json::parse(result.out, nullptr, false);
        ASSERT_TRUE(error.is_object()) << result.out;
        EXPECT_NE(error.value("error", "").find(missing), std::string::npos) << result.out;
    }
    auto text = run_split({sockmapctl_bin(), "status", "--pin-path", missing});
    EXPECT_EQ(text.exit_code, 1);
    EXPECT_EQ(text.out, "");
    EXPECT_EQ(lines_of(text.err).size(), 1u) << text.err;
    EXPECT_FALSE(fs::exists(missing));
}

} // namespace
} // namespace smdtest
