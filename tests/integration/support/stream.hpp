// Seeded pseudo-random byte streams and their SHA-256, so both ends can prove they saw the same bytes.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace smdtest {

// Byte i of stream `seed` depends only on (seed, i): any write or read chunking yields the same bytes.
class PatternStream {
public:
    explicit PatternStream(std::uint64_t seed) : seed_(seed) {}
    void fill(std::uint8_t* out, std::size_t n);
    std::uint64_t offset() const { return offset_; }
    // The next fill() starts at byte `offset` of the stream (bytes depend only on their position).
    void seek(std::uint64_t offset) { offset_ = offset; }

private:
    std::uint64_t seed_;
    std::uint64_t offset_ = 0;
};

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, std::size_t n);
    std::string hex(); // finalizes

private:
    EVP_MD_CTX* ctx_;
};

struct Digest {
    std::uint64_t length = 0;
    std::string sha256;
    bool operator==(const Digest&) const = default;
};

// What a receiver of `length` bytes of stream `seed` must have seen.
Digest expected_digest(std::uint64_t seed, std::uint64_t length);
// Digest of the next `length` bytes of `stream` (a stream already partly consumed).
Digest continued_digest(PatternStream& stream, std::uint64_t length);

} // namespace smdtest
