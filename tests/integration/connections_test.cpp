// sockmapctl connections against ground truth: exactly the pairs the test opened, by socket cookie, with the
// endpoints each socket reports, its namespace and cgroup, and the bytes the test sent in each direction.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <thread>
#include <tuple>

#include "fixture.hpp"
#include "poll_until.hpp"
#include "sockmapd/human_units.hpp"
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

std::uint64_t inode_of(const std::string& path)
{
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
    return st.st_ino;
}

// "127.0.0.1:80" / "[::1]:80" from getsockname or getpeername: what the socket itself says.
std::string endpoint_of(int fd, bool peer)
{
    struct sockaddr_storage ss {};
    socklen_t len = sizeof(ss);
    EXPECT_EQ(peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                   : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len),
              0)
        << std::strerror(errno);
    char text[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

// `length` bytes of stream `seed` from one socket to the other in `write_size` sends, nothing closed after.
void transfer_one_way(int from, int to, std::uint64_t seed, std::uint64_t length, std::size_t write_size)
{
    auto deadline = Clock::now() + std::chrono::seconds(30);
    TransferResult sent;
    std::thread sender([&] { sent = send_stream(from, seed, length, {write_size}, deadline); });
    auto received = recv_stream(to, length, false, deadline);
    sender.join();
    EXPECT_EQ(sent.error, "");
    EXPECT_EQ(received.error, "");
    EXPECT_EQ(sent.digest, expected_digest(seed, length));
    EXPECT_EQ(received.digest, expected_digest(seed, length));
}

constexpr std::size_t kWriteSize = 4096;

std::uint64_t sends_for(std::uint64_t length)
{
    return (length + kWriteSize - 1) / kWriteSize;
}

// A connection the test opened, what it sent each way, and where it lives.
struct TestPair {
    Fd client, server;
    std::uint64_t to_server = 0, to_client = 0;           // bytes sent so far
    std::uint64_t sends_to_server = 0, sends_to_client = 0; // send() calls so far
    std::uint64_t netns_inode = 0;
    std::string netns_name; // empty: the test's own namespace
};

class Connections : public IntegrationTest {
protected:
    nlohmann::json listed_json()
    {
        auto result = run_split({sockmapctl_bin(), "connections", "--json", "--pin-path", daemon().pin_path()});
        EXPECT_EQ(result.exit_code, 0) << result.err;
        auto rows = nlohmann::json::parse(result.out, nullptr, false);
        EXPECT_TRUE(rows.is_array()) << result.out;
        return rows.is_array() ? rows : nlohmann::json::array();
    }

    // Every field sockmapctl shows for `p`, against what the sockets, the test's cgroup and its sends say.
    void expect_row_matches(const nlohmann::json& row, const TestPair& p)
    {
        int client = p.client.get(), server = p.server.get();
        SCOPED_TRACE("pair " + endpoint_of(client, false) + " -> " + endpoint_of(client, true));
        EXPECT_EQ(row["state"], "paired");
        EXPECT_EQ(row["netns_cookie"], socket_option_u64(client, SO_NETNS_COOKIE));
        EXPECT_EQ(row["netns_inode"], p.netns_inode);
        EXPECT_EQ(row["netns_name"], p.netns_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.netns_name));
        EXPECT_EQ(row["passive_cookie"], socket_option_u64(server, SO_COOKIE));
        EXPECT_EQ(row["client"]["local"], endpoint_of(client, false));
        EXPECT_EQ(row["client"]["peer"], endpoint_of(client, true));
        EXPECT_EQ(row["server"]["local"], endpoint_of(server, false));
        EXPECT_EQ(row["server"]["peer"], endpoint_of(server, true));
        for (const char* end : {"client", "server"}) {
            EXPECT_EQ(row[end]["cgroup"], cgroup_path()) << end;
            EXPECT_EQ(row[end]["cgroup_id"], inode_of(cgroup_path())) << end;
        }
        auto expect_direction = [](const nlohmann::json& d, std::uint64_t bytes, std::uint64_t sends,
                                   const char* name) {
            ASSERT_TRUE(d.is_object()) << name << ": " << d;
            EXPECT_EQ(d["redirected_bytes"], bytes) << name;
            EXPECT_EQ(d["redirected_messages"], sends) << name << ": one sk_msg verdict per send()";
            EXPECT_EQ(d["fallback_bytes"], 0) << name;
            EXPECT_EQ(d["on_tcp"], false) << name;
        };
        expect_direction(row["client_to_server"], p.to_server, p.sends_to_server, "client_to_server");
        expect_direction(row["server_to_client"], p.to_client, p.sends_to_client, "server_to_client");
    }

    // Exactly the test's pairs are listed, each with the right fields.
    void expect_listed(const std::vector<TestPair>& pairs)
    {
        std::map<std::uint64_t, nlohmann::json> by_cookie;
        for (const auto& row : listed_json())
            by_cookie[row["active_cookie"].get<std::uint64_t>()] = row;
        EXPECT_EQ(by_cookie.size(), pairs.size());
        for (const auto& p : pairs) {
            auto row = by_cookie.find(socket_option_u64(p.client.get(), SO_COOKIE));
            if (row == by_cookie.end()) {
                ADD_FAILURE() << "pair from " << endpoint_of(p.client.get(), false) << " not listed";
                continue;
            }
            expect_row_matches(row->second, p);
        }
    }

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

// Loopback v4 and v6 in the test's namespace, and a pair behind iptables REDIRECT in a namespace of its own:
// endpoints as each socket sees them, namespace, cgroup and per-direction bytes; then the same with the
// daemon stopped, from the pins alone, after more traffic.
TEST_F(Connections, ShowsEndpointsNamespaceCgroupAndBytesPerDirection)
{
    daemon().start();
    NetNs ns;
    std::vector<TestPair> pairs;
    auto open_pair = [&](const std::string& listen_addr, const std::string& dial_addr, std::uint16_t dial_port,
                         std::uint16_t listen_port) {
        Fd listener = tcp_listen(listen_addr, listen_port);
        TestPair p;
        p.client = tcp_connect(dial_addr, dial_port ? dial_port : local_port(listener.get()));
        p.server = tcp_accept(listener.get());
        pairs.push_back(std::move(p));
    };
    open_pair("127.0.0.1", "127.0.0.1", 0, 0);
    pairs.back().netns_inode = inode_of("/proc/self/ns/net");
    open_pair("::1", "::1", 0, 0);
    pairs.back().netns_inode = inode_of("/proc/self/ns/net");
    // Dialing 127.0.0.2:80 lands on 127.0.0.1:15006, as a sidecar capture would.
    ns.exec({"iptables", "-w", "10", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.2", "--dport", "80",
             "-j", "REDIRECT", "--to-ports", "15006"});
    {
        InNetns in(ns);
        open_pair("127.0.0.1", "127.0.0.2", 80, 15006);
    }
    pairs.back().netns_inode = inode_of("/run/netns/" + ns.name());
    pairs.back().netns_name = ns.name();
    ASSERT_EQ(endpoint_of(pairs.back().client.get(), true), "127.0.0.2:80");
    ASSERT_EQ(endpoint_of(pairs.back().server.get(), false), "127.0.0.1:15006");

    // Different byte counts per pair and direction, partial last sends included.
    const std::uint64_t to_server[] = {25 * kWriteSize, 3 * kWriteSize, 5 * kWriteSize + 17};
    const std::uint64_t to_client[] = {7 * kWriteSize + 1, 11 * kWriteSize, 2 * kWriteSize};
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        transfer_one_way(pairs[i].client.get(), pairs[i].server.get(), 60 + i, to_server[i], kWriteSize);
        transfer_one_way(pairs[i].server.get(), pairs[i].client.get(), 70 + i, to_client[i], kWriteSize);
        pairs[i].to_server = to_server[i];
        pairs[i].to_client = to_client[i];
        pairs[i].sends_to_server = sends_for(to_server[i]);
        pairs[i].sends_to_client = sends_for(to_client[i]);
    }
    ASSERT_EQ(daemon().counter("redirected_bytes"),
              std::accumulate(std::begin(to_server), std::end(to_server), 0ull) +
                  std::accumulate(std::begin(to_client), std::end(to_client), 0ull));
    expect_listed(pairs);

    // Text: the NAT view as dialed->actual and both byte counts on the redirected pair's line.
    auto text = run_split({sockmapctl_bin(), "connections", "--pin-path", daemon().pin_path()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    std::string redirect_view = "127.0.0.2:80->127.0.0.1:15006";
    auto lines = lines_of(text.out);
    auto line = std::find_if(lines.begin(), lines.end(),
                             [&](const std::string& l) { return l.find(redirect_view) != std::string::npos; });
    ASSERT_NE(line, lines.end()) << text.out;
    EXPECT_NE(line->find(" " + sockmapd::format_bytes(to_server[2])), std::string::npos) << *line;
    EXPECT_NE(line->find(" " + sockmapd::format_bytes(to_client[2])), std::string::npos) << *line;
    EXPECT_NE(line->find(ns.name()), std::string::npos) << *line;

    // No daemon: pins only. Pairs keep redirecting, and their counters keep counting.
    daemon().stop();
    ASSERT_FALSE(daemon().status()["daemon_running"].get<bool>());
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        transfer_one_way(pairs[i].client.get(), pairs[i].server.get(), 80 + i, 4 * kWriteSize, kWriteSize);
        transfer_one_way(pairs[i].server.get(), pairs[i].client.get(), 90 + i, 6 * kWriteSize, kWriteSize);
        pairs[i].to_server += 4 * kWriteSize;
        pairs[i].to_client += 6 * kWriteSize;
        pairs[i].sends_to_server += 4;
        pairs[i].sends_to_client += 6;
    }
    expect_listed(pairs);
}

} // namespace
} // namespace smdtest
