// /dev/kmsg reader positioned at the end at construction.
#include "kmsg.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <regex>

namespace smdtest {

KernelLogWatch::KernelLogWatch() : fd_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC))
{
    if (fd_ >= 0)
        ::lseek(fd_, 0, SEEK_END);
}

KernelLogWatch::~KernelLogWatch()
{
    if (fd_ >= 0)
        ::close(fd_);
}

std::vector<std::string> KernelLogWatch::problems()
{
    static const std::regex bad(R"(WARNING|BUG|Oops|general protection|refcount_t|list_add corruption|list_del corruption|seq # bug|stack-protector|KASAN|UBSAN)");
    std::vector<std::string> found;
    if (fd_ < 0)
        return {"cannot read /dev/kmsg"};
    char record[8192];
    for (;;) {
        ssize_t n = ::read(fd_, record, sizeof(record) - 1);
        if (n < 0) {
            if (errno == EPIPE) // overwritten records: keep reading
                continue;
            break;
        }
        std::string line(record, n);
        auto semi = line.find(';');
        std::string text = semi == std::string::npos ? line : line.substr(semi + 1);
        if (std::regex_search(text, bad))
            found.push_back(text);
    }
    return found;
}

} // namespace smdtest
