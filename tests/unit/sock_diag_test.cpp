// sock_diag request bytes and the reply parser, on canned netlink datagrams (no kernel).
#include "sockmapd/sock_diag.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cstring>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

constexpr std::uint32_t kCtxMapId = 77;

// Writes netlink messages and (nested) attributes the way the kernel lays them out.
class Datagram {
public:
    template <typename T>
    void put(const T& value)
    {
        auto* p = reinterpret_cast<const std::byte*>(&value);
        bytes_.insert(bytes_.end(), p, p + sizeof(T));
    }
    void align() { bytes_.resize(NLMSG_ALIGN(bytes_.size())); }
    std::size_t begin_message(std::uint16_t type)
    {
        std::size_t at = bytes_.size();
        put(nlmsghdr {.nlmsg_len = 0, .nlmsg_type = type, .nlmsg_flags = NLM_F_MULTI, .nlmsg_seq = 1, .nlmsg_pid = 0});
        return at;
    }
    void end_message(std::size_t at) { patch_u32(at, static_cast<std::uint32_t>(bytes_.size() - at)), align(); }
    std::size_t begin_attribute(std::uint16_t type)
    {
        std::size_t at = bytes_.size();
        put(nlattr {.nla_len = 0, .nla_type = type});
        return at;
    }
    void end_attribute(std::size_t at)
    {
        std::uint16_t len = static_cast<std::uint16_t>(bytes_.size() - at);
        std::memcpy(bytes_.data() + at, &len, sizeof(len));
        align();
    }
    template <typename T>
    void attribute(std::uint16_t type, const T& value)
    {
        auto at = begin_attribute(type);
        put(value);
        end_attribute(at);
    }
    void patch_u32(std::size_t at, std::uint32_t value) { std::memcpy(bytes_.data() + at, &value, sizeof(value)); }
    void patch_u16(std::size_t at, std::uint16_t value) { std::memcpy(bytes_.data() + at, &value, sizeof(value)); }
    std::vector<std::byte>& bytes() { return bytes_; }

private:
    std::vector<std::byte> bytes_;
};

struct smd_sock_ctx sample_ctx(std::uint64_t redirected)
{
    struct smd_sock_ctx ctx {};
    ctx.key.role = SMD_ROLE_PASSIVE;
    ctx.redirected_bytes = redirected;
    ctx.redirected_msgs = 3;
    ctx.passed_bytes = 5;
    ctx.flags = SMD_CTX_TCP_PINNED;
    return ctx;
}

// An IPv4 socket 127.0.0.1:8080 -> 127.0.0.2:41000 with cookie 0x1122334455667788, cgroup 4242, and
// storage values of `map_ids` (kCtxMapId carries sample_ctx(1000)).
void put_socket(Datagram& d, std::vector<std::uint32_t> map_ids = {kCtxMapId}, std::size_t value_size = sizeof(smd_sock_ctx))
{
    auto msg = d.begin_message(SOCK_DIAG_BY_FAMILY);
    inet_diag_msg m {};
    m.idiag_family = AF_INET;
    m.idiag_state = 1; // TCP_ESTABLISHED
    m.id.idiag_sport = htons(8080);
    m.id.idiag_dport = htons(41000);
    m.id.idiag_src[0] = htonl(0x7f000001);
    m.id.idiag_dst[0] = htonl(0x7f000002);
    m.id.idiag_cookie[0] = 0x55667788;
    m.id.idiag_cookie[1] = 0x11223344;
    d.put(m);
    d.align();
    d.attribute<std::uint64_t>(INET_DIAG_CGROUP_ID, 4242);
    auto storages = d.begin_attribute(NLA_F_NESTED | INET_DIAG_SK_BPF_STORAGES);
    for (auto id : map_ids) {
        auto storage = d.begin_attribute(NLA_F_NESTED | SK_DIAG_BPF_STORAGE);
        d.attribute<std::uint32_t>(SK_DIAG_BPF_STORAGE_MAP_ID, id);
        d.attribute<std::uint32_t>(SK_DIAG_BPF_STORAGE_PAD, 0); // the kernel's 64-bit alignment pad
        auto value = d.begin_attribute(SK_DIAG_BPF_STORAGE_MAP_VALUE);
        auto ctx = sample_ctx(id == kCtxMapId ? 1000 : 9999);
        std::vector<std::byte> raw(value_size);
        std::memcpy(raw.data(), &ctx, std::min(value_size, sizeof(ctx)));
        for (auto b : raw)
            d.put(b);
        d.end_attribute(value);
        d.end_attribute(storage);
    }
    d.end_attribute(storages);
    d.end_message(msg);
}

void put_done(Datagram& d, int error = 0)
{
    auto msg = d.begin_message(NLMSG_DONE);
    d.put(error);
    d.end_message(msg);
}

std::span<const std::byte> span_of(Datagram& d)
{
    return {d.bytes().data(), d.bytes().size()};
}

TEST(SockDiagReply, SocketWithEndpointsCgroupAndStorage)
{
    Datagram d;
    put_socket(d);
    std::vector<DiagSocket> out;
    EXPECT_FALSE(parse_inet_diag_reply(span_of(d), kCtxMapId, out));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].cookie, 0x1122334455667788u);
    EXPECT_EQ(out[0].family, AF_INET);
    EXPECT_EQ(out[0].local, "127.0.0.1:8080");
    EXPECT_EQ(out[0].peer, "127.0.0.2:41000");
    EXPECT_EQ(out[0].cgroup_id, 4242u);
    ASSERT_TRUE(out[0].ctx.has_value());
    EXPECT_EQ(out[0].ctx->redirected_bytes, 1000u);
    EXPECT_EQ(out[0].ctx->redirected_msgs, 3u);
    EXPECT_EQ(out[0].ctx->passed_bytes, 5u);
    EXPECT_EQ(out[0].ctx->key.role, static_cast<std::uint32_t>(SMD_ROLE_PASSIVE));
}

TEST(SockDiagReply, SeveralMessagesThenDone)
{
    Datagram d;
    put_socket(d);
    put_socket(d, {});
    put_done(d);
    std::vector<DiagSocket> out;
    EXPECT_TRUE(parse_inet_diag_reply(span_of(d), kCtxMapId, out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_TRUE(out[0].ctx.has_value());
    EXPECT_FALSE(out[1].ctx.has_value()) << "a socket sockmapd never touched has no storage";
}

TEST(SockDiagReply, OnlyTheContextMapsValueOfTheRightSizeCounts)
{
    Datagram other_map;
    put_socket(other_map, {12, kCtxMapId});
    std::vector<DiagSocket> out;
    parse_inet_diag_reply(span_of(other_map), kCtxMapId, out);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_TRUE(out[0].ctx.has_value());
    EXPECT_EQ(out[0].ctx->redirected_bytes, 1000u) << "value of map 12 taken";

    Datagram wrong_size;
    put_socket(wrong_size, {kCtxMapId}, sizeof(smd_sock_ctx) - 8);
    out.clear();
    parse_inet_diag_reply(span_of(wrong_size), kCtxMapId, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_FALSE(out[0].ctx.has_value()) << "a value of another layout must not be read as smd_sock_ctx";
}

TEST(SockDiagReply, Ipv6Endpoints)
{
    Datagram d;
    auto msg = d.begin_message(SOCK_DIAG_BY_FAMILY);
    inet_diag_msg m {};
    m.idiag_family = AF_INET6;
    m.id.idiag_sport = htons(443);
    m.id.idiag_dport = htons(50000);
    m.id.idiag_src[3] = htonl(1);                          // ::1
    m.id.idiag_dst[2] = htonl(0xffff), m.id.idiag_dst[3] = htonl(0x0a000001); // ::ffff:10.0.0.1
    d.put(m);
    d.end_message(msg);
    std::vector<DiagSocket> out;
    parse_inet_diag_reply(span_of(d), kCtxMapId, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].local, "[::1]:443");
    EXPECT_EQ(out[0].peer, "[::ffff:10.0.0.1]:50000");
    EXPECT_FALSE(out[0].cgroup_id.has_value());
}

TEST(SockDiagReply, KernelErrorsCarryTheirErrno)
{
    Datagram error;
    auto msg = error.begin_message(NLMSG_ERROR);
    error.put(nlmsgerr {.error = -EPERM, .msg = {}});
    error.end_message(msg);
    std::vector<DiagSocket> out;
    try {
        parse_inet_diag_reply(span_of(error), kCtxMapId, out);
        ADD_FAILURE() << "NLMSG_ERROR -EPERM accepted";
    } catch (const SockDiagError& e) {
        EXPECT_EQ(e.error, EPERM);
        EXPECT_CONTAINS(std::string(e.what()), "EPERM");
    }

    Datagram done;
    put_done(done, -EINVAL);
    EXPECT_THROW(parse_inet_diag_reply(span_of(done), kCtxMapId, out), SockDiagError);
}

TEST(SockDiagReply, MalformedLengthsAreRefusedNotReadPast)
{
    std::vector<DiagSocket> out;
    {
        Datagram d;
        put_socket(d);
        d.patch_u32(0, static_cast<std::uint32_t>(d.bytes().size() + 4)); // nlmsg_len past the datagram
        auto message = test::error_message([&] { parse_inet_diag_reply(span_of(d), kCtxMapId, out); }, "long nlmsg_len");
        EXPECT_CONTAINS(message, "malformed sock_diag reply");
    }
    {
        Datagram d;
        put_socket(d);
        d.patch_u32(0, 8); // shorter than its own header
        test::error_message([&] { parse_inet_diag_reply(span_of(d), kCtxMapId, out); }, "short nlmsg_len");
    }
    {
        Datagram d;
        put_socket(d);
        // The first attribute (cgroup id) claims more bytes than the message holds.
        std::size_t first_attribute = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(inet_diag_msg));
        d.patch_u16(first_attribute, 0xfff0);
        test::error_message([&] { parse_inet_diag_reply(span_of(d), kCtxMapId, out); }, "long nla_len");
    }
    {
        Datagram d;
        auto msg = d.begin_message(SOCK_DIAG_BY_FAMILY);
        d.put(std::uint32_t {0}); // far shorter than inet_diag_msg
        d.end_message(msg);
        test::error_message([&] { parse_inet_diag_reply(span_of(d), kCtxMapId, out); }, "short inet_diag_msg");
    }
    {
        Datagram d;
        put_socket(d);
        d.bytes().resize(d.bytes().size() + 7); // trailing garbage shorter than a header
        test::error_message([&] { parse_inet_diag_reply(span_of(d), kCtxMapId, out); }, "trailing bytes");
    }
}

TEST(SockDiagRequest, DumpOfTcpWithTheStorageMapFd)
{
    auto bytes = inet_diag_dump_request(AF_INET6, 9, 5);
    nlmsghdr header;
    std::memcpy(&header, bytes.data(), sizeof(header));
    EXPECT_EQ(header.nlmsg_len, bytes.size());
    EXPECT_EQ(header.nlmsg_type, SOCK_DIAG_BY_FAMILY);
    EXPECT_EQ(header.nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
    EXPECT_EQ(header.nlmsg_seq, 5u);
    inet_diag_req_v2 request;
    std::memcpy(&request, bytes.data() + NLMSG_HDRLEN, sizeof(request));
    EXPECT_EQ(request.sdiag_family, AF_INET6);
    EXPECT_EQ(request.sdiag_protocol, IPPROTO_TCP);
    EXPECT_EQ(request.idiag_states & (1u << 10), 0u) << "listeners carry no sockmapd context";
    EXPECT_NE(request.idiag_states & (1u << 1), 0u) << "established sockets must be dumped";

    std::size_t at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(request));
    ASSERT_EQ(bytes.size(), at + 2 * NLA_HDRLEN + sizeof(std::uint32_t));
    nlattr outer, inner;
    std::memcpy(&outer, bytes.data() + at, sizeof(outer));
    std::memcpy(&inner, bytes.data() + at + NLA_HDRLEN, sizeof(inner));
    EXPECT_EQ(outer.nla_type & NLA_TYPE_MASK, INET_DIAG_REQ_SK_BPF_STORAGES);
    EXPECT_EQ(inner.nla_type, SK_DIAG_BPF_STORAGE_REQ_MAP_FD);
    std::uint32_t fd;
    std::memcpy(&fd, bytes.data() + at + 2 * NLA_HDRLEN, sizeof(fd));
    EXPECT_EQ(fd, 9u);

    EXPECT_EQ(inet_diag_dump_request(AF_INET, -1, 1).size(), at) << "no storage attribute without a map fd";
}

} // namespace
} // namespace sockmapd
