// Whether a case ran on the redirect or deliberately stepped aside from it, read from the daemon's counters.
// Counters are read tolerantly: one this build does not have reads as 0, so the same test runs against a daemon
// from before and after a counter was added.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bounded_io.hpp"

namespace smdtest {

// The counters that say a connection (or a direction) deliberately left the redirect, or never took it, because
// the kernel could not serve it like TCP (issue 11). The one list the tests accept as "stepped aside".
inline const std::vector<std::string> kStepAsideCounters{
    "sockets_released",     // taken out of the sockhash once its redirect queues were drained
    "left_backpressure",    // a direction left the redirect for good after backpressure
    "left_memcg",           // ... because the receiver's memory cgroup was nearly full
    "left_tcp_memory_pressure", // ... because the node was under TCP memory pressure
    "left_blocking_reader", // a direction left because its reader blocks in recv()
    "policy_bypassed",      // a policy rule kept the connection off the redirect (splice, MSG_OOB users)
    "skipped_blocking",     // the connecting socket was blocking: never paired
};

// A counter from a snapshot, 0 if the daemon has no such counter.
std::uint64_t counter_or_zero(const Counters& counters, const std::string& name);
// Its change between two snapshots, 0 if either lacks it.
std::uint64_t moved_or_zero(const Counters& before, const Counters& after, const std::string& name);

// What the daemon did with a case that moved `payload` bytes end to end.
struct PathVerdict {
    std::uint64_t payload = 0;
    std::uint64_t redirected_bytes = 0;
    std::uint64_t fallback_bytes = 0;
    std::vector<std::pair<std::string, std::uint64_t>> stepped_aside; // the step-aside counters that moved
    // At least half the payload went through the redirect.
    bool accelerated() const { return 2 * redirected_bytes >= payload; }
    bool stepped() const { return !stepped_aside.empty(); }
    // "accelerated: 419430400 of 209715200 payload bytes redirected", "stepped aside: splice_seen +2 ...",
    // or "NEITHER: ..." with the numbers.
    std::string describe() const;
};

PathVerdict path_verdict(const Counters& before, const Counters& after, std::uint64_t payload);

} // namespace smdtest
