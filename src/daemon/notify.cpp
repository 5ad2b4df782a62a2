// sd_notify(3) wrapper: systemd sets NOTIFY_SOCKET for Type=notify units; elsewhere sd_notify does nothing.
#include "sockmapd/notify.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>

#include "sockmapd/error.hpp"

namespace sockmapd {
namespace {

void notify(const std::string& state, std::string status)
{
    // A newline would start a new assignment in the datagram.
    std::replace(status.begin(), status.end(), '\n', ' ');
    std::string message = state + "\nSTATUS=" + status;
    // A manager that cannot be told is not a reason to stop accelerating: the unit's start timeout reports it.
    int r = sd_notify(0, message.c_str());
    if (r < 0)
        spdlog::warn("sd_notify {}: {}", state, errno_name(-r));
    else if (r > 0)
        spdlog::debug("sd_notify: {}", state);
}

} // namespace

void notify_ready(const std::string& status) { notify("READY=1", status); }

void notify_stopping(const std::string& status) { notify("STOPPING=1", status); }

} // namespace sockmapd
