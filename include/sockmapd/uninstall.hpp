// sockmapctl uninstall: drain every redirect queue, then detach and unpin everything under a pin path.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace sockmapd {

struct UninstallOptions {
    std::string pin_path;
    std::chrono::milliseconds timeout{std::chrono::seconds(30)}; // for the redirect queues to empty
    bool force = false; // after the timeout, drop what is still unread instead of refusing
};

// Returns the exit code: 0 when nothing of sockmapd is left under the pin path, 1 when it refused or could not
// finish (the reasons on err). Progress goes to out.
int uninstall(const UninstallOptions& options, std::ostream& out, std::ostream& err);

} // namespace sockmapd
