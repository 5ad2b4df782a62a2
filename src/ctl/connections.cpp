// sockmapctl connections: pairs from the pinned smd_pairs, endpoints/cgroups/bytes from sock_diag, joined by cookie.
#include "sockmapd/connections.hpp"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "sockmapd/cgroup.hpp"
#include "sockmapd/human_units.hpp"
#include "sockmapd/json_output.hpp"
#include "sockmapd/netns_scan.hpp"
#include "sockmapd/sock_diag.hpp"

namespace sockmapd {
namespace {

void fill_end(ConnectionEnd& end, const std::map<std::uint64_t, DiagSocket>& sockets, CgroupPaths& cgroups)
{
    auto it = end.cookie ? sockets.find(end.cookie) : sockets.end();
    if (it == sockets.end())
        return;
    const DiagSocket& socket = it->second;
    end.found = true;
    end.local = socket.local;
    end.peer = socket.peer;
    end.cgroup_id = socket.cgroup_id;
    if (socket.cgroup_id)
        end.cgroup = cgroups.path(*socket.cgroup_id);
    end.ctx = socket.ctx;
}

} // namespace

std::vector<Connection> list_connections(const PinnedDatapath& datapath)
{
    std::vector<Connection> connections;
    std::set<std::uint64_t> netns_cookies;
    for (const auto& pair : datapath.pairs()) {
        Connection c;
        c.pair = pair;
        c.client.cookie = pair.state.cookie[SMD_ROLE_ACTIVE];
        c.server.cookie = pair.state.cookie[SMD_ROLE_PASSIVE];
        netns_cookies.insert(pair.key.netns_cookie);
        connections.push_back(std::move(c));
    }

    // Socket cookies are unique across namespaces, so one map serves every namespace's dump.
    std::map<std::uint64_t, DiagSocket> sockets;
    std::map<std::uint64_t, const NetnsDiag*> netns_by_cookie;
    auto namespaces = open_sock_diag_in(netns_cookies);
    for (const auto& ns : namespaces) {
        netns_by_cookie[ns.cookie] = &ns;
        for (auto& socket : dump_tcp_sockets(ns.diag.get(), datapath.sk_ctx_fd(), datapath.sk_ctx_id()))
            sockets.emplace(socket.cookie, std::move(socket));
    }

    CgroupPaths cgroups;
    for (auto& c : connections) {
        auto ns = netns_by_cookie.find(c.pair.key.netns_cookie);
        if (ns != netns_by_cookie.end()) {
            c.netns_inode = ns->second->inode;
            c.netns_name = ns->second->name;
        }
        fill_end(c.client, sockets, cgroups);
        fill_end(c.server, sockets, cgroups);
    }
    return connections;
}

std::string pair_state_name(std::uint32_t flags)
{
    std::string name = (flags & SMD_PAIR_POISONED)     ? "poisoned"
                       : (flags & SMD_PAIR_PASSIVE_IN) ? "paired"
                                                       : "waiting";
    if (flags & SMD_PAIR_ACTIVE_CLOSED)
        name += ",active-closed";
    if (flags & SMD_PAIR_PASSIVE_CLOSED)
        name += ",passive-closed";
    return name;
}

namespace {

double age_seconds(std::uint64_t created_ns, std::uint64_t now_ns)
{
    return now_ns > created_ns ? static_cast<double>(now_ns - created_ns) / 1e9 : 0.0;
}

template <typename T>
nlohmann::ordered_json or_null(const std::optional<T>& value)
{
    return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json end_json(const ConnectionEnd& end)
{
    if (!end.found)
        return {{"cookie", end.cookie}, {"local", nullptr}, {"peer", nullptr}, {"cgroup", nullptr},
                {"cgroup_id", nullptr}};
    return {{"cookie", end.cookie}, {"local", end.local}, {"peer", end.peer}, {"cgroup", or_null(end.cgroup)},
            {"cgroup_id", or_null(end.cgroup_id)}};
}

// A direction is what its sending end's socket storage counted.
nlohmann::ordered_json direction_json(const ConnectionEnd& sender)
{
    if (!sender.ctx)
        return nullptr;
    return {{"redirected_bytes", sender.ctx->redirected_bytes},
            {"redirected_messages", sender.ctx->redirected_msgs},
            {"fallback_bytes", sender.ctx->passed_bytes},
            {"on_tcp", (sender.ctx->flags & SMD_CTX_TCP_PINNED) != 0},
            {"queue_cap", sender.ctx->queue_cap}};
}

} // namespace

std::string format_connections_json(const std::vector<Connection>& connections, std::uint64_t now_ns)
{
    auto out = nlohmann::ordered_json::array();
    for (const auto& c : connections) {
        const auto& p = c.pair;
        out.push_back({{"state", pair_state_name(p.state.flags)},
                       {"flags", p.state.flags},
                       {"age_seconds", age_seconds(p.state.created_ns, now_ns)},
                       {"netns_cookie", p.key.netns_cookie},
                       {"netns_inode", or_null(c.netns_inode)},
                       {"netns_name", c.netns_name.empty() ? nullptr : nlohmann::ordered_json(c.netns_name)},
                       {"client_port", p.key.active_port},
                       {"active_seq", p.key.active_seq},
                       {"passive_seq", p.key.passive_seq},
                       {"active_cookie", p.state.cookie[SMD_ROLE_ACTIVE]},
                       {"passive_cookie", p.state.cookie[SMD_ROLE_PASSIVE]},
                       {"client", end_json(c.client)},
                       {"server", end_json(c.server)},
                       {"client_to_server", direction_json(c.client)},
                       {"server_to_client", direction_json(c.server)}});
    }
    // Cgroup and namespace names are bytes, not UTF-8: replace what JSON cannot carry.
    return format_json(out);
}

namespace {

std::string text_or_dash(const std::string& s)
{
    return s.empty() ? "-" : s;
}

// A dual-stack listener's sockets see IPv4 peers as ::ffff:a.b.c.d: the same endpoint, not NAT.
std::string unmapped(const std::string& endpoint)
{
    const std::string prefix = "[::ffff:";
    auto close = endpoint.find("]:");
    if (endpoint.starts_with(prefix) && close != std::string::npos && endpoint.find('.') < close)
        return endpoint.substr(prefix.size(), close - prefix.size()) + endpoint.substr(close + 1);
    return endpoint;
}

// The client's view of where it connected, and the server socket's own address when NAT (REDIRECT) made
// them differ: "10.0.0.2:80->127.0.0.1:15006".
std::string server_column(const Connection& c)
{
    if (!c.client.found && !c.server.found)
        return "-";
    if (!c.client.found)
        return "?->" + c.server.local;
    if (!c.server.found || unmapped(c.client.peer) == unmapped(c.server.local))
        return c.client.peer;
    return c.client.peer + "->" + c.server.local;
}

std::string bytes_column(const ConnectionEnd& sender)
{
    return sender.ctx ? format_bytes(sender.ctx->redirected_bytes) : "-";
}

std::string fallback_column(const Connection& c)
{
    if (!c.client.ctx && !c.server.ctx)
        return "-";
    std::uint64_t sum = (c.client.ctx ? c.client.ctx->passed_bytes : 0) + (c.server.ctx ? c.server.ctx->passed_bytes : 0);
    return format_bytes(sum);
}

std::string cgroup_column(const ConnectionEnd& end)
{
    if (end.cgroup)
        return *end.cgroup;
    return end.cgroup_id ? "id:" + std::to_string(*end.cgroup_id) : "-";
}

} // namespace

std::string format_connections_text(const std::vector<Connection>& connections, std::uint64_t now_ns)
{
    std::ostringstream out;
    char line[512];
    std::snprintf(line, sizeof(line), "%-9s %8s %-12s %-24s %-24s %12s %12s %10s  ", "STATE", "AGE_S", "NETNS",
                  "CLIENT", "SERVER", "C>S_BYTES", "S>C_BYTES", "TCP_BYTES");
    out << line << "CGROUP\n";
    for (const auto& c : connections) {
        std::string netns = !c.netns_name.empty() ? c.netns_name
                            : c.netns_inode       ? std::to_string(*c.netns_inode)
                                                  : "-";
        // One cgroup when both ends share it (a process talking to itself, a pod), else client,server.
        std::string cgroup = cgroup_column(c.client);
        if (cgroup_column(c.server) != cgroup)
            cgroup += "," + cgroup_column(c.server);
        std::snprintf(line, sizeof(line), "%-9s %8.1f %-12s %-24s %-24s %12s %12s %10s  ",
                      pair_state_name(c.pair.state.flags).c_str(), age_seconds(c.pair.state.created_ns, now_ns),
                      netns.c_str(), text_or_dash(c.client.local).c_str(), server_column(c).c_str(),
                      bytes_column(c.client).c_str(), bytes_column(c.server).c_str(), fallback_column(c).c_str());
        out << line << cgroup << "\n"; // last and unpadded: cgroup paths have no length bound
    }
    out << connections.size() << (connections.size() == 1 ? " connection\n" : " connections\n");
    return out.str();
}

} // namespace sockmapd
