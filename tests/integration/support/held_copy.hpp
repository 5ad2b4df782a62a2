// A buffer whose first write blocks until the test releases it (userfaultfd). A reader whose recv() copies into it
// stays inside its copy, holding its socket lock, for as long as the test wants: whatever arrives for the socket
// meanwhile waits in the socket backlog, where the kernel drops a segment once the receive memory is too large.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace smdtest {

class HeldCopyBuffer {
public:
    // Fails the test (ADD_FAILURE) if userfaultfd is not available; data() is then an ordinary buffer.
    explicit HeldCopyBuffer(std::size_t size);
    ~HeldCopyBuffer();
    HeldCopyBuffer(const HeldCopyBuffer&) = delete;
    HeldCopyBuffer& operator=(const HeldCopyBuffer&) = delete;

    std::uint8_t* data() { return static_cast<std::uint8_t*>(region_); }
    std::size_t size() const { return size_; }
    // True once a write into the buffer is blocked (the copy has started and waits for release()).
    bool wait_until_touched(std::chrono::milliseconds timeout);
    // Lets the blocked copy go on; later writes do not block. Idempotent.
    void release();

private:
    int uffd_ = -1;
    void* region_ = nullptr;
    std::size_t size_ = 0;
    bool released_ = false;
};

} // namespace smdtest
