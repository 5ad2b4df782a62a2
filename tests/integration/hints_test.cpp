// SYN hints: a full smd_hints refuses new hints and counts them, hints of handshakes that never complete age
// out, a dual-stack listener leaves none behind, and an earlier sockmapd's LRU pin is replaced.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

#include "bounded_io.hpp"
#include "cgroup.hpp"
#include "fixture.hpp"
#include "http_get.hpp"
#include "netns.hpp"
#include "poll_until.hpp"
#include "sockmapd/shared.h"

namespace smdtest {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kBulk = 1 << 20;

// The hint map is full from the 33rd SYN on; hints older than 3 s are deleted (a sweep every 1.5 s).
constexpr int kMaxHints = 32;
constexpr int kHintMaxAgeS = 3;

class Hints : public IntegrationTest {
protected:
    std::uint64_t hints() { return daemon().status().value("hints", ~0ull); }

    // A namespace whose listener sees SYNs but whose SYN-ACKs never leave: every connection to it stays a
    // half-open handshake, and each SYN leaves one hint that no accepted socket will delete.
    struct Blackhole {
        NetNs ns{"smd-hints"};
        Fd listener;
        std::uint16_t port = 0;
        std::vector<Fd> clients;

        Blackhole()
        {
            {
                InNetns inside(ns);
                listener = tcp_listen("127.0.0.1");
                port = local_port(listener.get());
            }
            ns.exec({"iptables", "-w", "10", "-A", "OUTPUT", "-p", "tcp", "--sport", std::to_string(port),
                     "--tcp-flags", "SYN,ACK", "SYN,ACK", "-j", "DROP"});
        }

        // Non-blocking connects: each sends one SYN, and its handshake never completes.
        void open(int count)
        {
            InNetns inside(ns);
            struct sockaddr_in to {};
            to.sin_family = AF_INET;
            to.sin_port = htons(port);
            to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            for (int i = 0; i < count; ++i) {
                Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
                ASSERT_TRUE(fd) << std::strerror(errno);
                int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof(to));
                ASSERT_TRUE(rc == -1 && errno == EINPROGRESS) << "connect: " << std::strerror(errno);
                clients.push_back(std::move(fd));
            }
        }
    };

    // One loopback connection in the test's own namespace, 1 MiB each way, content compared.
    void transfer_on_new_connection(std::uint64_t seed)
    {
        Fd listener = tcp_listen("127.0.0.1");
        Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        auto r = duplex_transfer(client.get(), server.get(), seed, kBulk, seed + 1, kBulk, {65536, 7});
        expect_intact(r, seed, kBulk, seed + 1, kBulk);
    }
};

// Fill the map past its capacity with handshakes that never complete: the SYNs that do not fit are counted
// (hints_full), a local connection then stays on TCP, intact; once the sweep has deleted the old hints, the
// next local connection is accelerated again.
TEST_F(Hints, FullMapRefusesAndCountsThenAgingFreesIt)
{
    auto port = free_loopback_port();
    daemon().start({"--max-hints", std::to_string(kMaxHints), "--hint-max-age", std::to_string(kHintMaxAgeS),
                    "--metrics-address", "127.0.0.1:" + std::to_string(port)});
    auto before = daemon().status()["counters"];
    EXPECT_EQ(daemon().status()["max_hints"], static_cast<unsigned>(kMaxHints));

    std::optional<Blackhole> blackhole(std::in_place);
    auto filled_at = Clock::now();
    blackhole->open(kMaxHints + 8);
    nlohmann::json status;
    ASSERT_TRUE(poll_until(
        [&] {
            status = daemon().status();
            return status["counters"]["syn_hints"] == before["syn_hints"].get<std::uint64_t>() + kMaxHints + 8;
        },
        std::chrono::seconds(2)))
        << status.dump();
    EXPECT_EQ(status["hints"], static_cast<unsigned>(kMaxHints));
    EXPECT_EQ(status["counters"]["hints_full"], 8u) << "one refusal per SYN that did not fit";
    EXPECT_EQ(status["counters"]["pairs_made"], before["pairs_made"]);

    // A local connection while the map is full: its hint is refused, neither end is inserted, nothing is lost.
    transfer_on_new_connection(51);
    status = daemon().status();
    ASSERT_LT(elapsed_ms(filled_at), kHintMaxAgeS * 1000.0) << "too slow to see the full map before it aged";
    EXPECT_EQ(status["counters"]["hints_full"], 9u);
    EXPECT_EQ(status["counters"]["pairs_made"], before["pairs_made"]) << "paired without a hint?";
    EXPECT_EQ(status["counters"]["skipped_not_local"], before["skipped_not_local"].get<std::uint64_t>() + 2);
    EXPECT_EQ(status["counters"]["redirected_bytes"], before["redirected_bytes"]);

    // Every SYN-ACK a request socket (re)transmits writes its hint again (RWND_INIT runs each time on 6.18), so
    // a handshake's hint stays while its listener retries. Here the listener and its clients go away, as a
    // client that gave up would: nothing but the sweep deletes their hints.
    blackhole.reset();
    auto closed_at = Clock::now();
    EXPECT_EQ(hints(), static_cast<unsigned>(kMaxHints));
    EXPECT_TRUE(poll_until([&] { return hints() == 0; }, std::chrono::seconds(3 * kHintMaxAgeS)))
        << daemon().status().dump();
    record("hints_aged_out_after_close_ms", static_cast<long long>(elapsed_ms(closed_at)));
    EXPECT_GT(elapsed_ms(filled_at), kHintMaxAgeS * 1000.0) << "deleted before they were old enough";
    EXPECT_LT(elapsed_ms(closed_at), kHintMaxAgeS * 1500.0 + 1000) << "the sweep runs every max age / 2";

    transfer_on_new_connection(53);
    status = daemon().status();
    EXPECT_EQ(status["counters"]["hints_full"], 9u);
    EXPECT_EQ(status["counters"]["pairs_made"], before["pairs_made"].get<std::uint64_t>() + 1);
    EXPECT_EQ(status["counters"]["redirected_bytes"], before["redirected_bytes"].get<std::uint64_t>() + 2 * kBulk);
    EXPECT_EQ(status["hints"], 0u) << "the accepted socket deletes its hint";

    // The same through /metrics (the scrape is a local connection too: its hint fits and is deleted).
    auto reply = http_get("127.0.0.1", port, "/metrics");
    ASSERT_EQ(reply.status, 200) << reply.error;
    EXPECT_EQ(metric_value(reply.body, "sockmapd_insert_failures_total{reason=\"hints_full\"}"), 9u) << reply.body;
    EXPECT_EQ(metric_value(reply.body, "sockmapd_hints_expired_total"), static_cast<std::uint64_t>(kMaxHints));
    EXPECT_EQ(metric_value(reply.body, "sockmapd_map_capacity{map=\"smd_hints\"}"), static_cast<std::uint64_t>(kMaxHints));
}

// Hints left behind while no daemon ran are deleted by the next daemon as soon as it starts.
TEST_F(Hints, HintsLeftWhileNoDaemonRanAreExpiredAtStart)
{
    daemon().start({"--max-hints", std::to_string(kMaxHints)}); // default age: nothing expires while it runs
    std::optional<Blackhole> blackhole(std::in_place);
    blackhole->open(5);
    EXPECT_TRUE(poll_until([&] { return hints() == 5; }, std::chrono::seconds(2))) << daemon().status().dump();
    daemon().stop();
    blackhole.reset(); // no SYN-ACK retransmission may write the hints again once the next daemon attaches
    EXPECT_EQ(hints(), 5u) << "no sweep while no daemon runs";
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    auto start = Clock::now();
    daemon().start({"--max-hints", std::to_string(kMaxHints), "--hint-max-age", "1"});
    EXPECT_EQ(hints(), 0u) << "not expired at start";
    record("start_with_5_stale_hints_ms", static_cast<long long>(elapsed_ms(start)));
}

// A dual-stack listener's request socket records two hints per SYN, one of them for an address no client has;
// the accepted socket deletes both, so a burst of completed handshakes leaves nothing to age out.
TEST_F(Hints, DualStackListenerLeavesNoHintBehind)
{
    daemon().start(); // default age (30 s): only the accepted sockets can empty the map here
    auto before = daemon().status()["counters"];
    Fd listener = tcp_listen("::");
    auto port = local_port(listener.get());
    constexpr int kEach = 50;
    std::vector<TcpPair> pairs;
    for (int i = 0; i < kEach; ++i)
        for (const char* addr : {"127.0.0.1", "::1"}) {
            Fd client = tcp_connect(addr, port);
            Fd server = tcp_accept(listener.get());
            pairs.push_back({std::move(client), std::move(server)});
        }
    auto status = daemon().status();
    EXPECT_EQ(status["counters"]["pairs_made"], before["pairs_made"].get<std::uint64_t>() + 2 * kEach);
    EXPECT_EQ(status["counters"]["hints_full"], 0u);
    EXPECT_EQ(status["hints"], 0u) << "hints left behind by completed handshakes";

    auto r = duplex_transfer(pairs.back().client.get(), pairs.back().server.get(), 61, kBulk, 62, kBulk, {65536});
    expect_intact(r, 61, kBulk, 62, kBulk);
    EXPECT_EQ(daemon().counter("redirected_bytes"), before["redirected_bytes"].get<std::uint64_t>() + 2 * kBulk);
}

// The LRU smd_hints an earlier sockmapd pinned is replaced at start (it holds nothing a live connection needs);
// connections are paired through the new one.
TEST_F(Hints, EarlierLruPinIsReplaced)
{
    const std::string& pins = daemon().pin_path();
    ASSERT_TRUE(std::filesystem::create_directory(pins));
    must_run({"bpftool", "map", "create", pins + "/smd_hints", "type", "lru_hash", "key", "32", "value", "8",
              "entries", "16384", "name", "smd_hints"});
    daemon().start();
    EXPECT_NE(daemon().log().find("replacing pinned smd_hints (LRU of an earlier sockmapd"), std::string::npos)
        << daemon().log();
    EXPECT_EQ(daemon().status()["max_hints"], static_cast<unsigned>(SMD_DEFAULT_MAX_HINTS));
    transfer_on_new_connection(71);
    EXPECT_EQ(daemon().counter("pairs_made"), 1u);
    EXPECT_EQ(daemon().counter("redirected_bytes"), 2 * kBulk);
}

// A socket bound to 127.0.0.1:port with SO_REUSEADDR: two such sockets may connect from one port to two servers.
Fd reused_port_socket(std::uint16_t port)
{
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    struct sockaddr_in at {};
    at.sin_family = AF_INET;
    at.sin_port = htons(port);
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!fd || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof(at)) != 0) {
        ADD_FAILURE() << "socket bound to 127.0.0.1:" << port << ": " << std::strerror(errno);
        return {};
    }
    return fd;
}

// A connection to a server out of scope (here a listener in another cgroup; in a pod, a remote server) from the
// client address and port of another handshake in flight to a local server: its connecting end finds that
// handshake's hint and enters the sockhash, and no accepting end ever joins it. Alone there it would read what
// comes by TCP with FIONREAD counting only its empty redirect queue (0 on 6.18.44), for its whole life. A second
// after its insertion the release iterator has it leave.
TEST_F(Hints, AnActiveEndThatFoundAnotherHandshakesHintLeavesTheSockhash)
{
    daemon().start();
    Blackhole blackhole; // the local handshake: its SYN-ACK never leaves, so its hint stays
    TestCgroup other;
    Fd listener;
    {
        InNetns inside(blackhole.ns);
        other.join();
        listener = tcp_listen("127.0.0.1");
        other.leave();
    }
    InNetns inside(blackhole.ns);
    auto connect_to = [](int fd, std::uint16_t port) {
        struct sockaddr_in to {};
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 0 || errno == EINPROGRESS;
    };
    Fd local = reused_port_socket(0);
    ASSERT_TRUE(local);
    const std::uint16_t port = local_port(local.get());
    ASSERT_TRUE(connect_to(local.get(), blackhole.port)) << std::strerror(errno);
    ASSERT_TRUE(poll_until([&] { return hints() == 1; }, 5s)) << "the local handshake left no hint";

    Fd client = reused_port_socket(port);
    ASSERT_TRUE(client);
    ASSERT_TRUE(connect_to(client.get(), local_port(listener.get()))) << std::strerror(errno);
    Fd server = tcp_accept(listener.get());
    ASSERT_TRUE(server);
    auto status = daemon().status();
    ASSERT_EQ(status["sockets"], 1u) << "the client did not enter the sockhash: this no longer tests it";
    EXPECT_EQ(status["half_pairs"], 1u);

    // Where FIONREAD counts both queues (04af4efde58a, KERNEL-NOTES.md) it reads right even in the sockhash:
    // the release itself is what is checked first.
    EXPECT_TRUE(poll_until([&] { return (status = daemon().status())["sockets"] == 0u; }, 10s))
        << "the client stayed in the sockhash: " << status.dump();
    EXPECT_EQ(status["counters"]["sockets_released"], 1u) << status.dump();
    EXPECT_EQ(status["counters"]["left_other"], 1u) << status.dump();
    expect_fionread_counts_tcp_bytes(server.get(), client.get(), 100000, 5s);
}

} // namespace
} // namespace smdtest
