// Read-only view of a pinned sockmapd data path, for sockmapctl: works with or without a running daemon.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sockmapd/counters.hpp"
#include "sockmapd/fd.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {

// File names of the pinned maps under the pin path; they are the BPF map names.
inline constexpr const char* kPinnedMaps[] = {"smd_sockhash", "smd_pairs", "smd_hints",
                                              "smd_sk_ctx",   "smd_counters", "smd_info"};

struct ProgramInfo {
    std::uint32_t id = 0;
    std::string name;
    std::string type;
    std::uint64_t run_count = 0;   // needs sysctl kernel.bpf_stats_enabled=1
    std::uint64_t run_time_ns = 0;
};

struct StatusReport {
    std::string pin_path;
    struct smd_info info {};
    bool daemon_running = false;
    std::uint32_t max_sockets = 0;
    std::uint64_t sockets = 0;        // entries in the sockhash
    std::uint64_t pairs = 0;          // connections with both ends in the sockhash
    std::uint64_t half_pairs = 0;     // active end in, passive not (yet)
    CounterValues counters{};
    std::vector<ProgramInfo> programs;
};

class PinnedDatapath {
public:
    // Throws with a clear message if nothing (or something else) is pinned at pin_path.
    explicit PinnedDatapath(const std::string& pin_path);

    StatusReport status() const;

private:
    std::string pin_path_;
    Fd sockhash_, pairs_, counters_, info_;
};

std::string format_status_text(const StatusReport& report);
std::string format_status_json(const StatusReport& report);

} // namespace sockmapd
