// NETLINK_SOCK_DIAG for sockmapctl connections: the request, a bounds-checked reply parser, and the dump loop.
#include "sockmapd/sock_diag.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sockmapd/error.hpp"

namespace sockmapd {
namespace {

// TCP states whose sockets can hold sockmapd context: everything but LISTEN, TIME_WAIT and request sockets.
constexpr std::uint32_t kDataStates = ((1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) | (1u << TCP_SYN_RECV) |
                                       (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSE) |
                                       (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING));

// Reads a T from possibly unaligned bytes; the caller has checked the length.
template <typename T>
T read_at(std::span<const std::byte> bytes, std::size_t offset = 0)
{
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

template <typename T>
void append(std::vector<std::byte>& out, const T& value)
{
    auto* bytes = reinterpret_cast<const std::byte*>(&value);
    out.insert(out.end(), bytes, bytes + sizeof(T));
}

// Walks the netlink attributes in `bytes`; `visit(type, payload)` sees each with its flag bits masked off.
template <typename Visit>
void for_each_attribute(std::span<const std::byte> bytes, const char* where, Visit visit)
{
    while (bytes.size() >= NLA_HDRLEN) {
        auto header = read_at<struct nlattr>(bytes);
        if (header.nla_len < NLA_HDRLEN || header.nla_len > bytes.size())
            throw Error(std::string("malformed sock_diag reply: attribute length ") +
                        std::to_string(header.nla_len) + " in " + where);
        visit(header.nla_type & NLA_TYPE_MASK, bytes.subspan(NLA_HDRLEN, header.nla_len - NLA_HDRLEN));
        bytes = bytes.subspan(std::min<std::size_t>(NLA_ALIGN(header.nla_len), bytes.size()));
    }
}

// INET_DIAG_SK_BPF_STORAGES: one SK_DIAG_BPF_STORAGE per requested map the socket has a value in.
std::optional<struct smd_sock_ctx> find_ctx(std::span<const std::byte> storages, std::uint32_t ctx_map_id)
{
    std::optional<struct smd_sock_ctx> found;
    for_each_attribute(storages, "INET_DIAG_SK_BPF_STORAGES", [&](int type, std::span<const std::byte> storage) {
        if (type != SK_DIAG_BPF_STORAGE)
            return;
        std::optional<std::uint32_t> map_id;
        std::span<const std::byte> value;
        bool has_value = false;
        for_each_attribute(storage, "SK_DIAG_BPF_STORAGE", [&](int field, std::span<const std::byte> payload) {
            if (field == SK_DIAG_BPF_STORAGE_MAP_ID && payload.size() == sizeof(std::uint32_t))
                map_id = read_at<std::uint32_t>(payload);
            else if (field == SK_DIAG_BPF_STORAGE_MAP_VALUE) {
                value = payload;
                has_value = true;
            }
        });
        // A value of another size is another ABI's smd_sock_ctx: better no numbers than wrong ones.
        if (map_id == ctx_map_id && has_value && value.size() == sizeof(struct smd_sock_ctx))
            found = read_at<struct smd_sock_ctx>(value);
    });
    return found;
}

DiagSocket parse_socket(std::span<const std::byte> payload, std::uint32_t ctx_map_id)
{
    if (payload.size() < sizeof(struct inet_diag_msg))
        throw Error("malformed sock_diag reply: socket message of " + std::to_string(payload.size()) +
                    " bytes, shorter than inet_diag_msg");
    auto msg = read_at<struct inet_diag_msg>(payload);
    DiagSocket socket;
    socket.cookie = static_cast<std::uint64_t>(msg.id.idiag_cookie[0]) |
                    static_cast<std::uint64_t>(msg.id.idiag_cookie[1]) << 32;
    socket.family = msg.idiag_family;
    socket.tcp_state = msg.idiag_state;
    socket.local = format_endpoint(msg.idiag_family, msg.id.idiag_src, ntohs(msg.id.idiag_sport));
    socket.peer = format_endpoint(msg.idiag_family, msg.id.idiag_dst, ntohs(msg.id.idiag_dport));
    auto attributes = payload.subspan(std::min<std::size_t>(NLMSG_ALIGN(sizeof(msg)), payload.size()));
    for_each_attribute(attributes, "inet_diag_msg", [&](int type, std::span<const std::byte> value) {
        if (type == INET_DIAG_CGROUP_ID && value.size() == sizeof(std::uint64_t))
            socket.cgroup_id = read_at<std::uint64_t>(value);
        else if (type == INET_DIAG_SK_BPF_STORAGES)
            socket.ctx = find_ctx(value, ctx_map_id);
    });
    return socket;
}

// NLMSG_ERROR, or NLMSG_DONE carrying a negative errno: both end the dump with the kernel's reason.
[[noreturn]] void throw_kernel_error(int negative_errno)
{
    int err = -negative_errno;
    throw SockDiagError(err, "sock_diag dump of TCP sockets: " + errno_name(err) + " (" + std::strerror(err) + ")");
}

} // namespace

std::string format_endpoint(std::uint8_t family, const std::uint32_t (&addr)[4], std::uint16_t port)
{
    char text[INET6_ADDRSTRLEN] = "?";
    if (family == AF_INET) {
        ::inet_ntop(AF_INET, addr, text, sizeof(text));
        return std::string(text) + ":" + std::to_string(port);
    }
    ::inet_ntop(AF_INET6, addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(port);
}

std::vector<std::byte> inet_diag_dump_request(std::uint8_t family, int ctx_map_fd, std::uint32_t seq)
{
    struct inet_diag_req_v2 request {};
    request.sdiag_family = family;
    request.sdiag_protocol = IPPROTO_TCP;
    request.idiag_states = kDataStates;

    // INET_DIAG_REQ_SK_BPF_STORAGES { SK_DIAG_BPF_STORAGE_REQ_MAP_FD = fd }
    struct nlattr map_fd_attr {.nla_len = NLA_HDRLEN + sizeof(std::uint32_t),
                               .nla_type = SK_DIAG_BPF_STORAGE_REQ_MAP_FD};
    struct nlattr storages_attr {.nla_len = static_cast<__u16>(NLA_HDRLEN + map_fd_attr.nla_len),
                                 .nla_type = NLA_F_NESTED | INET_DIAG_REQ_SK_BPF_STORAGES};
    std::size_t attributes_len = ctx_map_fd >= 0 ? NLA_ALIGN(storages_attr.nla_len) : 0;

    struct nlmsghdr header {};
    header.nlmsg_len = static_cast<__u32>(NLMSG_LENGTH(sizeof(request)) + attributes_len);
    header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.nlmsg_seq = seq;

    std::vector<std::byte> out;
    append(out, header);
    append(out, request);
    out.resize(NLMSG_ALIGN(out.size()));
    if (ctx_map_fd >= 0) {
        append(out, storages_attr);
        append(out, map_fd_attr);
        append(out, static_cast<std::uint32_t>(ctx_map_fd));
    }
    return out;
}

bool parse_inet_diag_reply(std::span<const std::byte> datagram, std::uint32_t ctx_map_id,
                           std::vector<DiagSocket>& out)
{
    while (datagram.size() >= sizeof(struct nlmsghdr)) {
        auto header = read_at<struct nlmsghdr>(datagram);
        if (header.nlmsg_len < sizeof(header) || header.nlmsg_len > datagram.size())
            throw Error("malformed sock_diag reply: message length " + std::to_string(header.nlmsg_len) +
                        " with " + std::to_string(datagram.size()) + " bytes left");
        auto payload = datagram.subspan(NLMSG_HDRLEN, header.nlmsg_len - NLMSG_HDRLEN);
        switch (header.nlmsg_type) {
        case NLMSG_DONE:
            if (payload.size() >= sizeof(int) && read_at<int>(payload) < 0)
                throw_kernel_error(read_at<int>(payload));
            return true;
        case NLMSG_ERROR:
            if (payload.size() < sizeof(int))
                throw Error("malformed sock_diag reply: NLMSG_ERROR without an error code");
            if (read_at<int>(payload) < 0)
                throw_kernel_error(read_at<int>(payload));
            break; // an ACK, not expected in a dump but harmless
        case SOCK_DIAG_BY_FAMILY:
            out.push_back(parse_socket(payload, ctx_map_id));
            break;
        default:
            break;
        }
        datagram = datagram.subspan(std::min<std::size_t>(NLMSG_ALIGN(header.nlmsg_len), datagram.size()));
    }
    if (!datagram.empty())
        throw Error("malformed sock_diag reply: " + std::to_string(datagram.size()) + " trailing bytes");
    return false;
}

namespace {

std::vector<DiagSocket> dump_family(int netlink_fd, std::uint8_t family, int ctx_map_fd, std::uint32_t ctx_map_id)
{
    static std::uint32_t seq = 0;
    auto request = inet_diag_dump_request(family, ctx_map_fd, ++seq);
    struct sockaddr_nl kernel {.nl_family = AF_NETLINK, .nl_pad = 0, .nl_pid = 0, .nl_groups = 0};
    if (::sendto(netlink_fd, request.data(), request.size(), 0, reinterpret_cast<struct sockaddr*>(&kernel),
                 sizeof(kernel)) < 0)
        throw_errno(errno, "send sock_diag request");

    // The kernel fills dump datagrams up to ~32 KiB; a larger buffer never truncates one.
    std::vector<std::byte> buffer(64 * 1024);
    std::vector<DiagSocket> sockets;
    for (;;) {
        // MSG_TRUNC: netlink returns the datagram's real length, so a cut-off one is noticed, not parsed.
        ssize_t n = ::recv(netlink_fd, buffer.data(), buffer.size(), MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw_errno(errno, "receive sock_diag reply");
        }
        if (static_cast<std::size_t>(n) > buffer.size())
            throw Error("sock_diag reply of " + std::to_string(n) + " bytes does not fit the receive buffer");
        if (parse_inet_diag_reply(std::span(buffer.data(), static_cast<std::size_t>(n)), ctx_map_id, sockets))
            return sockets;
    }
}

} // namespace

std::vector<DiagSocket> dump_tcp_sockets(int netlink_fd, int ctx_map_fd, std::uint32_t ctx_map_id)
{
    std::vector<DiagSocket> sockets;
    for (std::uint8_t family : {AF_INET, AF_INET6}) {
        std::vector<DiagSocket> rows;
        try {
            rows = dump_family(netlink_fd, family, ctx_map_fd, ctx_map_id);
        } catch (const SockDiagError& e) {
            if (ctx_map_fd < 0 || e.error != EPERM)
                throw;
            // Reading socket storage needs CAP_BPF; endpoints and cgroups do not.
            rows = dump_family(netlink_fd, family, -1, ctx_map_id);
        }
        sockets.insert(sockets.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
    }
    return sockets;
}

} // namespace sockmapd
