// errno to message conversion at the boundary with the kernel and libbpf.
#include "sockmapd/error.hpp"

#include <cstring>
#include <string>

namespace sockmapd {

std::string errno_name(int err)
{
    const char* name = strerrorname_np(err);
    return name ? std::string(name) : "errno " + std::to_string(err);
}

void throw_errno(int err, const std::string& what)
{
    throw Error(what + ": " + errno_name(err) + " (" + std::strerror(err) + ")");
}

} // namespace sockmapd
