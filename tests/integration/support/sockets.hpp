// TCP endpoints and bounded-time stream transfers for integration tests.
#pragma once

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
Fd tcp_connect(const std::string& addr, std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5));
Fd tcp_accept(int listen_fd, std::chrono::milliseconds timeout = std::chrono::seconds(5));

struct TransferResult {
    Digest digest;     // of the bytes sent or received
    bool eof = false;  // receiver: saw end of stream
    std::string error; // empty on success; otherwise what went wrong (timeout, errno)
};

// Writes `length` bytes of stream `seed`, cycling through `write_sizes` for each send().
TransferResult send_stream(int fd, std::uint64_t seed, std::uint64_t length,
                           const std::vector<std::size_t>& write_sizes, Clock::time_point deadline);

// Reads until `length` bytes (then checks nothing more is pending only if expect_eof) or EOF.
TransferResult recv_stream(int fd, std::uint64_t length, bool expect_eof, Clock::time_point deadline,
                           std::size_t read_size = 1 << 16);

// Both directions at once on a connected pair (a->b and b->a), so full buffers cannot deadlock.
// Each side shuts down its write half after sending, and reads to EOF.
struct DuplexResult {
    TransferResult a_sent, b_received, b_sent, a_received;
};
DuplexResult duplex_transfer(int a, int b, std::uint64_t seed_ab, std::uint64_t len_ab, std::uint64_t seed_ba,
                             std::uint64_t len_ba, const std::vector<std::size_t>& write_sizes,
                             std::chrono::seconds timeout = std::chrono::seconds(60));

} // namespace smdtest
