// State left by connections that closed while no daemon ran is collected by the next daemon.
#include "fixture.hpp"

namespace smdtest {
namespace {

class StaleState : public IntegrationTest {};

TEST_F(StaleState, PairsClosedWithoutDaemonAreCollectedAtStart)
{
    daemon().start();
    {
        Fd listener = tcp_listen("127.0.0.1");
        Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        // One-way data without shutdown: the connection stays ESTABLISHED until the fds close below.
        auto deadline = Clock::now() + std::chrono::seconds(30);
        auto sent = send_stream(client.get(), 5, 1 << 20, {65536}, deadline);
        auto got = recv_stream(server.get(), 1 << 20, false, deadline);
        EXPECT_EQ(got.digest, expected_digest(5, 1 << 20));
        EXPECT_EQ(sent.digest, got.digest);
        EXPECT_EQ(daemon().status()["pairs"], 1u);
        // No sock_ops program sees this close: the pair entry stays behind.
        daemon().stop();
    }
    // The entry stays while no daemon runs, but status does not call it active next to "sockets: 0".
    auto stopped = daemon().status();
    EXPECT_EQ(stopped["sockets"], 0u) << "the kernel removes closed sockets from the sockhash";
    EXPECT_EQ(stopped["closed_pairs"], 1u) << "expected a stale entry while no daemon runs";
    EXPECT_EQ(stopped["pairs"], 0u);

    daemon().start();
    EXPECT_EQ(daemon().status()["pairs"], 0u);
    EXPECT_EQ(daemon().status()["half_pairs"], 0u);
    EXPECT_EQ(daemon().status()["closed_pairs"], 0u);
    EXPECT_NE(daemon().log().find("removed 1 pair entries"), std::string::npos) << daemon().log();
}

} // namespace
} // namespace smdtest
