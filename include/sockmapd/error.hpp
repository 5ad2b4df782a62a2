// Errors that carry what failed and on which object; only main() turns them into a message.
#pragma once

#include <stdexcept>
#include <string>

namespace sockmapd {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "what: strerror(err)"; call with errno (or -ret from libbpf) captured on the line after the failure.
[[noreturn]] void throw_errno(int err, const std::string& what);

std::string errno_name(int err);

} // namespace sockmapd
