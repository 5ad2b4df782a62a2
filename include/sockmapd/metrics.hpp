// Prometheus metrics of the data path: a snapshot of the pinned maps, rendered in the text exposition format.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "sockmapd/counters.hpp"
#include "sockmapd/pinned.hpp"
#include "sockmapd/pinned_policy.hpp"
#include "sockmapd/queues.hpp"

namespace sockmapd {

// The Content-Type of the Prometheus text format 0.0.4.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Everything one scrape reports; filled from the maps by MetricsSource, by hand in unit tests.
struct MetricsSnapshot {
    MapFill fill;
    MapCapacities capacities;
    CounterValues counters{};
    std::string version; // sockmapd version
    std::string kernel;  // uname -r
    double scrape_seconds = 0; // time spent reading the maps for this snapshot
    PolicyReport policy;
    std::uint64_t policy_reload_errors = 0;
    std::uint64_t hints_expired = 0; // deleted by this daemon's aging sweeps
    std::optional<QueuedBytes> queued; // unread redirected bytes; empty if they could not be measured
};

// The exposition text for a snapshot: a pure function, every family with its HELP and TYPE lines.
std::string render_metrics(const MetricsSnapshot& snapshot);

// A label value with backslash, double quote and line feed escaped as the text format requires.
std::string escape_label_value(std::string_view value);

// What the daemon's HTTP endpoints read. Empty until the daemon has attached its programs, emptied again
// before it detaches them. Scrapes are serialized: each one walks the maps, and concurrent scrapers must
// not multiply that cost.
class MetricsSource {
public:
    MetricsSource();
    ~MetricsSource();
    MetricsSource(const MetricsSource&) = delete;
    MetricsSource& operator=(const MetricsSource&) = delete;

    // The programs are attached and smd_info is published: opens the pinned maps read-only.
    void datapath_up(const std::string& pin_path);
    // About to detach: /readyz fails and /metrics has nothing to say from here on.
    void datapath_down();

    // Housekeeping: one warning when the sockhash crosses 90 % of its capacity (new connections will soon
    // stay on TCP), one info line when it drops below 80 % again. Never throws.
    void check_capacity();

    // A policy reload failed (the previous policy stays in force): counted in sockmapd_policy_reload_errors_total.
    void count_policy_reload_error();

    // The aging sweep deleted this many SYN hints: counted in sockmapd_hints_expired_total.
    void count_hints_expired(std::uint64_t hints);

    // nullopt when ready (attached, pins present, maps readable), else one sentence saying why not.
    std::optional<std::string> not_ready() const;
    // The /metrics body, or nullopt while the data path is down.
    std::optional<std::string> scrape() const;

private:
    mutable std::mutex mutex_;
    std::unique_ptr<PinnedDatapath> pins_;
    std::unique_ptr<PinnedPolicy> policy_;
    std::unique_ptr<QueueMeter> queue_meter_; // empty if its program could not be loaded (logged once)
    std::uint64_t policy_reload_errors_ = 0;
    std::uint64_t hints_expired_ = 0;
    std::string kernel_;
    bool nearly_full_ = false;
};

} // namespace sockmapd
