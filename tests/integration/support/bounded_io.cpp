// poll()-driven exact reads and writes, and the bookkeeping the semantics tests share.
#include "bounded_io.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "poll_until.hpp"

namespace smdtest {

TcpPair open_pair(const std::string& addr)
{
    Fd listener = tcp_listen(addr);
    Fd client = tcp_connect(addr, local_port(listener.get()));
    Fd server = tcp_accept(listener.get());
    return {std::move(client), std::move(server)};
}

void set_blocking(int fd, bool blocking)
{
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK));
}

bool wait_event(int fd, short events, Clock::time_point deadline)
{
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, left < 0 ? 0 : static_cast<int>(left));
        if (r > 0)
            return true;
        if (r == 0 || errno != EINTR)
            return false;
    }
}

std::string IoResult::describe() const
{
    std::ostringstream out;
    out << bytes << " bytes";
    if (err)
        out << ", " << errno_name(err);
    if (eof)
        out << ", EOF";
    if (timed_out)
        out << ", timed out";
    return out.str();
}

IoResult write_all(int fd, const void* data, std::size_t n, Clock::time_point deadline, int flags)
{
    IoResult r;
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (r.bytes < n) {
        ssize_t w = ::send(fd, p + r.bytes, n - r.bytes, flags | MSG_NOSIGNAL);
        if (w > 0) {
            r.bytes += w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_event(fd, POLLOUT, deadline)) {
                r.timed_out = true;
                return r;
            }
        } else {
            r.err = w < 0 ? errno : EIO;
            return r;
        }
    }
    return r;
}

IoResult read_exact(int fd, void* data, std::size_t n, Clock::time_point deadline)
{
    IoResult r;
    auto* p = static_cast<std::uint8_t*>(data);
    while (r.bytes < n) {
        ssize_t got = ::recv(fd, p + r.bytes, n - r.bytes, 0);
        if (got > 0) {
            r.bytes += got;
        } else if (got == 0) {
            r.eof = true;
            return r;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_event(fd, POLLIN, deadline)) {
                r.timed_out = true;
                return r;
            }
        } else {
            r.err = errno;
            return r;
        }
    }
    return r;
}

bool run_with_watchdog(int fd, std::chrono::milliseconds limit, const std::function<void()>& call)
{
    std::atomic<bool> done{false}, fired{false};
    std::thread watchdog([&] {
        auto until = Clock::now() + limit;
        while (!done && Clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (!done) {
            fired = true;
            ::shutdown(fd, SHUT_RDWR);
        }
    });
    call();
    done = true;
    watchdog.join();
    return fired;
}

std::string errno_name(int err)
{
    if (err == 0)
        return "0";
    const char* name = ::strerrorname_np(err);
    return name ? name : std::to_string(err);
}

Counters read_counters(const Daemon& daemon)
{
    Counters out;
    auto status = daemon.status();
    if (!status.contains("counters")) {
        ADD_FAILURE() << "sockmapctl status has no counters";
        return out;
    }
    for (const auto& [name, value] : status["counters"].items())
        out[name] = value.get<std::uint64_t>();
    return out;
}

std::uint64_t moved(const Counters& before, const Counters& after, const std::string& name)
{
    auto b = before.find(name), a = after.find(name);
    if (b == before.end() || a == after.end()) {
        ADD_FAILURE() << "no counter " << name;
        return 0;
    }
    return a->second - b->second;
}

void record(const std::string& key, const std::string& value)
{
    std::cout << "[ OBSERVED ] " << key << " = " << value << std::endl;
    ::testing::Test::RecordProperty(key, value);
}

::testing::AssertionResult digest_is(const Digest& got, const Digest& want)
{
    if (got == want)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "got " << got.length << " bytes (sha256 " << got.sha256.substr(0, 16)
                                         << "...), want " << want.length << " bytes (sha256 "
                                         << want.sha256.substr(0, 16) << "...)";
}

double elapsed_ms(Clock::time_point start)
{
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    return static_cast<double>(us / 100) / 10.0;
}

void expect_fionread_counts_tcp_bytes(int writer, int reader, std::size_t n, std::chrono::milliseconds limit)
{
    std::vector<char> data(n, 'x');
    auto sent = write_all(writer, data.data(), data.size(), Clock::now() + std::chrono::seconds(5));
    ASSERT_TRUE(sent.ok()) << sent.describe();
    int readable = -1;
    EXPECT_TRUE(poll_until(
        [&] { return ::ioctl(reader, SIOCINQ, &readable) == 0 && readable == static_cast<int>(n); }, limit))
        << "FIONREAD " << readable << " with " << n << " bytes sent";
    auto got = read_exact(reader, data.data(), data.size(), Clock::now() + std::chrono::seconds(5));
    EXPECT_TRUE(got.ok()) << got.describe();
}

} // namespace smdtest
