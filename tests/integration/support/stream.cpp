// splitmix64 keyed by (seed, 8-byte block index); SHA-256 from OpenSSL.
#include "stream.hpp"

#include <cstring>
#include <stdexcept>
#include <vector>

namespace smdtest {
namespace {

std::uint64_t mix(std::uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

} // namespace

void PatternStream::fill(std::uint8_t* out, std::size_t n)
{
    for (std::size_t i = 0; i < n;) {
        std::uint64_t block = offset_ / 8, within = offset_ % 8;
        std::uint64_t word = mix(seed_ * 0x100000001b3ull ^ block);
        std::uint8_t bytes[8];
        std::memcpy(bytes, &word, 8);
        std::size_t take = std::min<std::size_t>(8 - within, n - i);
        std::memcpy(out + i, bytes + within, take);
        i += take;
        offset_ += take;
    }
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new())
{
    if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("EVP sha256 init failed");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, std::size_t n) { EVP_DigestUpdate(ctx_, data, n); }

std::string Sha256::hex()
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += digits[md[i] >> 4];
        out += digits[md[i] & 15];
    }
    return out;
}

Digest continued_digest(PatternStream& stream, std::uint64_t length)
{
    Sha256 sha;
    std::vector<std::uint8_t> buf(1 << 20);
    for (std::uint64_t done = 0; done < length;) {
        std::size_t n = std::min<std::uint64_t>(buf.size(), length - done);
        stream.fill(buf.data(), n);
        sha.update(buf.data(), n);
        done += n;
    }
    return {length, sha.hex()};
}

Digest expected_digest(std::uint64_t seed, std::uint64_t length)
{
    PatternStream stream(seed);
    return continued_digest(stream, length);
}

} // namespace smdtest
