// Half-close, abort and close on redirected connections: EOF exactly after the last byte, errors instead of
// hangs, and what each side sees compared with plain TCP.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "modes.hpp"

namespace smdtest {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1 << 20;

// Suite of the unparameterised shutdown and close cases.
class ShutdownTest : public BaselineThenAccelerated {};

// What a reader saw: a prefix of the sender's stream (checked), and how it ended.
std::string describe_end(const TransferResult& r)
{
    return std::to_string(r.digest.length) + " bytes, then " + (r.eof ? "EOF" : r.error.empty() ? "nothing" : r.error);
}

// ---------------------------------------------------------------------------------------------------------
// Half-close: A writes 1 MiB and shuts down its write side; B reads to EOF, replies 1 MiB and closes; A reads
// the reply to EOF. EOF must come exactly after the last byte, in both directions.

struct HalfCloseCase {
    const char* name;
    bool client_first;                      // the connecting side is A
    const char* addr;
    std::chrono::milliseconds reader_delay; // A starts reading the reply this long after its shutdown()
};

class HalfClose : public ShutdownTest, public ::testing::WithParamInterface<HalfCloseCase> {};

TEST_P(HalfClose, EofExactlyAfterTheLastByteBothWays)
{
    const auto& c = GetParam();
    constexpr std::uint64_t kLength = 1 * kMiB;
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair(c.addr);
        Fd& a = c.client_first ? pair.client : pair.server;
        Fd& b = c.client_first ? pair.server : pair.client;
        auto deadline = Clock::now() + 30s;
        TransferResult b_received, b_sent;
        std::thread peer([&] {
            b_received = recv_stream(b.get(), kLength, true, deadline);
            b_sent = send_stream(b.get(), 2, kLength, {65536}, deadline);
            b.reset();
        });
        auto a_sent = send_stream(a.get(), 1, kLength, {65536}, deadline);
        ::shutdown(a.get(), SHUT_WR);
        std::this_thread::sleep_for(c.reader_delay);
        auto a_received = recv_stream(a.get(), kLength, true, deadline);
        peer.join();

        EXPECT_EQ(a_sent.error, "");
        EXPECT_EQ(b_sent.error, "");
        EXPECT_EQ(b_received.error, "");
        EXPECT_TRUE(b_received.eof);
        EXPECT_TRUE(digest_is(b_received.digest, expected_digest(1, kLength)))
            << label(mode, "request side: ") << describe_end(b_received);
        EXPECT_EQ(a_received.error, "");
        EXPECT_TRUE(a_received.eof);
        // A received fewer bytes than B sent = redirected data lost when B's FIN reached A in FIN_WAIT2.
        EXPECT_TRUE(digest_is(a_received.digest, expected_digest(2, kLength)))
            << label(mode, "reply side: ") << describe_end(a_received) << " of " << kLength << " sent";
        record(label(mode, "reply_received"), describe_end(a_received));
        pair = {};
        if (mode == Mode::Accelerated)
            expect_redirected_or_left(2 * kLength, "left_backpressure"); // a slow reader may make it leave
    }
}

void PrintTo(const HalfCloseCase& c, std::ostream* os) { *os << c.name; }

// Many short half-closed exchanges of odd sizes, alternating family and which side closes first: the FIN
// races the last redirected bytes every time.
TEST_F(ShutdownTest, ManyShortHalfClosedExchangesEndExactlyAtTheLastByte)
{
    constexpr int kExchanges = 300;
    enter(Mode::Accelerated);
    std::uint64_t total = 0;
    int damaged = 0;
    for (int i = 0; i < kExchanges && damaged < 5; ++i) {
        auto pair = open_pair(i % 2 ? "::1" : "127.0.0.1");
        bool client_first = (i / 2) % 2;
        Fd& a = client_first ? pair.client : pair.server;
        Fd& b = client_first ? pair.server : pair.client;
        std::uint64_t length = 1 + (i * 7919u) % 40000;
        auto deadline = Clock::now() + 10s;
        TransferResult b_received, b_sent;
        std::thread peer([&] {
            b_received = recv_stream(b.get(), length, true, deadline, 4096);
            b_sent = send_stream(b.get(), 1000 + i, length, {1000, 7}, deadline);
            b.reset();
        });
        auto a_sent = send_stream(a.get(), i, length, {3000, 1}, deadline);
        ::shutdown(a.get(), SHUT_WR);
        auto a_received = recv_stream(a.get(), length, true, deadline, 777);
        peer.join();
        total += 2 * length;
        bool ok = a_sent.error.empty() && b_sent.error.empty() && b_received.eof && a_received.eof &&
                  b_received.digest == expected_digest(i, length) &&
                  a_received.digest == expected_digest(1000 + i, length);
        if (!ok) {
            ++damaged;
            ADD_FAILURE() << "exchange " << i << " (" << length << " bytes each way, "
                          << (client_first ? "client" : "server") << " closes first): first closer got "
                          << describe_end(a_received) << ", peer got " << describe_end(b_received);
        }
    }
    expect_redirected_or_left(total, "left_backpressure");
}

// The classic blocking client -- send the request, shutdown(SHUT_WR), block in recv() for the reply. In the
// sockhash, tcp_bpf_recvmsg() sleeps once in tcp_msg_wait_data() and returns -EAGAIN when woken without data
// (the ACK of the client's own FIN, FIN_WAIT1 -> FIN_WAIT2, is such a wake-up) where tcp_recvmsg() sleeps on.
// So a blocking socket makes its connection leave the redirect at its first send, and leaves the sockhash
// itself inside shutdown() (sockops.bpf.c): its recv() is tcp_recvmsg()'s. This client connects non-blocking and
// turns blocking afterwards, so the connection was paired first.
TEST_F(ShutdownTest, BlockingClientWaitsForTheReplyAfterItsHalfClose)
{
    constexpr std::uint64_t kLength = 1 * kMiB;
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair("127.0.0.1");
        std::thread server([&] {
            auto deadline = Clock::now() + 10s;
            auto request = recv_stream(pair.server.get(), kLength, true, deadline);
            EXPECT_TRUE(digest_is(request.digest, expected_digest(1, kLength)));
            std::this_thread::sleep_for(50ms); // the server takes a moment to answer
            EXPECT_EQ(send_stream(pair.server.get(), 2, kLength, {65536}, deadline).error, "");
            pair.server.reset();
        });
        int fd = pair.client.get();
        set_blocking(fd, true);
        std::vector<std::uint8_t> buf(65536);
        PatternStream request(1);
        std::uint64_t sent = 0;
        bool hung = run_with_watchdog(fd, 10s, [&] {
            while (sent < kLength) {
                request.fill(buf.data(), buf.size());
                ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
                if (n != static_cast<ssize_t>(buf.size()))
                    break;
                sent += n;
            }
        });
        ASSERT_FALSE(hung);
        ASSERT_EQ(sent, kLength);
        ::shutdown(fd, SHUT_WR);
        auto start = Clock::now();
        Sha256 sha;
        std::uint64_t got = 0;
        std::string failure;
        hung = run_with_watchdog(fd, 10s, [&] {
            for (;;) {
                ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
                if (n > 0) {
                    sha.update(buf.data(), n);
                    got += n;
                } else {
                    if (n < 0)
                        failure = "blocking recv() returned -1/" + errno_name(errno) + " after " +
                                  std::to_string(elapsed_ms(start)) + " ms and " + std::to_string(got) + " bytes";
                    break;
                }
            }
        });
        server.join();
        record(label(mode, "blocking_client_after_half_close"), failure.empty() ? "reply read to EOF" : failure);
        EXPECT_FALSE(hung);
        EXPECT_EQ(failure, "") << label(mode, "blocking client");
        EXPECT_TRUE(digest_is(Digest{got, sha.hex()}, expected_digest(2, kLength)));
        pair = {};
        expect_redirected_or_left(2 * kLength, "left_blocking_reader");
        if (accelerated()) {
            EXPECT_EQ(moved_since_enter("pairs_made"), 1u) << "paired while non-blocking, then stepped aside";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HalfClose,
    ::testing::Values(HalfCloseCase{"client_first", true, "127.0.0.1", 0ms},
                      HalfCloseCase{"server_first", false, "127.0.0.1", 0ms},
                      HalfCloseCase{"client_first_v6", true, "::1", 0ms},
                      HalfCloseCase{"client_first_slow_reader", true, "127.0.0.1", 200ms},
                      HalfCloseCase{"server_first_slow_reader", false, "127.0.0.1", 200ms}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------------------
// Abort and close in the middle of a transfer

// Sends stream `seed` in 64 KiB writes about 1 ms apart (so the transfer is still going when the other end
// goes away), until a send fails or `deadline`. `progress` (may be shared memory) counts acknowledged bytes.
struct PacedSend {
    std::uint64_t sent = 0;
    int err = 0;
    bool timed_out = false;
    Clock::time_point ended;
};

PacedSend send_paced(int fd, std::uint64_t seed, std::vector<std::uint8_t>& buf,
                     std::atomic<std::uint64_t>* progress, Clock::time_point deadline)
{
    PacedSend r;
    PatternStream stream(seed);
    while (Clock::now() < deadline) {
        stream.fill(buf.data(), buf.size());
        auto w = write_all(fd, buf.data(), buf.size(), deadline);
        r.sent += w.bytes;
        if (progress)
            progress->store(r.sent);
        if (!w.ok()) {
            r.err = w.err;
            r.timed_out = w.timed_out;
            break;
        }
        std::this_thread::sleep_for(1ms);
    }
    if (Clock::now() >= deadline)
        r.timed_out = true;
    r.ended = Clock::now();
    return r;
}

// After the peer went away: what one more recv and one more send on this end report (within 2 s).
std::string probe_after_peer_gone(int fd)
{
    std::string out;
    wait_event(fd, POLLIN, Clock::now() + 2s);
    char buf[4096];
    ssize_t n;
    std::uint64_t drained = 0;
    while ((n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        drained += n;
    out += "recv: " + (n == 0 ? std::string("EOF") : errno_name(errno));
    if (drained)
        out += " (after " + std::to_string(drained) + " unread bytes)";
    n = ::send(fd, buf, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    out += ", send: " + (n == 1 ? std::string("accepted") : errno_name(errno));
    return out;
}

struct AbortCase {
    const char* name;
    bool linger_reset; // SO_LINGER {1, 0}: close() sends RST; otherwise a plain close()
};

class ReceiverGone : public ShutdownTest, public ::testing::WithParamInterface<AbortCase> {};

// The receiver reads 4 MiB, then closes (plain, or with RST) while the sender keeps sending: the sender's
// writes must fail within a deadline, never block forever.
TEST_P(ReceiverGone, SenderGetsAnErrorNotAHang)
{
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair("127.0.0.1");
        std::vector<std::uint8_t> buf(65536);
        PacedSend sent;
        std::thread sender([&] { sent = send_paced(pair.client.get(), 21, buf, nullptr, Clock::now() + 20s); });
        std::vector<std::uint8_t> got(4 * kMiB), want(4 * kMiB);
        auto r = read_exact(pair.server.get(), got.data(), got.size(), Clock::now() + 10s);
        EXPECT_TRUE(r.ok()) << r.describe();
        PatternStream(21).fill(want.data(), want.size());
        EXPECT_EQ(got, want) << label(mode, "first 4 MiB damaged");
        if (GetParam().linger_reset) {
            linger lg{1, 0};
            ::setsockopt(pair.server.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        auto closed_at = Clock::now();
        pair.server.reset();
        sender.join();
        double ms = std::chrono::duration<double, std::milli>(sent.ended - closed_at).count();
        EXPECT_FALSE(sent.timed_out) << label(mode, "sender still sending 20 s after the receiver closed");
        EXPECT_TRUE(sent.err == EPIPE || sent.err == ECONNRESET) << errno_name(sent.err);
        EXPECT_LT(ms, 5000);
        record(label(mode, "sender_error"), errno_name(sent.err) + " " + std::to_string(ms) + " ms after close, " +
                                                std::to_string(sent.sent) + " bytes accepted in all");
        record(label(mode, "sender_then"), probe_after_peer_gone(pair.client.get()));
        if (mode == Mode::Accelerated) {
            // Paired and redirecting, or left for TCP and counted: a writer that runs ahead of its reader with the
            // default queue caps, or a blocking reader (design.md, "A direction's life").
            if (moved_since_enter("redirected_bytes") < 4 * kMiB) {
                EXPECT_GE(moved_since_enter("left_backpressure") + moved_since_enter("left_other") +
                              moved_since_enter("left_blocking_reader"),
                          1u);
            }
        }
    }
}

class SenderGone : public ShutdownTest, public ::testing::WithParamInterface<AbortCase> {};

// The sender closes (plain, or with RST) after 4 MiB while the receiver reads: the receiver must end with EOF
// or ECONNRESET within a deadline, and whatever it got must be an exact prefix of the stream.
TEST_P(SenderGone, ReceiverGetsEofOrResetAndAnExactPrefix)
{
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair("127.0.0.1");
        TransferResult received;
        std::thread reader([&] { received = recv_stream(pair.server.get(), ~0ull, true, Clock::now() + 20s); });
        std::vector<std::uint8_t> buf(65536);
        PatternStream stream(22);
        std::uint64_t sent = 0;
        while (sent < 4 * kMiB) {
            stream.fill(buf.data(), buf.size());
            auto w = write_all(pair.client.get(), buf.data(), buf.size(), Clock::now() + 10s);
            sent += w.bytes;
            ASSERT_TRUE(w.ok()) << w.describe();
            std::this_thread::sleep_for(1ms);
        }
        if (GetParam().linger_reset) {
            linger lg{1, 0};
            ::setsockopt(pair.client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        auto closed_at = Clock::now();
        pair.client.reset();
        reader.join();
        double ms = elapsed_ms(closed_at);
        EXPECT_TRUE(received.eof || received.error.find("reset") != std::string::npos) << received.error;
        EXPECT_EQ(received.error.find("timed out"), std::string::npos) << label(mode, "reader hung");
        EXPECT_TRUE(digest_is(received.digest, expected_digest(22, received.digest.length)))
            << label(mode, "bytes before the close are not an exact prefix of the stream");
        if (!GetParam().linger_reset) {
            EXPECT_EQ(received.digest.length, sent) << label(mode, "a plain close must deliver every byte first");
        }
        record(label(mode, "reader_saw"), describe_end(received) + " of " + std::to_string(sent) + " sent, " +
                                              std::to_string(ms) + " ms after close");
        if (mode == Mode::Accelerated) {
            EXPECT_GE(moved_since_enter("redirected_bytes"), sent);
        }
    }
}

void PrintTo(const AbortCase& c, std::ostream* os) { *os << c.name; }

// The sender queues as much as the connection takes while nobody reads (a few MiB on TCP; with the redirect
// there is no limit, so 32 MiB), then closes. Only then does the receiver start reading: after a plain close
// it must get every accepted byte and EOF; after an RST, an exact prefix.
TEST_P(SenderGone, ReceiverStartsReadingOnlyAfterTheClose)
{
    constexpr std::uint64_t kCap = 32 * kMiB;
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair("127.0.0.1");
        PatternStream stream(26);
        Sha256 sha;
        std::vector<std::uint8_t> buf(65536);
        std::uint64_t accepted = 0;
        while (accepted < kCap) {
            stream.fill(buf.data(), buf.size());
            ssize_t n = ::send(pair.client.get(), buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0)
                break;
            sha.update(buf.data(), n);
            accepted += n;
            if (static_cast<std::size_t>(n) < buf.size())
                break;
        }
        if (GetParam().linger_reset) {
            linger lg{1, 0};
            ::setsockopt(pair.client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        pair.client.reset();
        std::this_thread::sleep_for(100ms);
        auto received = recv_stream(pair.server.get(), accepted, true, Clock::now() + 20s);
        record(label(mode, "reader_after_close_with_backlog"),
               describe_end(received) + " of " + std::to_string(accepted) + " accepted");
        EXPECT_EQ(received.error.find("timed out"), std::string::npos) << label(mode, "reader hung");
        EXPECT_TRUE(digest_is(received.digest, expected_digest(26, received.digest.length)))
            << label(mode, "not an exact prefix");
        if (!GetParam().linger_reset) {
            EXPECT_TRUE(received.eof);
            EXPECT_TRUE(digest_is(received.digest, Digest{accepted, sha.hex()}))
                << label(mode, "a plain close must deliver every accepted byte");
        }
        // A reader that starts only after the close is a stalled reader: past its first queue cap the
        // connection left for TCP (design.md, "Queue caps").
        expect_redirected_or_left(accepted, "left_backpressure");
    }
}

INSTANTIATE_TEST_SUITE_P(Close, ReceiverGone,
                         ::testing::Values(AbortCase{"plain_close", false}, AbortCase{"linger_reset", true}),
                         [](const auto& info) { return std::string(info.param.name); });
INSTANTIATE_TEST_SUITE_P(Close, SenderGone,
                         ::testing::Values(AbortCase{"plain_close", false}, AbortCase{"linger_reset", true}),
                         [](const auto& info) { return std::string(info.param.name); });

// A child process that owns one end of the connection; SIGKILLed and reaped when dropped.
class ForkedPeer {
public:
    template <class Body>
    explicit ForkedPeer(Body body)
    {
        pid_ = ::fork();
        if (pid_ == 0) {
            body();
            ::_exit(0);
        }
        if (pid_ < 0)
            ADD_FAILURE() << "fork: " << errno_name(errno);
    }
    ~ForkedPeer() { kill(); }
    ForkedPeer(const ForkedPeer&) = delete;
    ForkedPeer& operator=(const ForkedPeer&) = delete;

    void kill()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
};

// One counter in memory shared with a forked child.
class SharedCounter {
public:
    SharedCounter()
        : mem_(::mmap(nullptr, sizeof(std::atomic<std::uint64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0))
    {
        value_ = new (mem_) std::atomic<std::uint64_t>(0);
    }
    ~SharedCounter() { ::munmap(mem_, sizeof(std::atomic<std::uint64_t>)); }
    std::atomic<std::uint64_t>* get() { return value_; }

private:
    void* mem_;
    std::atomic<std::uint64_t>* value_;
};

class KilledPeer : public ShutdownTest {};

// A child that owns the sending end is SIGKILLed mid-transfer: its socket is closed by the kernel. The reader
// must see EOF (or a reset) within a deadline, and every byte the child's send() returned for must be there.
TEST_F(KilledPeer, SenderKilledReaderGetsEveryAcknowledgedByteThenEnd)
{
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair("127.0.0.1");
        SharedCounter progress;
        std::vector<std::uint8_t> buf(65536);
        auto child = std::make_unique<ForkedPeer>([&] {
            send_paced(pair.client.get(), 23, buf, progress.get(), Clock::now() + 30s);
        });
        pair.client.reset(); // the child holds the only reference now
        std::vector<std::uint8_t> first(4 * kMiB);
        auto r = read_exact(pair.server.get(), first.data(), first.size(), Clock::now() + 10s);
        ASSERT_TRUE(r.ok()) << r.describe();
        child->kill();
        std::uint64_t acknowledged = progress.get()->load();
        auto killed_at = Clock::now();
        auto rest = recv_stream(pair.server.get(), ~0ull, true, Clock::now() + 10s);
        double ms = elapsed_ms(killed_at);
        EXPECT_TRUE(rest.eof || rest.error.find("reset") != std::string::npos) << rest.error;
        EXPECT_EQ(rest.error.find("timed out"), std::string::npos) << label(mode, "reader hung after the kill");
        std::uint64_t total = first.size() + rest.digest.length;
        // Every write the child finished is in; the write in progress at the kill may be partly in.
        EXPECT_GE(total, acknowledged) << label(mode, "bytes acknowledged to the killed sender never arrived");
        EXPECT_LE(total, acknowledged + buf.size());
        PatternStream stream(23);
        std::vector<std::uint8_t> want(first.size());
        stream.fill(want.data(), want.size());
        EXPECT_EQ(first, want) << label(mode, "first 4 MiB damaged");
        EXPECT_TRUE(digest_is(rest.digest, continued_digest(stream, rest.digest.length))) << label(mode, "bytes after 4 MiB damaged");
        record(label(mode, "reader_after_sender_sigkill"),
               describe_end(rest) + " after the first 4 MiB; " + std::to_string(total) + " received, " +
                   std::to_string(acknowledged) + " acknowledged to the child; " + std::to_string(ms) + " ms");
        if (mode == Mode::Accelerated) {
            // Paired and redirecting, or left for TCP and counted: a writer that runs ahead of its reader with the
            // default queue caps, or a blocking reader (design.md, "A direction's life").
            if (moved_since_enter("redirected_bytes") < 4 * kMiB) {
                EXPECT_GE(moved_since_enter("left_backpressure") + moved_since_enter("left_other") +
                              moved_since_enter("left_blocking_reader"),
                          1u);
            }
        }
    }
}

// A child that owns the reading end is SIGKILLed mid-transfer: the parent's sends must fail within a deadline.
TEST_F(KilledPeer, ReaderKilledSenderGetsAnErrorNotAHang)
{
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair("127.0.0.1");
        SharedCounter progress;
        auto child = std::make_unique<ForkedPeer>([&] {
            int fd = pair.server.get();
            set_blocking(fd, true);
            static char sink[65536];
            std::uint64_t got = 0;
            ssize_t n;
            while ((n = ::recv(fd, sink, sizeof(sink), 0)) > 0)
                progress.get()->store(got += n);
        });
        pair.server.reset();
        std::vector<std::uint8_t> buf(65536);
        PacedSend sent;
        std::atomic<std::uint64_t> sent_progress{0};
        std::thread sender([&] { sent = send_paced(pair.client.get(), 24, buf, &sent_progress, Clock::now() + 20s); });
        auto deadline = Clock::now() + 10s;
        while (progress.get()->load() < 4 * kMiB && Clock::now() < deadline)
            std::this_thread::sleep_for(1ms);
        EXPECT_GE(progress.get()->load(), 4 * kMiB) << "child did not read 4 MiB";
        auto killed_at = Clock::now();
        child->kill();
        sender.join();
        double ms = std::chrono::duration<double, std::milli>(sent.ended - killed_at).count();
        EXPECT_FALSE(sent.timed_out) << label(mode, "sender still sending 20 s after the reader was killed");
        EXPECT_TRUE(sent.err == EPIPE || sent.err == ECONNRESET) << errno_name(sent.err);
        EXPECT_LT(ms, 5000);
        record(label(mode, "sender_after_reader_sigkill"),
               errno_name(sent.err) + " " + std::to_string(ms) + " ms after the kill");
        if (mode == Mode::Accelerated) {
            // Paired and redirecting, or left for TCP and counted: a writer that runs ahead of its reader with the
            // default queue caps, or a blocking reader (design.md, "A direction's life").
            if (moved_since_enter("redirected_bytes") < 4 * kMiB) {
                EXPECT_GE(moved_since_enter("left_backpressure") + moved_since_enter("left_other") +
                              moved_since_enter("left_blocking_reader"),
                          1u);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Close with unread data

// The receiver closes with 64 KiB unread. Plain TCP answers with RST (RFC 2525, tcp_close()); with the
// redirect the unread bytes sit in the psock queue, not the TCP receive queue. Recorded per mode; asserted:
// the sender learns of it without hanging, and no kernel warning (checked by the fixture).
TEST_F(ShutdownTest, CloseWithUnreadRedirectedDataRecorded)
{
    for (Mode mode : kModes) {
        enter(mode);
        auto pair = open_pair("127.0.0.1");
        std::vector<std::uint8_t> buf(64 << 10);
        PatternStream(25).fill(buf.data(), buf.size());
        ASSERT_TRUE(write_all(pair.client.get(), buf.data(), buf.size(), Clock::now() + 5s).ok());
        ASSERT_TRUE(wait_event(pair.server.get(), POLLIN, Clock::now() + 5s));
        std::this_thread::sleep_for(50ms);
        pair.server.reset();
        std::this_thread::sleep_for(50ms);
        record(label(mode, "peer_of_close_with_unread_data"), probe_after_peer_gone(pair.client.get()));
        // Keep writing: within a deadline the sender must get EPIPE/ECONNRESET.
        auto deadline = Clock::now() + 5s;
        int err = 0;
        std::uint64_t accepted = 0;
        while (Clock::now() < deadline) {
            ssize_t n = ::send(pair.client.get(), buf.data(), 4096, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                accepted += n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                err = errno;
                break;
            }
            std::this_thread::sleep_for(1ms);
        }
        EXPECT_TRUE(err == EPIPE || err == ECONNRESET) << label(mode, "sender never told: ") << errno_name(err);
        record(label(mode, "sender_writes_after_close_with_unread_data"),
               std::to_string(accepted) + " bytes accepted, then " + errno_name(err));
        if (mode == Mode::Accelerated) {
            EXPECT_EQ(moved_since_enter("redirected_bytes"), buf.size());
        }
    }
}

} // namespace
} // namespace smdtest
