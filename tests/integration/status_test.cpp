// sockmapctl status after the daemon stopped: pairs whose sockets closed meanwhile are not shown as active.
#include <sys/socket.h>

#include <nlohmann/json.hpp>

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

} // namespace
} // namespace smdtest
