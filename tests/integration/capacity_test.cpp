// A full sockhash: connections that do not fit stay on TCP, are counted, and lose nothing.
#include <thread>

#include "bounded_io.hpp"
#include "fixture.hpp"
#include "poll_until.hpp"

namespace smdtest {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kBulk = 16 * kMiB;

struct Conn {
    Fd client;
    Fd server;
};

Conn connect_local()
{
    Fd listener = tcp_listen("127.0.0.1");
    Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
    Fd server = tcp_accept(listener.get());
    return {std::move(client), std::move(server)};
}

class Capacity : public IntegrationTest {
protected:
    // Full-duplex kBulk each way on every connection at once; seeds 10+2i and 11+2i.
    void transfer_all_and_check(std::vector<Conn>& conns)
    {
        std::vector<DuplexResult> results(conns.size());
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < conns.size(); ++i)
            threads.emplace_back([&, i] {
                results[i] = duplex_transfer(conns[i].client.get(), conns[i].server.get(), 10 + 2 * i, kBulk,
                                             11 + 2 * i, kBulk, {65536, 7, 20000});
            });
        for (auto& t : threads)
            t.join();
        for (std::size_t i = 0; i < conns.size(); ++i) {
            SCOPED_TRACE("connection " + std::to_string(i));
            expect_intact(results[i], 10 + 2 * i, kBulk, 11 + 2 * i, kBulk);
        }
    }

    void expect_maps_drain()
    {
        nlohmann::json last;
        EXPECT_TRUE(poll_until(
            [&] {
                last = daemon().status();
                return last["sockets"] == 0u && last["pairs"] == 0u && last["half_pairs"] == 0u;
            },
            std::chrono::seconds(5)))
            << last.dump();
    }
};

// Room for two pairs: the first two connections are paired, the other two are refused and stay on TCP.
TEST_F(Capacity, ConnectionsBeyondMaxSocketsFallBackIntact)
{
    daemon().start({"--max-sockets", "4"});
    std::vector<Conn> conns;
    for (int i = 0; i < 4; ++i)
        conns.push_back(connect_local());

    auto full = daemon().status();
    EXPECT_EQ(full["max_sockets"], 4u);
    EXPECT_EQ(full["sockets"], 4u);
    EXPECT_EQ(full["pairs"], 2u);
    EXPECT_EQ(full["half_pairs"], 0u) << "a refused active end must not leave its pair entry";
    EXPECT_EQ(full["counters"]["pairs_made"], 2u);
    EXPECT_EQ(full["counters"]["insert_failed_full"], 2u) << "one refused active end per connection that did not fit";

    transfer_all_and_check(conns);
    auto after = daemon().status();
    EXPECT_EQ(after["counters"]["redirected_bytes"], 2 * 2 * kBulk) << "exactly the two paired connections";
    EXPECT_EQ(after["counters"]["fallback_bytes"], 0u) << "the refused ones never reach sk_msg";

    conns.clear();
    expect_maps_drain();
    EXPECT_EQ(daemon().counter("pairs_closed"), 2u);

    // Freed slots are used again.
    conns.push_back(connect_local());
    transfer_all_and_check(conns);
    EXPECT_EQ(daemon().counter("pairs_made"), 3u);
    EXPECT_EQ(daemon().counter("redirected_bytes"), 3 * 2 * kBulk);
}

// An odd capacity: the second connection's active end fits, its passive end does not. The active end leaves the
// sockhash again at once: alone there, it would read what comes by TCP with FIONREAD counting only its empty
// redirect queue (0 on 6.18.44). The connection is plain TCP, both ways.
TEST_F(Capacity, HalfInsertedConnectionIsPlainTcp)
{
    daemon().start({"--max-sockets", "3"});
    std::vector<Conn> conns;
    conns.push_back(connect_local());
    conns.push_back(connect_local());

    auto full = daemon().status();
    EXPECT_EQ(full["sockets"], 2u) << "the lone active end left";
    EXPECT_EQ(full["pairs"], 1u);
    EXPECT_EQ(full["half_pairs"], 0u);
    EXPECT_EQ(full["counters"]["insert_failed_full"], 1u);

    // What the server sends first is what the client's FIONREAD counts.
    expect_fionread_counts_tcp_bytes(conns[1].server.get(), conns[1].client.get(), 100000, 5s);

    transfer_all_and_check(conns);
    auto after = daemon().status();
    EXPECT_EQ(after["counters"]["redirected_bytes"], 2 * kBulk) << "the first connection, both ways";
    EXPECT_EQ(after["counters"]["fallback_bytes"], 0u) << "the second one never reaches sk_msg";

    conns.clear();
    expect_maps_drain();
}

} // namespace
} // namespace smdtest
