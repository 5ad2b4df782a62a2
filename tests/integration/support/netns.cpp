// Network namespaces through iproute2, so they are visible (and removable) by name like a user's.
#include "netns.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "env.hpp"
#include "process.hpp"

namespace smdtest {

NetNs::NetNs(const std::string& prefix) : name_(unique_name(prefix))
{
    must_run({"ip", "netns", "add", name_});
    ip({"link", "set", "lo", "up"});
}

NetNs::~NetNs()
{
    if (run_command({"ip", "netns", "del", name_}) != 0)
        ADD_FAILURE() << "could not delete network namespace " << name_;
}

void NetNs::ip(const std::vector<std::string>& args) const
{
    std::vector<std::string> argv{"ip", "-n", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    must_run(argv);
}

void NetNs::exec(const std::vector<std::string>& argv) const
{
    std::vector<std::string> full{"ip", "netns", "exec", name_};
    full.insert(full.end(), argv.begin(), argv.end());
    must_run(full);
}

std::string wait_until_listening(const NetNs& ns, const std::vector<std::string>& wanted, Process& server,
                                 std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (!server.running())
            return "exited before listening on all of its ports";
        std::string listening;
        run_command({"ip", "netns", "exec", ns.name(), "ss", "-Htln"}, &listening);
        bool all = true;
        for (const auto& w : wanted)
            all = all && listening.find(w + " ") != std::string::npos;
        if (all)
            return "";
        if (std::chrono::steady_clock::now() >= deadline)
            return "not listening after " + std::to_string(timeout.count()) + " ms; ss -tln:\n" + listening;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

std::uint64_t tcp_ext_counter(const std::string& name)
{
    std::ifstream in("/proc/thread-self/net/netstat");
    std::string keys, values;
    while (std::getline(in, keys) && std::getline(in, values)) {
        if (keys.rfind("TcpExt:", 0) != 0)
            continue;
        std::istringstream k(keys), v(values);
        std::string key, value;
        while (k >> key && v >> value) {
            if (key == name)
                return std::stoull(value);
        }
    }
    ADD_FAILURE() << "no TcpExt counter " << name << " in /proc/thread-self/net/netstat";
    return 0;
}

InNetns::InNetns(const NetNs& ns) : saved_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC))
{
    std::string path = "/run/netns/" + ns.name();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0)
        ADD_FAILURE() << "setns " << path << ": " << std::strerror(errno);
    if (fd >= 0)
        ::close(fd);
}

InNetns::~InNetns()
{
    if (saved_ >= 0) {
        if (::setns(saved_, CLONE_NEWNET) != 0)
            ADD_FAILURE() << "setns back: " << std::strerror(errno);
        ::close(saved_);
    }
}

} // namespace smdtest
