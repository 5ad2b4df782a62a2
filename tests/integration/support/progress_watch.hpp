// Bounds a long transfer by its progress rather than by one fixed deadline: a stall ends it within seconds,
// with a message that says where it stopped, while a slow but moving transfer is not cut short.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sockets.hpp"

namespace smdtest {

class ProgressWatch {
public:
    // Starts the watchdog. It fires when no end has reported a byte for `stall`, or once `limit` has passed.
    ProgressWatch(std::chrono::milliseconds stall, std::chrono::milliseconds limit);
    ~ProgressWatch(); // stops the watchdog; declare the watch after the sockets it may shut down
    ProgressWatch(const ProgressWatch&) = delete;
    ProgressWatch& operator=(const ProgressWatch&) = delete;

    // A socket of the transfer: shut down (SHUT_RDWR) when the watchdog fires, so that every end, blocked in a
    // call or polling, returns.
    void watch(int fd);
    // Text on the state of the transfer, taken when the watchdog fires, before it shuts anything down
    // (FIONREAD, what MSG_PEEK sees, a proxy's sessions...).
    void on_stall(std::function<std::string()> describe);
    // Each end reports what it moved; pass counter() to send_stream()/recv_stream().
    std::atomic<std::uint64_t>& counter() { return bytes_; }
    std::uint64_t moved() const { return bytes_; }
    // An absolute bound for the ends' own polls: the watchdog fires at the latest then.
    Clock::time_point deadline() const { return start_ + limit_; }

    // Stops watching (the destructor does too). Call before the watched sockets close.
    void stop();
    bool fired() const { return fired_; }
    // Empty unless it fired: "stalled: no byte moved for 10 s after 123 bytes, 4.2 s in: <describe>".
    std::string reason() const;

private:
    void run();

    const std::chrono::milliseconds stall_, limit_;
    const Clock::time_point start_;
    std::atomic<std::uint64_t> bytes_{0};
    std::atomic<bool> stop_{false}, fired_{false};
    mutable std::mutex mutex_;
    std::vector<int> fds_;
    std::function<std::string()> describe_;
    std::string reason_;
    std::thread thread_;
};

} // namespace smdtest
