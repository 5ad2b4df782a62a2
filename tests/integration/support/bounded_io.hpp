// Blocking-style socket calls bounded by deadlines, counter deltas and observation records for semantics tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "daemon.hpp"
#include "sockets.hpp"

namespace smdtest {

// A connected loopback connection: `client` from connect(), `server` from accept(); both non-blocking.
struct TcpPair {
    Fd client;
    Fd server;
};
TcpPair open_pair(const std::string& addr);

void set_blocking(int fd, bool blocking);

// Waits for any of `events` (POLLERR/POLLHUP also end the wait); false on timeout.
bool wait_event(int fd, short events, Clock::time_point deadline);

// Outcome of one bounded call: bytes moved, and errno (0 if none) or "timeout".
struct IoResult {
    std::size_t bytes = 0;
    int err = 0;          // errno of the call that failed, 0 if none
    bool eof = false;     // read_exact only: peer closed before `n` bytes
    bool timed_out = false;
    bool ok() const { return err == 0 && !eof && !timed_out; }
    std::string describe() const;
};

// Writes all `n` bytes to a non-blocking socket, polling on EAGAIN, with send(2) `flags` | MSG_NOSIGNAL.
IoResult write_all(int fd, const void* data, std::size_t n, Clock::time_point deadline, int flags = 0);
// Reads exactly `n` bytes from a non-blocking socket.
IoResult read_exact(int fd, void* data, std::size_t n, Clock::time_point deadline);

// Runs `call`, a blocking call on `fd`. If it is still running after `limit`, shuts `fd` down (SHUT_RDWR) so
// that it returns: a hang becomes a result. Returns true if that was needed.
bool run_with_watchdog(int fd, std::chrono::milliseconds limit, const std::function<void()>& call);

// Sends `n` bytes from `writer` to `reader` by TCP and checks that FIONREAD on `reader` counts them all within
// `limit`, then reads them. A socket left alone in the sockhash counts only its empty redirect queue there (6.18.14
// and later), so this fails for as long as one stays.
void expect_fionread_counts_tcp_bytes(int writer, int reader, std::size_t n, std::chrono::milliseconds limit);

// "ECONNRESET", "EPIPE", ... ; "0" for no error.
std::string errno_name(int err);

// Counters by name from one `sockmapctl status`, and the change of one counter between two snapshots.
using Counters = std::map<std::string, std::uint64_t>;
Counters read_counters(const Daemon& daemon);
std::uint64_t moved(const Counters& before, const Counters& after, const std::string& name);

// Writes an observed value to stdout (one grep-able "[ OBSERVED ]" line) and into the test's XML properties.
void record(const std::string& key, const std::string& value);
inline void record(const std::string& key, long long value) { record(key, std::to_string(value)); }

// Milliseconds since `start`, with one decimal.
double elapsed_ms(Clock::time_point start);

// Equal digests, or a failure that prints both lengths and hashes (gtest would dump raw bytes).
::testing::AssertionResult digest_is(const Digest& got, const Digest& want);

} // namespace smdtest
