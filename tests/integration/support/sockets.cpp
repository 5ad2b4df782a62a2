// Non-blocking sockets driven by poll() against a deadline: a hang becomes a test failure with a message.
#include "sockets.hpp"

#include "env.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace smdtest {
namespace {

struct Address {
    sockaddr_storage storage{};
    socklen_t len = 0;
    int family = AF_INET;
};

Address parse(const std::string& addr, std::uint16_t port)
{
    Address a;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a.len = sizeof(*v4);
        a.family = AF_INET;
    } else if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.len = sizeof(*v6);
        a.family = AF_INET6;
    } else {
        throw std::runtime_error("bad address " + addr);
    }
    return a;
}

void set_nonblocking(int fd)
{
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int remaining_ms(Clock::time_point deadline)
{
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

// Waits for `events`; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline)
{
    for (;;) {
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r > 0)
            return true;
        if (r == 0)
            return false;
        if (errno != EINTR)
            return false;
    }
}

std::string errno_text(const char* what)
{
    return std::string(what) + ": " + std::strerror(errno);
}

} // namespace

Fd tcp_listen(const std::string& addr, std::uint16_t port)
{
    Address a = parse(addr, port);
    Fd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1, zero = 0;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a.family == AF_INET6)
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a.storage), a.len) != 0)
        throw std::runtime_error(errno_text(("bind " + addr).c_str()));
    if (::listen(fd.get(), 4096) != 0)
        throw std::runtime_error(errno_text("listen"));
    set_nonblocking(fd.get());
    return fd;
}

std::uint16_t local_port(int fd)
{
    sockaddr_storage s{};
    socklen_t len = sizeof(s);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&s), &len);
    if (s.ss_family == AF_INET)
        return ntohs(reinterpret_cast<sockaddr_in*>(&s)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&s)->sin6_port);
}

Fd tcp_connect(const std::string& addr, std::uint16_t port, std::chrono::milliseconds timeout, const std::string& from)
{
    Address a = parse(addr, port);
    Fd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!from.empty()) {
        Address local = parse(from, 0);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local.storage), local.len) != 0)
            throw std::runtime_error(errno_text(("bind " + from).c_str()));
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a.storage), a.len) != 0 && errno != EINPROGRESS)
        throw std::runtime_error(errno_text(("connect " + addr).c_str()));
    if (!wait_for(fd.get(), POLLOUT, Clock::now() + timeout))
        throw std::runtime_error("connect " + addr + ":" + std::to_string(port) + " timed out");
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err)
        throw std::runtime_error("connect " + addr + ":" + std::to_string(port) + ": " + std::strerror(err));
    return fd;
}

Fd tcp_accept(int listen_fd, std::chrono::milliseconds timeout)
{
    if (!wait_for(listen_fd, POLLIN, Clock::now() + timeout))
        throw std::runtime_error("accept timed out");
    Fd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd)
        throw std::runtime_error(errno_text("accept"));
    return fd;
}

TransferResult send_stream(int fd, std::uint64_t seed, std::uint64_t length,
                           const std::vector<std::size_t>& write_sizes, Clock::time_point deadline,
                           std::atomic<std::uint64_t>* progress)
{
    return send_stream_paced(fd, seed, length, write_sizes, deadline, 0, progress);
}

TransferResult send_stream_paced(int fd, std::uint64_t seed, std::uint64_t length,
                                 const std::vector<std::size_t>& write_sizes, Clock::time_point deadline,
                                 std::uint64_t bytes_per_second, std::atomic<std::uint64_t>* progress)
{
    TransferResult result;
    auto start = Clock::now();
    PatternStream stream(seed);
    Sha256 sha;
    std::size_t max_write = 1;
    for (auto s : write_sizes)
        max_write = std::max(max_write, s);
    std::vector<std::uint8_t> buf(max_write);
    std::size_t pending = 0, pending_off = 0, which = 0;
    std::uint64_t sent = 0;
    while (sent < length) {
        if (pending == 0) {
            if (bytes_per_second > 0) {
                auto due = start + std::chrono::microseconds(sent * 1000000 / bytes_per_second);
                if (due > Clock::now())
                    std::this_thread::sleep_until(std::min(due, deadline));
            }
            std::size_t want = write_sizes.empty() ? (1 << 16) : write_sizes[which++ % write_sizes.size()];
            pending = std::min<std::uint64_t>(want, length - sent);
            pending_off = 0;
            stream.fill(buf.data(), pending);
            sha.update(buf.data(), pending);
        }
        ssize_t n = ::send(fd, buf.data() + pending_off, pending, MSG_NOSIGNAL);
        if (n > 0) {
            pending -= n;
            pending_off += n;
            sent += n;
            if (progress)
                *progress += n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_for(fd, POLLOUT, deadline)) {
                result.error = "send timed out after " + std::to_string(sent) + " of " + std::to_string(length) + " bytes";
                break;
            }
            continue;
        }
        result.error = errno_text("send");
        break;
    }
    result.digest = {sent, sha.hex()};
    return result;
}

TransferResult recv_stream(int fd, std::uint64_t length, bool expect_eof, Clock::time_point deadline,
                           std::size_t read_size, std::atomic<std::uint64_t>* progress)
{
    return recv_stream_paced(fd, length, expect_eof, deadline, ReadPace{.read_size = read_size}, progress);
}

TransferResult recv_stream_paced(int fd, std::uint64_t length, bool expect_eof, Clock::time_point deadline,
                                 const ReadPace& pace, std::atomic<std::uint64_t>* progress)
{
    TransferResult result;
    Sha256 sha;
    std::vector<std::uint8_t> buf(pace.read_size);
    std::uint64_t got = 0;
    bool paused = pace.pause_at == 0;
    auto start = Clock::now();
    if (pace.blocking)
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    for (;;) {
        if (got >= length && !expect_eof)
            break;
        if (!paused && got >= pace.pause_at) {
            paused = true;
            std::this_thread::sleep_for(pace.pause_for);
        }
        if (pace.bytes_per_second > 0) {
            auto due = start + std::chrono::microseconds(got * 1000000 / pace.bytes_per_second);
            if (due > Clock::now())
                std::this_thread::sleep_until(std::min(due, deadline));
        }
        std::size_t want = buf.size();
        if (!paused)
            want = std::min<std::uint64_t>(want, pace.pause_at - got);
        ssize_t n = ::recv(fd, buf.data(), want, 0);
        if (n > 0) {
            sha.update(buf.data(), n);
            got += n;
            if (progress)
                *progress += n;
            continue;
        }
        if (n == 0) {
            result.eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (!pace.blocking && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_for(fd, POLLIN, deadline)) {
                result.error = "recv timed out after " + std::to_string(got) + " of " + std::to_string(length) + " bytes";
                break;
            }
            continue;
        }
        std::string failed = errno_text(pace.blocking ? "blocking recv" : "recv");
        result.error = failed + " after " + std::to_string(got) + " of " + std::to_string(length) + " bytes";
        break;
    }
    if (pace.blocking)
        set_nonblocking(fd);
    result.digest = {got, sha.hex()};
    return result;
}

DuplexResult duplex_transfer(int a, int b, std::uint64_t seed_ab, std::uint64_t len_ab, std::uint64_t seed_ba,
                             std::uint64_t len_ba, const std::vector<std::size_t>& write_sizes,
                             std::chrono::seconds timeout, std::atomic<std::uint64_t>* progress)
{
    DuplexResult r;
    auto deadline = Clock::now() + time_budget(timeout);
    auto sender = [&](int fd, std::uint64_t seed, std::uint64_t len, TransferResult& out) {
        out = send_stream(fd, seed, len, write_sizes, deadline, progress);
        ::shutdown(fd, SHUT_WR);
    };
    std::thread t1(sender, a, seed_ab, len_ab, std::ref(r.a_sent));
    std::thread t2(sender, b, seed_ba, len_ba, std::ref(r.b_sent));
    std::thread t3([&] { r.b_received = recv_stream(b, len_ab, true, deadline, 1 << 16, progress); });
    r.a_received = recv_stream(a, len_ba, true, deadline, 1 << 16, progress);
    t1.join();
    t2.join();
    t3.join();
    return r;
}

} // namespace smdtest
