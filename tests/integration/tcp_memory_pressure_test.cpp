// Under node-wide TCP memory pressure every direction leaves the redirect at its next send (backpressure.bpf.h,
// smd_tcp_memory_pressure). Real pressure cannot be made safely on a shared machine: tcp_mem is global, not per
// network namespace, and lowering it would put every other TCP user of the host under pressure. So the test runs
// the production path with the flag's address swapped: sock_ops stores the address of the kernel's flag in each
// socket's context, and the test points one socket's context at a kernel word that is never zero.
#include <bpf/bpf.h>
#include <sys/socket.h>

#include <fstream>
#include <thread>

#include "bounded_io.hpp"
#include "fixture.hpp"
#include "poll_until.hpp"
#include "sockmapd/shared.h"

namespace smdtest {
namespace {

using namespace std::chrono_literals;

// A symbol's address from /proc/kallsyms (0 if absent or hidden by kptr_restrict).
std::uint64_t kallsyms_address(const std::string& symbol)
{
    std::ifstream in("/proc/kallsyms");
    std::string address, type, name;
    while (in >> address >> type >> name) {
        std::string rest;
        std::getline(in, rest); // a module name, if any
        if (name == symbol)
            return std::stoull(address, nullptr, 16);
    }
    return 0;
}

class TcpMemoryPressure : public IntegrationTest {
protected:
    void SetUp() override
    {
        IntegrationTest::SetUp();
        if (HasFatalFailure() || IsSkipped())
            return;
        text_start_ = kallsyms_address("_stext");
        text_end_ = kallsyms_address("_etext");
        if (!text_start_ || !text_end_)
            GTEST_SKIP() << "/proc/kallsyms hides kernel addresses (kptr_restrict): the test needs a kernel word "
                            "it knows is never zero";
        daemon().start();
        sk_ctx_ = sockmapd::Fd(bpf_obj_get((daemon().pin_path() + "/smd_sk_ctx").c_str()));
        ASSERT_TRUE(sk_ctx_) << "open the pinned smd_sk_ctx: " << errno_name(errno);
    }

    // The socket's context as sk_msg reads it: socket storage is looked up from user space by socket fd.
    struct smd_sock_ctx context_of(int fd)
    {
        struct smd_sock_ctx ctx {};
        EXPECT_EQ(bpf_map_lookup_elem(sk_ctx_.get(), &fd, &ctx), 0) << errno_name(errno);
        return ctx;
    }

    std::uint64_t text_start_ = 0, text_end_ = 0;
    sockmapd::Fd sk_ctx_;
};

TEST_F(TcpMemoryPressure, UnderPressureADirectionLeavesAtItsNextSendAndLosesNothing)
{
    constexpr std::uint64_t kBefore = 64 * 1024, kAfter = 1 << 20;
    TcpPair pressed = open_pair("127.0.0.1");
    TcpPair calm = open_pair("127.0.0.1");
    auto deadline = Clock::now() + 20s;

    // Every socket holds the same address: one flag for the node, a static kernel variable after the kernel's text.
    auto client_ctx = context_of(pressed.client.get());
    std::uint64_t flag = client_ctx.tcp_pressure_at;
    EXPECT_NE(flag, 0u) << "sock_ops found no pressure flag";
    EXPECT_GT(flag, text_end_) << "not a kernel image address: " << std::hex << flag;
    EXPECT_EQ(context_of(pressed.server.get()).tcp_pressure_at, flag);
    EXPECT_EQ(context_of(calm.client.get()).tcp_pressure_at, flag);

    // The node is not under pressure now (the real flag reads 0): both connections redirect.
    auto before = read_counters(daemon());
    for (TcpPair* pair : {&pressed, &calm}) {
        ASSERT_EQ(send_stream(pair->client.get(), 41, kBefore, {65536}, deadline).error, "");
        auto got = recv_stream(pair->server.get(), kBefore, false, deadline);
        EXPECT_TRUE(digest_is(got.digest, expected_digest(41, kBefore)));
    }
    auto redirected = read_counters(daemon());
    EXPECT_EQ(moved(before, redirected, "redirected_bytes"), 2 * kBefore) << "is the node under TCP memory pressure?";
    EXPECT_EQ(moved(before, redirected, "left_tcp_memory_pressure"), 0u);

    // "Pressure" for one direction: its flag now reads the first word of the kernel's text.
    client_ctx = context_of(pressed.client.get());
    client_ctx.tcp_pressure_at = text_start_;
    int fd = pressed.client.get();
    ASSERT_EQ(bpf_map_update_elem(sk_ctx_.get(), &fd, &client_ctx, BPF_EXIST), 0) << errno_name(errno);

    // Its next send leaves; the stream after it goes by TCP, behind the redirected bytes, and arrives whole. The
    // other connection keeps redirecting until the release moves it too, which only the pressed one needs.
    std::thread writer([&] {
        EXPECT_EQ(send_stream(pressed.client.get(), 42, kAfter, {65536}, deadline).error, "");
        ::shutdown(pressed.client.get(), SHUT_WR);
    });
    auto got = recv_stream(pressed.server.get(), kAfter, true, deadline);
    writer.join();
    EXPECT_TRUE(got.eof);
    EXPECT_TRUE(digest_is(got.digest, expected_digest(42, kAfter))) << "bytes lost or reordered at the move";
    ASSERT_EQ(send_stream(calm.client.get(), 43, kBefore, {65536}, deadline).error, "");
    EXPECT_TRUE(digest_is(recv_stream(calm.server.get(), kBefore, false, deadline).digest, expected_digest(43, kBefore)));

    auto after = read_counters(daemon());
    EXPECT_EQ(moved(redirected, after, "left_tcp_memory_pressure"), 1u);
    EXPECT_EQ(moved(redirected, after, "fallback_backpressure"), 1u) << "one direction moved for memory";
    EXPECT_EQ(moved(redirected, after, "left_backpressure"), 0u);
    EXPECT_EQ(moved(redirected, after, "redirected_bytes"), kBefore) << "only the calm connection redirects";
    EXPECT_TRUE(poll_until([&] { return moved(before, read_counters(daemon()), "sockets_released") == 2; }, 5s))
        << "the pressed connection's sockets were not released";
}

} // namespace
} // namespace smdtest
