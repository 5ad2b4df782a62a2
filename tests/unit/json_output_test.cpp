// One JSON style for every --json output, errors included, and the version report.
#include "sockmapd/json_output.hpp"

#include <gtest/gtest.h>

#include "sockmapd/policy_check.hpp"
#include "sockmapd/version.hpp"
#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

TEST(JsonOutput, IndentedWithANewlineAndNonUtf8Replaced)
{
    nlohmann::ordered_json value{{"b", 1}, {"a", "caf\xe9"}};
    EXPECT_EQ(format_json(value), "{\n  \"b\": 1,\n  \"a\": \"caf\xef\xbf\xbd\"\n}\n");
}

TEST(JsonOutput, ErrorsAreAnObjectWithTheMessage)
{
    auto error = nlohmann::json::parse(format_error_json("nothing pinned at /sys/fs/bpf/x"));
    EXPECT_EQ(error, nlohmann::json({{"error", "nothing pinned at /sys/fs/bpf/x"}}));
}

// `policy check --json` on a bad file: the same object shape as a good one (file, ok), plus the error.
TEST(JsonOutput, PolicyCheckErrorNamesTheFile)
{
    auto text = format_policy_check_error("/etc/p.yaml", "/etc/p.yaml:3:1: YAML syntax error: ...");
    auto report = nlohmann::json::parse(text);
    EXPECT_EQ(report["file"], "/etc/p.yaml");
    EXPECT_EQ(report["ok"], false);
    EXPECT_EQ(report["error"], "/etc/p.yaml:3:1: YAML syntax error: ...");
    EXPECT_EQ(text.rfind("{\n  \"file\"", 0), 0u) << "formatted like every other JSON output: " << text;
}

TEST(Version, TextAndJsonCarryRevisionAndLibbpf)
{
    VersionInfo info{.version = "0.1.0", .git_revision = "07b91d0", .libbpf = "v1.1"};
    EXPECT_EQ(format_version_text("sockmapctl", info), "sockmapctl 0.1.0 (git 07b91d0, libbpf v1.1)\n");
    auto json = nlohmann::json::parse(format_version_json("sockmapd", info));
    EXPECT_EQ(json["program"], "sockmapd");
    EXPECT_EQ(json["git_revision"], "07b91d0");
    EXPECT_EQ(json["libbpf"], "v1.1");
    auto real = version_info();
    EXPECT_FALSE(real.git_revision.empty());
    EXPECT_EQ(real.libbpf.rfind("v", 0), 0u) << real.libbpf;
}

} // namespace
} // namespace sockmapd
