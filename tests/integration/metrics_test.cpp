// The daemon's HTTP endpoints against ground truth: /metrics during real accelerated traffic, /healthz and
// /readyz, a refused --metrics-address, and what a scrape costs with a full sockhash.
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "bounded_io.hpp"
#include "bpf_inventory.hpp"
#include "fixture.hpp"
#include "http_get.hpp"
#include "poll_until.hpp"
#include "split_command.hpp"
#include "sockmapd/shared.h"

namespace smdtest {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kBulk = 16ull << 20;

class Metrics : public IntegrationTest {
protected:
    // Starts the daemon with its HTTP server on a free loopback port.
    void start_with_metrics()
    {
        port_ = free_loopback_port();
        daemon().start({"--metrics-address", "127.0.0.1:" + std::to_string(port_)});
    }

    HttpReply get(const std::string& path) { return http_get("127.0.0.1", port_, path); }

    // GET /metrics, which must succeed with the text format's content type.
    HttpReply scrape()
    {
        auto reply = get("/metrics");
        EXPECT_EQ(reply.error, "");
        EXPECT_EQ(reply.status, 200) << reply.body;
        EXPECT_EQ(reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
        return reply;
    }

    std::uint64_t value(const HttpReply& reply, const std::string& series)
    {
        auto v = metric_value(reply.body, series);
        EXPECT_TRUE(v.has_value()) << series << " missing from /metrics:\n" << reply.body;
        return v.value_or(0);
    }

    std::uint16_t port_ = 0;
};

// The scrape connection is itself a local pair in scope: the daemon is the test's child and lives in the
// test's cgroup, so its listener is in scope, and so is the test's client socket. Rather than hide that
// (a scrape from outside the cgroup), the test accounts for it, which also proves a scrape over an
// accelerated connection works: the request is counted before the handler reads the counters, the response
// (if at all) after. So between two scrapes the counter grows by the test's bytes plus the second scrape's
// request plus, unless its connection was released first, the first scrape's response; pairs_total by the
// test's pair plus the second scrape's.
TEST_F(Metrics, RedirectedBytesGrowByExactlyTheBytesSent)
{
    start_with_metrics();
    auto before = scrape();

    Fd listener = tcp_listen("127.0.0.1");
    Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
    Fd server = tcp_accept(listener.get());
    auto r = duplex_transfer(client.get(), server.get(), 31, kBulk, 32, kBulk / 2, {65536, 4096, 1, 300000});
    expect_intact(r, 31, kBulk, 32, kBulk / 2);

    auto after = scrape();
    const std::uint64_t sent = kBulk + kBulk / 2;
    auto delta = [&](const std::string& series) { return value(after, series) - value(before, series); };
    // The daemon's HTTP server answers on a blocking socket, so a scrape's connection leaves the redirect at its
    // first message, the request (design.md, "A direction's life"), which is counted as fallback. The release
    // then takes both sockets out of the sockhash within milliseconds: the first scrape's response is counted
    // as fallback if it was sent before that, not at all after (plain TCP). The test's bytes are all redirected.
    auto counted = delta("sockmapd_redirected_bytes_total") + delta("sockmapd_fallback_bytes_total");
    EXPECT_TRUE(counted == sent + after.bytes_sent || counted == sent + after.bytes_sent + before.bytes_received)
        << counted << " bytes counted; test bytes " << sent << ", second scrape's request " << after.bytes_sent
        << ", first scrape's response " << before.bytes_received << " (counted only if sent before the release)";
    EXPECT_GE(delta("sockmapd_redirected_bytes_total"), sent);
    EXPECT_EQ(delta("sockmapd_pairs_total"), 2u) << "the test's pair and the second scrape's";
    EXPECT_EQ(value(after, "sockmapd_fallback_messages_total{reason=\"no_peer\"}"), 0u);
    EXPECT_EQ(value(after, "sockmapd_insert_failures_total{reason=\"full\"}"), 0u);
    record("redirected_bytes_delta", static_cast<long long>(delta("sockmapd_redirected_bytes_total")));
    record("scrape_response_bytes", static_cast<long long>(before.bytes_received));

    // The same counter through sockmapctl (the pinned map, no HTTP): only the second scrape's response, which
    // came after its snapshot, can differ, and it goes over TCP (the daemon's socket is blocking).
    EXPECT_GE(daemon().counter("redirected_bytes"), value(after, "sockmapd_redirected_bytes_total"));
    EXPECT_LE(daemon().counter("redirected_bytes"), value(after, "sockmapd_redirected_bytes_total") +
                                                        after.bytes_received);
}

// A reader that has not read holds its bytes in its redirect queue (below the first queue cap, so the connection
// stays on the redirect); /metrics shows exactly them, and 0 once they are read. The scrape's own connection holds
// nothing at that moment: the daemon has read the request, and the response is not sent yet.
TEST_F(Metrics, QueuedBytesShowAStalledReaderAndZeroOnceItReads)
{
    constexpr std::uint64_t kUnread = 256 * 1024;
    start_with_metrics();
    Fd listener = tcp_listen("127.0.0.1");
    Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
    Fd server = tcp_accept(listener.get());
    ASSERT_EQ(send_stream(client.get(), 5, kUnread, {65536}, Clock::now() + std::chrono::seconds(10)).error, "");

    auto stalled = scrape();
    EXPECT_EQ(value(stalled, "sockmapd_queued_bytes"), kUnread);
    EXPECT_EQ(value(stalled, "sockmapd_queued_bytes_largest"), kUnread);
    EXPECT_EQ(value(stalled, "sockmapd_queued_sockets"), 1u);
    EXPECT_EQ(value(stalled, "sockmapd_queued_netns_unreachable"), 0u);
    EXPECT_EQ(value(stalled, "sockmapd_left_redirect_total{reason=\"backpressure\"}"), 0u) << "left below its cap";

    auto got = recv_stream(server.get(), kUnread, false, Clock::now() + std::chrono::seconds(10));
    EXPECT_TRUE(digest_is(got.digest, expected_digest(5, kUnread)));
    auto drained = scrape();
    EXPECT_EQ(value(drained, "sockmapd_queued_bytes"), 0u);
    EXPECT_EQ(value(drained, "sockmapd_queued_bytes_largest"), 0u);
    EXPECT_EQ(value(drained, "sockmapd_queued_sockets"), 0u);
}

// Gauges count what is open now; the scrape's own connection is one pair (two sockets) of it.
TEST_F(Metrics, SocketAndPairGaugesFollowOpenConnections)
{
    start_with_metrics();
    constexpr int kPairs = 3;
    Fd listener = tcp_listen("127.0.0.1");
    std::vector<TcpPair> pairs;
    for (int i = 0; i < kPairs; ++i) {
        Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        pairs.push_back({std::move(client), std::move(server)});
    }
    // Earlier scrapes' sockets leave the sockhash as they close, asynchronously: poll for the steady value.
    HttpReply reply;
    bool steady = poll_until(
        [&] {
            reply = scrape();
            return metric_value(reply.body, "sockmapd_sockets") == 2u * kPairs + 2 &&
                   metric_value(reply.body, "sockmapd_pairs") == kPairs + 1u;
        },
        std::chrono::seconds(5), std::chrono::milliseconds(100));
    EXPECT_TRUE(steady) << reply.body;
    EXPECT_EQ(value(reply, "sockmapd_pairs_waiting"), 0u);
    EXPECT_EQ(value(reply, "sockmapd_map_capacity{map=\"smd_sockhash\"}"), SMD_DEFAULT_MAX_SOCKETS);
    EXPECT_EQ(value(reply, "sockmapd_map_capacity{map=\"smd_pairs\"}"), SMD_DEFAULT_MAX_SOCKETS);
    EXPECT_EQ(value(reply, "sockmapd_map_capacity{map=\"smd_hints\"}"), SMD_DEFAULT_MAX_HINTS);
    auto build_info = reply.body.find("\nsockmapd_build_info{version=\"");
    EXPECT_NE(build_info, std::string::npos) << reply.body;

    pairs.clear();
    steady = poll_until(
        [&] {
            reply = scrape();
            return metric_value(reply.body, "sockmapd_sockets") == 2u && metric_value(reply.body, "sockmapd_pairs") == 1u;
        },
        std::chrono::seconds(5), std::chrono::milliseconds(100));
    EXPECT_TRUE(steady) << "only the scrape's own pair should remain:\n" << reply.body;
    EXPECT_GE(value(reply, "sockmapd_pairs_closed_total"), static_cast<std::uint64_t>(kPairs));
}

TEST_F(Metrics, HealthAndReadinessWhileRunning)
{
    start_with_metrics();
    auto health = get("/healthz");
    EXPECT_EQ(health.status, 200) << health.error;
    EXPECT_EQ(health.body, "ok\n");
    auto ready = get("/readyz");
    EXPECT_EQ(ready.status, 200) << ready.error << ready.body;
    EXPECT_EQ(ready.body, "ok\n");
    EXPECT_EQ(get("/nothing-here").status, 404);

    // Someone removes a pin under the running daemon: the next daemon could not find this state any more.
    fs::remove(daemon().pin_path() + "/smd_info");
    ready = get("/readyz");
    EXPECT_EQ(ready.status, 503);
    EXPECT_NE(ready.body.find("pinned maps are gone"), std::string::npos) << ready.body;
    EXPECT_EQ(get("/healthz").status, 200) << "the process itself is fine";
}

// SIGTERM stops the HTTP server too, promptly, even with an idle scraper connected; then the port is closed.
TEST_F(Metrics, StopClosesThePortPromptlyWithAnIdleClientConnected)
{
    start_with_metrics();
    Fd idle = tcp_connect("127.0.0.1", port_);
    auto start = Clock::now();
    daemon().stop();
    double stop_ms = elapsed_ms(start);
    record("stop_ms_with_idle_scraper", static_cast<long long>(stop_ms));
    EXPECT_LT(stop_ms, 4000.0);
    auto reply = get("/healthz");
    EXPECT_NE(reply.error, "") << "still answering after the daemon exited";
    EXPECT_NE(daemon().log().find("serving /metrics, /healthz and /readyz on http://127.0.0.1:" +
                                  std::to_string(port_)),
              std::string::npos)
        << daemon().log();
}

// A --metrics-address that cannot be served stops the start with one line, before anything is pinned,
// loaded or attached.
TEST_F(Metrics, UnusableAddressRefusedBeforeAnythingIsAttached)
{
    Fd taken = tcp_listen("127.0.0.1");
    const std::string busy = "127.0.0.1:" + std::to_string(local_port(taken.get()));
    struct Case {
        std::string address;
        std::vector<std::string> must_mention;
    };
    const Case cases[] = {
        {busy, {"--metrics-address " + busy, "EADDRINUSE", "--metrics-address \"\""}},
        {"localhost:9476", {"'localhost:9476'", "numeric", "127.0.0.1:9476"}},
        {"127.0.0.1", {"'127.0.0.1'", "PORT"}},
        {"[::1]:99999", {"'[::1]:99999'", "0 to 65535"}},
        {"::1:9476", {"'::1:9476'", "brackets"}},
    };
    auto programs_before = smd_program_ids();
    bool others = processes_named("sockmapd").size() > 0;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.address);
        std::string pins = "/sys/fs/bpf/" + unique_name("smd-metrics-bad");
        auto result = run_split({sockmapd_bin(), "--cgroup", cgroup_path(), "--pin-path", pins, "--metrics-address",
                                 c.address},
                                std::nullopt, std::chrono::seconds(15));
        EXPECT_NE(result.exit_code, 0);
        EXPECT_LT(result.exit_code, 126);
        EXPECT_EQ(result.out, "");
        auto lines = lines_of(result.err);
        ASSERT_EQ(lines.size(), 1u) << result.err;
        EXPECT_EQ(lines[0].rfind("sockmapd: ", 0), 0u) << lines[0];
        for (const auto& text : c.must_mention)
            EXPECT_NE(lines[0].find(text), std::string::npos) << "'" << text << "' missing from: " << lines[0];
        EXPECT_FALSE(fs::exists(pins)) << "pin path created";
        EXPECT_EQ(cgroup_programs(cgroup_path()), std::vector<std::string>{}) << "something attached";
    }
    std::vector<std::uint32_t> new_programs;
    for (auto id : smd_program_ids())
        if (!programs_before.count(id))
            new_programs.push_back(id);
    if (others || !processes_named("sockmapd").empty())
        std::printf("[ NOTE ] another sockmapd runs on this machine: new smd_ programs not attributable\n");
    else
        EXPECT_EQ(new_programs, std::vector<std::uint32_t>{}) << "smd_ programs left loaded";
}

// "map nearly full" is one warning line, not a line per connection: checked at start and every 60 s. A daemon
// restarted on maps that live pairs keep full logs it at once.
TEST_F(Metrics, NearlyFullSockhashIsOneWarningLine)
{
    daemon().start({"--max-sockets", "16"});
    Fd listener = tcp_listen("127.0.0.1");
    std::vector<TcpPair> pairs;
    for (int i = 0; i < 8; ++i) {
        Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        pairs.push_back({std::move(client), std::move(server)});
    }
    EXPECT_EQ(daemon().status()["sockets"], 16u);
    EXPECT_EQ(daemon().log().find("nearly full"), std::string::npos) << "no check ran yet";
    daemon().stop();
    daemon().start({"--max-sockets", "16"});
    std::string log = daemon().log();
    const std::string warning = "smd_sockhash is nearly full: 16 of 16 sockets";
    auto first = log.find(warning);
    EXPECT_NE(first, std::string::npos) << log;
    EXPECT_EQ(log.find(warning, first + 1), std::string::npos) << "logged more than once:\n" << log;
}

// Holds `pairs` accelerated loopback pairs in a forked child (one process may not have 60000 open files here,
// and raising RLIMIT_NOFILE needs CAP_SYS_RESOURCE). The child is in the test's cgroup, like any child; it
// closes everything and exits when this object dies, or when the test process does (its pipe reaches EOF).
class PairHolder {
public:
    explicit PairHolder(int pairs)
    {
        int ready[2], control[2];
        if (::pipe(ready) != 0 || ::pipe(control) != 0)
            throw std::runtime_error("pipe failed");
        pid_ = ::fork();
        if (pid_ == 0) {
            // Keep only our two pipe ends: an inherited write end of an earlier holder's control pipe would
            // keep that holder from ever seeing EOF.
            int keep_low = std::min(ready[1], control[0]), keep_high = std::max(ready[1], control[0]);
            ::close_range(3, keep_low - 1, 0);
            ::close_range(keep_low + 1, keep_high - 1, 0);
            ::close_range(keep_high + 1, ~0u, 0);
            char status = 'R';
            std::vector<TcpPair> held;
            try {
                Fd listener = tcp_listen("127.0.0.1");
                for (int i = 0; i < pairs; ++i) {
                    Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
                    Fd server = tcp_accept(listener.get());
                    held.push_back({std::move(client), std::move(server)});
                }
            } catch (...) {
                status = 'F';
            }
            (void)!::write(ready[1], &status, 1);
            char byte;
            (void)!::read(control[0], &byte, 1); // EOF: the test is done with us
            ::_exit(0);
        }
        ::close(ready[1]);
        ::close(control[0]);
        ready_ = Fd(ready[0]);
        control_ = Fd(control[1]);
    }
    ~PairHolder()
    {
        control_.reset();
        int status;
        ::waitpid(pid_, &status, 0);
    }
    // Waits (bounded) until the child holds all its pairs.
    bool wait_ready(Clock::time_point deadline)
    {
        char status = 0;
        return wait_event(ready_.get(), POLLIN, deadline) && ::read(ready_.get(), &status, 1) == 1 && status == 'R';
    }

private:
    pid_t pid_ = -1;
    Fd ready_, control_;
};

// What a scrape costs with a nearly full sockhash: 30000 pairs, 60000 sockets (the default capacity is 65536).
// The count is a walk over both maps from the HTTP thread; the data path (sk_msg) takes no lock it holds.
TEST_F(Metrics, ScrapeCostWithSixtyThousandSockets)
{
    constexpr int kHolders = 4, kPairsEach = 7500, kPairs = kHolders * kPairsEach;
    start_with_metrics();
    auto opened = Clock::now();
    std::vector<std::unique_ptr<PairHolder>> holders;
    for (int i = 0; i < kHolders; ++i)
        holders.push_back(std::make_unique<PairHolder>(kPairsEach));
    for (auto& holder : holders)
        ASSERT_TRUE(holder->wait_ready(Clock::now() + std::chrono::seconds(60))) << "a holder did not open its pairs";
    record("open_30000_pairs_ms", static_cast<long long>(elapsed_ms(opened)));

    double worst_ms = 0, worst_walk_s = 0;
    HttpReply reply;
    for (int i = 0; i < 5; ++i) {
        auto start = Clock::now();
        reply = scrape();
        worst_ms = std::max(worst_ms, elapsed_ms(start));
        worst_walk_s = std::max(worst_walk_s, metric_seconds(reply.body, "sockmapd_scrape_duration_seconds").value_or(-1));
    }
    auto why = [&] {
        std::string lines;
        std::istringstream in(reply.body);
        for (std::string line; std::getline(in, line);)
            if (line.rfind("sockmapd_", 0) == 0 &&
                (line.find("insert") != std::string::npos || line.find("skipped") != std::string::npos ||
                 line.find("hints") != std::string::npos || line.find("policy_") != std::string::npos ||
                 line.find("pairs") != std::string::npos || line.find("sockets") != std::string::npos))
                lines += line + "\n";
        return lines;
    };
    // Every connection here is a local pair, the scrape's own included, and nearly all are paired. A few are not,
    // with no hint refused (hints_full 0) and none evicted (smd_hints is a plain hash): 30000 connections over
    // 28232 ephemeral ports make the four holders' concurrent handshakes share client ports, whose hints then
    // collide (docs/design.md); and the scrape's connection stays unpaired in about 1 run in 5 for a reason not
    // found yet. Both stay plain TCP; the count is recorded.
    // A connection has two sockets in the sockhash when paired, one while its passive end has not joined yet or
    // while it is leaving (the daemon's blocking HTTP socket makes the scrape connections leave: one end may be
    // released a few ms before the other). Nothing else: a socket without a pair entry would be a data-path bug.
    auto sockets = value(reply, "sockmapd_sockets");
    auto pairs = value(reply, "sockmapd_pairs");
    auto waiting = value(reply, "sockmapd_pairs_waiting");
    EXPECT_EQ(sockets, 2 * pairs + waiting) << "a socket in the sockhash without its pair entry\n" << why();
    EXPECT_LE(waiting, 2u) << "more half pairs than the scrape connections in transition\n" << why();
    EXPECT_LE(pairs, kPairs + 1u) << why();
    EXPECT_GE(pairs, kPairs - 16u) << "more than a few connections unpaired\n" << why();
    record("unpaired_of_30001", static_cast<long long>(kPairs + 1 - pairs));
    EXPECT_EQ(value(reply, "sockmapd_insert_failures_total{reason=\"hints_full\"}"), 0u) << why();
    EXPECT_EQ(value(reply, "sockmapd_hints"), 0u) << "every handshake, the scrape's included, has completed:\n" << why();
    record("scrape_ms_60002_sockets_worst_of_5", static_cast<long long>(worst_ms));
    record("scrape_map_walk_us_worst_of_5", static_cast<long long>(worst_walk_s * 1e6));
    EXPECT_LT(worst_ms, 1000.0) << "a scrape of a full sockhash should stay well under Prometheus' timeout";

    // A new connection is still paired and byte-exact while the maps are this full.
    auto before = value(reply, "sockmapd_redirected_bytes_total");
    Fd listener = tcp_listen("127.0.0.1");
    Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
    Fd server = tcp_accept(listener.get());
    auto r = duplex_transfer(client.get(), server.get(), 41, 1 << 20, 42, 1 << 20, {65536});
    expect_intact(r, 41, 1 << 20, 42, 1 << 20);
    auto after = scrape();
    EXPECT_GE(value(after, "sockmapd_redirected_bytes_total") - before, 2u << 20);
    EXPECT_LE(value(after, "sockmapd_redirected_bytes_total") - before,
              (2u << 20) + reply.bytes_received + after.bytes_sent);
    holders.clear();
}

} // namespace
} // namespace smdtest
