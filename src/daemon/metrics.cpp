// Prometheus text format 0.0.4 for the data-path counters and map fill, and the source the daemon serves.
#include "sockmapd/metrics.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>

#include "sockmapd/error.hpp"
#include "sockmapd/version.h"

namespace sockmapd {
namespace {

// Where each smd_counter goes: a family and, for the families split by reason, its label value.
struct CounterMetric {
    const char* family;
    const char* reason; // nullptr: the family has no reason label
};

// Same order as enum smd_counter.
constexpr CounterMetric kCounterMetrics[] = {
    {"sockmapd_syn_hints_total", nullptr},               // SMD_CTR_SYN_HINTS
    {"sockmapd_skipped_not_local_total", nullptr},       // SMD_CTR_SKIP_NOT_LOCAL
    {"sockmapd_sockets_inserted_total", nullptr},        // SMD_CTR_SOCKETS_INSERTED
    {"sockmapd_pairs_total", nullptr},                   // SMD_CTR_PAIRS_MADE
    {"sockmapd_redirected_messages_total", nullptr},     // SMD_CTR_MSGS_REDIRECTED
    {"sockmapd_redirected_bytes_total", nullptr},        // SMD_CTR_BYTES_REDIRECTED
    {"sockmapd_fallback_messages_total", "no_peer"},     // SMD_CTR_FALLBACK_NO_PEER
    {"sockmapd_fallback_messages_total", "pinned"},      // SMD_CTR_FALLBACK_PINNED
    {"sockmapd_fallback_messages_total", "no_context"},  // SMD_CTR_FALLBACK_NO_CTX
    {"sockmapd_fallback_bytes_total", nullptr},          // SMD_CTR_FALLBACK_BYTES
    {"sockmapd_early_data_total", nullptr},              // SMD_CTR_EARLY_DATA
    {"sockmapd_insert_failures_total", "full"},          // SMD_CTR_INSERT_FAIL_FULL
    {"sockmapd_insert_failures_total", "refused"},       // SMD_CTR_INSERT_FAIL_REFUSED
    {"sockmapd_insert_failures_total", "key_collision"}, // SMD_CTR_KEY_COLLISION
    {"sockmapd_pairs_closed_total", nullptr},            // SMD_CTR_PAIRS_CLOSED
    {"sockmapd_policy_bypassed_total", nullptr},         // SMD_CTR_POLICY_BYPASSED
    {"sockmapd_fallback_messages_total", "backpressure"}, // SMD_CTR_FALLBACK_BACKPRESSURE
    {"sockmapd_left_redirect_total", "backpressure"},    // SMD_CTR_LEFT_BACKPRESSURE
    {"sockmapd_insert_failures_total", "hints_full"},    // SMD_CTR_HINTS_FULL
    {"sockmapd_left_redirect_total", "blocking_reader"}, // SMD_CTR_LEFT_BLOCKING_READER
    {"sockmapd_left_redirect_total", "other"},           // SMD_CTR_LEFT_OTHER
    {"sockmapd_skipped_blocking_total", nullptr},        // SMD_CTR_SKIPPED_BLOCKING
    {"sockmapd_sockets_released_total", nullptr},        // SMD_CTR_SOCKETS_RELEASED
    {"sockmapd_release_wakeups_total", nullptr},         // SMD_CTR_RELEASE_WAKEUPS
    {"sockmapd_left_redirect_total", "memcg"},           // SMD_CTR_LEFT_MEMCG
    {"sockmapd_left_redirect_total", "tcp_memory_pressure"}, // SMD_CTR_LEFT_TCP_PRESSURE
};
static_assert(std::size(kCounterMetrics) == SMD_CTR_MAX, "every smd_counter needs a metric");

struct Family {
    const char* name;
    const char* help;
};

// The counter families, in output order, with their HELP text.
constexpr Family kCounterFamilies[] = {
    {"sockmapd_pairs_total", "Connections paired: both ends entered the sockhash."},
    {"sockmapd_pairs_closed_total", "Pair entries removed after both ends closed."},
    {"sockmapd_sockets_inserted_total", "Sockets put into the sockhash, both roles."},
    {"sockmapd_redirected_messages_total", "sk_msg verdicts that redirected a send to the peer socket."},
    {"sockmapd_redirected_bytes_total", "Bytes in redirected messages, counted at verdict time."},
    {"sockmapd_fallback_messages_total",
     "Messages of sockets in the sockhash passed to TCP, by reason; reason=\"backpressure\" counts the directions "
     "moved to TCP for memory (queue cap, memory cgroup, TCP memory pressure), one message each."},
    {"sockmapd_fallback_bytes_total", "Bytes in messages passed to TCP, all reasons."},
    {"sockmapd_insert_failures_total", "Sockets that could not be paired, by reason."},
    {"sockmapd_syn_hints_total", "SYNs seen by listeners in scope (hints recorded)."},
    {"sockmapd_skipped_not_local_total", "Established sockets not inserted: their peer is not a local socket in scope."},
    {"sockmapd_early_data_total", "Connections that sent data before insertion (TCP Fast Open)."},
    {"sockmapd_policy_bypassed_total", "Local connections the policy kept on TCP (both ends local, rule said bypass)."},
    {"sockmapd_left_redirect_total",
     "Connections that left the redirect for TCP, by reason: a receiver behind its queue cap (backpressure), its "
     "memory cgroup nearly full (memcg), the node under TCP memory pressure (tcp_memory_pressure), a blocking socket "
     "(blocking_reader), an uninstall drain or a vanished peer (other)."},
    {"sockmapd_skipped_blocking_total", "Local connections never paired because the connecting socket is blocking."},
    {"sockmapd_sockets_released_total",
     "Sockets of leaving connections taken out of the sockhash once nothing redirected to them was unread."},
    {"sockmapd_release_wakeups_total", "Released sockets whose reader was woken because TCP bytes were waiting."},
};

std::string format_value(std::uint64_t value)
{
    return std::to_string(value);
}

std::string format_value(double value)
{
    char buffer[64];
    auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    return std::string(buffer, result.ptr);
}

// HELP text escapes backslash and line feed (but not double quotes).
std::string escape_help(std::string_view text)
{
    std::string out;
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

class Exposition {
public:
    void family(const char* name, const char* type, std::string_view help)
    {
        text_ += "# HELP ";
        text_ += name;
        text_ += ' ';
        text_ += escape_help(help);
        text_ += "\n# TYPE ";
        text_ += name;
        text_ += ' ';
        text_ += type;
        text_ += '\n';
    }

    // labels: "key", "value" pairs; values are escaped here.
    template <typename Value>
    void sample(const char* name, std::initializer_list<std::pair<const char*, std::string_view>> labels,
                Value value)
    {
        text_ += name;
        if (labels.size()) {
            text_ += '{';
            bool first = true;
            for (const auto& [key, label] : labels) {
                if (!first)
                    text_ += ',';
                first = false;
                text_ += key;
                text_ += "=\"";
                text_ += escape_label_value(label);
                text_ += '"';
            }
            text_ += '}';
        }
        text_ += ' ';
        text_ += format_value(value);
        text_ += '\n';
    }

    std::string take() { return std::move(text_); }

private:
    std::string text_;
};

std::string kernel_release()
{
    struct utsname names {};
    if (::uname(&names) != 0)
        return "unknown";
    return names.release;
}

} // namespace

std::string escape_label_value(std::string_view value)
{
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string render_metrics(const MetricsSnapshot& s)
{
    Exposition out;
    out.family("sockmapd_build_info", "gauge", "Always 1; the labels say which sockmapd runs on which kernel.");
    out.sample("sockmapd_build_info", {{"version", s.version}, {"kernel", s.kernel}}, std::uint64_t{1});

    out.family("sockmapd_sockets", "gauge", "Sockets in smd_sockhash now.");
    out.sample("sockmapd_sockets", {}, s.fill.sockets);
    out.family("sockmapd_pairs", "gauge", "Connections with both ends in smd_sockhash now.");
    out.sample("sockmapd_pairs", {}, s.fill.pairs);
    out.family("sockmapd_pairs_waiting", "gauge",
               "Pair entries whose active end is in smd_sockhash and whose passive end is not (yet).");
    out.sample("sockmapd_pairs_waiting", {}, s.fill.half_pairs);
    out.family("sockmapd_map_capacity", "gauge", "max_entries of each sized map.");
    out.sample("sockmapd_map_capacity", {{"map", "smd_sockhash"}}, std::uint64_t{s.capacities.sockhash});
    out.sample("sockmapd_map_capacity", {{"map", "smd_pairs"}}, std::uint64_t{s.capacities.pairs});
    out.sample("sockmapd_map_capacity", {{"map", "smd_hints"}}, std::uint64_t{s.capacities.hints});
    out.family("sockmapd_hints", "gauge",
               "SYN hints in smd_hints now: handshakes in flight, and hints of handshakes that never completed until "
               "they age out.");
    out.sample("sockmapd_hints", {}, s.fill.hints);
    if (s.queued) {
        out.family("sockmapd_queued_bytes", "gauge",
                   "Bytes redirected into sockets of smd_sockhash that their readers have not read yet, all sockets "
                   "together; read from each socket's redirect queue under its lock at scrape time.");
        out.sample("sockmapd_queued_bytes", {}, s.queued->total);
        out.family("sockmapd_queued_bytes_largest", "gauge", "The most one socket's redirect queue holds now.");
        out.sample("sockmapd_queued_bytes_largest", {}, s.queued->largest);
        out.family("sockmapd_queued_sockets", "gauge", "Sockets whose redirect queue is not empty now.");
        out.sample("sockmapd_queued_sockets", {}, s.queued->sockets);
        out.family("sockmapd_queued_netns_unreachable", "gauge",
                   "Network namespaces with sockets in smd_sockhash that the scrape could not enter: their queues are "
                   "missing from sockmapd_queued_*.");
        out.sample("sockmapd_queued_netns_unreachable", {}, s.queued->unreachable_netns);
    }

    for (const auto& family : kCounterFamilies) {
        out.family(family.name, "counter", family.help);
        for (int i = 0; i < SMD_CTR_MAX; ++i) {
            const auto& metric = kCounterMetrics[i];
            if (std::strcmp(metric.family, family.name) != 0)
                continue;
            if (metric.reason)
                out.sample(family.name, {{"reason", metric.reason}}, s.counters[i]);
            else
                out.sample(family.name, {}, s.counters[i]);
        }
    }

    const auto& policy = s.policy;
    out.family("sockmapd_policy_decisions_total", "counter",
               "Connections between two local sockets decided by each rule of the policy in force (rule=\"default\": "
               "no rule matched). Starts from 0 when a policy is loaded.");
    for (const auto& rule : policy.rules)
        out.sample("sockmapd_policy_decisions_total", {{"rule", rule.name}, {"action", rule.action}}, rule.decisions);
    out.sample("sockmapd_policy_decisions_total", {{"rule", "default"}, {"action", policy.default_action}},
               policy.default_decisions);
    out.family("sockmapd_policy_reload_errors_total", "counter",
               "Policy reloads refused (invalid or unreadable file); the previous policy stayed in force.");
    out.sample("sockmapd_policy_reload_errors_total", {}, s.policy_reload_errors);
    out.family("sockmapd_policy_info", "gauge", "Always 1; the labels say which policy is in force.");
    out.sample("sockmapd_policy_info",
               {{"source", policy.source}, {"sha256", policy.sha256}, {"generation", std::to_string(policy.generation)}},
               std::uint64_t{1});
    out.family("sockmapd_policy_loaded_timestamp_seconds", "gauge", "When the policy in force was loaded.");
    out.sample("sockmapd_policy_loaded_timestamp_seconds", {}, policy.loaded_unix);

    out.family("sockmapd_hints_expired_total", "counter",
               "SYN hints the daemon deleted because they were older than --hint-max-age: handshakes that never "
               "completed.");
    out.sample("sockmapd_hints_expired_total", {}, s.hints_expired);

    out.family("sockmapd_scrape_duration_seconds", "gauge", "Time this scrape spent reading the BPF maps.");
    out.sample("sockmapd_scrape_duration_seconds", {}, s.scrape_seconds);
    return out.take();
}

MetricsSource::MetricsSource() : kernel_(kernel_release()) {}

MetricsSource::~MetricsSource() = default;

void MetricsSource::datapath_up(const std::string& pin_path)
{
    auto pins = std::make_unique<PinnedDatapath>(pin_path);
    auto policy = std::make_unique<PinnedPolicy>(pin_path);
    std::unique_ptr<QueueMeter> meter;
    try {
        meter = std::make_unique<QueueMeter>(pin_path);
    } catch (const Error& e) {
        spdlog::warn("/metrics will not report queued bytes: {}", e.what());
    }
    std::lock_guard lock(mutex_);
    pins_ = std::move(pins);
    policy_ = std::move(policy);
    queue_meter_ = std::move(meter);
}

void MetricsSource::datapath_down()
{
    std::lock_guard lock(mutex_);
    pins_.reset();
    policy_.reset();
    queue_meter_.reset();
}

void MetricsSource::count_policy_reload_error()
{
    std::lock_guard lock(mutex_);
    ++policy_reload_errors_;
}

void MetricsSource::count_hints_expired(std::uint64_t hints)
{
    std::lock_guard lock(mutex_);
    hints_expired_ += hints;
}

void MetricsSource::check_capacity()
{
    std::lock_guard lock(mutex_);
    if (!pins_)
        return;
    try {
        auto sockets = pins_->fill().sockets;
        auto capacity = pins_->capacities().sockhash;
        if (!nearly_full_ && sockets * 10 >= capacity * 9ull) {
            nearly_full_ = true;
            spdlog::warn("smd_sockhash is nearly full: {} of {} sockets; new connections stay on TCP once it is "
                         "full (insert_failed_full)",
                         sockets, capacity);
        } else if (nearly_full_ && sockets * 10 < capacity * 8ull) {
            nearly_full_ = false;
            spdlog::info("smd_sockhash below 80 % again: {} of {} sockets", sockets, capacity);
        }
    } catch (const Error& e) {
        spdlog::warn("cannot check the sockhash fill: {}", e.what());
    }
}

std::optional<std::string> MetricsSource::not_ready() const
{
    std::lock_guard lock(mutex_);
    if (!pins_)
        return "the data path is not attached";
    // The maps this daemon uses must still be pinned: the next daemon finds its state there.
    std::string info_pin = pins_->pin_path() + "/smd_info";
    struct stat st {};
    if (::stat(info_pin.c_str(), &st) != 0)
        return "the pinned maps are gone: " + info_pin + ": " + errno_name(errno);
    try {
        auto info = pins_->info();
        if (info.daemon_pid != static_cast<std::uint32_t>(::getpid()))
            return "smd_info names pid " + std::to_string(info.daemon_pid) + ", not this daemon";
        pins_->counters();
    } catch (const Error& e) {
        return e.what();
    }
    return std::nullopt;
}

std::optional<std::string> MetricsSource::scrape() const
{
    std::lock_guard lock(mutex_);
    if (!pins_)
        return std::nullopt;
    auto start = std::chrono::steady_clock::now();
    MetricsSnapshot snapshot;
    snapshot.fill = pins_->fill();
    snapshot.capacities = pins_->capacities();
    snapshot.counters = pins_->counters();
    snapshot.version = SOCKMAPD_VERSION;
    snapshot.kernel = kernel_;
    snapshot.policy = policy_->read();
    snapshot.policy_reload_errors = policy_reload_errors_;
    snapshot.hints_expired = hints_expired_;
    if (queue_meter_) {
        try {
            snapshot.queued = queue_meter_->measure(snapshot.fill.netns_cookies);
        } catch (const Error& e) {
            spdlog::warn("cannot measure queued bytes for /metrics: {}", e.what());
        }
    }
    snapshot.scrape_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return render_metrics(snapshot);
}

} // namespace sockmapd
