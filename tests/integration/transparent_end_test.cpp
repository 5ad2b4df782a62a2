// The end of a stream (FIN or RST) reaches a reader that is in the middle of a read, however much the redirect
// queued for it. While a reader copies, its socket is locked and arriving segments wait in the socket backlog,
// which the kernel bounds together with the receive memory, where the redirect queue counts: past that bound a
// segment is dropped (TcpExtTCPBacklogDrop). A FIN comes again after a retransmission timer; a RST never did, and
// the reader waited forever (the relay stress test's rare hang). Two layers now (docs/design.md, "Room in the
// backlog"): the daemon raises the reader's receive buffer as its queue grows, so that nothing is dropped; and
// where it cannot (tcp_rmem's maximum reached), the reader's socket probes its peer, whose stack sends the reset
// again ("A reset the reader missed").
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>

#include "env.hpp"
#include "held_copy.hpp"
#include "modes.hpp"
#include "netns.hpp"
#include "process.hpp"

namespace smdtest {
namespace {

using namespace std::chrono_literals;

enum class End { Fin, Reset };
// Whether the daemon raises the reader's receive buffer (--raise-receive-buffers on: this host's 6.18.44 would
// leave it off by default, design.md "Room in the backlog"), or keeps its defaults while the buffer is at
// tcp_rmem's maximum already (set to the default buffer in the test's namespace), where nothing can be raised.
enum class Buffer { Grows, AtMaximum };

constexpr std::uint64_t kSeed = 0x5e7d;
constexpr std::size_t kChunk = 64 * 1024;
// More than the receiver's backlog bound here, less than the first queue cap (a fifth of SO_RCVBUF plus the
// sender's 2.6 to 4 MB send buffer), and what TCP takes at once into the sender's buffer. A writer that kept going
// would make the connection leave for TCP, whose data grows the reader's buffer (and the bound) as it arrives.
constexpr std::uint64_t kStream = 480 * 1024;
constexpr auto kEndDeadline = 5s;

struct ReceiveMemory {
    std::uint64_t rmem = 0, rcvbuf = 0, sndbuf = 0;
    // What tcp_add_backlog() lets the receive memory and the backlog hold together before it drops a segment.
    std::uint64_t backlog_bound() const { return 2 * rcvbuf + sndbuf / 2 + 64 * 1024; }
    std::string text() const
    {
        return std::to_string(rmem) + " (SO_RCVBUF " + std::to_string(rcvbuf) + ", backlog bound " +
               std::to_string(backlog_bound()) + ")";
    }
};

ReceiveMemory receive_memory(int fd)
{
    std::uint32_t meminfo[SK_MEMINFO_VARS] = {};
    socklen_t len = sizeof(meminfo);
    if (::getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &len) != 0)
        return {};
    return {meminfo[SK_MEMINFO_RMEM_ALLOC], meminfo[SK_MEMINFO_RCVBUF], meminfo[SK_MEMINFO_SNDBUF]};
}

// Has this thread's namespace keep receive buffers at their default size: tcp_rmem's maximum = its default.
void pin_receive_buffers_at_their_default()
{
    std::ifstream in("/proc/sys/net/ipv4/tcp_rmem");
    std::uint64_t low = 0, initial = 0, high = 0;
    ASSERT_TRUE(in >> low >> initial >> high) << "cannot read net.ipv4.tcp_rmem";
    std::ofstream out("/proc/sys/net/ipv4/tcp_rmem");
    out << low << " " << initial << " " << initial << "\n";
    out.close();
    ASSERT_TRUE(out) << "cannot write net.ipv4.tcp_rmem in the test's namespace";
}

// The receiver sizes its send buffer small (its backlog bound with it), and the writer sends what the kernel takes
// at once, which nobody reads yet. Returns its length.
std::uint64_t queue_a_stream(const TcpPair& pair, Mode mode)
{
    int sndbuf = 4096;
    EXPECT_EQ(::setsockopt(pair.server.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    auto sent = send_stream(pair.client.get(), kSeed, kStream, {kChunk}, Clock::now() + 10s);
    EXPECT_EQ(sent.error, "") << label(mode, "the writer");
    return sent.digest.length;
}

// A read held inside its copy (the socket locked) while the writer ends the stream: what it returned, and when
// its copy was let go. The end waits in the reader's socket backlog, or is dropped there.
struct HeldRead {
    std::unique_ptr<HeldCopyBuffer> buffer;
    bool touched = false;
    ssize_t first = -1;
    int first_errno = 0;
    Clock::time_point released;
};

HeldRead end_during_a_held_read(TcpPair& pair, bool reset)
{
    HeldRead held;
    held.buffer = std::make_unique<HeldCopyBuffer>(kChunk);
    std::thread reader([&] {
        held.first = ::recv(pair.server.get(), held.buffer->data(), held.buffer->size(), 0);
        held.first_errno = errno;
    });
    held.touched = held.buffer->wait_until_touched(5s);
    if (held.touched) {
        if (reset) {
            linger abort{1, 0};
            ::setsockopt(pair.client.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
            pair.client = {};
        } else {
            ::shutdown(pair.client.get(), SHUT_WR);
        }
        std::this_thread::sleep_for(50ms); // the segment reaches the locked socket: its backlog
    }
    held.buffer->release();
    held.released = Clock::now();
    reader.join();
    return held;
}

// The held read and the reads after it returned the stream's first bytes, in order.
void expect_the_stream_start(const HeldRead& held, const Digest& rest, Mode mode)
{
    Sha256 held_sha;
    held_sha.update(held.buffer->data(), static_cast<std::size_t>(held.first));
    EXPECT_EQ((Digest{static_cast<std::uint64_t>(held.first), held_sha.hex()}), expected_digest(kSeed, held.first))
        << label(mode, "the held read's bytes are not the stream's start");
    PatternStream stream(kSeed);
    stream.seek(static_cast<std::uint64_t>(held.first));
    EXPECT_EQ(rest, continued_digest(stream, rest.length))
        << label(mode, "the bytes after the held read are not the stream's");
}

class TransparentEnd : public BaselineThenAccelerated, public ::testing::WithParamInterface<std::tuple<End, Buffer>> {};

// The receiver sized its send buffer (nginx's listen sndbuf=, haproxy's tune.sndbuf.client: an accepted socket
// inherits it), which makes its backlog bound small: 2 x 128 KiB + 4 KiB + 64 KiB. Its reader reads nothing while
// the writer sends what the kernel takes at once; then the reader's recv() is held inside its copy while the writer
// ends the stream, and goes on. Where the buffer may grow, the daemon raises it before the held read (the test
// waits for that: a reader that copies at once takes the socket's lock first); where it may not, the end is
// dropped at the backlog and comes again.
TEST_P(TransparentEnd, ReachesAReaderInTheMiddleOfARead)
{
    const bool reset = std::get<0>(GetParam()) == End::Reset;
    const bool grows = std::get<1>(GetParam()) == Buffer::Grows;
    NetNs ns("smd-end"); // the drop counter is per namespace: nothing else runs in this one
    if (!grows) {
        InNetns in(ns);
        pin_receive_buffers_at_their_default();
        if (HasFatalFailure())
            return;
    }
    for (Mode mode : kModes) {
        enter(mode, grows ? std::vector<std::string>{"--raise-receive-buffers", "on"} : std::vector<std::string>{});
        InNetns in(ns);
        auto pair = open_pair("127.0.0.1");
        const std::uint64_t sent = queue_a_stream(pair, mode);
        if (HasFailure())
            return;

        auto memory = receive_memory(pair.server.get());
        if (grows && accelerated()) {
            auto deadline = Clock::now() + time_budget(2s);
            while (memory.backlog_bound() < 2 * memory.rmem && Clock::now() < deadline) {
                std::this_thread::sleep_for(5ms);
                memory = receive_memory(pair.server.get());
            }
            EXPECT_GE(memory.backlog_bound(), 2 * memory.rmem)
                << label(mode, "the daemon did not raise the receive buffer: receive memory ") << memory.text();
        }
        record(label(mode, "receive_memory_when_the_end_arrives"), memory.text());

        auto drops_before = tcp_ext_counter("TCPBacklogDrop");
        auto held = end_during_a_held_read(pair, reset);
        ASSERT_TRUE(held.touched) << label(mode, "the reader's recv() never started its copy");
        ASSERT_GT(held.first, 0) << label(mode, "first recv: ") << errno_name(held.first_errno);
        const auto first = held.first;
        const auto released = held.released;

        // The rest, until the end arrives.
        auto rest = recv_stream(pair.server.get(), sent - static_cast<std::uint64_t>(first), true,
                                Clock::now() + kEndDeadline);
        const std::uint64_t received = static_cast<std::uint64_t>(first) + rest.digest.length;
        record(label(mode, "received_before_the_end"), std::to_string(received) + " of " + std::to_string(sent));
        record(label(mode, "end_after_the_copy_ms"), std::to_string(elapsed_ms(released)));
        record(label(mode, "segments_dropped_at_the_backlog"),
               std::to_string(tcp_ext_counter("TCPBacklogDrop") - drops_before));
        expect_the_stream_start(held, rest.digest, mode);
        if (reset) {
            EXPECT_EQ(rest.error.rfind("recv: " + std::string(std::strerror(ECONNRESET)), 0), 0u)
                << label(mode, "after ") << received << " bytes: "
                << (rest.eof ? "EOF" : rest.error.empty() ? "no reset within 5 s" : rest.error);
        } else {
            EXPECT_TRUE(rest.eof) << label(mode, "no EOF within 5 s after ") << received << " of " << sent
                                  << " bytes" << (rest.error.empty() ? "" : ": " + rest.error);
            EXPECT_EQ(received, sent) << label(mode, "bytes before EOF");
        }
        if (accelerated()) {
            EXPECT_GT(moved_since_enter("redirected_bytes"), 0u) << "nothing went through the redirect";
        }
        // Plain TCP keeps its queue within the bound; a raised buffer does as well. At tcp_rmem's maximum the end
        // is dropped (so this case exercises the recovery: a FIN retransmitted, a RST probed for, late by a timer).
        auto dropped = tcp_ext_counter("TCPBacklogDrop") - drops_before;
        if (grows || !accelerated()) {
            EXPECT_EQ(dropped, 0u) << label(mode, "the end was dropped at the reader's backlog (it came late, by a timer)");
        } else {
            EXPECT_GT(dropped, 0u) << label(mode, "nothing was dropped: this case no longer tests the recovery");
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Ends, TransparentEnd,
                         ::testing::Combine(::testing::Values(End::Fin, End::Reset),
                                            ::testing::Values(Buffer::Grows, Buffer::AtMaximum)),
                         [](const ::testing::TestParamInfo<std::tuple<End, Buffer>>& info) {
                             return std::string(std::get<0>(info.param) == End::Fin ? "Fin" : "Reset") +
                                    (std::get<1>(info.param) == Buffer::Grows ? "" : "AtRmemMax");
                         });

// The same reset, dropped while no daemon runs (an upgrade's restart, a crash, a stop before uninstall): sock_ops
// is detached, so nothing saw the writer's socket close, and the reader's socket stays in the sockhash with its peer
// gone. The next daemon finds that pair at its start, or `sockmapctl uninstall` as it takes the reader's socket out
// of the sockhash, and has the reader's socket probe for the reset, as a running daemon would have.
enum class After { NextStart, Uninstall };
std::string name_of(After after)
{
    return after == After::NextStart ? "NextStart" : "Uninstall";
}
void PrintTo(After after, std::ostream* out)
{
    *out << name_of(after);
}

class TransparentEndAfterStop : public BaselineThenAccelerated, public ::testing::WithParamInterface<After> {};

TEST_P(TransparentEndAfterStop, AResetDroppedWhileNoDaemonRanReachesTheReader)
{
    const bool uninstall = GetParam() == After::Uninstall;
    NetNs ns("smd-end");
    {
        InNetns in(ns);
        pin_receive_buffers_at_their_default(); // nothing can grow: the reset is dropped at the backlog
        if (HasFatalFailure())
            return;
    }
    for (Mode mode : kModes) {
        enter(mode);
        InNetns in(ns);
        auto pair = open_pair("127.0.0.1");
        const std::uint64_t sent = queue_a_stream(pair, mode);
        if (HasFailure())
            return;
        if (accelerated()) {
            EXPECT_GT(moved_since_enter("redirected_bytes"), 0u) << "nothing went through the redirect";
            daemon().stop(SIGTERM);
        }

        auto drops_before = tcp_ext_counter("TCPBacklogDrop");
        auto held = end_during_a_held_read(pair, true);
        ASSERT_TRUE(held.touched) << label(mode, "the reader's recv() never started its copy");
        ASSERT_GT(held.first, 0) << label(mode, "first recv: ") << errno_name(held.first_errno);
        auto dropped = tcp_ext_counter("TCPBacklogDrop") - drops_before;
        std::optional<Process> uninstalling;
        const std::string uninstall_output = daemon().log_path() + ".uninstall";
        if (accelerated()) {
            EXPECT_GT(dropped, 0u) << "nothing was dropped: this case no longer tests the recovery";
            if (uninstall)
                uninstalling.emplace(
                    std::vector<std::string>{sockmapctl_bin(), "uninstall", "--pin-path", daemon().pin_path(),
                                             "--timeout", "30"},
                    SpawnOptions{.netns = "", .uid = std::nullopt, .output_file = uninstall_output});
            else
                daemon().start({"--max-queued-bytes", "0"});
        } else {
            EXPECT_EQ(dropped, 0u) << "plain TCP dropped the reset at the reader's backlog";
        }
        auto started = Clock::now();

        auto rest = recv_stream(pair.server.get(), sent - static_cast<std::uint64_t>(held.first), true,
                                Clock::now() + kEndDeadline);
        const std::uint64_t received = static_cast<std::uint64_t>(held.first) + rest.digest.length;
        record(label(mode, "reset_after_the_restart_ms"), std::to_string(elapsed_ms(started)));
        expect_the_stream_start(held, rest.digest, mode);
        EXPECT_EQ(rest.error.rfind("recv: " + std::string(std::strerror(ECONNRESET)), 0), 0u)
            << label(mode, "after ") << received << " bytes: "
            << (rest.eof ? "EOF" : rest.error.empty() ? "no reset within 5 s" : rest.error);
        if (uninstalling) {
            auto code = uninstalling->wait(30s);
            std::ifstream in(uninstall_output);
            std::string output(std::istreambuf_iterator<char>(in), {});
            std::filesystem::remove(uninstall_output);
            ASSERT_TRUE(code.has_value()) << "uninstall still running after 30 s";
            EXPECT_EQ(*code, 0) << output;
            EXPECT_NE(output.find("1 socket whose peer closed while no daemon ran probes"), std::string::npos)
                << output;
        } else if (accelerated()) {
            auto status = daemon().status();
            EXPECT_EQ(status["sockets"], 0u) << status.dump();
            EXPECT_EQ(status["pairs"], 0u) << status.dump();
            EXPECT_EQ(status["half_pairs"], 0u) << status.dump();
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Recovery, TransparentEndAfterStop, ::testing::Values(After::NextStart, After::Uninstall),
                         [](const ::testing::TestParamInfo<After>& info) { return name_of(info.param); });

} // namespace
} // namespace smdtest
