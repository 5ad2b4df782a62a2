// A fixture that runs one case on plain TCP first, then with the daemon, and checks the counters in between.
#pragma once

#include <string>
#include <vector>

#include "bounded_io.hpp"
#include "fixture.hpp"

namespace smdtest {

enum class Mode { Baseline, Accelerated };
inline constexpr Mode kModes[] = {Mode::Baseline, Mode::Accelerated};

// "baseline_<what>" or "accelerated_<what>": keys for record() and context for failure messages.
inline std::string label(Mode mode, const std::string& what)
{
    return std::string(mode == Mode::Baseline ? "baseline_" : "accelerated_") + what;
}

// Usage: for (Mode mode : kModes) { enter(mode); ...same case...; expect_redirected(n); }
// Baseline runs first because once the daemon has started, every new connection in the cgroup is paired.
class BaselineThenAccelerated : public IntegrationTest {
protected:
    // Baseline: nothing to do. Accelerated: starts the daemon (once, in its default configuration plus `flags`)
    // and takes a counter snapshot.
    void enter(Mode mode, std::vector<std::string> flags = {})
    {
        mode_ = mode;
        if (mode == Mode::Accelerated) {
            flags.insert(flags.begin(), {"--max-queued-bytes", "0"}); // the default queue caps
            if (!daemon().running())
                daemon().start(flags);
            before_ = read_counters(daemon());
        }
    }

    bool accelerated() const { return mode_ == Mode::Accelerated; }

    // Accelerated only: how far `counter` moved since enter().
    std::uint64_t moved_since_enter(const std::string& counter) { return moved(before_, read_counters(daemon()), counter); }

    // Accelerated only: exactly `bytes` went through the redirect since enter(), none over TCP, and `pairs`
    // connections were paired (unchecked if negative).
    void expect_redirected(std::uint64_t bytes, int pairs = -1)
    {
        if (!accelerated())
            return;
        auto after = read_counters(daemon());
        EXPECT_EQ(moved(before_, after, "redirected_bytes"), bytes) << "bytes through the redirect";
        EXPECT_EQ(moved(before_, after, "fallback_bytes"), 0u) << "bytes over TCP";
        if (pairs >= 0) {
            EXPECT_EQ(moved(before_, after, "pairs_made"), static_cast<std::uint64_t>(pairs));
        }
    }

    // Accelerated only: `bytes` went through the redirect or, after the connection left it for `reason` (a
    // counter such as "left_blocking_reader"), over TCP -- counted as fallback while the sender was still in the
    // sockhash, not at all once it was released; and if it left, that was counted. (Counters count at verdict
    // time, so a send cut short by a close can count more than the reader got.)
    void expect_redirected_or_left(std::uint64_t bytes, const std::string& reason)
    {
        if (!accelerated())
            return;
        auto after = read_counters(daemon());
        auto redirected = moved(before_, after, "redirected_bytes");
        if (redirected < bytes) {
            EXPECT_GE(moved(before_, after, reason), 1u) << "bytes went over TCP without " << reason;
        }
    }

    Mode mode_ = Mode::Baseline;
    Counters before_;
};

} // namespace smdtest
