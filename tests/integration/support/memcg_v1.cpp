// v1 memcg lifecycle for memory-pressure tests; threads are moved in and out through `tasks`, never `cgroup.procs`.
#include "memcg_v1.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "env.hpp"

namespace smdtest {
namespace {

bool write_file(const std::string& path, const std::string& value)
{
    std::ofstream out(path);
    out << value << std::flush;
    return static_cast<bool>(out);
}

// The calling thread's memcg, as a path under `mount` ("" for the root).
std::string own_memcg(const std::string& mount)
{
    std::ifstream in("/proc/thread-self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        // "4:memory:/some/path"; the controller list may name more than memory on other hosts.
        auto first = line.find(':'), second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos)
            continue;
        std::stringstream controllers(line.substr(first + 1, second - first - 1));
        std::string controller;
        while (std::getline(controllers, controller, ','))
            if (controller == "memory")
                return mount + (line.substr(second + 1) == "/" ? "" : line.substr(second + 1));
    }
    return mount;
}

} // namespace

std::optional<std::string> memcg_v1_mount()
{
    std::ifstream in("/proc/self/mounts");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string source, target, type, options;
        fields >> source >> target >> type >> options;
        if (type != "cgroup")
            continue;
        std::stringstream opts(options);
        std::string opt;
        while (std::getline(opts, opt, ','))
            if (opt == "memory")
                return target;
    }
    return std::nullopt;
}

MemcgV1::MemcgV1(const std::string& mount, std::uint64_t tcp_limit_bytes) : MemcgV1(mount, mount, tcp_limit_bytes)
{
}

MemcgV1::MemcgV1(const MemcgV1& parent, std::uint64_t tcp_limit_bytes)
    : MemcgV1(parent.mount_, parent.path_, tcp_limit_bytes)
{
}

MemcgV1::MemcgV1(const std::string& mount, const std::string& parent_dir, std::uint64_t tcp_limit_bytes)
    : mount_(mount), path_(parent_dir + "/" + unique_name("smd-test")), home_(own_memcg(mount))
{
    if (::mkdir(path_.c_str(), 0755) != 0) {
        ADD_FAILURE() << "mkdir " << path_ << ": " << std::strerror(errno);
        return;
    }
    created_ = true;
    if (!write_file(path_ + "/memory.kmem.tcp.limit_in_bytes", std::to_string(tcp_limit_bytes)))
        ADD_FAILURE() << "set memory.kmem.tcp.limit_in_bytes of " << path_ << " to " << tcp_limit_bytes << ": "
                      << std::strerror(errno);
}

MemcgV1::~MemcgV1()
{
    if (!created_)
        return;
    // Charged socket memory does not keep a v1 memcg alive, threads do; sockets that outlive it keep an
    // offline memcg in the kernel until they are freed, invisible in the hierarchy.
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::ifstream tasks(path_ + "/tasks");
        pid_t tid;
        while (tasks >> tid)
            write_file(home_ + "/tasks", std::to_string(tid));
        if (::rmdir(path_.c_str()) == 0 || errno == ENOENT)
            return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "could not remove memory cgroup " << path_ << ": " << std::strerror(errno);
}

std::uint64_t MemcgV1::read_number(const std::string& file) const
{
    std::ifstream in(path_ + "/" + file);
    std::uint64_t value = 0;
    if (!(in >> value))
        ADD_FAILURE() << "read " << path_ << "/" << file;
    return value;
}

InMemcgV1::InMemcgV1(const MemcgV1& memcg) : home_(own_memcg(memcg.mount_))
{
    moved_ = write_file(memcg.path() + "/tasks", std::to_string(::gettid()));
    if (!moved_)
        ADD_FAILURE() << "move thread " << ::gettid() << " into " << memcg.path() << ": " << std::strerror(errno);
}

InMemcgV1::~InMemcgV1()
{
    if (moved_ && !write_file(home_ + "/tasks", std::to_string(::gettid())))
        ADD_FAILURE() << "move thread " << ::gettid() << " back to " << home_ << ": " << std::strerror(errno);
}

} // namespace smdtest
