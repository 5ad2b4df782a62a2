// sockmapctl status: pairs whose sockets closed after the daemon stopped are not shown as active; unread
// redirected bytes are shown, with or without a daemon.
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "bounded_io.hpp"
#include "fixture.hpp"
#include "poll_until.hpp"
#include "split_command.hpp"

namespace smdtest {
namespace {

class Status : public IntegrationTest {};

// With no sock_ops program running, nothing removes the pair entry when its sockets close; the sockets leave the
// sockhash by themselves. Status counts such an entry as closed, not active, next to "sockets: 0".
TEST_F(Status, AfterTheDaemonStoppedAClosedPairIsNotActive)
{
    daemon().start();
    {
        Fd listener = tcp_listen("127.0.0.1");
        Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        // Plain send and recv, no shutdown: the connection stays established until the daemon is gone.
        char buffer[5] = {};
        ASSERT_EQ(::send(client.get(), "hello", 5, 0), 5);
        ASSERT_EQ(::recv(server.get(), buffer, sizeof(buffer), MSG_WAITALL), 5);
        EXPECT_EQ(std::string(buffer, 5), "hello");
        EXPECT_EQ(daemon().counter("redirected_bytes"), 5u);
        auto open = daemon().status();
        EXPECT_EQ(open["pairs"], 1);
        EXPECT_EQ(open["sockets"], 2);
        daemon().stop();
    }
    nlohmann::json status;
    EXPECT_TRUE(poll_until([&] { return (status = daemon().status())["sockets"] == 0; }, std::chrono::seconds(5)))
        << status.dump();
    EXPECT_EQ(status["daemon_running"], false);
    EXPECT_EQ(status["pairs"], 0) << status.dump();
    EXPECT_EQ(status["half_pairs"], 0);
    EXPECT_EQ(status["closed_pairs"], 1);

    auto text = run_split({sockmapctl_bin(), "status", "--pin-path", daemon().pin_path()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("sockets:     0 of "), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("pairs:       0 active, 0 waiting for their peer, 1 closed while no daemon ran"),
              std::string::npos)
        << text.out;
}

// A reader that has not read: its redirect queue holds exactly what was sent, measured by sockmapctl itself (its
// own copy of the iterator), also after the daemon stopped; 0 once the reader has read everything.
TEST_F(Status, ShowsUnreadRedirectedBytesAndZeroOnceTheReaderReads)
{
    constexpr std::uint64_t kUnread = 300000;
    daemon().start();
    Fd listener = tcp_listen("127.0.0.1");
    Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
    Fd server = tcp_accept(listener.get());
    ASSERT_EQ(send_stream(client.get(), 6, kUnread, {65536}, Clock::now() + std::chrono::seconds(10)).error, "");

    auto stalled = daemon().status();
    EXPECT_EQ(stalled["queued_bytes"], kUnread) << stalled.dump();
    EXPECT_EQ(stalled["largest_queued_bytes"], kUnread);
    EXPECT_EQ(stalled["queued_sockets"], 1);
    EXPECT_EQ(stalled["directions_moved_for_memory"], 0);
    daemon().stop();
    auto text = run_split({sockmapctl_bin(), "status", "--pin-path", daemon().pin_path()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("memory:      293.0 KiB unread in 1 redirect queue (largest 293.0 KiB); 0 directions moved to "
                            "TCP for memory\n"),
              std::string::npos)
        << text.out;

    auto got = recv_stream(server.get(), kUnread, false, Clock::now() + std::chrono::seconds(10));
    EXPECT_TRUE(digest_is(got.digest, expected_digest(6, kUnread)));
    auto drained = daemon().status();
    EXPECT_EQ(drained["queued_bytes"], 0) << drained.dump();
    EXPECT_EQ(drained["largest_queued_bytes"], 0);
    EXPECT_EQ(drained["queued_sockets"], 0);
}

} // namespace
} // namespace smdtest
