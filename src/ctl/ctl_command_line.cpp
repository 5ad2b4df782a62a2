// sockmapctl's command tree in CLI11. Each global flag is declared on the app and again on the subcommands that
// use it, bound to the same variable: both positions work, and each subcommand's --help lists it.
#include "sockmapd/ctl_command_line.hpp"

#include <CLI/CLI.hpp>

#include <ostream>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/cli.hpp"
#include "sockmapd/version.hpp"

namespace sockmapd {
namespace {

struct Bindings {
    CtlCommandLine& line;
    std::string& output;
};

void add_pin_path(CLI::App& app, Bindings& b)
{
    app.add_option("--pin-path", b.line.pin_path, "bpffs directory of the pinned maps")
        ->type_name("DIR")
        ->capture_default_str();
}

void add_output(CLI::App& app, Bindings& b)
{
    app.add_flag("--json", b.line.json, "machine-readable output (same as -o json)");
    app.add_option("-o,--output", b.output, "text or json")
        ->type_name("FORMAT")
        ->check(CLI::IsMember({"text", "json"}).description(""));
}

} // namespace

std::variant<CtlCommandLine, int> parse_ctl_command_line(const std::vector<std::string>& args, std::ostream& out,
                                                         std::ostream& err)
{
    CtlCommandLine line;
    line.pin_path = kDefaultPinPath;
    std::string output;
    Bindings b{line, output};

    CLI::App app{"sockmapctl: inspect and operate sockmapd", "sockmapctl"};
    use_plain_help(app);
    bool version_flag = false;
    app.add_flag("--version", version_flag, "print the version, git revision and libbpf version, then exit");
    add_pin_path(app, b);
    add_output(app, b);

    auto* status = app.add_subcommand("status", "attached cgroup, programs, sockets, pairs and counters");
    add_pin_path(*status, b);
    add_output(*status, b);
    auto* connections =
        app.add_subcommand("connections", "accelerated connections: endpoints, namespace, cgroup, bytes per direction");
    add_pin_path(*connections, b);
    add_output(*connections, b);
    auto* doctor = app.add_subcommand("doctor", "can this node run sockmapd? kernel, BTF, BPF features, cgroup, "
                                                "bpffs, privileges, conflicts; exit 1 if not");
    doctor->add_option("--cgroup", line.cgroup, "the cgroup sockmapd attaches to (default: the cgroup v2 mount)")
        ->type_name("DIR")
        ->check(non_blank("pass a cgroup v2 directory, or leave --cgroup out to check the cgroup v2 mount"));
    add_pin_path(*doctor, b);
    add_output(*doctor, b);
    auto* uninstall =
        app.add_subcommand("uninstall", "wait for redirect queues to drain, then detach and unpin everything");
    add_pin_path(*uninstall, b);
    uninstall->add_option("--timeout", line.timeout_seconds, "seconds (0 to 86400) to wait for readers to read "
                                                             "redirected data")
        ->type_name("SECONDS")
        ->check(seconds(0, 86400))
        ->capture_default_str();
    uninstall->add_flag("--force", line.force, "after the timeout, drop unread redirected data instead of refusing");
    auto* policy = app.add_subcommand("policy", "acceleration policy files (docs/policy.md)");
    auto* policy_check = policy->add_subcommand("check", "validate a policy file without touching the kernel");
    policy_check->add_option("FILE", line.policy_file, "the policy file, e.g. /etc/sockmapd/policy.yaml")
        ->type_name("FILE")
        ->required();
    add_output(*policy_check, b);
    auto* policy_show = policy->add_subcommand("show", "the policy in force, with the decisions of each rule");
    add_pin_path(*policy_show, b);
    add_output(*policy_show, b);
    auto* version = app.add_subcommand("version", "the version, git revision and libbpf version");
    add_output(*version, b);

    if (auto exit_code = parse_command_line(app, args, "sockmapctl", out, err))
        return *exit_code;
    line.json = line.json || output == "json";
    if (version_flag) {
        line.command = CtlCommand::version;
        return line;
    }
    if (app.get_subcommands().empty()) {
        err << app.help();
        return kUsageError;
    }
    if (policy->parsed() && policy->get_subcommands().empty()) {
        err << "sockmapctl: policy needs a subcommand, check or show; see 'sockmapctl policy --help'\n";
        return kUsageError;
    }
    if (uninstall->parsed() && line.json) {
        err << "sockmapctl: uninstall has no JSON output; drop --json / -o json\n";
        return kUsageError;
    }
    line.command = status->parsed()        ? CtlCommand::status
                   : connections->parsed() ? CtlCommand::connections
                   : doctor->parsed()      ? CtlCommand::doctor
                   : uninstall->parsed()   ? CtlCommand::uninstall
                   : policy_check->parsed() ? CtlCommand::policy_check
                   : policy_show->parsed() ? CtlCommand::policy_show
                                           : CtlCommand::version;
    return line;
}

} // namespace sockmapd
