#include "held_copy.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

namespace smdtest {

HeldCopyBuffer::HeldCopyBuffer(std::size_t size) : size_(size)
{
    region_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region_ == MAP_FAILED) {
        region_ = nullptr;
        ADD_FAILURE() << "mmap of " << size_ << " bytes: " << std::strerror(errno);
        return;
    }
    uffd_ = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    uffdio_api api{};
    api.api = UFFD_API;
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<std::uintptr_t>(region_);
    reg.range.len = size_;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (uffd_ < 0 || ::ioctl(uffd_, UFFDIO_API, &api) != 0 || ::ioctl(uffd_, UFFDIO_REGISTER, &reg) != 0) {
        ADD_FAILURE() << "userfaultfd (needed to hold a reader inside its copy): " << std::strerror(errno)
                      << "; the kernel needs CONFIG_USERFAULTFD, and the test root privileges";
        if (uffd_ >= 0)
            ::close(uffd_);
        uffd_ = -1;
        released_ = true;
    }
}

HeldCopyBuffer::~HeldCopyBuffer()
{
    release();
    if (uffd_ >= 0)
        ::close(uffd_);
    if (region_)
        ::munmap(region_, size_);
}

bool HeldCopyBuffer::wait_until_touched(std::chrono::milliseconds timeout)
{
    if (uffd_ < 0)
        return false;
    pollfd p{uffd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1)
        return false;
    uffd_msg msg{};
    return ::read(uffd_, &msg, sizeof(msg)) == static_cast<ssize_t>(sizeof(msg)) &&
           msg.event == UFFD_EVENT_PAGEFAULT;
}

void HeldCopyBuffer::release()
{
    if (released_ || uffd_ < 0)
        return;
    released_ = true;
    // Every page of the buffer is still missing (only the first write touched it, and it is blocked): map them
    // all at once; the blocked write then goes on into its own copy of the zero page.
    uffdio_zeropage zero{};
    zero.range.start = reinterpret_cast<std::uintptr_t>(region_);
    zero.range.len = size_;
    if (::ioctl(uffd_, UFFDIO_ZEROPAGE, &zero) != 0)
        ADD_FAILURE() << "UFFDIO_ZEROPAGE: " << std::strerror(errno);
}

} // namespace smdtest
