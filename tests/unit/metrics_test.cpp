// Prometheus text rendering: exact output for a known snapshot, every counter exported once, label escaping.
#include "sockmapd/metrics.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

MetricsSnapshot sample_snapshot()
{
    MetricsSnapshot s;
    s.fill.sockets = 6;
    s.fill.pairs = 2;
    s.fill.half_pairs = 1;
    s.fill.hints = 4;
    s.capacities = {.sockhash = 65536, .pairs = 65536, .hints = 16384};
    for (int i = 0; i < SMD_CTR_MAX; ++i)
        s.counters[i] = 100 + i; // distinct per counter: a swapped mapping shows up as a wrong value
    s.version = "0.1.0";
    s.kernel = "6.18.0-test";
    s.scrape_seconds = 0.25;
    s.policy.source = "/etc/sockmapd/policy.yaml";
    s.policy.sha256 = "ab12";
    s.policy.generation = 3;
    s.policy.loaded_unix = 1790000000;
    s.policy.default_action = "bypass";
    s.policy.default_decisions = 7;
    s.policy.rules = {{.name = "istio", .selectors = "uid=1337", .action = "accelerate", .decisions = 41}};
    s.policy_reload_errors = 2;
    s.hints_expired = 9;
    s.queued = QueuedBytes{.total = 3 << 20, .largest = 2 << 20, .sockets = 2, .unreachable_netns = 1};
    return s;
}

// The whole exposition for sample_snapshot(): what a scraper sees, byte for byte.
constexpr const char* kExpected = R"(# HELP sockmapd_build_info Always 1; the labels say which sockmapd runs on which kernel.
# TYPE sockmapd_build_info gauge
sockmapd_build_info{version="0.1.0",kernel="6.18.0-test"} 1
# HELP sockmapd_sockets Sockets in smd_sockhash now.
# TYPE sockmapd_sockets gauge
sockmapd_sockets 6
# HELP sockmapd_pairs Connections with both ends in smd_sockhash now.
# TYPE sockmapd_pairs gauge
sockmapd_pairs 2
# HELP sockmapd_pairs_waiting Pair entries whose active end is in smd_sockhash and whose passive end is not (yet).
# TYPE sockmapd_pairs_waiting gauge
sockmapd_pairs_waiting 1
# HELP sockmapd_map_capacity max_entries of each sized map.
# TYPE sockmapd_map_capacity gauge
sockmapd_map_capacity{map="smd_sockhash"} 65536
sockmapd_map_capacity{map="smd_pairs"} 65536
sockmapd_map_capacity{map="smd_hints"} 16384
# HELP sockmapd_hints SYN hints in smd_hints now: handshakes in flight, and hints of handshakes that never completed until they age out.
# TYPE sockmapd_hints gauge
sockmapd_hints 4
# HELP sockmapd_queued_bytes Bytes redirected into sockets of smd_sockhash that their readers have not read yet, all sockets together; read from each socket's redirect queue under its lock at scrape time.
# TYPE sockmapd_queued_bytes gauge
sockmapd_queued_bytes 3145728
# HELP sockmapd_queued_bytes_largest The most one socket's redirect queue holds now.
# TYPE sockmapd_queued_bytes_largest gauge
sockmapd_queued_bytes_largest 2097152
# HELP sockmapd_queued_sockets Sockets whose redirect queue is not empty now.
# TYPE sockmapd_queued_sockets gauge
sockmapd_queued_sockets 2
# HELP sockmapd_queued_netns_unreachable Network namespaces with sockets in smd_sockhash that the scrape could not enter: their queues are missing from sockmapd_queued_*.
# TYPE sockmapd_queued_netns_unreachable gauge
sockmapd_queued_netns_unreachable 1
# HELP sockmapd_pairs_total Connections paired: both ends entered the sockhash.
# TYPE sockmapd_pairs_total counter
sockmapd_pairs_total 103
# HELP sockmapd_pairs_closed_total Pair entries removed after both ends closed.
# TYPE sockmapd_pairs_closed_total counter
sockmapd_pairs_closed_total 114
# HELP sockmapd_sockets_inserted_total Sockets put into the sockhash, both roles.
# TYPE sockmapd_sockets_inserted_total counter
sockmapd_sockets_inserted_total 102
# HELP sockmapd_redirected_messages_total sk_msg verdicts that redirected a send to the peer socket.
# TYPE sockmapd_redirected_messages_total counter
sockmapd_redirected_messages_total 104
# HELP sockmapd_redirected_bytes_total Bytes in redirected messages, counted at verdict time.
# TYPE sockmapd_redirected_bytes_total counter
sockmapd_redirected_bytes_total 105
# HELP sockmapd_fallback_messages_total Messages of sockets in the sockhash passed to TCP, by reason; reason="backpressure" counts the directions moved to TCP for memory (queue cap, memory cgroup, TCP memory pressure), one message each.
# TYPE sockmapd_fallback_messages_total counter
sockmapd_fallback_messages_total{reason="no_peer"} 106
sockmapd_fallback_messages_total{reason="pinned"} 107
sockmapd_fallback_messages_total{reason="no_context"} 108
sockmapd_fallback_messages_total{reason="backpressure"} 116
# HELP sockmapd_fallback_bytes_total Bytes in messages passed to TCP, all reasons.
# TYPE sockmapd_fallback_bytes_total counter
sockmapd_fallback_bytes_total 109
# HELP sockmapd_insert_failures_total Sockets that could not be paired, by reason.
# TYPE sockmapd_insert_failures_total counter
sockmapd_insert_failures_total{reason="full"} 111
sockmapd_insert_failures_total{reason="refused"} 112
sockmapd_insert_failures_total{reason="key_collision"} 113
sockmapd_insert_failures_total{reason="hints_full"} 118
# HELP sockmapd_syn_hints_total SYNs seen by listeners in scope (hints recorded).
# TYPE sockmapd_syn_hints_total counter
sockmapd_syn_hints_total 100
# HELP sockmapd_skipped_not_local_total Established sockets not inserted: their peer is not a local socket in scope.
# TYPE sockmapd_skipped_not_local_total counter
sockmapd_skipped_not_local_total 101
# HELP sockmapd_early_data_total Connections that sent data before insertion (TCP Fast Open).
# TYPE sockmapd_early_data_total counter
sockmapd_early_data_total 110
# HELP sockmapd_policy_bypassed_total Local connections the policy kept on TCP (both ends local, rule said bypass).
# TYPE sockmapd_policy_bypassed_total counter
sockmapd_policy_bypassed_total 115
# HELP sockmapd_left_redirect_total Connections that left the redirect for TCP, by reason: a receiver behind its queue cap (backpressure), its memory cgroup nearly full (memcg), the node under TCP memory pressure (tcp_memory_pressure), a blocking socket (blocking_reader), an uninstall drain or a vanished peer (other).
# TYPE sockmapd_left_redirect_total counter
sockmapd_left_redirect_total{reason="backpressure"} 117
sockmapd_left_redirect_total{reason="blocking_reader"} 119
sockmapd_left_redirect_total{reason="other"} 120
sockmapd_left_redirect_total{reason="memcg"} 124
sockmapd_left_redirect_total{reason="tcp_memory_pressure"} 125
# HELP sockmapd_skipped_blocking_total Local connections never paired because the connecting socket is blocking.
# TYPE sockmapd_skipped_blocking_total counter
sockmapd_skipped_blocking_total 121
# HELP sockmapd_sockets_released_total Sockets of leaving connections taken out of the sockhash once nothing redirected to them was unread.
# TYPE sockmapd_sockets_released_total counter
sockmapd_sockets_released_total 122
# HELP sockmapd_release_wakeups_total Released sockets whose reader was woken because TCP bytes were waiting.
# TYPE sockmapd_release_wakeups_total counter
sockmapd_release_wakeups_total 123
# HELP sockmapd_policy_decisions_total Connections between two local sockets decided by each rule of the policy in force (rule="default": no rule matched). Starts from 0 when a policy is loaded.
# TYPE sockmapd_policy_decisions_total counter
sockmapd_policy_decisions_total{rule="istio",action="accelerate"} 41
sockmapd_policy_decisions_total{rule="default",action="bypass"} 7
# HELP sockmapd_policy_reload_errors_total Policy reloads refused (invalid or unreadable file); the previous policy stayed in force.
# TYPE sockmapd_policy_reload_errors_total counter
sockmapd_policy_reload_errors_total 2
# HELP sockmapd_policy_info Always 1; the labels say which policy is in force.
# TYPE sockmapd_policy_info gauge
sockmapd_policy_info{source="/etc/sockmapd/policy.yaml",sha256="ab12",generation="3"} 1
# HELP sockmapd_policy_loaded_timestamp_seconds When the policy in force was loaded.
# TYPE sockmapd_policy_loaded_timestamp_seconds gauge
sockmapd_policy_loaded_timestamp_seconds 1790000000
# HELP sockmapd_hints_expired_total SYN hints the daemon deleted because they were older than --hint-max-age: handshakes that never completed.
# TYPE sockmapd_hints_expired_total counter
sockmapd_hints_expired_total 9
# HELP sockmapd_scrape_duration_seconds Time this scrape spent reading the BPF maps.
# TYPE sockmapd_scrape_duration_seconds gauge
sockmapd_scrape_duration_seconds 0.25
)";

std::vector<std::string> lines_of(const std::string& text)
{
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

TEST(RenderMetrics, ExactTextForAKnownSnapshot)
{
    EXPECT_EQ(render_metrics(sample_snapshot()), kExpected);
}

// A daemon that could not load the queued-bytes iterator serves everything else and no queued_* family: an
// absent series, not a misleading 0.
TEST(RenderMetrics, QueuedFamiliesOnlyWhenMeasured)
{
    MetricsSnapshot s = sample_snapshot();
    s.queued.reset();
    std::string text = render_metrics(s);
    EXPECT_NOT_CONTAINS(text, "sockmapd_queued");
    EXPECT_CONTAINS(text, "sockmapd_hints 4\n# HELP sockmapd_pairs_total");
}

TEST(RenderMetrics, EveryCounterIsExportedExactlyOnce)
{
    // Each counter has a distinct value in the sample; each value must appear on exactly one sample line.
    std::multiset<std::string> values;
    for (const auto& line : lines_of(render_metrics(sample_snapshot())))
        if (line.rfind("#", 0) != 0 && line.rfind("sockmapd_build_info", 0) != 0)
            values.insert(line.substr(line.rfind(' ') + 1));
    for (int i = 0; i < SMD_CTR_MAX; ++i)
        EXPECT_EQ(values.count(std::to_string(100 + i)), 1u)
            << "counter " << counter_name(static_cast<enum smd_counter>(i)) << " exported "
            << values.count(std::to_string(100 + i)) << " times";
}

// The format requires one HELP and one TYPE per family, before its samples, and samples of a family together.
TEST(RenderMetrics, EachFamilyHasHelpAndTypeBeforeItsSamples)
{
    std::map<std::string, std::string> types;
    std::set<std::string> finished;
    std::string current;
    for (const auto& line : lines_of(render_metrics(sample_snapshot()))) {
        if (line.rfind("# HELP ", 0) == 0) {
            std::string name = line.substr(7, line.find(' ', 7) - 7);
            EXPECT_FALSE(types.count(name) || finished.count(name)) << "second HELP for " << name;
            if (!current.empty())
                finished.insert(current);
            current = name;
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            std::string rest = line.substr(7);
            std::string name = rest.substr(0, rest.find(' '));
            EXPECT_EQ(name, current) << "TYPE without its HELP";
            types[name] = rest.substr(rest.find(' ') + 1);
            continue;
        }
        std::string name = line.substr(0, line.find_first_of("{ "));
        EXPECT_EQ(name, current) << "sample outside its family: " << line;
        ASSERT_TRUE(types.count(name)) << "sample before TYPE: " << line;
        if (types[name] == "counter") {
            EXPECT_EQ(name.substr(name.size() - 6), "_total") << "counters end in _total: " << name;
        }
    }
    EXPECT_EQ(types.size(), 32u);
}

TEST(RenderMetrics, LargeCountersAreExactIntegers)
{
    MetricsSnapshot s = sample_snapshot();
    s.counters[SMD_CTR_BYTES_REDIRECTED] = 18446744073709551615ull;
    EXPECT_CONTAINS(render_metrics(s), "\nsockmapd_redirected_bytes_total 18446744073709551615\n");
}

TEST(EscapeLabelValue, BackslashQuoteAndNewline)
{
    EXPECT_EQ(escape_label_value("plain-1.0"), "plain-1.0");
    EXPECT_EQ(escape_label_value("a\\b"), "a\\\\b");
    EXPECT_EQ(escape_label_value("say \"hi\""), "say \\\"hi\\\"");
    EXPECT_EQ(escape_label_value("two\nlines"), "two\\nlines");
    EXPECT_EQ(escape_label_value(""), "");
}

TEST(RenderMetrics, LabelValuesAreEscaped)
{
    MetricsSnapshot s = sample_snapshot();
    s.version = "1.0 \"dev\"\\x";
    s.kernel = "6.18\nevil";
    EXPECT_CONTAINS(render_metrics(s),
                    "\nsockmapd_build_info{version=\"1.0 \\\"dev\\\"\\\\x\",kernel=\"6.18\\nevil\"} 1\n");
}

std::string read_source_file(const std::string& relative)
{
    std::ifstream in(std::string(SMD_SOURCE_DIR) + "/" + relative);
    EXPECT_TRUE(in) << "cannot read " << relative;
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::set<std::string> rendered_families()
{
    std::set<std::string> families;
    for (const auto& line : lines_of(render_metrics(sample_snapshot())))
        if (line.rfind("# TYPE ", 0) == 0)
            families.insert(line.substr(7, line.find(' ', 7) - 7));
    return families;
}

// docs/metrics.md is the reference: every family the daemon serves has a row there.
TEST(MetricsReference, DocumentsEveryFamily)
{
    std::string doc = read_source_file("docs/metrics.md");
    for (const auto& family : rendered_families())
        EXPECT_CONTAINS(doc, "| `" + family + "` |");
}

// The example dashboard is valid JSON and queries only metrics that exist.
TEST(MetricsReference, DashboardQueriesOnlyServedMetrics)
{
    std::string text = read_source_file("deploy/grafana/sockmapd-dashboard.json");
    auto dashboard = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(dashboard.is_discarded()) << "not valid JSON";
    EXPECT_GE(dashboard["panels"].size(), 4u);
    auto families = rendered_families();
    std::regex metric("sockmapd_[a-z_]+");
    int queried = 0;
    for (std::sregex_iterator it(text.begin(), text.end(), metric), end; it != end; ++it, ++queried)
        EXPECT_TRUE(families.count(it->str())) << it->str() << " is not served by sockmapd";
    EXPECT_GT(queried, 0);
}

} // namespace
} // namespace sockmapd
