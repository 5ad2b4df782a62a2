// What this process may do: its effective capabilities, for the daemon's preflight and the doctor report.
#pragma once

#include <string>

namespace sockmapd {

// Whether this process has CAP_SYS_ADMIN (mounting bpffs needs it; the systemd unit leaves it out).
bool has_cap_sys_admin();

// Empty when the process has CAP_SYS_ADMIN, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON; otherwise what is missing.
std::string missing_privileges();

} // namespace sockmapd
