// Plain local pairs: IPv4, IPv6 and v4-mapped loopback connections are redirected with intact data.
#include "bounded_io.hpp"
#include "fixture.hpp"

namespace smdtest {
namespace {

constexpr std::uint64_t kBulk = 64ull << 20;

class Loopback : public IntegrationTest {
protected:
    // Connects client -> server on addr, runs a full-duplex transfer and checks both streams.
    void transfer_and_check(const std::string& listen_addr, const std::string& connect_addr)
    {
        Fd listener = tcp_listen(listen_addr);
        Fd client = tcp_connect(connect_addr, local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        auto r = duplex_transfer(client.get(), server.get(), 11, kBulk, 22, kBulk / 2, {65536, 4096, 1, 300000});
        expect_intact(r, 11, kBulk, 22, kBulk / 2);
    }
};

TEST_F(Loopback, Ipv4BothDirectionsRedirected)
{
    daemon().start();
    transfer_and_check("127.0.0.1", "127.0.0.1");
    EXPECT_EQ(daemon().counter("pairs_made"), 1u);
    EXPECT_EQ(daemon().counter("redirected_bytes"), kBulk + kBulk / 2);
    EXPECT_EQ(daemon().counter("fallback_bytes"), 0u);
}

TEST_F(Loopback, Ipv6BothDirectionsRedirected)
{
    daemon().start();
    transfer_and_check("::1", "::1");
    EXPECT_EQ(daemon().counter("pairs_made"), 1u);
    EXPECT_EQ(daemon().counter("redirected_bytes"), kBulk + kBulk / 2);
}

TEST_F(Loopback, Ipv4ClientOfDualStackListenerRedirected)
{
    daemon().start();
    transfer_and_check("::", "127.0.0.1");
    EXPECT_EQ(daemon().counter("pairs_made"), 1u);
    EXPECT_EQ(daemon().counter("redirected_bytes"), kBulk + kBulk / 2);
}

// TESTPLAN case 1: a gibibyte each way through one pair, every byte redirected.
TEST_F(Loopback, OneGibibyteEachWayIsRedirectedIntact)
{
    constexpr std::uint64_t kGiB = 1ull << 30;
    daemon().start();
    Fd listener = tcp_listen("127.0.0.1");
    Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
    Fd server = tcp_accept(listener.get());
    auto start = Clock::now();
    auto r = duplex_transfer(client.get(), server.get(), 101, kGiB, 202, kGiB, {1 << 20, 65536}, std::chrono::seconds(120));
    record("one_gibibyte_each_way_seconds", std::to_string(elapsed_ms(start) / 1000));
    expect_intact(r, 101, kGiB, 202, kGiB);
    // A reader that lags the default --max-queued-bytes behind moves its direction to TCP until it catches up
    // (design.md, "Backpressure"); anything not redirected must be explained by that.
    auto redirected = daemon().counter("redirected_bytes"), over_tcp = daemon().counter("fallback_bytes");
    record("one_gibibyte_each_way_redirected_bytes", static_cast<long long>(redirected));
    EXPECT_LE(redirected + over_tcp, 2 * kGiB);
    EXPECT_GE(redirected, kGiB) << "less than half of the data was redirected";
    if (redirected != 2 * kGiB) {
        EXPECT_GE(daemon().counter("fallback_backpressure"), 1u) << "bytes went over TCP without backpressure";
    }
}

TEST_F(Loopback, BaselineWithoutDaemonIsIntact)
{
    transfer_and_check("127.0.0.1", "127.0.0.1");
    EXPECT_FALSE(daemon_.has_value());
}

TEST_F(Loopback, PairEntriesAreRemovedAfterClose)
{
    daemon().start();
    transfer_and_check("127.0.0.1", "127.0.0.1");
    auto status = daemon().status();
    EXPECT_EQ(status["sockets"], 0u);
    EXPECT_EQ(status["pairs"], 0u);
    EXPECT_EQ(status["half_pairs"], 0u);
    EXPECT_EQ(daemon().counter("pairs_closed"), 1u);
}

// The same 4-tuple on loopback in two namespaces at once: each server must get its own client's bytes.
TEST_F(Loopback, IdenticalTuplesInTwoNamespacesNeverCrossTalk)
{
    daemon().start();
    NetNs ns_a, ns_b;
    constexpr std::uint16_t kPort = 5555;
    auto open_pair = [&](const NetNs& ns) {
        InNetns in(ns);
        Fd listener = tcp_listen("127.0.0.1", kPort);
        Fd client = tcp_connect("127.0.0.1", kPort);
        Fd server = tcp_accept(listener.get());
        return std::make_pair(std::move(client), std::move(server));
    };
    auto [client_a, server_a] = open_pair(ns_a);
    auto [client_b, server_b] = open_pair(ns_b);
    DuplexResult ra, rb;
    std::thread other([&] { rb = duplex_transfer(client_b.get(), server_b.get(), 3, 8 << 20, 4, 8 << 20, {65536}); });
    ra = duplex_transfer(client_a.get(), server_a.get(), 1, 8 << 20, 2, 8 << 20, {65536});
    other.join();
    expect_intact(ra, 1, 8 << 20, 2, 8 << 20);
    expect_intact(rb, 3, 8 << 20, 4, 8 << 20);
    EXPECT_EQ(daemon().counter("pairs_made"), 2u);
}

} // namespace
} // namespace smdtest
