// Finding network namespaces by cookie for sockmapctl connections: setns in a short-lived thread.
#include "sockmapd/netns_scan.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <thread>
#include <utility>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace sockmapd {
namespace {

struct Candidate {
    std::string path; // an nsfs file: /run/netns/NAME or /proc/PID/ns/net
    std::uint64_t inode = 0;
};

std::vector<std::string> directory_entries(const char* dir)
{
    std::vector<std::string> names;
    DIR* d = ::opendir(dir);
    if (!d)
        return names;
    while (auto* entry = ::readdir(d))
        if (entry->d_name[0] != '.')
            names.emplace_back(entry->d_name);
    ::closedir(d);
    return names;
}

bool all_digits(const std::string& s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Unique namespaces in search order, and the /run/netns names by inode.
std::pair<std::vector<Candidate>, std::map<std::uint64_t, std::string>> find_candidates()
{
    std::vector<std::string> paths;
    for (const auto& name : directory_entries("/run/netns"))
        paths.push_back("/run/netns/" + name);
    paths.push_back("/proc/self/ns/net");
    for (const auto& pid : directory_entries("/proc"))
        if (all_digits(pid))
            paths.push_back("/proc/" + pid + "/ns/net");

    std::vector<Candidate> candidates;
    std::map<std::uint64_t, std::string> names;
    std::set<std::pair<dev_t, ino_t>> seen;
    for (const auto& path : paths) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) // the process exited, or a stale bind mount
            continue;
        if (path.starts_with("/run/netns/"))
            names.emplace(st.st_ino, path.substr(std::strlen("/run/netns/")));
        if (seen.insert({st.st_dev, st.st_ino}).second)
            candidates.push_back({path, st.st_ino});
    }
    return {std::move(candidates), std::move(names)};
}

// In the calling thread: enter the namespace and create a sock_diag socket there; -1 if that fails.
int diag_socket_inside(const std::string& ns_path)
{
    Fd ns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0)
        return -1;
    return ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
}

std::uint64_t netns_cookie(int fd)
{
    std::uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    return ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == 0 ? cookie : 0;
}

} // namespace

bool run_in_netns(int ns_fd, const std::function<void()>& fn)
{
    bool entered = false;
    // setns() changes only the calling thread: a thread that ends afterwards leaves this one where it was.
    std::thread inside([&] {
        if (::setns(ns_fd, CLONE_NEWNET) != 0)
            return;
        entered = true;
        fn();
    });
    inside.join();
    return entered;
}

std::vector<NetnsFd> open_netns(const std::set<std::uint64_t>& wanted)
{
    std::vector<NetnsFd> found;
    if (wanted.empty())
        return found;
    std::set<std::uint64_t> missing = wanted;
    for (const auto& candidate : find_candidates().first) {
        Fd ns(::open(candidate.path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns)
            continue;
        std::uint64_t cookie = 0;
        run_in_netns(ns.get(), [&] {
            Fd probe(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
            if (probe)
                cookie = netns_cookie(probe.get());
        });
        if (!missing.erase(cookie))
            continue;
        found.push_back({cookie, std::move(ns)});
        if (missing.empty())
            break;
    }
    return found;
}

std::vector<NetnsDiag> open_sock_diag_in(const std::set<std::uint64_t>& wanted)
{
    std::vector<NetnsDiag> found;
    if (wanted.empty())
        return found;
    auto [candidates, names] = find_candidates();
    // setns() changes only the calling thread: a thread that ends afterwards leaves this one where it was.
    // The sockets it creates stay in the namespace they were created in.
    std::thread scanner([&, &candidates = candidates, &names = names] {
        std::set<std::uint64_t> missing = wanted;
        for (const auto& candidate : candidates) {
            Fd diag(diag_socket_inside(candidate.path));
            if (!diag)
                continue;
            std::uint64_t cookie = netns_cookie(diag.get());
            if (!missing.erase(cookie))
                continue;
            auto name = names.find(candidate.inode);
            found.push_back({cookie, candidate.inode, name != names.end() ? name->second : "", std::move(diag)});
            if (missing.empty())
                break;
        }
    });
    scanner.join();
    return found;
}

} // namespace sockmapd
