// Write sizes, read sizes, iovec counts, sendfile(2) and corking: every byte arrives once, in order, redirected.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "bounded_io.hpp"
#include "fixture.hpp"

namespace smdtest {
namespace {

constexpr auto kTimeout = std::chrono::seconds(60);
constexpr std::uint64_t kMiB = 1 << 20;

// Sends on one socket of a connection; returns what it sent (digest) or why it stopped.
using Sender = std::function<TransferResult(int fd, std::uint64_t seed, std::uint64_t length, Clock::time_point)>;

struct Duplex {
    TransferResult client_sent, server_received, server_sent, client_received;
};

// Both directions at once; each sender shuts down its write side when done, each receiver reads to EOF.
Duplex run_duplex(const TcpPair& pair, std::uint64_t len_cs, std::uint64_t len_sc, std::size_t read_size,
                  const Sender& send)
{
    Duplex r;
    auto deadline = Clock::now() + kTimeout;
    auto sender = [&](int fd, std::uint64_t seed, std::uint64_t len, TransferResult& out) {
        out = send(fd, seed, len, deadline);
        ::shutdown(fd, SHUT_WR);
    };
    std::thread c2s(sender, pair.client.get(), 101, len_cs, std::ref(r.client_sent));
    std::thread s2c(sender, pair.server.get(), 202, len_sc, std::ref(r.server_sent));
    std::thread server_rx([&] { r.server_received = recv_stream(pair.server.get(), len_cs, true, deadline, read_size); });
    r.client_received = recv_stream(pair.client.get(), len_sc, true, deadline, read_size);
    c2s.join();
    s2c.join();
    server_rx.join();
    return r;
}

void expect_intact(const Duplex& r, std::uint64_t len_cs, std::uint64_t len_sc)
{
    EXPECT_EQ(r.client_sent.error, "");
    EXPECT_EQ(r.server_sent.error, "");
    EXPECT_EQ(r.server_received.error, "");
    EXPECT_EQ(r.client_received.error, "");
    EXPECT_TRUE(r.server_received.eof);
    EXPECT_TRUE(r.client_received.eof);
    auto cs = expected_digest(101, len_cs), sc = expected_digest(202, len_sc);
    EXPECT_TRUE(digest_is(r.client_sent.digest, cs));
    EXPECT_TRUE(digest_is(r.server_sent.digest, sc));
    EXPECT_TRUE(digest_is(r.server_received.digest, cs)) << "client->server stream damaged";
    EXPECT_TRUE(digest_is(r.client_received.digest, sc)) << "server->client stream damaged";
}

// Every byte of the connection went through the redirect, none over TCP.
void expect_all_redirected(const Counters& before, const Counters& after, std::uint64_t bytes)
{
    EXPECT_EQ(moved(before, after, "pairs_made"), 1u);
    EXPECT_EQ(moved(before, after, "redirected_bytes"), bytes);
    EXPECT_EQ(moved(before, after, "fallback_bytes"), 0u);
}

Sender plain_sends(std::vector<std::size_t> sizes)
{
    return [sizes](int fd, std::uint64_t seed, std::uint64_t length, Clock::time_point deadline) {
        return send_stream(fd, seed, length, sizes, deadline);
    };
}

// ---------------------------------------------------------------------------------------------------------
// send(2) sizes x recv(2) sizes

struct SizeCase {
    const char* name;
    std::vector<std::size_t> write_sizes;
    std::size_t read_size;
    std::uint64_t length; // per direction
    const char* addr;
};

class WriteSizes : public IntegrationTest, public ::testing::WithParamInterface<SizeCase> {};

TEST_P(WriteSizes, EveryByteArrivesOnceInOrderThroughTheRedirect)
{
    const auto& c = GetParam();
    daemon().start();
    auto before = read_counters(daemon());
    auto pair = open_pair(c.addr);
    auto start = Clock::now();
    auto r = run_duplex(pair, c.length, c.length, c.read_size, plain_sends(c.write_sizes));
    record("duplex_ms", std::to_string(elapsed_ms(start)));
    expect_intact(r, c.length, c.length);
    pair = {};
    auto after = read_counters(daemon());
    expect_all_redirected(before, after, 2 * c.length);
    record("redirected_messages", moved(before, after, "redirected_messages"));
}

void PrintTo(const SizeCase& c, std::ostream* os) { *os << c.name; }

// 1 B writes cost one sk_msg verdict and one queued message each: a few hundred KiB keep the run short.
INSTANTIATE_TEST_SUITE_P(
    Sizes, WriteSizes,
    ::testing::Values(SizeCase{"w1_r64k", {1}, 65536, 256 << 10, "127.0.0.1"},
                      SizeCase{"w1_r1", {1}, 1, 32 << 10, "127.0.0.1"},
                      SizeCase{"w3_r7", {3}, 7, 256 << 10, "127.0.0.1"},
                      SizeCase{"w4095_r64k", {4095}, 65536, 4 * kMiB, "127.0.0.1"},
                      SizeCase{"w4096_r7", {4096}, 7, 1 * kMiB, "127.0.0.1"},
                      SizeCase{"w4097_r64k", {4097}, 65536, 4 * kMiB, "127.0.0.1"},
                      SizeCase{"w64k_r7", {65536}, 7, 1 * kMiB, "127.0.0.1"},
                      SizeCase{"w64k_r64k", {65536}, 65536, 8 * kMiB, "127.0.0.1"},
                      SizeCase{"w1m_r64k", {1 << 20}, 65536, 8 * kMiB, "127.0.0.1"},
                      SizeCase{"mixed_r4093", {1, 3, 4095, 4096, 4097, 65536, 1 << 20}, 4093, 8 * kMiB, "127.0.0.1"},
                      SizeCase{"w1_r7_v6", {1}, 7, 128 << 10, "::1"},
                      SizeCase{"mixed_r64k_v6", {1, 3, 4095, 4096, 4097, 65536, 1 << 20}, 65536, 8 * kMiB, "::1"}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------------------
// writev(2) with iovec counts around MAX_SKB_FRAGS (17) and at IOV_MAX (1024)

// Odd lengths from 1 to 8999 bytes: many iovecs straddle page boundaries, some are a single byte.
std::size_t odd_length(std::uint64_t i)
{
    return static_cast<std::size_t>((i * 2654435761u) % 9000) | 1;
}

// Sends the stream with writev() of `iov_count` iovecs, each in its own spot of a buffer whose gaps are filled
// with 0xEE: a kernel that read past an iovec's end would put 0xEE bytes into the stream.
Sender writev_sends(int iov_count)
{
    return [iov_count](int fd, std::uint64_t seed, std::uint64_t length, Clock::time_point deadline) {
        constexpr std::size_t kGap = 13;
        TransferResult result;
        PatternStream stream(seed);
        Sha256 sha;
        std::vector<std::uint8_t> arena;
        std::vector<iovec> iov(iov_count);
        std::uint64_t sent = 0, call = 0;
        while (sent < length && result.error.empty()) {
            // Lay out one call's iovecs.
            std::vector<std::size_t> lens;
            std::uint64_t batch = 0;
            for (int i = 0; i < iov_count && sent + batch < length; ++i) {
                std::size_t len = std::min<std::uint64_t>(odd_length(call * 1024 + i), length - sent - batch);
                lens.push_back(len);
                batch += len;
            }
            arena.assign(batch + kGap * (lens.size() + 1), 0xEE);
            std::size_t at = kGap;
            for (std::size_t i = 0; i < lens.size(); ++i) {
                stream.fill(arena.data() + at, lens[i]);
                sha.update(arena.data() + at, lens[i]);
                iov[i] = {arena.data() + at, lens[i]};
                at += lens[i] + kGap;
            }
            ++call;
            // Send it, following partial writes across iovec boundaries.
            std::size_t first = 0, count = lens.size();
            std::uint64_t left = batch;
            while (left > 0) {
                ssize_t n = ::writev(fd, iov.data() + first, static_cast<int>(count - first));
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    if (!wait_event(fd, POLLOUT, deadline)) {
                        result.error = "writev timed out after " + std::to_string(sent) + " bytes";
                        break;
                    }
                    continue;
                }
                if (n <= 0) {
                    result.error = "writev: " + errno_name(errno);
                    break;
                }
                left -= n;
                sent += n;
                for (std::size_t done = n; done > 0;) {
                    std::size_t take = std::min(done, iov[first].iov_len);
                    iov[first].iov_base = static_cast<std::uint8_t*>(iov[first].iov_base) + take;
                    iov[first].iov_len -= take;
                    done -= take;
                    if (iov[first].iov_len == 0)
                        ++first;
                }
                while (first < count && iov[first].iov_len == 0)
                    ++first;
            }
        }
        result.digest = {sent, sha.hex()};
        return result;
    };
}

class Writev : public IntegrationTest, public ::testing::WithParamInterface<int> {};

TEST_P(Writev, OddSizedIovecsArriveIntact)
{
    int iov_count = GetParam();
    std::uint64_t length = iov_count >= 1024 ? 16 * kMiB : 2 * kMiB;
    daemon().start();
    auto before = read_counters(daemon());
    auto pair = open_pair("127.0.0.1");
    auto r = run_duplex(pair, length, length, 65536, writev_sends(iov_count));
    expect_intact(r, length, length);
    pair = {};
    auto after = read_counters(daemon());
    expect_all_redirected(before, after, 2 * length);
    record("redirected_messages", moved(before, after, "redirected_messages"));
}

INSTANTIATE_TEST_SUITE_P(IovecCounts, Writev, ::testing::Values(16, 17, 18, 19, 1024),
                         [](const auto& info) { return "iov" + std::to_string(info.param); });

// ---------------------------------------------------------------------------------------------------------
// sendfile(2): what a static file server does (server -> client), from a file with random content

class TempFile {
public:
    TempFile(std::uint64_t seed, std::uint64_t length)
    {
        char path[] = "/tmp/smd-sendfile-XXXXXX";
        fd_ = Fd(::mkstemp(path));
        ::unlink(path);
        PatternStream stream(seed);
        std::vector<std::uint8_t> buf(kMiB);
        for (std::uint64_t done = 0; done < length;) {
            std::size_t n = std::min<std::uint64_t>(buf.size(), length - done);
            stream.fill(buf.data(), n);
            if (::write(fd_.get(), buf.data(), n) != static_cast<ssize_t>(n))
                throw std::runtime_error("write temp file: " + errno_name(errno));
            done += n;
        }
    }
    int get() const { return fd_.get(); }

private:
    Fd fd_;
};

// Sends the whole file with sendfile() in chunks of varying size, advancing the file offset by hand.
TransferResult sendfile_all(int sock, int file, std::uint64_t length, Clock::time_point deadline)
{
    static const std::size_t kChunks[] = {kMiB, 4097, 3 * 65536 + 1, 7, 8 * kMiB};
    TransferResult result;
    off_t offset = 0;
    std::size_t which = 0;
    while (static_cast<std::uint64_t>(offset) < length) {
        std::size_t want = std::min<std::uint64_t>(kChunks[which++ % std::size(kChunks)], length - offset);
        ssize_t n = ::sendfile(sock, file, &offset, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_event(sock, POLLOUT, deadline)) {
                result.error = "sendfile timed out at offset " + std::to_string(offset);
                break;
            }
            continue;
        }
        if (n <= 0) {
            result.error = "sendfile: " + errno_name(n < 0 ? errno : EIO) + " at offset " + std::to_string(offset);
            break;
        }
    }
    result.digest.length = offset;
    return result;
}

class Sendfile : public IntegrationTest {};

TEST_F(Sendfile, RandomFileServedBySendfileArrivesIntact)
{
    constexpr std::uint64_t kSize = 32 * kMiB;
    constexpr std::uint64_t kSeed = 77;
    TempFile file(kSeed, kSize);
    daemon().start();
    auto before = read_counters(daemon());
    auto pair = open_pair("127.0.0.1");
    auto deadline = Clock::now() + kTimeout;
    TransferResult sent;
    std::thread server([&] {
        sent = sendfile_all(pair.server.get(), file.get(), kSize, deadline);
        ::shutdown(pair.server.get(), SHUT_WR);
    });
    auto received = recv_stream(pair.client.get(), kSize, true, deadline);
    server.join();
    EXPECT_EQ(sent.error, "");
    EXPECT_EQ(sent.digest.length, kSize);
    EXPECT_EQ(received.error, "");
    EXPECT_TRUE(received.eof);
    EXPECT_TRUE(digest_is(received.digest, expected_digest(kSeed, kSize))) << "file content damaged on the way";
    pair = {};
    auto after = read_counters(daemon());
    expect_all_redirected(before, after, kSize);
    record("sendfile_redirected_messages", moved(before, after, "redirected_messages"));
}

// ---------------------------------------------------------------------------------------------------------
// MSG_MORE and TCP_CORK

void set_cork(int fd, bool on)
{
    int v = on ? 1 : 0;
    EXPECT_EQ(::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v)), 0) << errno_name(errno);
}

// Sends the stream in mixed sizes, every other send with MSG_MORE, with TCP_CORK toggled every 5 sends and
// left on at the end: shutdown() must still push the tail out.
Sender corked_sends()
{
    return [](int fd, std::uint64_t seed, std::uint64_t length, Clock::time_point deadline) {
        static const std::size_t kSizes[] = {100, 1, 4097, 65536, 3, 70000, 1448, 9};
        TransferResult result;
        PatternStream stream(seed);
        Sha256 sha;
        std::vector<std::uint8_t> buf(70000);
        std::uint64_t sent = 0, n = 0;
        bool corked = false;
        while (sent < length) {
            if (n % 5 == 0) {
                corked = !corked;
                set_cork(fd, corked);
            }
            std::size_t len = std::min<std::uint64_t>(kSizes[n % std::size(kSizes)], length - sent);
            stream.fill(buf.data(), len);
            sha.update(buf.data(), len);
            auto w = write_all(fd, buf.data(), len, deadline, n % 2 ? MSG_MORE : 0);
            sent += w.bytes;
            ++n;
            if (!w.ok()) {
                result.error = "send: " + w.describe();
                break;
            }
        }
        set_cork(fd, true);
        result.digest = {sent, sha.hex()};
        return result;
    };
}

class Cork : public IntegrationTest {
protected:
    // How long 100 bytes sent with TCP_CORK set (no uncork) or with MSG_MORE take to become readable.
    void measure_held_back_send(const std::string& label)
    {
        auto pair = open_pair("127.0.0.1");
        char buf[100] = {};
        set_cork(pair.client.get(), true);
        auto start = Clock::now();
        ASSERT_TRUE(write_all(pair.client.get(), buf, sizeof(buf), start + std::chrono::seconds(5)).ok());
        bool arrived = wait_event(pair.server.get(), POLLIN, start + std::chrono::seconds(2));
        record(label + "_tcp_cork_100B_readable_after_ms", arrived ? std::to_string(elapsed_ms(start)) : "never (2 s)");
        EXPECT_TRUE(arrived) << "corked bytes never became readable";
        ASSERT_TRUE(read_exact(pair.server.get(), buf, sizeof(buf), Clock::now() + std::chrono::seconds(5)).ok());

        set_cork(pair.client.get(), false);
        start = Clock::now();
        ASSERT_TRUE(write_all(pair.client.get(), buf, sizeof(buf), start + std::chrono::seconds(5), MSG_MORE).ok());
        arrived = wait_event(pair.server.get(), POLLIN, start + std::chrono::seconds(2));
        record(label + "_msg_more_100B_readable_after_ms", arrived ? std::to_string(elapsed_ms(start)) : "never (2 s)");
        EXPECT_TRUE(arrived) << "MSG_MORE bytes never became readable";
        ASSERT_TRUE(read_exact(pair.server.get(), buf, sizeof(buf), Clock::now() + std::chrono::seconds(5)).ok());
    }
};

TEST_F(Cork, MsgMoreAndTcpCorkToggledDeliverEverything)
{
    constexpr std::uint64_t kLength = 4 * kMiB;
    daemon().start();
    auto before = read_counters(daemon());
    auto pair = open_pair("127.0.0.1");
    auto r = run_duplex(pair, kLength, kLength, 65536, corked_sends());
    expect_intact(r, kLength, kLength);
    pair = {};
    expect_all_redirected(before, read_counters(daemon()), 2 * kLength);
}

// Plain TCP holds a corked partial segment for up to 200 ms; the redirect has no segments to hold.
// Recorded, not asserted: either is correct as long as the bytes arrive.
TEST_F(Cork, HeldBackSmallWriteLatencyBaselineVersusAccelerated)
{
    measure_held_back_send("baseline");
    daemon().start();
    auto before = read_counters(daemon());
    measure_held_back_send("accelerated");
    EXPECT_EQ(moved(before, read_counters(daemon()), "redirected_bytes"), 200u);
}

} // namespace
} // namespace smdtest
