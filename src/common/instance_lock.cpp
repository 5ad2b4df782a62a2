// Exclusive flock on the pin directory: a second daemon on the same pins fails instead of racing.
#include "sockmapd/instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "sockmapd/error.hpp"

namespace sockmapd {

InstanceLock::InstanceLock(const std::string& pin_path)
    : fd_(::open(pin_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC))
{
    if (!fd_)
        throw_errno(errno, "open pin directory " + pin_path);
    if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EWOULDBLOCK)
            throw Error("another sockmapd is already running on pin path " + pin_path +
                        "; stop it first or pass a different --pin-path");
        throw_errno(err, "lock pin directory " + pin_path);
    }
}

} // namespace sockmapd
