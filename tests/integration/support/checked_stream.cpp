// Chunks are generated into per-thread scratch buffers at their stream offset, so a partial send() needs
// nothing kept between calls.
#include "checked_stream.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace smdtest {
namespace {

constexpr std::size_t kScratch = 1 << 20; // largest chunk sent or received in one call

std::uint8_t* scratch(int which)
{
    thread_local std::vector<std::uint8_t> buffers[2] = {std::vector<std::uint8_t>(kScratch),
                                                         std::vector<std::uint8_t>(kScratch)};
    return buffers[which].data();
}

} // namespace

StreamSource::StreamSource(std::uint64_t seed, std::uint64_t length, std::vector<std::size_t> write_sizes)
    : stream_(seed), length_(length), write_sizes_(std::move(write_sizes))
{
    if (write_sizes_.empty())
        write_sizes_.push_back(65536);
}

ssize_t StreamSource::send_some(int fd)
{
    if (done())
        return 0;
    std::size_t want = std::min(write_sizes_[next_size_++ % write_sizes_.size()], kScratch);
    std::size_t n = std::min<std::uint64_t>(want, length_ - sent_);
    std::uint8_t* buf = scratch(0);
    stream_.seek(sent_);
    stream_.fill(buf, n);
    ssize_t r = ::send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) {
        sha_.update(buf, static_cast<std::size_t>(r));
        sent_ += static_cast<std::uint64_t>(r);
    }
    return r;
}

ssize_t StreamSink::recv_with(int fd, std::size_t max, int flags)
{
    std::uint8_t* buf = scratch(0);
    ssize_t r = ::recv(fd, buf, std::min(max, kScratch), flags);
    if (r <= 0)
        return r;
    auto n = static_cast<std::size_t>(r);
    sha_.update(buf, n);
    if (!first_mismatch_) {
        std::uint8_t* want = scratch(1);
        stream_.seek(received_);
        stream_.fill(want, n);
        if (std::memcmp(buf, want, n) != 0) {
            std::size_t at = 0;
            while (buf[at] == want[at])
                ++at;
            first_mismatch_ = received_ + at;
        }
    }
    received_ += n;
    return r;
}

} // namespace smdtest
