// sockmapctl's subcommands and flags. Global flags (--pin-path, --json, -o) go before or after the subcommand;
// no subcommand prints the help and exits 2, as does every usage error.
#pragma once

#include <iosfwd>
#include <string>
#include <variant>
#include <vector>

namespace sockmapd {

enum class CtlCommand { status, connections, doctor, uninstall, policy_check, policy_show, version };

struct CtlCommandLine {
    CtlCommand command = CtlCommand::status;
    std::string pin_path;
    bool json = false; // --json or -o json
    std::string cgroup; // doctor: empty is the cgroup v2 mount
    double timeout_seconds = 30;
    bool force = false;
    std::string policy_file;
};

// args: argv without argv[0]. Help and the version go to out; usage errors (one line, or the help when no
// subcommand was given) to err, with exit code 2.
std::variant<CtlCommandLine, int> parse_ctl_command_line(const std::vector<std::string>& args, std::ostream& out,
                                                         std::ostream& err);

} // namespace sockmapd
