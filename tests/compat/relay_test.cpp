// Splice relays (TESTPLAN 22): Go's io.Copy between two *net.TCPConn, and a C relay with blocking splice(2)
// through a pipe, each carrying 200 MB up and then 200 MB down between a client and a server on loopback.
// Both legs (client-relay, relay-server) are local pairs. splice(2) never sees redirected bytes and nothing tells
// sockmapd in time that a reader will splice, so the accelerated half runs with the exclusion operators ship for
// splicing workloads (docs/policy.md): a bypass rule for the relay's and the server's ports.
#include <sys/socket.h>

#include <filesystem>
#include <fstream>

#include "compat.hpp"
#include "pods.hpp"

namespace smdtest {
namespace {

constexpr std::uint16_t kServerPort = 9200, kRelayPort = 9201;

struct Relay {
    const char* name;
    std::vector<std::string> (*argv)();
};

const Relay kRelays[] = {
    {"go_io_copy",
     [] {
         return std::vector<std::string>{SMD_GO_RELAY_BIN, "127.0.0.1:" + std::to_string(kRelayPort),
                                         "127.0.0.1:" + std::to_string(kServerPort)};
     }},
    {"c_splice",
     [] {
         return std::vector<std::string>{SMD_SPLICE_RELAY_BIN, std::to_string(kRelayPort), std::to_string(kServerPort)};
     }},
};

void PrintTo(const Relay& relay, std::ostream* os) { *os << relay.name; }

class SpliceRelay : public CompatTest, public ::testing::WithParamInterface<Relay> {};

TEST_P(SpliceRelay, TwoHundredMegabytesUpThenDown)
{
    auto argv = GetParam().argv();
    ASSERT_FALSE(argv[0].empty()) << "the Go relay was not built: `go` was missing when CMake ran; run "
                                     "scripts/install-deps.sh (golang-go) and configure again";
    for (Mode mode : kModes) {
        begin_excluding(mode, {kRelayPort, kServerPort});
        NetNs ns("smd-compat");
        Fd listener;
        {
            InNetns in(ns);
            listener = tcp_listen("127.0.0.1", kServerPort);
        }
        std::string log_path = "/tmp/" + unique_name("smd-compat-relay") + ".log";
        Process relay(argv, {.netns = ns.name(), .output_file = log_path});
        auto read_log = [&] {
            std::ifstream in(log_path);
            return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        };
        auto problem = wait_until_listening(ns, {"127.0.0.1:" + std::to_string(kRelayPort)}, relay);
        ASSERT_EQ(problem, "") << GetParam().name << ": " << read_log();
        Fd client;
        {
            InNetns in(ns);
            client = tcp_connect("127.0.0.1", kRelayPort);
        }
        DuplexResult r;
        {
            ProgressWatch watch(kStall, kTransferLimit);
            watch.watch(client.get());
            watch.on_stall([&] { return tcp_queues(ns) + "; relay: " + one_line(read_log()); });
            Fd server = accept_within(listener.get(), watch);
            ASSERT_TRUE(server) << "the relay never connected to the server";
            watch.watch(server.get());
            r = request_response(client.get(), server.get(), 21, kBulk, 22, kBulk, {65536, 16384},
                                 std::chrono::duration_cast<std::chrono::seconds>(kTransferLimit), &watch.counter());
            watch.stop();
            EXPECT_FALSE(watch.fired()) << GetParam().name << ": " << watch.reason();
        }
        EXPECT_EQ(r.a_sent.error, "") << "client send";
        EXPECT_EQ(r.b_received.error, "") << "server receive";
        EXPECT_EQ(r.b_sent.error, "") << "server send";
        EXPECT_EQ(r.a_received.error, "") << "client receive";
        EXPECT_TRUE(digest_is(r.b_received.digest, expected_digest(21, kBulk))) << "upload as the server got it";
        EXPECT_TRUE(digest_is(r.a_received.digest, expected_digest(22, kBulk))) << "download as the client got it";
        EXPECT_TRUE(r.b_received.eof && r.a_received.eof) << "the relay did not pass both half-closes on";
        relay.kill_and_reap();
        if (HasFailure())
            std::printf("%s relay log:\n%s\n", GetParam().name, read_log().c_str());
        std::filesystem::remove(log_path);
        expect_accelerated_or_stepped_aside(2 * kBulk);
        end_half();
    }
}

INSTANTIATE_TEST_SUITE_P(Relays, SpliceRelay, ::testing::ValuesIn(kRelays),
                         [](const auto& info) { return std::string(info.param.name); });

} // namespace
} // namespace smdtest
