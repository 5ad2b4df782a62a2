// sockmapd's and sockmapctl's command lines, parsed as main() parses them: exit 2 and one line for every usage
// error, --cgroup never blank, sizes checked, global flags on either side of the subcommand, help without CLI11
// type noise.
#include "sockmapd/ctl_command_line.hpp"
#include "sockmapd/daemon_command_line.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <variant>

#include "sockmapd/cli.hpp"
#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

struct Outcome {
    std::optional<int> exit_code; // nullopt: parsed, the program would run
    std::string out, err;
};

template <typename Parse>
Outcome parse(Parse parse_fn, const std::vector<std::string>& args)
{
    std::ostringstream out, err;
    auto result = parse_fn(args, out, err);
    Outcome outcome{std::nullopt, out.str(), err.str()};
    if (auto* code = std::get_if<int>(&result))
        outcome.exit_code = *code;
    return outcome;
}

Outcome daemon(const std::vector<std::string>& args) { return parse(parse_daemon_command_line, args); }
Outcome ctl(const std::vector<std::string>& args) { return parse(parse_ctl_command_line, args); }

DaemonCommandLine daemon_line(const std::vector<std::string>& args)
{
    std::ostringstream out, err;
    auto result = parse_daemon_command_line(args, out, err);
    EXPECT_TRUE(std::holds_alternative<DaemonCommandLine>(result)) << err.str();
    return std::holds_alternative<DaemonCommandLine>(result) ? std::get<DaemonCommandLine>(result) : DaemonCommandLine{};
}

CtlCommandLine ctl_line(const std::vector<std::string>& args)
{
    std::ostringstream out, err;
    auto result = parse_ctl_command_line(args, out, err);
    EXPECT_TRUE(std::holds_alternative<CtlCommandLine>(result)) << err.str();
    return std::holds_alternative<CtlCommandLine>(result) ? std::get<CtlCommandLine>(result) : CtlCommandLine{};
}

// One line on stderr, naming the program and pointing at --help, nothing on stdout, exit 2.
void expect_usage_error(const Outcome& o, const std::string& program, const std::vector<std::string>& must_mention)
{
    EXPECT_EQ(o.exit_code, kUsageError);
    EXPECT_EQ(o.out, "");
    ASSERT_FALSE(o.err.empty());
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << "one line: " << o.err;
    EXPECT_EQ(o.err.rfind(program + ": ", 0), 0u) << o.err;
    EXPECT_CONTAINS(o.err, "--help");
    for (const auto& text : must_mention)
        EXPECT_CONTAINS(o.err, text);
}

TEST(DaemonCommandLine, EmptyOrBlankCgroupIsRefused)
{
    for (std::string blank : {"", " ", "\t", "  \n"}) {
        SCOPED_TRACE("'" + blank + "'");
        auto o = daemon({"--cgroup", blank});
        expect_usage_error(o, "sockmapd", {"--cgroup is", "an unset variable?", "leave --cgroup out"});
    }
    auto check = daemon({"--check", "--cgroup", ""});
    expect_usage_error(check, "sockmapd", {"--cgroup is empty"});
}

TEST(DaemonCommandLine, AbsentCgroupKeepsTheDefaultAndAGivenOneIsKept)
{
    EXPECT_EQ(daemon_line({}).config.cgroup, "");
    EXPECT_EQ(daemon_line({"--cgroup", "/sys/fs/cgroup/app"}).config.cgroup, "/sys/fs/cgroup/app");
}

TEST(DaemonCommandLine, MaxQueuedBytesTakesSizesAndRefusesNegativeAndOutOfRange)
{
    EXPECT_EQ(daemon_line({"--max-queued-bytes", "8MiB"}).config.max_queued_bytes, std::uint64_t{8} << 20);
    EXPECT_EQ(daemon_line({"--max-queued-bytes", "0"}).config.max_queued_bytes, 0u);
    EXPECT_EQ(daemon_line({"--max-queued-bytes", "4GiB"}).config.max_queued_bytes, kMaxQueuedBytesLimit);
    EXPECT_EQ(daemon_line({}).config.max_queued_bytes, std::nullopt);
    expect_usage_error(daemon({"--max-queued-bytes", "-1"}), "sockmapd", {"--max-queued-bytes -1 is negative"});
    expect_usage_error(daemon({"--max-queued-bytes", "18446744073709551615"}), "sockmapd", {"is too large", "4 GiB"});
    expect_usage_error(daemon({"--max-queued-bytes", "5GiB"}), "sockmapd", {"5GiB is too large"});
    expect_usage_error(daemon({"--max-queued-bytes", "lots"}), "sockmapd", {"lots is not a size"});
}

TEST(DaemonCommandLine, OtherSizesAreRangeChecked)
{
    for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
             {"--max-sockets", "-4"}, {"--max-sockets", "1"}, {"--max-sockets", "4294967296"},
             {"--max-hints", "-16"}, {"--max-hints", "16777217"}, {"--hint-max-age", "0"}, {"--hint-max-age", "-1"}}) {
        SCOPED_TRACE(flag + " " + value);
        expect_usage_error(daemon({flag, value}), "sockmapd", {flag + " " + value + " is not a whole number from "});
    }
    expect_usage_error(ctl({"uninstall", "--timeout", "soon"}), "sockmapctl",
                       {"--timeout soon is not a number of seconds from 0 to 86400"});
}

TEST(DaemonCommandLine, RaiseReceiveBuffersIsAutoOnOrOff)
{
    EXPECT_EQ(daemon_line({}).config.raise_receive_buffers, "auto");
    for (std::string mode : {"auto", "on", "off"})
        EXPECT_EQ(daemon_line({"--raise-receive-buffers", mode}).config.raise_receive_buffers, mode);
    for (std::string bad : {"yes", "", "ON"}) {
        SCOPED_TRACE("'" + bad + "'");
        expect_usage_error(daemon({"--raise-receive-buffers", bad}), "sockmapd", {"--raise-receive-buffers"});
    }
}

TEST(DaemonCommandLine, AFlagWithoutItsValueSaysWhatItNeeds)
{
    expect_usage_error(daemon({"--cgroup"}), "sockmapd", {"--cgroup needs a value (DIR)"});
    expect_usage_error(ctl({"status", "--pin-path"}), "sockmapctl", {"--pin-path needs a value (DIR)"});
}

TEST(DaemonCommandLine, EveryUsageErrorExits2WithOneLine)
{
    expect_usage_error(daemon({"--bogus"}), "sockmapd", {"unknown flag '--bogus'"});
    expect_usage_error(daemon({"stray"}), "sockmapd", {"unexpected argument 'stray'"});
    expect_usage_error(daemon({"--cgroup"}), "sockmapd", {"--cgroup"});
    expect_usage_error(daemon({"--json"}), "sockmapd", {"--check"});
    expect_usage_error(daemon({"--check", "-o", "xml"}), "sockmapd", {"xml"});
}

TEST(DaemonCommandLine, VersionNamesTheRevisionAndLibbpf)
{
    auto o = daemon({"--version"});
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.err, "");
    EXPECT_EQ(o.out.rfind("sockmapd ", 0), 0u) << o.out;
    EXPECT_CONTAINS(o.out, "(git ");
    EXPECT_CONTAINS(o.out, ", libbpf v");
    EXPECT_EQ(o.out.find('\n'), o.out.size() - 1) << o.out;
}

TEST(DaemonCommandLine, CheckTakesJsonAsFlagOrOutputFormat)
{
    EXPECT_TRUE(daemon_line({"--check", "--json"}).json);
    EXPECT_TRUE(daemon_line({"--check", "-o", "json"}).json);
    EXPECT_FALSE(daemon_line({"--check"}).json);
}

// Help shows what a value is (DIR, SIZE, N), not CLI11's types and validator descriptions.
TEST(CommandLineHelp, NoParserTypeNoise)
{
    auto daemon_help = daemon({"--help"});
    EXPECT_EQ(daemon_help.exit_code, 0);
    for (const char* noise : {"TEXT", "UINT", "SIZE [", "kb(=1024b)", "in [", "INT ", "FLOAT", "Value in range"})
        EXPECT_NOT_CONTAINS(daemon_help.out, noise);
    EXPECT_CONTAINS(daemon_help.out, "--max-queued-bytes SIZE");
    EXPECT_CONTAINS(daemon_help.out, "--cgroup DIR");
    EXPECT_CONTAINS(daemon_help.out, "Usage: sockmapd");
    for (const auto& sub : std::vector<std::vector<std::string>>{
             {"--help"}, {"status", "--help"}, {"uninstall", "--help"}, {"doctor", "--help"}, {"policy", "check", "--help"}}) {
        auto help = ctl(sub);
        EXPECT_EQ(help.exit_code, 0);
        for (const char* noise : {"TEXT", "UINT", "FLOAT", "in [", "NUMBER"})
            EXPECT_NOT_CONTAINS(help.out, noise);
    }
}

TEST(CtlCommandLine, NoArgumentsPrintsHelpAndExits2)
{
    auto o = ctl({});
    EXPECT_EQ(o.exit_code, kUsageError);
    EXPECT_EQ(o.out, "");
    EXPECT_CONTAINS(o.err, "Usage: sockmapctl");
    EXPECT_CONTAINS(o.err, "status");
    EXPECT_CONTAINS(o.err, "doctor");
    auto globals_only = ctl({"--pin-path", "/sys/fs/bpf/x"});
    EXPECT_EQ(globals_only.exit_code, kUsageError);
    EXPECT_CONTAINS(globals_only.err, "Usage: sockmapctl");
}

TEST(CtlCommandLine, UnknownSubcommandIsNamedAsSuch)
{
    expect_usage_error(ctl({"bogus"}), "sockmapctl", {"unknown subcommand 'bogus'", "status", "doctor"});
    expect_usage_error(ctl({"policy", "bogus"}), "sockmapctl", {"unknown subcommand 'bogus' for 'policy'", "check or show"});
    expect_usage_error(ctl({"policy"}), "sockmapctl", {"policy needs a subcommand"});
}

// CLI11's own exit codes (105 validation, 106 required, 109 extras, ...) never leak.
TEST(CtlCommandLine, EveryUsageErrorExits2)
{
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"status", "--bogus"}, {"--bogus"}, {"policy", "check"}, {"uninstall", "--timeout", "-1"},
             {"uninstall", "--timeout", "soon"}, {"status", "-o", "yaml"}, {"status", "extra"},
             {"doctor", "--cgroup", ""}, {"status", "--pin-path"}, {"uninstall", "--json"}}) {
        std::string joined;
        for (const auto& a : args)
            joined += a + " ";
        SCOPED_TRACE(joined);
        expect_usage_error(ctl(args), "sockmapctl", {});
    }
}

TEST(CtlCommandLine, GlobalFlagsBeforeOrAfterTheSubcommand)
{
    auto before = ctl_line({"--pin-path", "/sys/fs/bpf/x", "status"});
    EXPECT_EQ(before.command, CtlCommand::status);
    EXPECT_EQ(before.pin_path, "/sys/fs/bpf/x");
    auto after = ctl_line({"status", "--pin-path", "/sys/fs/bpf/y"});
    EXPECT_EQ(after.pin_path, "/sys/fs/bpf/y");
    EXPECT_TRUE(ctl_line({"--json", "connections"}).json);
    EXPECT_TRUE(ctl_line({"connections", "--json"}).json);
    EXPECT_TRUE(ctl_line({"-o", "json", "doctor"}).json);
    EXPECT_TRUE(ctl_line({"doctor", "-o", "json"}).json);
    EXPECT_TRUE(ctl_line({"policy", "check", "--json", "f.yaml"}).json);
    EXPECT_TRUE(ctl_line({"-o", "json", "policy", "show"}).json);
    EXPECT_FALSE(ctl_line({"status", "-o", "text"}).json);
    auto uninstall = ctl_line({"--pin-path", "/sys/fs/bpf/z", "uninstall", "--timeout", "5", "--force"});
    EXPECT_EQ(uninstall.command, CtlCommand::uninstall);
    EXPECT_EQ(uninstall.pin_path, "/sys/fs/bpf/z");
    EXPECT_DOUBLE_EQ(uninstall.timeout_seconds, 5);
    EXPECT_TRUE(uninstall.force);
}

TEST(CtlCommandLine, VersionAsSubcommandAndFlag)
{
    EXPECT_EQ(ctl_line({"version"}).command, CtlCommand::version);
    EXPECT_EQ(ctl_line({"--version"}).command, CtlCommand::version);
    auto json = ctl_line({"version", "--json"});
    EXPECT_EQ(json.command, CtlCommand::version);
    EXPECT_TRUE(json.json);
}

} // namespace
} // namespace sockmapd
