// sockmapctl connections against ground truth: exactly the pairs the test opened, by socket cookie.
#include <sys/socket.h>

#include <set>
#include <tuple>

#include "fixture.hpp"
#include "poll_until.hpp"
#include "split_command.hpp"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace smdtest {
namespace {

std::uint64_t socket_option_u64(int fd, int option)
{
    std::uint64_t value = 0;
    socklen_t len = sizeof(value);
    EXPECT_EQ(::getsockopt(fd, SOL_SOCKET, option, &value, &len), 0) << std::strerror(errno);
    return value;
}

// What one pair entry must say: namespace, client port, and the cookies of both sockets.
using Row = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::string>;

Row expected_row(int client, int server)
{
    return {socket_option_u64(client, SO_NETNS_COOKIE), local_port(client), socket_option_u64(client, SO_COOKIE),
            socket_option_u64(server, SO_COOKIE), "paired"};
}

class Connections : public IntegrationTest {
protected:
    std::set<Row> listed()
    {
        auto result = run_split({sockmapctl_bin(), "connections", "--json", "--pin-path", daemon().pin_path()});
        EXPECT_EQ(result.exit_code, 0) << result.err;
        auto rows = nlohmann::json::parse(result.out, nullptr, false);
        EXPECT_TRUE(rows.is_array()) << result.out;
        std::set<Row> out;
        if (!rows.is_array())
            return out;
        for (const auto& r : rows)
            out.insert({r["netns_cookie"].get<std::uint64_t>(), r["client_port"].get<std::uint64_t>(),
                        r["active_cookie"].get<std::uint64_t>(), r["passive_cookie"].get<std::uint64_t>(),
                        r["state"].get<std::string>()});
        return out;
    }
};

TEST_F(Connections, ListsExactlyThePairsTheTestOpened)
{
    daemon().start();
    NetNs ns;
    std::vector<std::pair<Fd, Fd>> open;
    auto open_pair = [&](const std::string& addr) {
        Fd listener = tcp_listen(addr);
        Fd client = tcp_connect(addr, local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        open.emplace_back(std::move(client), std::move(server));
    };
    open_pair("127.0.0.1");
    open_pair("::1");
    {
        InNetns in(ns);
        open_pair("127.0.0.1");
    }
    std::set<Row> expected;
    for (const auto& [client, server] : open)
        expected.insert(expected_row(client.get(), server.get()));
    ASSERT_EQ(expected.size(), 3u);
    EXPECT_EQ(listed(), expected);

    // Text output: a header, one row per pair, and the count.
    auto text = run_split({sockmapctl_bin(), "connections", "--pin-path", daemon().pin_path()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    auto lines = lines_of(text.out);
    ASSERT_EQ(lines.size(), 5u) << text.out;
    EXPECT_EQ(lines.back(), "3 connections");

    // Data still flows on a listed pair, and the list empties once everything is closed.
    auto r = duplex_transfer(open[0].first.get(), open[0].second.get(), 51, 1 << 20, 52, 1 << 20, {65536});
    expect_intact(r, 51, 1 << 20, 52, 1 << 20);
    EXPECT_EQ(daemon().counter("redirected_bytes"), 2u << 20);
    open.clear();
    std::set<Row> now;
    EXPECT_TRUE(poll_until([&] { return (now = listed()).empty(); }, std::chrono::seconds(5)))
        << now.size() << " entries left after every socket closed";
}

} // namespace
} // namespace smdtest
