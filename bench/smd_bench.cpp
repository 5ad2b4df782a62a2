// smd_bench: bulk stream, request/response and connection-rate benchmarks over TCP or AF_UNIX; one JSON line per run.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
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

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

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
    double io_timeout_s = 10.0;    // any single blocking call longer than this is a failure
    int server_cpu = -1;           // pin server threads to this CPU; -1: let the scheduler place them
    int client_cpu = -1;
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

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept
    {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const { return fd_; }
    void reset()
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

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

Fd tcp_connect(const Options& opt, std::uint16_t port)
{
    SockAddr addr = parse_addr(opt.connect_addr, port);
    Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
        throw errno_error("socket");
    set_timeouts(fd.get(), opt.io_timeout_s);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr.storage), addr.len) != 0)
        throw errno_error("connect " + opt.connect_addr + ":" + std::to_string(port));
    return fd;
}

// Blocks until a connection arrives or stop is set; the listener's receive timeout bounds each wait.
Fd accept_one(int listener, const std::atomic<bool>& stop, double io_timeout_s)
{
    while (!stop) {
        int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
            set_timeouts(fd, io_timeout_s);
            return Fd(fd);
        }
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
            if (errno == EINTR)
                continue;
            throw errno_error(errno == EAGAIN ? "send timed out" : "send");
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

// Reads exactly len bytes; false on a clean EOF before the first byte.
bool recv_exact(int fd, char* data, std::size_t len)
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
            if (errno == EINTR)
                continue;
            throw errno_error(errno == EAGAIN ? "recv timed out" : "recv");
        }
        got += static_cast<std::size_t>(n);
    }
    return true;
}

void expect_eof(int fd)
{
    char byte;
    ssize_t n;
    do
        n = ::recv(fd, &byte, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        throw errno_error(errno == EAGAIN ? "recv (waiting for EOF) timed out" : "recv (waiting for EOF)");
    if (n > 0)
        throw std::runtime_error("unexpected data where EOF was expected");
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
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            throw errno_error("socketpair");
        conn.server = Fd(sv[0]);
        conn.client = Fd(sv[1]);
        set_timeouts(sv[0], opt.io_timeout_s);
        set_timeouts(sv[1], opt.io_timeout_s);
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
    conn.server = accept_one(listener.get(), setup.stop, opt.io_timeout_s);
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
                if (errno == EINTR)
                    continue;
                throw errno_error(errno == EAGAIN ? "stream recv timed out" : "stream recv");
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

// Ping-pong of size-byte messages on one connection, TCP_NODELAY, blocking I/O; each round trip timed.
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
                Fd conn = accept_one(listener.get(), stop_servers, opt.io_timeout_s);
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
    cmd->add_option("--io-timeout", opt.io_timeout_s, "seconds any single blocking socket call may take")
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

    CLI11_PARSE(app, argc, argv);
    if (opt.connect_addr.empty())
        opt.connect_addr = opt.listen_addr;

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
        } else {
            start_watchdog(opt.warmup_s + opt.duration_s + 4 * opt.io_timeout_s);
            result = run_connrate(opt);
        }
        std::cout << result.dump() << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "smd_bench: %s\n", e.what());
        return 1;
    }
}
