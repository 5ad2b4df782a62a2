// Network namespaces found from user space by the cookie BPF knows them by, with a sock_diag socket inside each.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "sockmapd/fd.hpp"

namespace sockmapd {

struct NetnsDiag {
    std::uint64_t cookie = 0; // SO_NETNS_COOKIE, bpf_get_netns_cookie()
    std::uint64_t inode = 0;  // what lsns and `readlink /proc/PID/ns/net` show
    std::string name;         // its name under /run/netns (ip netns), or empty
    Fd diag;                  // NETLINK_SOCK_DIAG socket created inside it: dumps that namespace's sockets
};

// Opens a sock_diag socket in every namespace whose cookie is in `wanted`. Candidates come from /run/netns,
// this process and /proc/*/ns/net, each namespace tried once; the search stops when all are found. A
// namespace that no process and no bind mount holds cannot be entered and is missing from the result.
std::vector<NetnsDiag> open_sock_diag_in(const std::set<std::uint64_t>& wanted);

struct NetnsFd {
    std::uint64_t cookie = 0;
    Fd ns; // the nsfs file: keeps the namespace alive while open
};

// The same search as open_sock_diag_in, keeping an fd of each namespace found.
std::vector<NetnsFd> open_netns(const std::set<std::uint64_t>& wanted);

// Runs `fn` in a short-lived thread that entered the namespace behind ns_fd; false if it could not enter it.
bool run_in_netns(int ns_fd, const std::function<void()>& fn);

} // namespace sockmapd
