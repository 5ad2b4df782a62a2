// sockmapctl status output: the JSON keys scripts rely on and the text a human reads.
#include "sockmapd/pinned.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

using nlohmann::json;

StatusReport sample_report()
{
    StatusReport report;
    report.pin_path = "/sys/fs/bpf/sockmapd";
    report.info.abi = SMD_ABI_VERSION;
    report.info.daemon_pid = 4242;
    report.info.cgroup_id = 9876;
    std::strcpy(report.info.cgroup_path, "/sys/fs/cgroup/unified/app");
    std::strcpy(report.info.version, "0.1.0");
    report.daemon_running = true;
    report.max_sockets = SMD_DEFAULT_MAX_SOCKETS;
    report.sockets = 6;
    report.pairs = 2;
    report.half_pairs = 1;
    report.hints = 3;
    report.max_hints = SMD_DEFAULT_MAX_HINTS;
    for (int i = 0; i < SMD_CTR_MAX; ++i)
        report.counters[i] = 1000 + i;
    report.programs = {{17, "smd_sockops", "sock_ops", 12, 3400}, {18, "smd_sk_msg", "sk_msg", 56, 7800}};
    report.control = smd_control{.flags = 0, .pad = 0, .max_queued_bytes = 37748736, .rmem_max = 33554432, .wmem_max = 4194304};
    return report;
}

TEST(FormatStatusJson, ParsesAndCarriesEveryField)
{
    auto out = json::parse(format_status_json(sample_report()));
    EXPECT_EQ(out["pin_path"], "/sys/fs/bpf/sockmapd");
    EXPECT_EQ(out["cgroup"], "/sys/fs/cgroup/unified/app");
    EXPECT_EQ(out["cgroup_id"], 9876);
    EXPECT_EQ(out["version"], "0.1.0");
    EXPECT_EQ(out["abi"], SMD_ABI_VERSION);
    EXPECT_EQ(out["daemon_running"], true);
    EXPECT_EQ(out["daemon_pid"], 4242);
    EXPECT_EQ(out["max_sockets"], SMD_DEFAULT_MAX_SOCKETS);
    EXPECT_EQ(out["sockets"], 6);
    EXPECT_EQ(out["pairs"], 2);
    EXPECT_EQ(out["half_pairs"], 1);
    EXPECT_EQ(out["hints"], 3);
    EXPECT_EQ(out["max_hints"], SMD_DEFAULT_MAX_HINTS);
    EXPECT_EQ(out["max_queued_bytes"], 37748736);
    EXPECT_EQ(out["rmem_max"], 33554432);
    EXPECT_EQ(out["draining"], false);
}

// smd_control: the queue caps in force, a drain in progress, or pins too old to have the map.
TEST(FormatStatus, RedirectsLineAndKeysFollowSmdControl)
{
    StatusReport report = sample_report();
    EXPECT_CONTAINS(format_status_text(report),
                    "redirects:   a connection leaves for TCP when a receiver falls behind its queue cap (36 MiB at "
                    "first (--max-queued-bytes), growing as it reads up to 36 MiB)\n");
    report.control->max_queued_bytes = 0;
    EXPECT_CONTAINS(format_status_text(report), "(TCP-like at first, growing as it reads up to 32 MiB)\n");
    report.control->flags = SMD_CONTROL_DRAIN;
    EXPECT_CONTAINS(format_status_text(report), "redirects:   draining (sockmapctl uninstall)");
    EXPECT_EQ(json::parse(format_status_json(report))["draining"], true);
    report.control.reset();
    EXPECT_NOT_CONTAINS(format_status_text(report), "redirects:");
    EXPECT_EQ(json::parse(format_status_json(report))["max_queued_bytes"], nullptr);
}

TEST(FormatStatusJson, CountersAreKeyedByEveryCounterName)
{
    auto counters = json::parse(format_status_json(sample_report()))["counters"];
    ASSERT_TRUE(counters.is_object());
    EXPECT_EQ(counters.size(), static_cast<std::size_t>(SMD_CTR_MAX));
    for (int i = 0; i < SMD_CTR_MAX; ++i) {
        std::string name(counter_name(static_cast<enum smd_counter>(i)));
        ASSERT_TRUE(counters.contains(name)) << name;
        EXPECT_EQ(counters[name], 1000 + i) << name;
    }
}

TEST(FormatStatusJson, ProgramsAreAnArrayOfObjects)
{
    auto programs = json::parse(format_status_json(sample_report()))["programs"];
    ASSERT_EQ(programs.size(), 2u);
    EXPECT_EQ(programs[0], json({{"id", 17}, {"name", "smd_sockops"}, {"type", "sock_ops"}, {"run_count", 12},
                                 {"run_time_ns", 3400}}));
    EXPECT_EQ(programs[1]["name"], "smd_sk_msg");

    StatusReport none = sample_report();
    none.programs.clear();
    EXPECT_EQ(json::parse(format_status_json(none))["programs"], json::array());
}

// smd_info comes from a pinned map: a string filling its whole buffer must not run into the next field.
TEST(FormatStatusJson, UnterminatedInfoStringsStayInsideTheirBuffers)
{
    StatusReport report = sample_report();
    std::memset(report.info.cgroup_path, 'c', sizeof(report.info.cgroup_path));
    std::memset(report.info.version, 'v', sizeof(report.info.version));
    auto out = json::parse(format_status_json(report));
    EXPECT_EQ(out["cgroup"], std::string(SMD_INFO_PATH_MAX, 'c'));
    EXPECT_EQ(out["version"], std::string(SMD_INFO_VERSION_MAX, 'v'));
}

// A cgroup directory name is any bytes; one that is not UTF-8 must not make the whole status fail.
TEST(FormatStatusJson, NonUtf8CgroupPathIsReplacedNotFatal)
{
    StatusReport report = sample_report();
    std::strcpy(report.info.cgroup_path, "/sys/fs/cgroup/caf\xe9");
    std::string json_text;
    ASSERT_NO_THROW(json_text = format_status_json(report));
    EXPECT_EQ(json::parse(json_text)["cgroup"], "/sys/fs/cgroup/caf\xef\xbf\xbd"); // U+FFFD
}

TEST(FormatStatusText, RunningDaemon)
{
    auto text = format_status_text(sample_report());
    EXPECT_CONTAINS(text, "pin path:    /sys/fs/bpf/sockmapd\n");
    EXPECT_CONTAINS(text, "cgroup:      /sys/fs/cgroup/unified/app (id 9876)\n");
    EXPECT_CONTAINS(text, "daemon:      running, pid 4242, version 0.1.0, up ");
    EXPECT_CONTAINS(text, "sockets:     6 of 65536 in smd_sockhash\n");
    EXPECT_CONTAINS(text, "pairs:       2 active, 1 waiting for their peer\n");
    EXPECT_CONTAINS(text, "syn hints:   3 of 16384 in smd_hints\n");
    EXPECT_CONTAINS(text, "  17 smd_sockops (sock_ops) runs 12, 3400 ns\n");
    EXPECT_CONTAINS(text, "  syn_hints 1000\n");
    EXPECT_CONTAINS(text, "  pairs_closed " + std::to_string(1000 + SMD_CTR_PAIRS_CLOSED) + "\n");
}

// Without kernel.bpf_stats_enabled the kernel counts no runs: "runs 0, 0 ns" would read as "never ran".
TEST(FormatStatusText, RunCountsNeedBpfStats)
{
    StatusReport report = sample_report();
    report.bpf_stats_enabled = false;
    report.programs = {{17, "smd_sockops", "sock_ops", 0, 0}};
    auto text = format_status_text(report);
    EXPECT_CONTAINS(text, "  17 smd_sockops (sock_ops) runs n/a (kernel.bpf_stats_enabled=0)\n");
    EXPECT_NOT_CONTAINS(text, "runs 0, 0 ns");
    EXPECT_EQ(json::parse(format_status_json(report))["bpf_stats_enabled"], false);
    report.bpf_stats_enabled = true;
    EXPECT_CONTAINS(format_status_text(report), "  17 smd_sockops (sock_ops) runs 0, 0 ns\n");
}

TEST(FormatStatusText, ByteCountersShowUnits)
{
    StatusReport report = sample_report();
    report.counters[SMD_CTR_BYTES_REDIRECTED] = 8u << 20;
    report.counters[SMD_CTR_FALLBACK_BYTES] = 100;
    auto text = format_status_text(report);
    EXPECT_CONTAINS(text, "  redirected_bytes 8388608 (8 MiB)\n");
    EXPECT_CONTAINS(text, "  fallback_bytes 100\n");
}

// After the daemon stopped, a pair whose sockets both closed stays in smd_pairs (no sock_ops saw the close):
// it is not active next to "sockets: 0".
TEST(FormatStatusText, ClosedPairsAreNotActive)
{
    StatusReport report = sample_report();
    report.daemon_running = false;
    report.sockets = 0;
    report.pairs = 0;
    report.half_pairs = 0;
    report.closed_pairs = 1;
    auto text = format_status_text(report);
    EXPECT_CONTAINS(text, "sockets:     0 of 65536 in smd_sockhash\n");
    EXPECT_CONTAINS(text, "pairs:       0 active, 0 waiting for their peer, 1 closed while no daemon ran");
    EXPECT_EQ(json::parse(format_status_json(report))["closed_pairs"], 1);
    EXPECT_EQ(json::parse(format_status_json(report))["pairs"], 0);
}

// Unread redirected bytes and the directions moved to TCP for memory (fallback_backpressure): one line, and keys.
TEST(FormatStatus, MemoryLineAndKeys)
{
    StatusReport report = sample_report();
    report.counters[SMD_CTR_FALLBACK_BACKPRESSURE] = 3;
    report.queued = QueuedBytes{.total = 3u << 20, .largest = 2u << 20, .sockets = 2, .unreachable_netns = 0};
    EXPECT_CONTAINS(format_status_text(report),
                    "memory:      3 MiB unread in 2 redirect queues (largest 2 MiB); 3 directions moved to TCP for "
                    "memory\n");
    auto out = json::parse(format_status_json(report));
    EXPECT_EQ(out["queued_bytes"], 3u << 20);
    EXPECT_EQ(out["largest_queued_bytes"], 2u << 20);
    EXPECT_EQ(out["queued_sockets"], 2);
    EXPECT_EQ(out["queued_netns_unreachable"], 0);
    EXPECT_EQ(out["directions_moved_for_memory"], 3);

    report.queued = QueuedBytes{};
    report.queued->unreachable_netns = 1;
    report.counters[SMD_CTR_FALLBACK_BACKPRESSURE] = 1;
    EXPECT_CONTAINS(format_status_text(report),
                    "memory:      0 B unread in 0 redirect queues, not counting 1 network namespace it could not "
                    "enter; 1 direction moved to TCP for memory\n");

    report.queued.reset();
    report.queued_error = "load BPF programs and maps: EPERM";
    EXPECT_CONTAINS(format_status_text(report), "memory:      unread bytes unknown (load BPF programs and maps: EPERM)");
    out = json::parse(format_status_json(report));
    EXPECT_EQ(out["queued_bytes"], nullptr);
    EXPECT_EQ(out["queued_error"], "load BPF programs and maps: EPERM");
}

TEST(FormatStatusText, StoppedDaemonSaysWhatStillWorks)
{
    StatusReport report = sample_report();
    report.daemon_running = false;
    auto text = format_status_text(report);
    EXPECT_CONTAINS(text, "daemon:      not running (paired connections keep their redirect");
    EXPECT_NOT_CONTAINS(text, "pid 4242");
}

TEST(FormatStatusText, UnterminatedInfoStringsStayInsideTheirBuffers)
{
    StatusReport report = sample_report();
    std::memset(report.info.cgroup_path, 'c', sizeof(report.info.cgroup_path));
    auto text = format_status_text(report);
    EXPECT_CONTAINS(text, "cgroup:      " + std::string(SMD_INFO_PATH_MAX, 'c') + " (id 9876)\n");
}

} // namespace
} // namespace sockmapd
