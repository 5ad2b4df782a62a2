// Names unique to one test process.
#include "env.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace smdtest {

std::string unique_name(const std::string& prefix)
{
    static std::atomic<int> counter{0};
    return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::chrono::seconds time_budget(std::chrono::seconds budget)
{
    static const long scale = [] {
        const char* v = std::getenv("SOCKMAPD_TEST_TIME_SCALE");
        if (!v || !*v)
            return 1L;
        char* end = nullptr;
        long n = std::strtol(v, &end, 10);
        if (*end || n < 1 || n > 99)
            throw std::invalid_argument("SOCKMAPD_TEST_TIME_SCALE='" + std::string(v) +
                                        "' is not a whole number from 1 to 99; unset it or set e.g. 2");
        return n;
    }();
    return budget * scale;
}

} // namespace smdtest
