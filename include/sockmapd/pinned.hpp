// Read-only view of a pinned sockmapd data path, for sockmapctl: works with or without a running daemon.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sockmapd/counters.hpp"
#include "sockmapd/fd.hpp"
#include "sockmapd/queues.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {

struct ProgramInfo {
    std::uint32_t id = 0;
    std::string name;
    std::string type;
    std::uint64_t run_count = 0;   // needs sysctl kernel.bpf_stats_enabled=1
    std::uint64_t run_time_ns = 0;
};

// How full the sockhash and the pair table are right now (walks both maps: cost grows with their fill).
struct MapFill {
    std::uint64_t sockets = 0;    // entries in the sockhash
    std::uint64_t pairs = 0;      // connections with both ends in the sockhash
    std::uint64_t half_pairs = 0; // active end in, passive not (yet)
    std::uint64_t closed_pairs = 0; // entries neither of whose sockets is in the sockhash any more: they closed
                                    // while no sock_ops ran to see it; the next daemon start removes them
    std::uint64_t hints = 0;      // entries in smd_hints
    std::set<std::uint64_t> netns_cookies; // network namespaces of the sockets in the sockhash
};

// max_entries of the sized maps; fixed for the life of a map.
struct MapCapacities {
    std::uint32_t sockhash = 0;
    std::uint32_t pairs = 0;
    std::uint32_t hints = 0;
};

// One smd_pairs entry: a connection whose active end is (or was) in the sockhash.
struct PairEntry {
    struct smd_pair_key key;
    struct smd_pair_state state;
};

struct StatusReport {
    std::string pin_path;
    struct smd_info info {};
    bool daemon_running = false;
    std::uint32_t max_sockets = 0;
    std::uint64_t sockets = 0;        // entries in the sockhash
    std::uint64_t pairs = 0;          // connections with both ends in the sockhash
    std::uint64_t half_pairs = 0;     // active end in, passive not (yet)
    std::uint64_t closed_pairs = 0;   // see MapFill
    std::uint64_t hints = 0;          // entries in smd_hints
    std::uint32_t max_hints = 0;
    std::optional<bool> bpf_stats_enabled; // kernel.bpf_stats_enabled, which run counts need; unknown if unread
    CounterValues counters{};
    std::vector<ProgramInfo> programs;
    std::optional<struct smd_control> control; // drain flag and backpressure limit, if pinned
    std::optional<QueuedBytes> queued;         // unread redirected bytes, if they could be measured
    std::string queued_error;                  // why not, if they could not
};

class PinnedDatapath {
public:
    // Throws with a clear message if nothing (or something else) is pinned at pin_path.
    explicit PinnedDatapath(const std::string& pin_path);

    // Everything sockmapctl status shows, including the programs that use the sockhash.
    StatusReport status() const;

    // The pieces of status() that metrics need, each cheap on its own; see docs/metrics.md for their cost.
    struct smd_info info() const;
    MapFill fill() const;
    CounterValues counters() const;
    // Every smd_pairs entry, for sockmapctl connections.
    std::vector<PairEntry> pairs() const;
    const MapCapacities& capacities() const { return capacities_; }
    // smd_sk_ctx, the per-socket storage: readable only through sock_diag (see connections.hpp).
    int sk_ctx_fd() const { return sk_ctx_.get(); }
    std::uint32_t sk_ctx_id() const { return sk_ctx_id_; }
    const std::string& pin_path() const { return pin_path_; }

private:
    void for_each_pair(const std::function<void(const PairEntry&)>& visit) const;

    std::string pin_path_;
    Fd sockhash_, pairs_, hints_, counters_, info_, sk_ctx_;
    Fd control_; // not pinned by the sockmapd versions before the drain switch
    MapCapacities capacities_;
    std::uint32_t sockhash_id_ = 0;
    std::uint32_t sk_ctx_id_ = 0;
};

// Every loaded BPF program that uses the map with this ID (walks all programs).
std::vector<ProgramInfo> programs_using(std::uint32_t map_id);

std::string format_status_text(const StatusReport& report);
std::string format_status_json(const StatusReport& report);

} // namespace sockmapd
