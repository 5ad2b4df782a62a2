// TCP sockets of one network namespace as NETLINK_SOCK_DIAG reports them, with sockmapd's socket storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sockmapd/error.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {

// One row of an inet_diag dump.
struct DiagSocket {
    std::uint64_t cookie = 0;  // SO_COOKIE
    std::uint8_t family = 0;   // AF_INET or AF_INET6
    std::uint8_t tcp_state = 0;
    std::string local;         // "127.0.0.1:8080", "[::1]:8080"
    std::string peer;
    std::optional<std::uint64_t> cgroup_id;   // INET_DIAG_CGROUP_ID
    std::optional<struct smd_sock_ctx> ctx;   // the socket's smd_sk_ctx value, if it has one
};

// The kernel answered a dump with an error (NLMSG_ERROR or a negative NLMSG_DONE).
class SockDiagError : public Error {
public:
    SockDiagError(int err, const std::string& message) : Error(message), error(err) {}
    int error; // positive errno
};

// A SOCK_DIAG_BY_FAMILY dump request for TCP sockets of `family` in every state that can carry data (not
// listeners, not TIME_WAIT). ctx_map_fd >= 0 asks for that socket storage map's value with each socket.
std::vector<std::byte> inet_diag_dump_request(std::uint8_t family, int ctx_map_fd, std::uint32_t seq);

// Parses one datagram of the dump's reply and appends its sockets to `out`. Storage values are taken
// only from the map with id ctx_map_id and only at sizeof(smd_sock_ctx). Returns true at NLMSG_DONE.
// Throws SockDiagError on a kernel error reply, Error on a malformed message (lengths past the buffer).
bool parse_inet_diag_reply(std::span<const std::byte> datagram, std::uint32_t ctx_map_id,
                           std::vector<DiagSocket>& out);

// Dumps TCP sockets (IPv4 and IPv6) of the namespace that netlink_fd (a NETLINK_SOCK_DIAG socket) was
// created in. With ctx_map_fd >= 0 each socket carries its smd_sk_ctx value; the kernel requires CAP_BPF
// for that, and without it the dump is retried without values (ctx stays empty).
std::vector<DiagSocket> dump_tcp_sockets(int netlink_fd, int ctx_map_fd, std::uint32_t ctx_map_id);

// "addr:port" for IPv4, "[addr]:port" for IPv6; addr is in network byte order as inet_diag gives it.
std::string format_endpoint(std::uint8_t family, const std::uint32_t (&addr)[4], std::uint16_t port);

} // namespace sockmapd
