// sockmapctl connections: smd_pairs joined with what each pair's sockets report through sock_diag.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sockmapd/pinned.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {

// One end of a pair as its own socket sees it. Empty optionals: the socket was not found (closed, in a
// namespace nothing holds open, or no permission), printed as "-" / null.
struct ConnectionEnd {
    std::uint64_t cookie = 0;           // from smd_pairs; 0 while the end is not inserted
    bool found = false;                 // sock_diag reported a socket with this cookie
    std::string local, peer;            // "addr:port" as this socket sees them
    std::optional<std::uint64_t> cgroup_id;
    std::optional<std::string> cgroup;  // path of cgroup_id, if it still exists
    std::optional<struct smd_sock_ctx> ctx; // what this end sent: redirected and passed bytes
};

struct Connection {
    PairEntry pair;
    std::optional<std::uint64_t> netns_inode; // found by pair.key.netns_cookie
    std::string netns_name;                   // under /run/netns, if named there
    ConnectionEnd client;                     // the active (connecting) end
    ConnectionEnd server;                     // the passive (accepted) end
};

// Every smd_pairs entry, completed from the sockets of the namespaces the pairs live in.
std::vector<Connection> list_connections(const PinnedDatapath& datapath);

// One line (or JSON object) per connection; now_ns is CLOCK_MONOTONIC, the clock of created_ns. The format
// is documented in docs/metrics.md.
std::string format_connections_text(const std::vector<Connection>& connections, std::uint64_t now_ns);
std::string format_connections_json(const std::vector<Connection>& connections, std::uint64_t now_ns);
// "paired", "waiting", "poisoned", plus ",active-closed" / ",passive-closed".
std::string pair_state_name(std::uint32_t flags);

} // namespace sockmapd
