// smd_bench: bulk stream, request/response and connection-rate benchmarks over TCP or AF_UNIX; one JSON line per run.
// Also the mesh scenario's HTTP server and fixed-rate load generator, and the scale scenario's pair holder.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sockmapd/fd.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;
using sockmapd::Fd;

struct Options {
    std::string transport = "tcp"; // tcp or unix (socketpair)
    std::string listen_addr = "127.0.0.1";
    std::string connect_addr;      // defaults to listen_addr
    std::uint16_t port = 0;        // 0: ephemeral, shared in-process
    std::string server_netns;      // name under /run/netns; empty: stay
    std::string client_netns;
    std::size_t size = 0;          // message size; 0: mode default
    double duration_s = 5.0;       // stream, connrate
    double warmup_s = 1.0;
    std::size_t count = 100000;    // rr round trips measured
    std::size_t warmup_count = 2000;
    unsigned concurrency = 1;      // connrate
    double io_timeout_s = 10.0;    // any single wait for a socket longer than this is a failure
    int server_cpu = -1;           // pin server threads to this CPU; -1: let the scheduler place them
    int client_cpu = -1;
    double rate = 2000;            // http-load: requests per second over all connections; 0: closed loop
    std::size_t pairs = 10000;     // hold: connections held open
    double hold_s = 60;            // hold: seconds to hold them before closing
};

std::runtime_error errno_error(const std::string& what, int err = errno)
{
    return std::runtime_error(what + ": " + std::strerror(err));
}

// The first failure of any thread wins; it stops the run and becomes the exit message.
class RunState {
public:
    std::atomic<bool> stop{false};

    void fail(const std::string& message)
    {
        std::lock_guard lock(mutex_);
        if (error_.empty())
            error_ = message;
        stop = true;
    }
    std::string error() const
    {
        std::lock_guard lock(mutex_);
        return error_;
    }

private:
    mutable std::mutex mutex_;
    std::string error_;
};

// Runs body on a thread that reports exceptions to state instead of terminating the process.
std::thread guarded_thread(RunState& state, std::function<void()> body)
{
    return std::thread([&state, body = std::move(body)] {
        try {
            body();
        } catch (const std::exception& e) {
            state.fail(e.what());
        }
    });
}

// Sockets are bound to the network namespace of the thread that creates them, so each thread enters its own.
void enter_netns(const std::string& name)
{
    if (name.empty())
        return;
    std::string path = "/run/netns/" + name;
    Fd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.get() < 0)
        throw errno_error("open " + path);
    if (::setns(ns.get(), CLONE_NEWNET) != 0)
        throw errno_error("setns " + path);
}

void pin_to_cpu(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof(set), &set) != 0)
        throw errno_error("pin thread to CPU " + std::to_string(cpu));
}

// Everything a server or client thread does before its first socket call.
void enter_server(const Options& opt)
{
    enter_netns(opt.server_netns);
    pin_to_cpu(opt.server_cpu);
}

void enter_client(const Options& opt)
{
    enter_netns(opt.client_netns);
    pin_to_cpu(opt.client_cpu);
}

struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;
    int family() const { return storage.ss_family; }
};

SockAddr parse_addr(const std::string& text, std::uint16_t port)
{
    SockAddr addr;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr.storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr.storage);
    if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        addr.len = sizeof(*v4);
    } else if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        addr.len = sizeof(*v6);
    } else {
        throw std::runtime_error("not an IP address: " + text);
    }
    return addr;
}

void set_timeouts(int fd, double seconds)
{
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(seconds);
    tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        throw errno_error("set socket timeouts");
}

void set_nodelay(int fd)
{
    int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        throw errno_error("TCP_NODELAY");
}

Fd tcp_listener(const Options& opt, int backlog)
{
    SockAddr addr = parse_addr(opt.listen_addr, opt.port);
    Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
        throw errno_error("socket");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr.storage), addr.len) != 0)
        throw errno_error("bind " + opt.listen_addr);
    if (::listen(fd.get(), backlog) != 0)
        throw errno_error("listen");
    set_timeouts(fd.get(), opt.io_timeout_s);
    return fd;
}

std::uint16_t local_port(int fd)
{
    sockaddr_storage storage{};
    socklen_t len = sizeof(storage);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) != 0)
        throw errno_error("getsockname");
    if (storage.ss_family == AF_INET)
        return ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
}

// Data sockets are non-blocking and wait in poll(), as event-driven servers and sidecars do: sockmapd pairs
// only non-blocking sockets (docs/design.md, "A direction's life"). Waits at most `timeout_s` (< 0: forever).
void wait_io(int fd, short events, double timeout_s, const char* what)
{
    pollfd p{fd, events, 0};
    int ms = timeout_s < 0 ? -1 : static_cast<int>(timeout_s * 1000);
    int n;
    do
        n = ::poll(&p, 1, ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        throw errno_error("poll");
    if (n == 0)
        throw std::runtime_error(std::string(what) + " timed out");
}

// The I/O timeout of every wait below; set once from --io-timeout.
double g_io_timeout_s = 10;

Fd tcp_connect(const Options& opt, std::uint16_t port)
{
    SockAddr addr = parse_addr(opt.connect_addr, port);
    Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0)
        throw errno_error("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr.storage), addr.len) != 0) {
        if (errno != EINPROGRESS)
            throw errno_error("connect " + opt.connect_addr + ":" + std::to_string(port));
        wait_io(fd.get(), POLLOUT, opt.io_timeout_s, "connect");
        int error = 0;
        socklen_t len = sizeof(error);
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
        if (error)
            throw errno_error("connect " + opt.connect_addr + ":" + std::to_string(port), error);
    }
    return fd;
}

// Blocks until a connection arrives or stop is set; the listener's receive timeout bounds each wait. The
// accepted socket is non-blocking.
Fd accept_one(int listener, const std::atomic<bool>& stop)
{
    while (!stop) {
        int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0)
            return Fd(fd);
        if (stop)
            break; // the listener was shut down to wake us
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            throw errno_error("accept");
    }
    return Fd();
}

void send_all(int fd, const char* data, std::size_t len)
{
    while (len > 0) {
        ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN)
                wait_io(fd, POLLOUT, g_io_timeout_s, "send");
            else if (errno != EINTR)
                throw errno_error("send");
            continue;
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

// Reads exactly len bytes; false on a clean EOF before the first byte. timeout_s < 0: waits forever.
bool recv_exact(int fd, char* data, std::size_t len, double timeout_s = g_io_timeout_s)
{
    std::size_t got = 0;
    while (got < len) {
        ssize_t n = ::recv(fd, data + got, len - got, 0);
        if (n == 0) {
            if (got == 0)
                return false;
            throw std::runtime_error("EOF after " + std::to_string(got) + " of " + std::to_string(len) + " bytes");
        }
        if (n < 0) {
            if (errno == EAGAIN)
                wait_io(fd, POLLIN, timeout_s, "recv");
            else if (errno != EINTR)
                throw errno_error("recv");
            continue;
        }
        got += static_cast<std::size_t>(n);
    }
    return true;
}

void expect_eof(int fd)
{
    char byte;
    for (;;) {
        ssize_t n = ::recv(fd, &byte, 1, 0);
        if (n == 0)
            return;
        if (n > 0)
            throw std::runtime_error("unexpected data where EOF was expected");
        if (errno == EAGAIN)
            wait_io(fd, POLLIN, g_io_timeout_s, "recv (waiting for EOF)");
        else if (errno != EINTR)
            throw errno_error("recv (waiting for EOF)");
    }
}

// A connected pair (server end, client end), created in the right namespaces.
struct Connection {
    Fd server;
    Fd client;
};

Connection open_connection(const Options& opt)
{
    Connection conn;
    if (opt.transport == "unix") {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
            throw errno_error("socketpair");
        conn.server = Fd(sv[0]);
        conn.client = Fd(sv[1]);
        return conn;
    }
    // Each side is created on a short-lived thread inside its namespace; the fds work from any thread.
    RunState setup;
    Fd listener;
    std::uint16_t port = 0;
    guarded_thread(setup, [&] {
        enter_netns(opt.server_netns);
        listener = tcp_listener(opt, 16);
        port = local_port(listener.get());
    }).join();
    if (!setup.error().empty())
        throw std::runtime_error(setup.error());
    guarded_thread(setup, [&] {
        enter_netns(opt.client_netns);
        conn.client = tcp_connect(opt, port);
    }).join();
    if (!setup.error().empty())
        throw std::runtime_error(setup.error());
    conn.server = accept_one(listener.get(), setup.stop);
    if (conn.server.get() < 0)
        throw std::runtime_error("no connection accepted");
    return conn;
}

struct CpuTimes {
    double process_s = 0; // user + system time of this process
};

CpuTimes cpu_now()
{
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
    return {secs(ru.ru_utime) + secs(ru.ru_stime)};
}

double seconds_between(Clock::time_point a, Clock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

void sleep_while_running(const RunState& state, double seconds)
{
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (!state.stop && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

ordered_json describe(const Options& opt, const char* mode)
{
    ordered_json out;
    out["mode"] = mode;
    out["transport"] = opt.transport;
    if (opt.transport == "tcp") {
        out["listen_addr"] = opt.listen_addr;
        out["connect_addr"] = opt.connect_addr;
        out["server_netns"] = opt.server_netns;
        out["client_netns"] = opt.client_netns;
    }
    out["server_cpu"] = opt.server_cpu;
    out["client_cpu"] = opt.client_cpu;
    return out;
}

// Bulk one-way transfer: the client sends size-byte messages as fast as it can; the server reads
// with size-byte reads (as iperf3 does with -l). Rate is measured at the receiver after a warm-up.
ordered_json run_stream(const Options& opt)
{
    RunState state;
    Connection conn = open_connection(opt);
    std::atomic<std::uint64_t> received{0};

    std::thread server = guarded_thread(state, [&] {
        pin_to_cpu(opt.server_cpu);
        std::vector<char> buf(opt.size);
        for (;;) {
            ssize_t n = ::recv(conn.server.get(), buf.data(), buf.size(), 0);
            if (n == 0)
                return;
            if (n < 0) {
                if (errno == EAGAIN)
                    wait_io(conn.server.get(), POLLIN, opt.io_timeout_s, "stream recv");
                else if (errno != EINTR)
                    throw errno_error("stream recv");
                continue;
            }
            received.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
        }
    });
    std::thread client = guarded_thread(state, [&] {
        pin_to_cpu(opt.client_cpu);
        std::vector<char> buf(opt.size, 'x');
        while (!state.stop)
            send_all(conn.client.get(), buf.data(), buf.size());
        ::shutdown(conn.client.get(), SHUT_WR);
    });

    sleep_while_running(state, opt.warmup_s);
    auto t0 = Clock::now();
    auto cpu0 = cpu_now();
    std::uint64_t bytes0 = received.load();
    sleep_while_running(state, opt.duration_s);
    std::uint64_t bytes1 = received.load();
    auto cpu1 = cpu_now();
    auto t1 = Clock::now();
    state.stop = true;
    client.join();
    server.join();
    if (!state.error().empty())
        throw std::runtime_error(state.error());

    double elapsed = seconds_between(t0, t1);
    double bytes = static_cast<double>(bytes1 - bytes0);
    ordered_json out = describe(opt, "stream");
    out["size"] = opt.size;
    out["measured_s"] = elapsed;
    out["bytes"] = bytes1 - bytes0;
    out["gbit_s"] = bytes * 8 / elapsed / 1e9;
    out["msgs_per_s"] = bytes / static_cast<double>(opt.size) / elapsed;
    out["cpu_util"] = (cpu1.process_s - cpu0.process_s) / elapsed;
    return out;
}

struct LatencyStats {
    double mean_us, p50_us, p90_us, p99_us, min_us, max_us;
};

LatencyStats latency_stats(std::vector<std::uint64_t> ns)
{
    if (ns.empty())
        throw std::runtime_error("no samples");
    std::sort(ns.begin(), ns.end());
    auto pct = [&](double p) {
        std::size_t idx = static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1) + 0.5);
        return static_cast<double>(ns[idx]) / 1e3;
    };
    double sum = std::accumulate(ns.begin(), ns.end(), 0.0);
    return {sum / static_cast<double>(ns.size()) / 1e3, pct(0.50), pct(0.90), pct(0.99),
            static_cast<double>(ns.front()) / 1e3, static_cast<double>(ns.back()) / 1e3};
}

void put_latency(ordered_json& out, const LatencyStats& s, const std::string& prefix)
{
    out[prefix + "mean_us"] = s.mean_us;
    out[prefix + "p50_us"] = s.p50_us;
    out[prefix + "p90_us"] = s.p90_us;
    out[prefix + "p99_us"] = s.p99_us;
    out[prefix + "min_us"] = s.min_us;
    out[prefix + "max_us"] = s.max_us;
}

// Ping-pong of size-byte messages on one connection, TCP_NODELAY, non-blocking I/O waiting in poll(); each round
// trip timed.
ordered_json run_rr(const Options& opt)
{
    RunState state;
    Connection conn = open_connection(opt);
    if (opt.transport == "tcp") {
        set_nodelay(conn.server.get());
        set_nodelay(conn.client.get());
    }

    std::thread server = guarded_thread(state, [&] {
        pin_to_cpu(opt.server_cpu);
        std::vector<char> buf(opt.size);
        while (recv_exact(conn.server.get(), buf.data(), buf.size()))
            send_all(conn.server.get(), buf.data(), buf.size());
    });

    std::vector<std::uint64_t> samples;
    samples.reserve(opt.count);
    double elapsed = 0, cpu = 0;
    std::thread client = guarded_thread(state, [&] {
        pin_to_cpu(opt.client_cpu);
        std::vector<char> request(opt.size, 'q'), reply(opt.size);
        auto round_trip = [&] {
            send_all(conn.client.get(), request.data(), request.size());
            if (!recv_exact(conn.client.get(), reply.data(), reply.size()))
                throw std::runtime_error("server closed during request/response");
        };
        for (std::size_t i = 0; i < opt.warmup_count && !state.stop; ++i)
            round_trip();
        auto t0 = Clock::now();
        auto cpu0 = cpu_now();
        for (std::size_t i = 0; i < opt.count && !state.stop; ++i) {
            auto start = Clock::now();
            round_trip();
            samples.push_back(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
        }
        elapsed = seconds_between(t0, Clock::now());
        cpu = cpu_now().process_s - cpu0.process_s;
        ::shutdown(conn.client.get(), SHUT_WR);
    });
    client.join();
    server.join();
    if (!state.error().empty())
        throw std::runtime_error(state.error());

    ordered_json out = describe(opt, "rr");
    out["size"] = opt.size;
    out["count"] = samples.size();
    out["measured_s"] = elapsed;
    out["rr_per_s"] = static_cast<double>(samples.size()) / elapsed;
    put_latency(out, latency_stats(std::move(samples)), "");
    out["cpu_util"] = cpu / elapsed;
    return out;
}

// Short-lived connections, netperf TCP_CRR style: connect, send a 64-byte request, read the 64-byte
// reply, close (the client closes first). concurrency client threads, each served by its own server thread.
ordered_json run_connrate(const Options& opt)
{
    if (opt.transport != "tcp")
        throw std::runtime_error("connrate needs --transport tcp");
    RunState state;
    Fd listener;
    std::uint16_t port = 0;
    guarded_thread(state, [&] {
        enter_netns(opt.server_netns);
        listener = tcp_listener(opt, 4096);
        port = local_port(listener.get());
    }).join();
    if (!state.error().empty())
        throw std::runtime_error(state.error());

    // Clients stop first and finish the connection they are in; servers keep serving until then.
    std::atomic<bool> measuring{false}, stop_clients{false}, stop_servers{false};
    struct ClientTally {
        std::uint64_t completed = 0; // connections finished while measuring
        std::vector<std::uint64_t> conn_ns;
    };
    std::vector<ClientTally> tallies(opt.concurrency);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < opt.concurrency; ++i) {
        threads.push_back(guarded_thread(state, [&] {
            enter_server(opt);
            std::vector<char> buf(64);
            while (!state.stop && !stop_servers) {
                Fd conn = accept_one(listener.get(), stop_servers);
                if (conn.get() < 0)
                    return;
                if (!recv_exact(conn.get(), buf.data(), buf.size()))
                    continue; // a client stopped between connect and request
                send_all(conn.get(), buf.data(), buf.size());
                expect_eof(conn.get());
            }
        }));
    }
    for (unsigned i = 0; i < opt.concurrency; ++i) {
        threads.push_back(guarded_thread(state, [&, i] {
            enter_client(opt);
            std::vector<char> request(64, 'c'), reply(64);
            ClientTally& tally = tallies[i];
            tally.conn_ns.reserve(1 << 18);
            while (!state.stop && !stop_clients) {
                auto start = Clock::now();
                Fd conn = tcp_connect(opt, port);
                send_all(conn.get(), request.data(), request.size());
                if (!recv_exact(conn.get(), reply.data(), reply.size()))
                    throw std::runtime_error("server closed before replying");
                conn.reset();
                if (measuring.load(std::memory_order_relaxed)) {
                    ++tally.completed;
                    tally.conn_ns.push_back(static_cast<std::uint64_t>(
                        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
                }
            }
        }));
    }

    sleep_while_running(state, opt.warmup_s);
    auto cpu0 = cpu_now();
    auto t0 = Clock::now();
    measuring = true;
    sleep_while_running(state, opt.duration_s);
    measuring = false;
    auto t1 = Clock::now();
    auto cpu1 = cpu_now();
    stop_clients = true;
    for (unsigned i = opt.concurrency; i < threads.size(); ++i)
        threads[i].join();
    stop_servers = true;
    ::shutdown(listener.get(), SHUT_RDWR); // wakes server threads blocked in accept
    for (unsigned i = 0; i < opt.concurrency; ++i)
        threads[i].join();
    if (!state.error().empty())
        throw std::runtime_error(state.error());

    std::uint64_t completed = 0;
    std::vector<std::uint64_t> all;
    for (auto& tally : tallies) {
        completed += tally.completed;
        all.insert(all.end(), tally.conn_ns.begin(), tally.conn_ns.end());
    }
    double elapsed = seconds_between(t0, t1);
    ordered_json out = describe(opt, "connrate");
    out["concurrency"] = opt.concurrency;
    out["measured_s"] = elapsed;
    out["conns"] = completed;
    out["conns_per_s"] = static_cast<double>(completed) / elapsed;
    put_latency(out, latency_stats(std::move(all)), "conn_");
    out["cpu_util"] = (cpu1.process_s - cpu0.process_s) / elapsed;
    return out;
}

// --- mesh scenario: HTTP/1.1 keep-alive server and a fixed-rate, coordinated-omission-free load generator ---

// The body every response carries: deterministic, so the load generator checks each one byte for byte.
std::string http_payload(std::size_t size)
{
    std::string body(size, '\0');
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    for (auto& c : body) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = static_cast<char>('a' + x % 26);
    }
    return body;
}

// Serves `GET` with a 200 and a size-byte body on every keep-alive connection, one thread per connection.
// Runs until killed; run.sh owns its lifetime. Prints one JSON line once listening.
[[noreturn]] void run_http_server(const Options& opt)
{
    enter_netns(opt.server_netns);
    Fd listener = tcp_listener(opt, 1024);
    const std::string body = http_payload(opt.size);
    const std::string response = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body;
    ordered_json ready = describe(opt, "http-server");
    ready["port"] = local_port(listener.get());
    ready["size"] = opt.size;
    std::cout << ready.dump() << std::endl;
    std::atomic<bool> never{false};
    for (;;) {
        Fd conn = accept_one(listener.get(), never);
        std::thread([fd = std::move(conn), &response] {
            // Keep-alive connections may idle between points: only sends are bounded.
            set_nodelay(fd.get());
            std::string pending;
            char buf[4096];
            try {
                for (;;) {
                    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
                    if (n == 0)
                        return;
                    if (n < 0) {
                        if (errno == EAGAIN)
                            wait_io(fd.get(), POLLIN, -1, "recv");
                        else if (errno != EINTR)
                            return; // reset by the client: nothing to serve
                        continue;
                    }
                    pending.append(buf, static_cast<std::size_t>(n));
                    for (auto end = pending.find("\r\n\r\n"); end != std::string::npos;
                         end = pending.find("\r\n\r\n")) {
                        pending.erase(0, end + 4); // requests carry no body
                        send_all(fd.get(), response.data(), response.size());
                    }
                    if (pending.size() > 65536)
                        return; // not HTTP
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "smd_bench http-server: %s\n", e.what());
            }
        }).detach();
    }
}

// One keep-alive connection of the load generator: at most one request in flight (no pipelining).
struct LoadConnection {
    Fd fd;
    std::uint64_t next = 0;            // index of its next request in its own schedule
    bool in_flight = false;
    Clock::time_point scheduled;       // when the request in flight was due: latency counts from here
    std::string received;
};

// Open loop at opt.rate requests/s over opt.concurrency connections, wrk2-style: connection c's k-th request is
// due at t0 + (k * C + c) / rate, and its latency runs from that due time, so a slow response that delays the
// next send is charged to that request too (no coordinated omission). rate 0: closed loop, as fast as possible.
// Every response must be a 200 whose body equals http_payload(opt.size).
ordered_json run_http_load(const Options& opt)
{
    enter_client(opt);
    const std::string expected = http_payload(opt.size);
    const std::string request = "GET / HTTP/1.1\r\nHost: " + opt.connect_addr + "\r\nUser-Agent: smd_bench\r\n\r\n";
    const unsigned conns = opt.concurrency;
    const bool open_loop = opt.rate > 0;

    Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (epoll.get() < 0)
        throw errno_error("epoll_create1");
    std::vector<LoadConnection> lc(conns);
    for (unsigned c = 0; c < conns; ++c) {
        lc[c].fd = tcp_connect(opt, opt.port);
        set_nodelay(lc[c].fd.get());
        ::fcntl(lc[c].fd.get(), F_SETFL, ::fcntl(lc[c].fd.get(), F_GETFL) | O_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = c;
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, lc[c].fd.get(), &ev) != 0)
            throw errno_error("epoll_ctl");
    }

    auto secs = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
    const auto t0 = Clock::now() + std::chrono::milliseconds(10);
    const auto measure_from = t0 + secs(opt.warmup_s);
    const auto end = measure_from + secs(opt.duration_s);
    auto due = [&](unsigned c) {
        return t0 + secs((static_cast<double>(lc[c].next) * conns + c) / opt.rate);
    };

    std::vector<std::uint64_t> samples;
    std::uint64_t measured_bytes = 0, late_sends = 0;
    auto last_measured = measure_from; // when the last response of a measured request arrived
    auto send_request = [&](unsigned c, Clock::time_point scheduled) {
        ssize_t n = ::send(lc[c].fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
        if (n != static_cast<ssize_t>(request.size()))
            throw errno_error(n < 0 ? "send request" : "short send of a request");
        lc[c].in_flight = true;
        lc[c].scheduled = scheduled;
    };
    // A complete response in lc[c].received: check it, record it, free the connection for its next request.
    auto complete = [&](unsigned c, std::size_t header_len, std::size_t body_len) {
        auto& conn = lc[c];
        if (conn.received.compare(0, 12, "HTTP/1.1 200") != 0)
            throw std::runtime_error("response is not a 200: " + conn.received.substr(0, conn.received.find('\r')));
        if (body_len != expected.size() || conn.received.compare(header_len, body_len, expected) != 0)
            throw std::runtime_error("response body differs from the server's payload");
        if (conn.received.size() != header_len + body_len)
            throw std::runtime_error("bytes after a complete response (no request was pipelined)");
        auto now = Clock::now();
        if (conn.scheduled >= measure_from && conn.scheduled < end) {
            samples.push_back(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - conn.scheduled).count()));
            measured_bytes += conn.received.size();
            last_measured = now;
        }
        conn.received.clear();
        conn.in_flight = false;
        ++conn.next;
    };
    auto parse = [&](unsigned c) {
        auto& r = lc[c].received;
        auto header_end = r.find("\r\n\r\n");
        if (header_end == std::string::npos)
            return;
        std::size_t header_len = header_end + 4;
        std::string headers = r.substr(0, header_len);
        std::transform(headers.begin(), headers.end(), headers.begin(), [](unsigned char ch) { return std::tolower(ch); });
        auto at = headers.find("\r\ncontent-length:");
        if (at == std::string::npos)
            throw std::runtime_error("response without Content-Length");
        std::size_t body_len = std::stoul(headers.substr(at + 17));
        if (r.size() >= header_len + body_len)
            complete(c, header_len, body_len);
    };

    const auto deadline = end + secs(opt.io_timeout_s);
    std::vector<epoll_event> events(conns);
    char buf[65536];
    for (;;) {
        auto now = Clock::now();
        // Send everything that is due on an idle connection; find when the next one falls due.
        auto next_wake = Clock::time_point::max();
        bool any_in_flight = false;
        for (unsigned c = 0; c < conns; ++c) {
            if (lc[c].in_flight) {
                any_in_flight = true;
                continue;
            }
            auto when = open_loop ? due(c) : now;
            if (when >= end)
                continue;
            if (when <= now) {
                if (now - when > std::chrono::milliseconds(1))
                    ++late_sends;
                send_request(c, when);
                any_in_flight = true;
            } else {
                next_wake = std::min(next_wake, when);
            }
        }
        if (!any_in_flight && next_wake == Clock::time_point::max())
            break; // past the end, nothing outstanding
        if (now >= deadline)
            throw std::runtime_error("responses still outstanding " + std::to_string(opt.io_timeout_s) +
                                     " s after the last request was due");
        auto wake = std::min(next_wake, deadline);
        auto wait = std::max(wake - Clock::now(), Clock::duration::zero());
        timespec ts{};
        auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
        ts.tv_sec = static_cast<time_t>(wait_ns / 1000000000);
        ts.tv_nsec = static_cast<long>(wait_ns % 1000000000);
        int n = ::epoll_pwait2(epoll.get(), events.data(), static_cast<int>(events.size()), &ts, nullptr);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw errno_error("epoll_pwait2");
        }
        for (int i = 0; i < n; ++i) {
            unsigned c = events[i].data.u32;
            for (;;) {
                ssize_t got = ::recv(lc[c].fd.get(), buf, sizeof(buf), 0);
                if (got > 0) {
                    lc[c].received.append(buf, static_cast<std::size_t>(got));
                    continue;
                }
                if (got == 0)
                    throw std::runtime_error("connection " + std::to_string(c) + " closed by the server side");
                if (errno == EAGAIN || errno == EINTR)
                    break;
                throw errno_error("recv response");
            }
            if (!lc[c].in_flight && !lc[c].received.empty())
                throw std::runtime_error("bytes arrived with no request outstanding");
            parse(c);
        }
    }

    ordered_json out = describe(opt, "http-load");
    out["port"] = opt.port;
    out["concurrency"] = conns;
    out["target_rate"] = opt.rate;
    out["size"] = opt.size;
    // A server that falls behind answers the window's requests after the window: the rate is what it answered
    // per second until the last of them, not what was asked of it.
    double answered_s = std::max(opt.duration_s, seconds_between(measure_from, last_measured));
    out["measured_s"] = answered_s;
    out["requests"] = samples.size();
    out["rps"] = static_cast<double>(samples.size()) / answered_s;
    out["bytes"] = measured_bytes;
    out["late_sends"] = late_sends; // requests sent more than 1 ms after they were due (the server fell behind)
    put_latency(out, latency_stats(std::move(samples)), "");
    return out;
}

// --- scale scenario: hold N loopback connections open so the daemon's pairs and memory can be read ---

// Opens opt.pairs connections (client and accepted server socket, both in this process), prints one JSON line,
// holds them opt.hold_s seconds (or until killed) and closes them. Several listeners: one client address
// reaches each listener from its own set of ~64k ephemeral ports.
ordered_json run_hold(const Options& opt)
{
    // Only the soft limit is raised: raising the hard one needs CAP_SYS_RESOURCE, which containers often lack.
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    rlim_t need = 2 * opt.pairs + 256;
    if (need > nofile.rlim_max)
        throw std::runtime_error("holding " + std::to_string(opt.pairs) + " pairs needs " + std::to_string(need) +
                                 " file descriptors, the hard limit is " + std::to_string(nofile.rlim_max) +
                                 ": run several hold processes with fewer --pairs each");
    nofile.rlim_cur = need;
    if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0)
        throw errno_error("raise RLIMIT_NOFILE to " + std::to_string(need));
    RunState setup;
    std::vector<Fd> listeners;
    std::vector<std::uint16_t> ports;
    const std::size_t per_listener = 50000;
    guarded_thread(setup, [&] {
        enter_netns(opt.server_netns);
        for (std::size_t i = 0; i * per_listener < opt.pairs; ++i) {
            listeners.push_back(tcp_listener(opt, 4096));
            ports.push_back(local_port(listeners.back().get()));
        }
    }).join();
    if (!setup.error().empty())
        throw std::runtime_error(setup.error());

    std::vector<Connection> held(opt.pairs);
    auto t0 = Clock::now();
    guarded_thread(setup, [&] {
        enter_netns(opt.client_netns);
        for (std::size_t i = 0; i < opt.pairs; ++i) {
            std::size_t l = i / per_listener;
            held[i].client = tcp_connect(opt, ports[l]);
            held[i].server = accept_one(listeners[l].get(), setup.stop);
            if (held[i].server.get() < 0)
                throw std::runtime_error("no connection accepted for pair " + std::to_string(i));
        }
    }).join();
    if (!setup.error().empty())
        throw std::runtime_error(setup.error());
    double setup_s = seconds_between(t0, Clock::now());

    ordered_json ready = describe(opt, "hold");
    ready["pairs"] = opt.pairs;
    ready["listeners"] = listeners.size();
    ready["setup_s"] = setup_s;
    std::cout << ready.dump() << std::endl;

    std::this_thread::sleep_for(std::chrono::duration<double>(opt.hold_s));
    auto t1 = Clock::now();
    held.clear();
    ordered_json out = describe(opt, "hold");
    out["pairs"] = opt.pairs;
    out["close_s"] = seconds_between(t1, Clock::now());
    return out;
}

// Turns a hang anywhere into a failure with a message.
void start_watchdog(double seconds)
{
    std::thread([seconds] {
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        std::fprintf(stderr, "smd_bench: run did not finish within %.0f s\n", seconds);
        std::fflush(stderr);
        ::_exit(2);
    }).detach();
}

void add_common(CLI::App* cmd, Options& opt)
{
    cmd->add_option("--transport", opt.transport, "tcp, or unix for an AF_UNIX stream socketpair")
        ->check(CLI::IsMember({"tcp", "unix"}))
        ->capture_default_str();
    cmd->add_option("--listen-addr", opt.listen_addr, "server bind address (IPv4 or IPv6)")->capture_default_str();
    cmd->add_option("--connect-addr", opt.connect_addr, "address the client connects to (default: --listen-addr)");
    cmd->add_option("--port", opt.port, "server port (0: ephemeral)")->capture_default_str();
    cmd->add_option("--server-netns", opt.server_netns, "network namespace (under /run/netns) for server sockets");
    cmd->add_option("--client-netns", opt.client_netns, "network namespace (under /run/netns) for client sockets");
    cmd->add_option("--server-cpu", opt.server_cpu, "pin server threads to this CPU (-1: unpinned)")
        ->capture_default_str();
    cmd->add_option("--client-cpu", opt.client_cpu, "pin client threads to this CPU (-1: unpinned)")
        ->capture_default_str();
    cmd->add_option("--io-timeout", opt.io_timeout_s, "seconds any single wait for a socket may take")
        ->capture_default_str();
}

} // namespace

int main(int argc, char** argv)
{
    Options opt;
    CLI::App app{"smd_bench: stream, request/response and connection-rate benchmarks; prints one JSON line"};
    app.require_subcommand(1);

    auto* stream = app.add_subcommand("stream", "bulk throughput of size-byte messages");
    add_common(stream, opt);
    stream->add_option("--size", opt.size, "message size in bytes (default 65536)");
    stream->add_option("--duration", opt.duration_s, "measured seconds")->capture_default_str();
    stream->add_option("--warmup", opt.warmup_s, "seconds before measuring")->capture_default_str();

    auto* rr = app.add_subcommand("rr", "request/response latency of size-byte messages");
    add_common(rr, opt);
    rr->add_option("--size", opt.size, "request and reply size in bytes (default 64)");
    rr->add_option("--count", opt.count, "measured round trips")->capture_default_str();
    rr->add_option("--warmup-count", opt.warmup_count, "round trips before measuring")->capture_default_str();

    auto* connrate = app.add_subcommand("connrate", "connect, 64-byte request, 64-byte reply, close; per second");
    add_common(connrate, opt);
    connrate->add_option("--concurrency", opt.concurrency, "client threads (each with a server thread)")
        ->check(CLI::Range(1u, 256u))
        ->capture_default_str();
    connrate->add_option("--duration", opt.duration_s, "measured seconds")->capture_default_str();
    connrate->add_option("--warmup", opt.warmup_s, "seconds before measuring")->capture_default_str();

    auto* http_server = app.add_subcommand("http-server", "HTTP/1.1 keep-alive server: a size-byte body per GET");
    add_common(http_server, opt);
    http_server->add_option("--size", opt.size, "response body in bytes (default 16384)");

    auto* http_load = app.add_subcommand(
        "http-load", "keep-alive GETs at a fixed rate (open loop, latency from the due time) or as fast as possible");
    add_common(http_load, opt);
    http_load->add_option("--size", opt.size, "expected response body in bytes, checked byte for byte (default 16384)");
    http_load->add_option("--rate", opt.rate, "requests per second over all connections; 0: closed loop")
        ->check(CLI::Range(0.0, 1e6))
        ->capture_default_str();
    http_load->add_option("--concurrency", opt.concurrency, "keep-alive connections")
        ->check(CLI::Range(1u, 1024u))
        ->capture_default_str();
    http_load->add_option("--duration", opt.duration_s, "measured seconds")->capture_default_str();
    http_load->add_option("--warmup", opt.warmup_s, "seconds before measuring")->capture_default_str();

    auto* hold = app.add_subcommand("hold", "open N connections, print a line, hold them, close them");
    add_common(hold, opt);
    hold->add_option("--pairs", opt.pairs, "connections to hold")->check(CLI::Range(1ul, 1000000ul))->capture_default_str();
    hold->add_option("--hold", opt.hold_s, "seconds to hold them")->capture_default_str();

    CLI11_PARSE(app, argc, argv);
    if (opt.connect_addr.empty())
        opt.connect_addr = opt.listen_addr;
    g_io_timeout_s = opt.io_timeout_s;

    try {
        ordered_json result;
        if (stream->parsed()) {
            opt.size = opt.size ? opt.size : 65536;
            start_watchdog(opt.warmup_s + opt.duration_s + 4 * opt.io_timeout_s);
            result = run_stream(opt);
        } else if (rr->parsed()) {
            opt.size = opt.size ? opt.size : 64;
            // Generous: 1 ms per round trip on top of the I/O timeouts.
            start_watchdog(static_cast<double>(opt.count + opt.warmup_count) * 1e-3 + 4 * opt.io_timeout_s);
            result = run_rr(opt);
        } else if (connrate->parsed()) {
            start_watchdog(opt.warmup_s + opt.duration_s + 4 * opt.io_timeout_s);
            result = run_connrate(opt);
        } else if (http_server->parsed()) {
            opt.size = opt.size ? opt.size : 16384;
            run_http_server(opt);
        } else if (http_load->parsed()) {
            opt.size = opt.size ? opt.size : 16384;
            if (opt.port == 0)
                throw std::runtime_error("http-load needs --port: the port http-server printed");
            start_watchdog(opt.warmup_s + opt.duration_s + 4 * opt.io_timeout_s);
            result = run_http_load(opt);
        } else {
            start_watchdog(opt.hold_s + static_cast<double>(opt.pairs) * 2e-3 + 4 * opt.io_timeout_s);
            result = run_hold(opt);
        }
        std::cout << result.dump() << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "smd_bench: %s\n", e.what());
        return 1;
    }
}
