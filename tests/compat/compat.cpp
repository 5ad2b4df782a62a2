// Helpers shared by the compatibility tier's cases.
#include "compat.hpp"

#include <poll.h>
#include <sys/socket.h>

#include "process.hpp"

namespace smdtest {

Fd accept_within(int listener, Clock::time_point deadline, const std::function<bool()>& stop)
{
    while (!(stop && stop()) && Clock::now() < deadline) {
        pollfd p{listener, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0) {
            Fd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (fd)
                return fd;
        }
    }
    return Fd();
}

std::string one_line(const std::string& text)
{
    std::string out;
    for (char c : text) {
        if (c == '\n')
            out += " | ";
        else
            out.push_back(c);
    }
    while (out.size() >= 3 && out.compare(out.size() - 3, 3, " | ") == 0)
        out.erase(out.size() - 3);
    return out;
}

std::string tcp_queues(const NetNs& ns)
{
    std::string out;
    run_command({"ip", "netns", "exec", ns.name(), "ss", "-Htn"}, &out, std::chrono::seconds(5));
    std::string compact;
    for (std::size_t at = 0; at < out.size();) {
        auto end = out.find('\n', at);
        std::string line = out.substr(at, end == std::string::npos ? std::string::npos : end - at);
        // Squeeze runs of spaces: "ESTAB 0 33554432 10.199.0.1:15001 10.199.0.1:40000".
        std::string squeezed;
        for (char c : line)
            if (c != ' ' || (!squeezed.empty() && squeezed.back() != ' '))
                squeezed.push_back(c);
        if (!squeezed.empty())
            compact += (compact.empty() ? "" : " | ") + squeezed;
        if (end == std::string::npos)
            break;
        at = end + 1;
    }
    return ns.name() + ": [" + (compact.empty() ? "no TCP connections" : compact) + "]";
}

} // namespace smdtest
