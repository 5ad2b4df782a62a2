// Bounded polling for conditions the kernel reaches asynchronously (map entries removed after close, ...).
#pragma once

#include <chrono>
#include <thread>

namespace smdtest {

// Calls `done` until it returns true or `timeout` passes; returns its last answer.
template <typename Condition>
bool poll_until(Condition&& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(20))
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done())
            return true;
        if (std::chrono::steady_clock::now() >= deadline)
            return done();
        std::this_thread::sleep_for(interval);
    }
}

} // namespace smdtest
