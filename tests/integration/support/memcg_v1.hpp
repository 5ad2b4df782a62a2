// A cgroup v1 memory cgroup with a socket-memory limit, joined by single threads, removed when dropped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace smdtest {

// Where the cgroup v1 memory controller is mounted (hybrid hosts), nullopt when it is not.
std::optional<std::string> memcg_v1_mount();

// Setting memory.kmem.tcp.limit_in_bytes turns on socket memory accounting for this memcg (v1 does not account
// socket memory otherwise). A socket is charged to the memcg of the thread that created it -- for an accepted
// socket, the thread that called accept() -- and stays charged there whatever thread reads or writes it later.
class MemcgV1 {
public:
    MemcgV1(const std::string& mount, std::uint64_t tcp_limit_bytes);
    // A child of `parent`, with its own limit: a socket charged here is charged to the parent's counter too.
    MemcgV1(const MemcgV1& parent, std::uint64_t tcp_limit_bytes);
    // Moves any thread still inside back to where this cgroup's creator was, then removes the directory.
    ~MemcgV1();
    MemcgV1(const MemcgV1&) = delete;
    MemcgV1& operator=(const MemcgV1&) = delete;

    const std::string& path() const { return path_; }
    bool created() const { return created_; }

    // memory.kmem.tcp.* of this memcg: bytes charged now, the high-water mark, and how often a charge failed.
    std::uint64_t tcp_usage() const { return read_number("memory.kmem.tcp.usage_in_bytes"); }
    std::uint64_t tcp_max_usage() const { return read_number("memory.kmem.tcp.max_usage_in_bytes"); }
    std::uint64_t tcp_failcnt() const { return read_number("memory.kmem.tcp.failcnt"); }
    std::uint64_t tcp_limit() const { return read_number("memory.kmem.tcp.limit_in_bytes"); }

private:
    friend class InMemcgV1;
    MemcgV1(const std::string& mount, const std::string& parent_dir, std::uint64_t tcp_limit_bytes);
    std::uint64_t read_number(const std::string& file) const;

    std::string mount_;
    std::string path_;
    std::string home_; // the creating thread's memcg, where stray threads are moved before rmdir
    bool created_ = false;
};

// While alive, the calling thread (only it: v1 `tasks` moves threads one by one) is in the memcg. Sockets it
// creates or accepts meanwhile are charged to the memcg for good.
class InMemcgV1 {
public:
    explicit InMemcgV1(const MemcgV1& memcg);
    ~InMemcgV1();
    InMemcgV1(const InMemcgV1&) = delete;
    InMemcgV1& operator=(const InMemcgV1&) = delete;

private:
    std::string home_;
    bool moved_ = false;
};

} // namespace smdtest
