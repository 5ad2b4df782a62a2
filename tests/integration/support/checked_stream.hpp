// Seeded streams for many non-blocking sockets at once: the sender hashes exactly what send() took, the
// receiver compares every byte with the stream as it arrives, so a cut-off stream can be checked as a prefix
// and damage is reported with its offset. No per-stream buffers: thousands of them fit in memory.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "stream.hpp"

namespace smdtest {

// The first `length` bytes of stream `seed`, offered to send() in chunks that cycle through `write_sizes`.
class StreamSource {
public:
    StreamSource(std::uint64_t seed, std::uint64_t length, std::vector<std::size_t> write_sizes);

    // One non-blocking send() of the next chunk (MSG_NOSIGNAL): what send() returned, errno kept.
    // Returns 0 without calling send() once all `length` bytes are sent.
    ssize_t send_some(int fd);
    bool done() const { return sent_ == length_; }
    std::uint64_t sent() const { return sent_; }
    std::uint64_t length() const { return length_; }
    // Length and SHA-256 of the bytes sent so far; call once, at the end.
    Digest digest() { return {sent_, sha_.hex()}; }

private:
    PatternStream stream_;
    Sha256 sha_;
    std::uint64_t length_;
    std::uint64_t sent_ = 0;
    std::vector<std::size_t> write_sizes_;
    std::size_t next_size_ = 0;
};

// The receiving end of stream `seed`: every byte is compared with the stream at its offset.
class StreamSink {
public:
    explicit StreamSink(std::uint64_t seed) : stream_(seed) {}

    // One non-blocking recv() of at most `max` bytes, checked: what recv() returned, errno kept.
    ssize_t recv_some(int fd, std::size_t max) { return recv_with(fd, max, MSG_DONTWAIT); }
    // The same with the caller's recv() flags (a blocking MSG_WAITALL read, say).
    ssize_t recv_with(int fd, std::size_t max, int flags);
    std::uint64_t received() const { return received_; }
    // Offset of the first byte that differs from the stream; nullopt while everything matched.
    std::optional<std::uint64_t> first_mismatch() const { return first_mismatch_; }
    // Length and SHA-256 of the bytes received so far; call once, at the end.
    Digest digest() { return {received_, sha_.hex()}; }

private:
    PatternStream stream_;
    Sha256 sha_;
    std::uint64_t received_ = 0;
    std::optional<std::uint64_t> first_mismatch_;
};

} // namespace smdtest
