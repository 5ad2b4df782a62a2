// The application compatibility tier (issue 11): real software, each case run on plain TCP first and then with
// the real sockmapd on the test's cgroup, each half in fresh network namespaces, content compared at both ends,
// every transfer bounded by a progress watchdog, and the accelerated half checked to have been either
// accelerated or deliberately stepped aside.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "acceleration.hpp"
#include "modes.hpp"
#include "policy_dir.hpp"
#include "progress_watch.hpp"

namespace smdtest {

using namespace std::chrono_literals;

constexpr std::uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
// The failures of issue 11 show only once queues build up: bulk cases move this much.
constexpr std::uint64_t kBulk = 200 * kMiB;
// Plain TCP moves 200 MB over loopback or a veth in 1-4 s here, through two proxies in under 10 s. A transfer
// that moved no byte for kStall has stalled; one still going after kTransferLimit is as good as stalled.
constexpr auto kStall = 10s;
constexpr auto kTransferLimit = 60s;

class CompatTest : public BaselineThenAccelerated {
protected:
    // Accelerated half only: since enter(), the redirect carried at least half of `payload` bytes, or one of
    // kStepAsideCounters moved (the daemon kept the case off the redirect on purpose). Records which.
    void expect_accelerated_or_stepped_aside(std::uint64_t payload)
    {
        if (!accelerated())
            return;
        auto verdict = path_verdict(before_, read_counters(daemon()), payload);
        record("accelerated_path", verdict.describe());
        EXPECT_TRUE(verdict.accelerated() || verdict.stepped()) << "daemon counters: " << verdict.describe();
    }

    // begin() for a workload the kernel cannot serve through the sockhash (splice(2) readers): the accelerated
    // half's daemon runs with the policy operators ship for it (docs/policy.md, "Workloads the kernel cannot
    // serve"), a bypass rule for the ports the workload listens on or connects to.
    void begin_excluding(Mode mode, const std::vector<std::uint16_t>& ports)
    {
        if (mode == Mode::Accelerated && !daemon().running()) {
            std::string list;
            for (auto port : ports)
                list += (list.empty() ? "" : ", ") + std::to_string(port);
            auto file = policies_.write("policy.yaml", "rules:\n  - name: splicing-workload\n    action: bypass\n"
                                                       "    ports: [" + list + "]\n");
            daemon().start({"--policy", file.string(), "--max-queued-bytes", "0"});
        }
        begin(mode);
    }

    // enter() that also marks where this half's failures start, for end_half().
    void begin(Mode mode)
    {
        parts_at_begin_ = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
        begun_ = Clock::now();
        enter(mode); // a daemon that fails to start fails this half
    }

    // Records this half's outcome as one grep-able line: "pass", or "FAIL: " and its first failure's message, and
    // how long the half took.
    void end_half()
    {
        char seconds[32];
        std::snprintf(seconds, sizeof(seconds), "%.1f", elapsed_ms(begun_) / 1000);
        record(label(mode_, "seconds"), seconds);
        const auto* result = ::testing::UnitTest::GetInstance()->current_test_info()->result();
        std::string outcome = "pass";
        int failures = 0;
        for (int i = parts_at_begin_; i < result->total_part_count(); ++i) {
            const auto& part = result->GetTestPartResult(i);
            if (!part.failed())
                continue;
            if (failures++ == 0) {
                // The last line of a gtest failure is the test's own message, which says what went wrong.
                std::string summary = part.summary();
                while (!summary.empty() && summary.back() == '\n')
                    summary.pop_back();
                outcome = "FAIL: " + summary.substr(summary.rfind('\n') + 1).substr(0, 400);
            }
        }
        if (failures > 1)
            outcome += " (+" + std::to_string(failures - 1) + " more)";
        record(label(mode_, "outcome"), outcome);
    }

    // Accelerated half only: SIGTERM to the daemon once `watch` has counted a quarter of `total` bytes, then at
    // once a new daemon; records where both happened and how long each took. Fails if the new daemon was not
    // ready before the transfer ended (the case would not have tested a restart). Returns early if the transfer
    // stalls (the watch fired) or this half failed.
    void restart_daemon_midway(const ProgressWatch& watch, std::uint64_t total)
    {
        if (!accelerated())
            return;
        while (watch.moved() < total / 4 && !watch.fired() && Clock::now() < watch.deadline() && !half_failed())
            std::this_thread::sleep_for(5ms);
        if (watch.moved() < total / 4)
            return;
        auto at = [&] { return std::to_string(watch.moved() * 100 / total) + "% of the transfer"; };
        auto start = Clock::now();
        std::string stopped_at = at();
        daemon().stop(SIGTERM);
        record("daemon_stopped", "at " + stopped_at + ", exited after " + std::to_string(elapsed_ms(start)) + " ms");
        start = Clock::now();
        daemon().start({"--max-queued-bytes", "0"}); // the default configuration, as enter() starts it
        record("daemon_started", "ready at " + at() + ", after " + std::to_string(elapsed_ms(start)) + " ms");
        EXPECT_LT(watch.moved(), total) << "the transfer ended before the restarted daemon was ready";
    }

    // True once this half has a failure (set-up included); later steps of the half would only add noise.
    bool half_failed() const
    {
        const auto* result = ::testing::UnitTest::GetInstance()->current_test_info()->result();
        for (int i = parts_at_begin_; i < result->total_part_count(); ++i)
            if (result->GetTestPartResult(i).failed())
                return true;
        return false;
    }

private:
    PolicyDir policies_;
    int parts_at_begin_ = 0;
    Clock::time_point begun_ = Clock::now();
};

// Text for a failed transfer: the watchdog's reason when it fired (the root cause), else the first error.
inline std::string failure_of(const ProgressWatch& watch, const std::string& first_error)
{
    if (watch.fired())
        return watch.reason();
    return first_error;
}

} // namespace smdtest

namespace smdtest {

// accept() that gives up at `deadline` or as soon as `stop` says so (a fired watch, a client that exited); an
// empty Fd then.
Fd accept_within(int listener, Clock::time_point deadline, const std::function<bool()>& stop = {});
inline Fd accept_within(int listener, const ProgressWatch& watch)
{
    return accept_within(listener, watch.deadline(), [&] { return watch.fired(); });
}

// `text` with its line breaks as " | ": failure messages stay one line, which end_half() records.
std::string one_line(const std::string& text);

// `ss -tn` of a namespace, one line per TCP connection with its Recv-Q and Send-Q: where a stalled stream's
// bytes sit. For ProgressWatch::on_stall.
std::string tcp_queues(const NetNs& ns);

} // namespace smdtest
