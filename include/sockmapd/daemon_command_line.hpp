// sockmapd's flags: parsed into a DaemonConfig, or an exit code after --help, --version or a usage error.
#pragma once

#include <iosfwd>
#include <string>
#include <variant>
#include <vector>

#include "sockmapd/daemon.hpp"

namespace sockmapd {

// --max-queued-bytes above this is refused: the kernel counts a receiver's redirect queue in 32 bits
// (sk_psock.msg_tot_len), so a larger limit could never be reached.
inline constexpr std::uint64_t kMaxQueuedBytesLimit = std::uint64_t{4} << 30;

struct DaemonCommandLine {
    DaemonConfig config;
    bool check = false; // --check: report and exit
    bool json = false;  // --check --json / -o json
};

// args: argv without argv[0]. Help and the version go to out, a usage error (one line) to err.
std::variant<DaemonCommandLine, int> parse_daemon_command_line(const std::vector<std::string>& args, std::ostream& out,
                                                               std::ostream& err);

} // namespace sockmapd
