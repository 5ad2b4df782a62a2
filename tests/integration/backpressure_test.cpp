// Backpressure (design.md, "A direction's life"): a receiver that stops reading makes its connection leave the
// redirect once it holds its queue cap (here --max-queued-bytes) unread; both sockets leave the sockhash once
// nothing redirected to them is unread, and are plain TCP from then on. Every byte in order either way.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "bounded_io.hpp"
#include "checked_stream.hpp"
#include "fixture.hpp"

namespace smdtest {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
constexpr std::uint64_t kTotal = 24 * kMiB, kBeforeStall = 512 * kKiB, kLimit = 1 * kMiB;
// The first cap is --max-queued-bytes; a reader that read anything since the cap last grew doubles it when it is
// reached, so the 512 KiB read before the stall can earn a doubling or two (backpressure.bpf.h).
constexpr std::uint64_t kEarnedCap = 4 * kLimit;

struct Outcome {
    Digest sent, received;
    bool eof = false;
    std::string write_error, read_error;
    std::optional<std::uint64_t> first_mismatch;
};

class Backpressure : public IntegrationTest {
protected:
    // The client writes kTotal in 64 KiB non-blocking writes, then half-closes; halfway it waits until the server
    // has read everything so far. The server reads kBeforeStall,
    // stops for 1 s, then reads to EOF in `chunk`-byte recv() calls with `flags`, on a blocking or non-blocking
    // socket.
    Outcome transfer(bool blocking_reader, int flags, std::size_t chunk)
    {
        daemon().start({"--max-queued-bytes", "1MiB"});
        Fd listener = tcp_listen("127.0.0.1");
        client_ = tcp_connect("127.0.0.1", local_port(listener.get()));
        server_ = tcp_accept(listener.get());
        const Fd& client = client_;
        const Fd& server = server_;
        auto deadline = Clock::now() + 60s;
        Outcome out;

        StreamSource source(31, kTotal, {65536});
        std::atomic<std::uint64_t> read_so_far{0};
        std::thread writer([&] {
            bool paused = false;
            while (!source.done()) {
                if (!paused && source.sent() >= kTotal / 2) {
                    paused = true;
                    while (read_so_far < source.sent() && Clock::now() < deadline)
                        std::this_thread::sleep_for(1ms);
                }
                ssize_t n = source.send_some(client.get());
                if (n > 0)
                    continue;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    out.write_error = "send: " + errno_name(errno);
                    break;
                }
                if (!wait_event(client.get(), POLLOUT, deadline)) {
                    out.write_error = "send timed out after " + std::to_string(source.sent()) + " bytes";
                    break;
                }
            }
            ::shutdown(client.get(), SHUT_WR);
        });

        StreamSink sink(31);
        auto read_until = [&](std::uint64_t until, int recv_flags, std::size_t max) {
            while (!out.eof && out.read_error.empty() && sink.received() < until) {
                ssize_t n = sink.recv_with(server.get(), max, recv_flags);
                read_so_far = sink.received();
                out.eof = n == 0;
                if (n >= 0 || errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    out.read_error = "recv: " + errno_name(errno);
                else if (!wait_event(server.get(), POLLIN, deadline))
                    out.read_error = "recv timed out after " + std::to_string(sink.received()) + " bytes";
            }
        };
        read_until(kBeforeStall, MSG_DONTWAIT, 65536);
        std::this_thread::sleep_for(1s); // the reader stops; the writer goes on until backpressure stops it
        if (blocking_reader) {
            ::fcntl(server.get(), F_SETFL, ::fcntl(server.get(), F_GETFL) & ~O_NONBLOCK);
            timeval timeout{.tv_sec = 30, .tv_usec = 0}; // a hang becomes a short read, then a failure
            ::setsockopt(server.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        }
        read_until(~0ull, flags, chunk);
        writer.join();
        out.sent = source.digest();
        out.received = sink.digest();
        out.first_mismatch = sink.first_mismatch();
        return out;
    }

    void expect_intact(const Outcome& out)
    {
        EXPECT_EQ(out.write_error, "");
        EXPECT_EQ(out.read_error, "");
        EXPECT_TRUE(out.eof) << "no EOF after " << out.received.length << " bytes";
        EXPECT_FALSE(out.first_mismatch.has_value()) << "damaged at offset " << out.first_mismatch.value_or(0);
        EXPECT_EQ(out.sent.length, kTotal);
        EXPECT_TRUE(digest_is(out.received, out.sent)) << "content differs";
    }

    // Both sockets left the sockhash while still open (a closed socket leaves it by itself): the sweep that
    // releases them runs within milliseconds of the drain.
    void expect_released()
    {
        auto deadline = Clock::now() + 5s;
        while (daemon().counter("sockets_released") < 2 && Clock::now() < deadline)
            std::this_thread::sleep_for(10ms);
        EXPECT_EQ(daemon().counter("sockets_released"), 2u) << "a socket of the leaving connection stayed";
        EXPECT_EQ(daemon().status()["sockets"], 0) << "the sockhash still holds a socket";
    }

    Fd client_, server_;
};

TEST_F(Backpressure, StalledReaderMakesTheConnectionLeaveAndBothSocketsAreReleased)
{
    auto out = transfer(false, MSG_DONTWAIT, 65536);
    expect_intact(out);
    auto redirected = daemon().counter("redirected_bytes");
    record("nonblocking_redirected_before_leaving", std::to_string(redirected) + " of " + std::to_string(kTotal));
    EXPECT_EQ(daemon().counter("left_backpressure"), 1u) << "the stalled reader did not make the connection leave";
    // Before leaving at most what was read before the stall, the cap and the message that crossed it.
    EXPECT_LE(redirected, kBeforeStall + kEarnedCap + 128 * kKiB) << "the connection kept redirecting past its cap";
    EXPECT_GT(redirected, 0u);
    EXPECT_EQ(daemon().counter("pairs_made"), 1u);
    expect_released();
}

// A reader that turns blocking after the move reads on with plain recv(): no EAGAIN, no short read (SO_RCVTIMEO
// would turn a hang into one), because the socket leaves the sockhash and tcp_recvmsg() serves it again.
TEST_F(Backpressure, BlockingReaderAfterTheMoveReadsEveryByte)
{
    auto out = transfer(true, 0, 100003);
    expect_intact(out);
    EXPECT_EQ(daemon().counter("left_backpressure"), 1u);
    EXPECT_LE(daemon().counter("redirected_bytes"), kBeforeStall + kEarnedCap + 64 * kKiB)
        << "the direction kept redirecting past its cap";
    EXPECT_EQ(daemon().counter("pairs_made"), 1u);
    expect_released();
}

} // namespace
} // namespace smdtest
