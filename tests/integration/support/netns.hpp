// Named network namespaces for tests, and a guard that creates sockets inside one from this thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace smdtest {

class Process;

class NetNs {
public:
    explicit NetNs(const std::string& prefix = "smd");
    ~NetNs();
    NetNs(const NetNs&) = delete;
    NetNs& operator=(const NetNs&) = delete;

    const std::string& name() const { return name_; }
    // Runs `ip -n NAME args...` and fails the test if it fails.
    void ip(const std::vector<std::string>& args) const;
    // Runs a command inside the namespace (ip netns exec) and fails the test if it fails.
    void exec(const std::vector<std::string>& argv) const;

private:
    std::string name_;
};

// Waits (bounded) until `server` listens on every one of `wanted` ("0.0.0.0:15001", "[::]:80") in `ns`, as ss
// shows it over netlink (a probe connection could itself be redirected or accelerated). Returns "" once it
// does, or what went wrong: the server exited, or the timeout passed (with ss's listing).
std::string wait_until_listening(const NetNs& ns, const std::vector<std::string>& wanted, Process& server,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A TcpExt counter of this thread's namespace (/proc/thread-self/net/netstat), e.g. "TCPBacklogDrop": segments a
// socket dropped because its backlog was full while its reader held it. Fails the test if there is no such counter.
std::uint64_t tcp_ext_counter(const std::string& name);

// While alive, this thread is in the namespace; sockets created meanwhile stay in it for good.
class InNetns {
public:
    explicit InNetns(const NetNs& ns);
    ~InNetns();
    InNetns(const InNetns&) = delete;
    InNetns& operator=(const InNetns&) = delete;

private:
    int saved_ = -1;
};

} // namespace smdtest
