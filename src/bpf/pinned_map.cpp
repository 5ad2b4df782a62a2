// Opens pinned maps with an error message that tells the operator what to check.
#include "sockmapd/pinned_map.hpp"

#include <bpf/bpf.h>

#include <cerrno>

#include "sockmapd/error.hpp"
#include "sockmapd/kernel_object.hpp"

namespace sockmapd {

Fd open_pinned_map(const std::string& pin_path, const char* name)
{
    std::string path = pin_path + "/" + name;
    Fd fd = open_pin(path);
    if (!fd) {
        int err = errno;
        if (err == ENOENT)
            throw Error("nothing pinned at " + path + "; is sockmapd installed with --pin-path " + pin_path + "?");
        throw_errno(err, "open pinned map " + path);
    }
    return fd;
}

} // namespace sockmapd
