// sockmapctl connections output: one row or object per pair, with endpoints, namespace, cgroups and bytes per direction.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "sockmapd/connections.hpp"
#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

std::vector<Connection> sample_pairs()
{
    PairEntry paired {};
    paired.key = {.netns_cookie = 4096, .active_seq = 111, .passive_seq = 222, .active_port = 41000, .pad0 = 0, .pad1 = 0};
    paired.state.cookie[SMD_ROLE_ACTIVE] = 7001;
    paired.state.cookie[SMD_ROLE_PASSIVE] = 7002;
    paired.state.created_ns = 1'000'000'000;
    paired.state.flags = SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN;
    PairEntry waiting = paired;
    waiting.key.active_port = 41001;
    waiting.state.cookie[SMD_ROLE_PASSIVE] = 0;
    waiting.state.flags = SMD_PAIR_ACTIVE_IN;

    // Paired under REDIRECT: the client dialed 10.0.0.2:80, the server socket is 127.0.0.1:15006.
    Connection c;
    c.pair = paired;
    c.netns_inode = 4026532000;
    c.client = {.cookie = 7001, .found = true, .local = "10.0.0.1:41000", .peer = "10.0.0.2:80", .cgroup_id = 55,
                .cgroup = "/sys/fs/cgroup/unified/pod", .ctx = smd_sock_ctx {}};
    c.client.ctx->redirected_bytes = 1000;
    c.client.ctx->redirected_msgs = 4;
    c.server = {.cookie = 7002, .found = true, .local = "127.0.0.1:15006", .peer = "10.0.0.1:41000", .cgroup_id = 55,
                .cgroup = "/sys/fs/cgroup/unified/pod", .ctx = smd_sock_ctx {}};
    c.server.ctx->redirected_bytes = 2000;
    c.server.ctx->redirected_msgs = 1;
    c.server.ctx->passed_bytes = 30;
    c.server.ctx->flags = SMD_CTX_TCP_PINNED;
    c.server.ctx->queue_cap = 131072;
    // A v4 client of a dual-stack listener: the server sees v4-mapped addresses, which is no NAT.
    Connection mapped = c;
    mapped.client.local = "127.0.0.1:41002";
    mapped.client.peer = "127.0.0.1:8080";
    mapped.server.local = "[::ffff:127.0.0.1]:8080";
    mapped.server.peer = "[::ffff:127.0.0.1]:41002";
    // Waiting, its socket not found (e.g. a namespace nothing holds open).
    Connection w;
    w.pair = waiting;
    w.client.cookie = 7001;
    return {c, w, mapped};
}

TEST(PairStateName, FlagsInWords)
{
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN), "paired");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN), "waiting");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_POISONED), "poisoned");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN | SMD_PAIR_ACTIVE_CLOSED),
              "paired,active-closed");
    EXPECT_EQ(pair_state_name(SMD_PAIR_ACTIVE_IN | SMD_PAIR_PASSIVE_IN | SMD_PAIR_ACTIVE_CLOSED |
                              SMD_PAIR_PASSIVE_CLOSED),
              "paired,active-closed,passive-closed");
}

TEST(FormatConnectionsJson, OneObjectPerPairWithEndsAndDirections)
{
    auto out = nlohmann::json::parse(format_connections_json(sample_pairs(), 3'500'000'000));
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0]["netns_cookie"], 4096);
    EXPECT_EQ(out[0]["client_port"], 41000);
    EXPECT_EQ(out[0]["active_seq"], 111);
    EXPECT_EQ(out[0]["passive_seq"], 222);
    EXPECT_EQ(out[0]["active_cookie"], 7001);
    EXPECT_EQ(out[0]["passive_cookie"], 7002);
    EXPECT_EQ(out[0]["state"], "paired");
    EXPECT_DOUBLE_EQ(out[0]["age_seconds"].get<double>(), 2.5);
    EXPECT_EQ(out[0]["netns_inode"], 4026532000);
    EXPECT_EQ(out[0]["netns_name"], nullptr);
    EXPECT_EQ(out[0]["client"]["local"], "10.0.0.1:41000");
    EXPECT_EQ(out[0]["client"]["peer"], "10.0.0.2:80");
    EXPECT_EQ(out[0]["server"]["local"], "127.0.0.1:15006");
    EXPECT_EQ(out[0]["server"]["cgroup"], "/sys/fs/cgroup/unified/pod");
    EXPECT_EQ(out[0]["server"]["cgroup_id"], 55);
    EXPECT_EQ(out[0]["client_to_server"]["redirected_bytes"], 1000);
    EXPECT_EQ(out[0]["client_to_server"]["redirected_messages"], 4);
    EXPECT_EQ(out[0]["client_to_server"]["on_tcp"], false);
    EXPECT_EQ(out[0]["server_to_client"]["redirected_bytes"], 2000);
    EXPECT_EQ(out[0]["server_to_client"]["fallback_bytes"], 30);
    EXPECT_EQ(out[0]["server_to_client"]["on_tcp"], true);
    EXPECT_EQ(out[0]["server_to_client"]["queue_cap"], 131072);
    EXPECT_EQ(out[0]["client_to_server"]["queue_cap"], 0);
    EXPECT_EQ(out[1]["passive_cookie"], 0);
    EXPECT_EQ(out[1]["state"], "waiting");
    EXPECT_EQ(out[1]["netns_inode"], nullptr);
    EXPECT_EQ(out[1]["client"]["cookie"], 7001);
    EXPECT_EQ(out[1]["client"]["local"], nullptr);
    EXPECT_EQ(out[1]["client_to_server"], nullptr);
    EXPECT_EQ(out[1]["server_to_client"], nullptr);
    EXPECT_EQ(nlohmann::json::parse(format_connections_json({}, 0)), nlohmann::json::array());
}

TEST(FormatConnectionsText, HeaderRowsAndCount)
{
    std::string out = format_connections_text(sample_pairs(), 3'500'000'000);
    EXPECT_EQ(out.rfind("STATE", 0), 0u) << out;
    auto lines = [&] {
        std::vector<std::string> v;
        std::istringstream in(out);
        for (std::string l; std::getline(in, l);)
            v.push_back(l);
        return v;
    }();
    ASSERT_EQ(lines.size(), 5u) << out;
    // NAT shown as dialed->actual; bytes per direction and TCP bytes in units; one cgroup when both ends share it.
    EXPECT_CONTAINS(lines[1], "paired");
    EXPECT_CONTAINS(lines[1], " 2.5 ");
    EXPECT_CONTAINS(lines[1], "4026532000");
    EXPECT_CONTAINS(lines[1], "10.0.0.1:41000 ");
    EXPECT_CONTAINS(lines[1], "10.0.0.2:80->127.0.0.1:15006");
    EXPECT_CONTAINS(lines[1], " 1000 B ");
    EXPECT_CONTAINS(lines[1], " 2.0 KiB ");
    EXPECT_CONTAINS(lines[1], " 30 B ");
    EXPECT_CONTAINS(lines[1], " /sys/fs/cgroup/unified/pod");
    EXPECT_NOT_CONTAINS(lines[1], ",/sys");
    EXPECT_CONTAINS(lines[2], "waiting");
    EXPECT_EQ(lines[2].find("127.0.0.1"), std::string::npos) << "unknown fields print as -";
    EXPECT_CONTAINS(lines[2], " -  -");
    EXPECT_CONTAINS(lines[3], " 127.0.0.1:8080 ");
    EXPECT_NOT_CONTAINS(lines[3], "->") << "a v4-mapped address is the same endpoint, not NAT";
    EXPECT_CONTAINS(out, "\n3 connections\n");
    EXPECT_CONTAINS(format_connections_text({}, 0), "\n0 connections\n");
}

} // namespace
} // namespace sockmapd
