// Readiness and shutdown notifications to the service manager (systemd Type=notify); no-ops without one.
#pragma once

#include <string>

namespace sockmapd {

// READY=1 with a one-line STATUS=; call once the data path is attached and the pins are committed.
void notify_ready(const std::string& status);

// STOPPING=1 with a one-line STATUS=; call when a stop signal has been taken, before detaching.
void notify_stopping(const std::string& status);

} // namespace sockmapd
