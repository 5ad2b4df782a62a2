// The progress watchdog: polls the shared byte counter and ends a transfer that stopped moving.
#include "progress_watch.hpp"

#include <sys/socket.h>

#include <sstream>

namespace smdtest {

ProgressWatch::ProgressWatch(std::chrono::milliseconds stall, std::chrono::milliseconds limit)
    : stall_(stall), limit_(limit), start_(Clock::now()), thread_([this] { run(); })
{
}

ProgressWatch::~ProgressWatch() { stop(); }

void ProgressWatch::watch(int fd)
{
    std::lock_guard lock(mutex_);
    fds_.push_back(fd);
}

void ProgressWatch::on_stall(std::function<std::string()> describe)
{
    std::lock_guard lock(mutex_);
    describe_ = std::move(describe);
}

void ProgressWatch::stop()
{
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
}

std::string ProgressWatch::reason() const
{
    std::lock_guard lock(mutex_);
    return reason_;
}

void ProgressWatch::run()
{
    std::uint64_t last = bytes_;
    auto last_change = Clock::now();
    while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        auto now = Clock::now();
        if (std::uint64_t seen = bytes_; seen != last) {
            last = seen;
            last_change = now;
        }
        bool stalled = now - last_change >= stall_, over = now - start_ >= limit_;
        if (!stalled && !over)
            continue;
        std::lock_guard lock(mutex_);
        std::ostringstream why;
        auto secs = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 1000.0; };
        if (stalled)
            why << "stalled: no byte moved for " << secs(stall_) << " s after " << last << " bytes, "
                << secs(now - start_) << " s in";
        else
            why << "too slow: still moving after the " << secs(limit_) << " s limit, " << last << " bytes moved";
        if (describe_)
            why << "; " << describe_();
        reason_ = why.str();
        fired_ = true;
        for (int fd : fds_)
            ::shutdown(fd, SHUT_RDWR);
        return;
    }
}

} // namespace smdtest
