// Watches the kernel log for WARNING/BUG lines that appear while a test runs.
#pragma once

#include <string>
#include <vector>

namespace smdtest {

class KernelLogWatch {
public:
    KernelLogWatch(); // starts at the current end of /dev/kmsg
    ~KernelLogWatch();
    KernelLogWatch(const KernelLogWatch&) = delete;
    KernelLogWatch& operator=(const KernelLogWatch&) = delete;
    // New lines since construction that look like a kernel warning, bug or splat.
    std::vector<std::string> problems();

private:
    int fd_ = -1;
};

} // namespace smdtest
