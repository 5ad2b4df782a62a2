// Running the daemon the way a deployment file says (systemd unit, Kubernetes container): the privilege
// wrapper, and the small probes of a running daemon that those tests share.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace smdtest {

// Absolute path of a program in the usual system directories; "" if none.
std::string find_program(const std::string& name);

// setpriv(1) arguments that leave only `capabilities` (e.g. "CAP_BPF" or "BPF") in the bounding set, clear
// the inheritable set and, if asked, set no_new_privs; ends with "--", ready for the command.
std::vector<std::string> restricted_privileges(const std::vector<std::string>& capabilities, bool no_new_privs);

// CapEff of a process, from /proc/<pid>/status.
std::uint64_t effective_capabilities(pid_t pid);
constexpr std::uint64_t kCapSysAdmin = 1ull << 21;
constexpr std::uint64_t kCapSysResource = 1ull << 24;

// `sockmapctl status --json` for a pin path; an empty object (and a test failure) if it fails.
nlohmann::json ctl_status(const std::string& pin_path);

// A whole file, "" if it cannot be read.
std::string read_file(const std::string& path);

} // namespace smdtest
