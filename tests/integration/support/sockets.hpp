// TCP endpoints and bounded-time stream transfers for integration tests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sockmapd/fd.hpp"
#include "stream.hpp"

namespace smdtest {

using sockmapd::Fd;
using Clock = std::chrono::steady_clock;

// addr "::" listens dual-stack (IPv4 clients appear as v4-mapped). port 0: the kernel picks one.
Fd tcp_listen(const std::string& addr, std::uint16_t port = 0);
std::uint16_t local_port(int fd);
// `from`: the local address to bind first (port chosen by the kernel), for example another 127.0.0.0/8 address.
Fd tcp_connect(const std::string& addr, std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5),
               const std::string& from = "");
Fd tcp_accept(int listen_fd, std::chrono::milliseconds timeout = std::chrono::seconds(5));

struct TransferResult {
    Digest digest;     // of the bytes sent or received
    bool eof = false;  // receiver: saw end of stream
    std::string error; // empty on success; otherwise what went wrong (timeout, errno)
};

// Writes `length` bytes of stream `seed`, cycling through `write_sizes` for each send(). Bytes sent are also
// added to *progress, if given (a ProgressWatch's counter).
TransferResult send_stream(int fd, std::uint64_t seed, std::uint64_t length,
                           const std::vector<std::size_t>& write_sizes, Clock::time_point deadline,
                           std::atomic<std::uint64_t>* progress = nullptr);

// send_stream() held to `bytes_per_second` on average (0: as fast as it can), a producer slower than its consumer.
TransferResult send_stream_paced(int fd, std::uint64_t seed, std::uint64_t length,
                                 const std::vector<std::size_t>& write_sizes, Clock::time_point deadline,
                                 std::uint64_t bytes_per_second, std::atomic<std::uint64_t>* progress = nullptr);

// Reads until `length` bytes (then checks nothing more is pending only if expect_eof) or EOF; bytes read are
// also added to *progress, if given.
TransferResult recv_stream(int fd, std::uint64_t length, bool expect_eof, Clock::time_point deadline,
                           std::size_t read_size = 1 << 16, std::atomic<std::uint64_t>* progress = nullptr);

// How a reader takes its bytes: chunk size, a pause at one offset, a rate limit, blocking or non-blocking calls.
struct ReadPace {
    std::size_t read_size = 1 << 16;
    std::uint64_t pause_at = 0;                  // stop reading once this many bytes are in (0: never)...
    std::chrono::milliseconds pause_for{0};      // ...for this long, then go on
    std::uint64_t bytes_per_second = 0;          // 0: as fast as it can
    bool blocking = false;                       // plain blocking recv() (the socket is made blocking for it)
};

// recv_stream() with a pace. A blocking reader cannot see the deadline while it sleeps in recv(): bound it with
// a ProgressWatch on `fd`, whose shutdown turns a hang into an early end (reported as an error).
TransferResult recv_stream_paced(int fd, std::uint64_t length, bool expect_eof, Clock::time_point deadline,
                                 const ReadPace& pace, std::atomic<std::uint64_t>* progress = nullptr);

// Both directions at once on a connected pair (a->b and b->a), so full buffers cannot deadlock.
// Each side shuts down its write half after sending, and reads to EOF.
struct DuplexResult {
    TransferResult a_sent, b_received, b_sent, a_received;
};
DuplexResult duplex_transfer(int a, int b, std::uint64_t seed_ab, std::uint64_t len_ab, std::uint64_t seed_ba,
                             std::uint64_t len_ba, const std::vector<std::size_t>& write_sizes,
                             std::chrono::seconds timeout = std::chrono::seconds(60),
                             std::atomic<std::uint64_t>* progress = nullptr);

} // namespace smdtest
