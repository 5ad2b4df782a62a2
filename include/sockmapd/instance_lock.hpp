// One daemon per pin path: an exclusive flock on the pin directory, held for the daemon's life.
#pragma once

#include <string>

#include "sockmapd/fd.hpp"

namespace sockmapd {

class InstanceLock {
public:
    // Throws if another process holds the lock on pin_path.
    explicit InstanceLock(const std::string& pin_path);

private:
    Fd fd_;
};

} // namespace sockmapd
