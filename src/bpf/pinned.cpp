// sockmapctl's view of the pinned maps: socket and pair counts, counters, programs, daemon info.
#include "sockmapd/pinned.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "sockmapd/error.hpp"
#include "sockmapd/hints.hpp"
#include "sockmapd/human_units.hpp"
#include "sockmapd/json_output.hpp"
#include "sockmapd/kernel_object.hpp"
#include "sockmapd/pinned_map.hpp"

namespace sockmapd {
namespace {

// Visits every key of a hash map; deleted-while-iterating keys may be skipped, which is fine for counts.
template <typename Key, typename Visit>
void for_each_key(int fd, Visit visit)
{
    Key key {}, next {};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        visit(next);
        key = next;
        prev = &key;
    }
}

// The pairs with a socket in the sockhash, from the walk that counts the sockets (no lookup per pair). A socket
// leaves the sockhash when it closes, with or without a daemon; its pair entry leaves only when sock_ops sees the
// close, which it cannot while no daemon runs. Keys are compared as bytes: both maps hold the kernel's copy.
class PairsInSockhash {
public:
    void add(const struct smd_pair_key& pair) { ++keys_[bytes(pair)]; }
    bool contains(const struct smd_pair_key& pair) const { return keys_.count(bytes(pair)) != 0; }
    // Sockets of this connection in the sockhash: 2 paired, 1 waiting for its peer or leaving, 0 gone.
    int sockets(const struct smd_pair_key& pair) const
    {
        auto it = keys_.find(bytes(pair));
        return it == keys_.end() ? 0 : it->second;
    }

private:
    static std::string bytes(const struct smd_pair_key& pair)
    {
        return std::string(reinterpret_cast<const char*>(&pair), sizeof(pair));
    }
    std::unordered_map<std::string, int> keys_;
};

std::optional<bool> read_bpf_stats_enabled()
{
    std::ifstream in("/proc/sys/kernel/bpf_stats_enabled");
    int value = 0;
    if (!(in >> value))
        return std::nullopt;
    return value != 0;
}

} // namespace

std::vector<ProgramInfo> programs_using(std::uint32_t map_id)
{
    std::vector<ProgramInfo> programs;
    std::uint32_t id = 0;
    while (bpf_prog_get_next_id(id, &id) == 0) {
        auto prog = program_by_id(id);
        if (!prog || std::find(prog->map_ids.begin(), prog->map_ids.end(), map_id) == prog->map_ids.end())
            continue;
        const char* type = libbpf_bpf_prog_type_str(prog->type);
        programs.push_back({prog->id, prog->name, type ? type : "unknown", prog->run_count, prog->run_time_ns});
    }
    return programs;
}

PinnedDatapath::PinnedDatapath(const std::string& pin_path)
    : pin_path_(pin_path),
      sockhash_(open_pinned_map(pin_path, "smd_sockhash")),
      pairs_(open_pinned_map(pin_path, "smd_pairs")),
      hints_(open_pinned_map(pin_path, "smd_hints")),
      counters_(open_pinned_map(pin_path, "smd_counters")),
      info_(open_pinned_map(pin_path, "smd_info")),
      sk_ctx_(open_pinned_map(pin_path, "smd_sk_ctx")),
      control_(open_pin(pin_path + "/smd_control"))
{
    sk_ctx_id_ = map_info(sk_ctx_.get(), "smd_sk_ctx").id;
    auto sockhash_info = map_info(sockhash_.get(), "smd_sockhash");
    sockhash_id_ = sockhash_info.id;
    capacities_ = {.sockhash = sockhash_info.max_entries,
                   .pairs = map_info(pairs_.get(), "smd_pairs").max_entries,
                   .hints = map_info(hints_.get(), "smd_hints").max_entries};
}

struct smd_info PinnedDatapath::info() const
{
    struct smd_info info {};
    std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(info_.get(), &zero, &info) != 0)
        throw_errno(errno, "read smd_info");
    return info;
}

void PinnedDatapath::for_each_pair(const std::function<void(const PairEntry&)>& visit) const
{
    for_each_entry<struct smd_pair_key, struct smd_pair_state>(
        pairs_.get(), "read smd_pairs", [&](const auto& key, const auto& state) { visit({key, state}); });
}

MapFill PinnedDatapath::fill() const
{
    MapFill fill;
    // A sockhash cannot be read in batches: one get_next_key per socket.
    PairsInSockhash in_sockhash;
    for_each_key<struct smd_sock_key>(sockhash_.get(), [&](const struct smd_sock_key& key) {
        ++fill.sockets;
        in_sockhash.add(key.pair);
        fill.netns_cookies.insert(key.pair.netns_cookie);
    });
    // By the sockets each connection has in the sockhash: a leaving connection whose first end was released, or
    // one end of which closed, has one, like one whose passive end has not joined yet.
    for_each_pair([&](const PairEntry& entry) {
        int sockets = in_sockhash.sockets(entry.key);
        if (sockets == 0)
            ++fill.closed_pairs;
        else if (sockets == 2)
            ++fill.pairs;
        else
            ++fill.half_pairs;
    });
    fill.hints = read_hints(hints_.get()).size();
    return fill;
}

std::vector<PairEntry> PinnedDatapath::pairs() const
{
    std::vector<PairEntry> entries;
    for_each_pair([&](const PairEntry& entry) { entries.push_back(entry); });
    return entries;
}

CounterValues PinnedDatapath::counters() const
{
    return read_counters(counters_.get());
}

StatusReport PinnedDatapath::status() const
{
    StatusReport report;
    report.pin_path = pin_path_;
    report.info = info();
    report.daemon_running = report.info.daemon_pid != 0 && ::kill(static_cast<pid_t>(report.info.daemon_pid), 0) == 0;
    report.max_sockets = capacities_.sockhash;
    MapFill now = fill();
    report.sockets = now.sockets;
    report.pairs = now.pairs;
    report.half_pairs = now.half_pairs;
    report.closed_pairs = now.closed_pairs;
    report.hints = now.hints;
    // Loads a small iterator program and enters the namespaces of paired sockets: root, as the rest of status is.
    try {
        report.queued = QueueMeter(pin_path_).measure(now.netns_cookies);
    } catch (const Error& e) {
        report.queued_error = e.what();
    }
    report.bpf_stats_enabled = read_bpf_stats_enabled();
    report.max_hints = capacities_.hints;
    report.counters = counters();
    report.programs = programs_using(sockhash_id_);
    struct smd_control control {};
    std::uint32_t zero = 0;
    if (control_ && bpf_map_lookup_elem(control_.get(), &zero, &control) == 0)
        report.control = control;
    return report;
}

std::string format_status_json(const StatusReport& report)
{
    nlohmann::ordered_json out;
    out["pin_path"] = report.pin_path;
    out["abi"] = report.info.abi;
    out["version"] = bounded_string(report.info.version);
    out["cgroup"] = bounded_string(report.info.cgroup_path);
    out["cgroup_id"] = report.info.cgroup_id;
    out["daemon_pid"] = report.info.daemon_pid;
    out["daemon_running"] = report.daemon_running;
    out["started_unix"] = report.info.started_unix;
    out["max_sockets"] = report.max_sockets;
    out["sockets"] = report.sockets;
    out["pairs"] = report.pairs;
    out["half_pairs"] = report.half_pairs;
    out["closed_pairs"] = report.closed_pairs;
    out["hints"] = report.hints;
    out["max_hints"] = report.max_hints;
    if (report.control) {
        out["max_queued_bytes"] = report.control->max_queued_bytes;
        out["rmem_max"] = report.control->rmem_max;
        out["draining"] = (report.control->flags & SMD_CONTROL_DRAIN) != 0;
    } else {
        out["max_queued_bytes"] = nullptr;
        out["draining"] = nullptr;
    }
    if (report.queued) {
        out["queued_bytes"] = report.queued->total;
        out["largest_queued_bytes"] = report.queued->largest;
        out["queued_sockets"] = report.queued->sockets;
        out["queued_netns_unreachable"] = report.queued->unreachable_netns;
    } else {
        out["queued_bytes"] = nullptr;
        out["largest_queued_bytes"] = nullptr;
        out["queued_sockets"] = nullptr;
        out["queued_error"] = report.queued_error;
    }
    out["directions_moved_for_memory"] = report.counters[SMD_CTR_FALLBACK_BACKPRESSURE];
    auto& counters = out["counters"] = nlohmann::ordered_json::object();
    for (int i = 0; i < SMD_CTR_MAX; ++i)
        counters[std::string(counter_name(static_cast<enum smd_counter>(i)))] = report.counters[i];
    out["bpf_stats_enabled"] = report.bpf_stats_enabled ? nlohmann::ordered_json(*report.bpf_stats_enabled) : nullptr;
    auto& programs = out["programs"] = nlohmann::ordered_json::array();
    for (const auto& p : report.programs)
        programs.push_back({{"id", p.id}, {"name", p.name}, {"type", p.type}, {"run_count", p.run_count},
                            {"run_time_ns", p.run_time_ns}});
    // Cgroup names are bytes, not UTF-8: replace what JSON cannot carry instead of failing the whole status.
    return format_json(out);
}

std::string format_status_text(const StatusReport& report)
{
    std::ostringstream out;
    out << "pin path:    " << report.pin_path << "\n";
    out << "cgroup:      " << bounded_string(report.info.cgroup_path) << " (id " << report.info.cgroup_id
        << ")\n";
    if (report.daemon_running) {
        auto uptime = std::time(nullptr) - static_cast<std::time_t>(report.info.started_unix);
        out << "daemon:      running, pid " << report.info.daemon_pid << ", version "
            << bounded_string(report.info.version) << ", up " << uptime << "s\n";
    } else {
        out << "daemon:      not running (paired connections keep their redirect; new ones are not paired)\n";
    }
    out << "sockets:     " << report.sockets << " of " << report.max_sockets << " in smd_sockhash\n";
    out << "pairs:       " << report.pairs << " active, " << report.half_pairs << " waiting for their peer";
    if (report.closed_pairs)
        out << ", " << report.closed_pairs << " closed while no daemon ran (removed at its next start)";
    out << "\n";
    out << "syn hints:   " << report.hints << " of " << report.max_hints << " in smd_hints\n";
    if (report.control && (report.control->flags & SMD_CONTROL_DRAIN))
        out << "redirects:   draining (sockmapctl uninstall): every direction moves to TCP\n";
    else if (report.control) {
        out << "redirects:   a connection leaves for TCP when a receiver falls behind its queue cap (";
        if (report.control->max_queued_bytes)
            out << format_bytes(report.control->max_queued_bytes) << " at first (--max-queued-bytes)";
        else
            out << "TCP-like at first";
        out << ", growing as it reads up to "
            << format_bytes(std::max(report.control->rmem_max, report.control->max_queued_bytes)) << ")\n";
    }
    out << "memory:      ";
    if (report.queued) {
        out << format_bytes(report.queued->total) << " unread in " << report.queued->sockets << " redirect queue"
            << (report.queued->sockets == 1 ? "" : "s");
        if (report.queued->sockets)
            out << " (largest " << format_bytes(report.queued->largest) << ")";
        if (report.queued->unreachable_netns)
            out << ", not counting " << report.queued->unreachable_netns << " network namespace"
                << (report.queued->unreachable_netns == 1 ? "" : "s") << " it could not enter";
    } else {
        out << "unread bytes unknown (" << report.queued_error << ")";
    }
    std::uint64_t moved = report.counters[SMD_CTR_FALLBACK_BACKPRESSURE];
    out << "; " << moved << " direction" << (moved == 1 ? "" : "s") << " moved to TCP for memory\n";
    out << "programs:\n";
    for (const auto& p : report.programs) {
        out << "  " << p.id << " " << p.name << " (" << p.type << ") ";
        // Without kernel.bpf_stats_enabled the kernel counts nothing: 0 would read as "never ran".
        if (report.bpf_stats_enabled == false && p.run_count == 0)
            out << "runs n/a (kernel.bpf_stats_enabled=0)\n";
        else
            out << "runs " << p.run_count << ", " << p.run_time_ns << " ns\n";
    }
    out << "counters:\n";
    for (int i = 0; i < SMD_CTR_MAX; ++i) {
        std::string name(counter_name(static_cast<enum smd_counter>(i)));
        out << "  " << name << " " << report.counters[i];
        if (name.ends_with("_bytes") && report.counters[i] >= 1024)
            out << " (" << format_bytes(report.counters[i]) << ")";
        out << "\n";
    }
    return out.str();
}

} // namespace sockmapd
