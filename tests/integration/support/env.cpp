// Names unique to one test process.
#include "env.hpp"

#include <atomic>

namespace smdtest {

std::string unique_name(const std::string& prefix)
{
    static std::atomic<int> counter{0};
    return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

} // namespace smdtest
