// Readers and clients as applications write them (TESTPLAN 21, 23 and the reader cases of issue 11): a blocking
// client that half-closes, an edge-triggered reader that trusts FIONREAD like nginx, slow, pausing and stopped
// readers, and a daemon restart in the middle of a transfer. Each half on a loopback pair in its own namespace.
#include <linux/sockios.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <fstream>
#include <thread>

#include "checked_stream.hpp"
#include "compat.hpp"

namespace smdtest {
namespace {

const std::vector<std::size_t> kWriteSizes{65536, 16384, 100000};

class Applications : public CompatTest {
protected:
    // A connected loopback pair inside `ns` (both ends non-blocking).
    static TcpPair pair_in(const NetNs& ns)
    {
        InNetns in(ns);
        return open_pair("127.0.0.1");
    }

    // kBulk bytes of stream 51 from client to server on a fresh pair in a fresh namespace. The writer sends at
    // `write_rate` bytes/s (0: as fast as it can), the server reads with `pace`; with `restart`, the daemon is
    // restarted in the middle.
    void one_way(const ReadPace& pace, std::uint64_t write_rate = 0, bool restart = false)
    {
        NetNs ns("smd-compat");
        auto pair = pair_in(ns);
        TransferResult sent, got;
        {
            ProgressWatch watch(kStall, kTransferLimit);
            watch.watch(pair.client.get());
            watch.watch(pair.server.get());
            watch.on_stall([&] { return tcp_queues(ns); });
            std::thread writer([&] {
                sent = send_stream_paced(pair.client.get(), 51, kBulk, kWriteSizes, watch.deadline(), write_rate,
                                         &watch.counter());
                ::shutdown(pair.client.get(), SHUT_WR);
            });
            std::thread reader([&] {
                got = recv_stream_paced(pair.server.get(), kBulk, true, watch.deadline(), pace, &watch.counter());
            });
            if (restart)
                restart_daemon_midway(watch, 2 * kBulk);
            writer.join();
            reader.join();
            watch.stop();
            EXPECT_FALSE(watch.fired()) << watch.reason();
            EXPECT_EQ(sent.error, "") << "writer: " << failure_of(watch, sent.error);
            EXPECT_EQ(got.error, "") << "reader: " << failure_of(watch, got.error);
        }
        EXPECT_TRUE(got.eof) << "no EOF after " << got.digest.length << " bytes";
        EXPECT_TRUE(digest_is(got.digest, expected_digest(51, kBulk))) << "the stream as the reader got it";
        expect_accelerated_or_stepped_aside(kBulk);
    }
};

// ---------------------------------------------------------------------------------------------------------
// TESTPLAN 23: sendall(request); shutdown(SHUT_WR); blocking recv() of a reply that comes 50 ms later.

TEST_F(Applications, BlockingClientHalfClosesThenWaitsForALateReply)
{
    constexpr int kRounds = 20;
    constexpr std::uint64_t kReply = 64 * kKiB;
    constexpr std::uint16_t kPort = 9100;
    for (Mode mode : kModes) {
        begin(mode);
        NetNs ns("smd-compat");
        Fd listener;
        {
            InNetns in(ns);
            listener = tcp_listen("127.0.0.1", kPort);
        }
        std::atomic<bool> client_exited{false};
        std::atomic<std::uint64_t> payload{0};
        std::string server_error;
        // Reads each request to EOF, answers 50 ms later with the digests and a reply body, closes.
        std::thread server([&] {
            auto deadline = Clock::now() + 40s;
            for (int i = 0; i < kRounds && server_error.empty(); ++i) {
                Fd conn = accept_within(listener.get(), deadline, [&] { return client_exited.load(); });
                if (!conn)
                    return;
                auto request = recv_stream(conn.get(), ~0ull, true, deadline);
                if (!request.error.empty()) {
                    server_error = "round " + std::to_string(i) + ": " + request.error;
                    return;
                }
                std::this_thread::sleep_for(50ms);
                auto body = expected_digest(60 + i, kReply);
                std::string head = "request " + std::to_string(request.digest.length) + " " +
                                   request.digest.sha256 + " reply " + std::to_string(kReply) + " " + body.sha256 +
                                   "\n";
                auto w = write_all(conn.get(), head.data(), head.size(), deadline);
                auto sent = send_stream(conn.get(), 60 + i, kReply, {65536}, deadline);
                if (!w.ok() || !sent.error.empty())
                    server_error = "round " + std::to_string(i) + ": reply: " + w.describe() + " " + sent.error;
                payload += request.digest.length + head.size() + kReply;
            }
        });
        std::string output_path = "/tmp/" + unique_name("smd-compat-python") + ".out";
        std::optional<int> status;
        {
            // Requests alternate between 18 bytes (issue 11's case) and 1 MiB.
            Process client({SMD_PYTHON3, std::string(SMD_COMPAT_HELPERS_DIR) + "/blocking_client.py", "127.0.0.1",
                            std::to_string(kPort), std::to_string(kRounds), "18,1048576"},
                           {.netns = ns.name(), .output_file = output_path});
            status = client.wait(30s);
        }
        client_exited = true;
        server.join();
        std::ifstream in(output_path);
        std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::remove(output_path.c_str());
        while (!output.empty() && output.back() == '\n')
            output.pop_back();
        record(label(mode, "blocking_client"), output);
        EXPECT_TRUE(status.has_value()) << "the blocking client hung for 30 s and was killed: " << output;
        EXPECT_EQ(status.value_or(-1), 0) << "the blocking client failed: " << output;
        EXPECT_EQ(server_error, "") << "server: " << server_error;
        expect_accelerated_or_stepped_aside(payload);
        end_half();
    }
}

// ---------------------------------------------------------------------------------------------------------
// TESTPLAN 21: an edge-triggered reader that trusts FIONREAD, as nginx's ngx_unix_recv() does under epoll: it
// reads one buffer per step and, after a full one, asks FIONREAD; at 0 it waits for the next EPOLLIN edge.

struct EdgeReader {
    Digest got;
    bool eof = false;
    std::string error;
    std::optional<std::uint64_t> first_mismatch;
    std::uint64_t edges = 0, fionread_zero = 0;
};

EdgeReader read_like_nginx(int fd, std::uint64_t seed, std::uint64_t pause_at, ProgressWatch& watch)
{
    constexpr std::size_t kBuffer = 16 * kKiB; // nginx's default proxy_buffer_size
    EdgeReader r;
    StreamSink sink(seed);
    Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data = {}};
    if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        r.error = "epoll_ctl: " + errno_name(errno);
        return r;
    }
    bool paused = false;
    while (!r.eof && r.error.empty() && !watch.fired()) {
        epoll_event got{};
        int n = ::epoll_wait(ep.get(), &got, 1, 100);
        if (n < 0 && errno != EINTR) {
            r.error = "epoll_wait: " + errno_name(errno);
            break;
        }
        if (n <= 0)
            continue;
        ++r.edges;
        bool pending_eof = got.events & (EPOLLRDHUP | EPOLLHUP);
        for (;;) {
            if (!paused && sink.received() >= pause_at) {
                paused = true; // the upstream is slow for a moment: the queue builds up
                std::this_thread::sleep_for(1s);
            }
            ssize_t m = sink.recv_some(fd, kBuffer);
            if (m > 0)
                watch.counter() += m;
            if (m == 0) {
                r.eof = true;
                break;
            }
            if (m < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    r.error = "recv: " + errno_name(errno);
                break; // EAGAIN: wait for the next edge
            }
            if (static_cast<std::size_t>(m) < kBuffer && !pending_eof)
                break; // a short read empties the socket on TCP: wait for the next edge
            int available = 0;
            if (::ioctl(fd, FIONREAD, &available) != 0) {
                r.error = "FIONREAD: " + errno_name(errno);
                break;
            }
            if (available == 0 && !pending_eof) {
                ++r.fionread_zero;
                break; // nothing more, says FIONREAD: wait for the next edge
            }
        }
    }
    r.first_mismatch = sink.first_mismatch();
    r.got = sink.digest();
    return r;
}

TEST_F(Applications, EdgeTriggeredReaderThatTrustsFionread)
{
    for (Mode mode : kModes) {
        begin(mode);
        NetNs ns("smd-compat");
        auto pair = pair_in(ns);
        TransferResult sent;
        EdgeReader reader;
        {
            ProgressWatch watch(kStall, kTransferLimit);
            watch.watch(pair.client.get());
            watch.watch(pair.server.get());
            int fd = pair.server.get();
            watch.on_stall([&, fd] {
                int fionread = -1;
                ::ioctl(fd, FIONREAD, &fionread);
                std::vector<char> peek(1 << 20);
                ssize_t peeked = ::recv(fd, peek.data(), peek.size(), MSG_PEEK | MSG_DONTWAIT);
                pollfd p{fd, POLLIN, 0};
                ::poll(&p, 1, 0);
                return "reader waits for an edge; FIONREAD=" + std::to_string(fionread) + ", recv(MSG_PEEK) sees " +
                       std::to_string(peeked) + " bytes, poll() says " + (p.revents & POLLIN ? "readable" : "not readable") +
                       "; " + tcp_queues(ns);
            });
            std::thread writer([&] {
                sent = send_stream(pair.client.get(), 52, kBulk, kWriteSizes, watch.deadline(), &watch.counter());
                ::shutdown(pair.client.get(), SHUT_WR);
            });
            reader = read_like_nginx(fd, 52, kBulk / 4, watch);
            writer.join();
            watch.stop();
            record(label(mode, "edges_and_fionread_zero_waits"),
                   std::to_string(reader.edges) + " / " + std::to_string(reader.fionread_zero));
            EXPECT_FALSE(watch.fired()) << watch.reason();
            EXPECT_EQ(sent.error, "") << "writer: " << failure_of(watch, sent.error);
            EXPECT_EQ(reader.error, "") << "reader: " << reader.error;
        }
        EXPECT_TRUE(reader.eof) << "no EOF after " << reader.got.length << " bytes";
        EXPECT_FALSE(reader.first_mismatch.has_value()) << "damaged at offset " << reader.first_mismatch.value_or(0);
        EXPECT_TRUE(digest_is(reader.got, expected_digest(52, kBulk))) << "the stream as the reader got it";
        expect_accelerated_or_stepped_aside(kBulk);
        end_half();
    }
}

// ---------------------------------------------------------------------------------------------------------
// Slow, pausing and stopped readers

// A blocking reader held to 100 MiB/s (writing to a slow disk, say) behind a writer that is much faster.
TEST_F(Applications, SlowBlockingReader)
{
    for (Mode mode : kModes) {
        begin(mode);
        one_way(ReadPace{.bytes_per_second = 100 * kMiB, .blocking = true});
        end_half();
    }
}

// A reader that stops for 3 s a third of the way in, then reads on as fast as it can.
TEST_F(Applications, ReaderPausedFor3s)
{
    for (Mode mode : kModes) {
        begin(mode);
        one_way(ReadPace{.pause_at = kBulk / 3, .pause_for = 3s});
        end_half();
    }
}

std::uint64_t sysctl_max(const std::string& path)
{
    std::ifstream in(path);
    std::uint64_t min = 0, def = 0, max = 0;
    in >> min >> def >> max;
    return max;
}

// A reader that never reads: the writer must be stopped as by TCP, send() saying EAGAIN (no error) after a
// bounded amount; once the reader starts, every byte arrives. Accelerated, the bound is the daemon's
// --max-queued-bytes (default tcp_rmem max + tcp_wmem max) plus what TCP buffers (design.md, Backpressure).
TEST_F(Applications, StoppedReaderStopsItsWriterLikeTcp)
{
    constexpr std::uint64_t kCap = 1024 * kMiB; // a writer that gets this far was never stopped
    const std::uint64_t tcp_buffers = sysctl_max("/proc/sys/net/ipv4/tcp_rmem") + sysctl_max("/proc/sys/net/ipv4/tcp_wmem");
    for (Mode mode : kModes) {
        begin(mode);
        NetNs ns("smd-compat");
        auto pair = pair_in(ns);
        int fd = pair.client.get();
        StreamSource source(53, kCap, kWriteSizes);
        std::string error;
        bool stopped = false;
        auto give_up = Clock::now() + 30s;
        while (!source.done() && Clock::now() < give_up) {
            ssize_t n = source.send_some(fd);
            if (n > 0)
                continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                error = "send: " + errno_name(errno) + " after " + std::to_string(source.sent()) + " bytes";
                break;
            }
            if (!wait_event(fd, POLLOUT, Clock::now() + 2s)) {
                stopped = true; // EAGAIN, and no room for 2 s
                break;
            }
        }
        std::uint64_t accepted = source.sent();
        record(label(mode, "bytes_accepted_before_the_writer_stopped"), static_cast<long long>(accepted));
        EXPECT_EQ(error, "") << "the writer to a stopped reader got an error instead of EAGAIN";
        EXPECT_TRUE(stopped) << "send() took " << accepted << " bytes in 30 s without stopping";
        if (accelerated()) {
            std::uint64_t bound = 2 * tcp_buffers + 8 * kMiB;
            EXPECT_LE(accepted, bound) << "a stopped reader let its writer queue past --max-queued-bytes plus TCP's "
                                          "buffers ("
                                       << bound << ")";
        }
        // The reader starts; the writer sends 128 MiB more, then ends the stream. Every byte must arrive, and most
        // of them after the reader came back: whether the redirect came back too shows in the verdict.
        StreamSink sink(53);
        std::string read_error;
        bool eof = false;
        {
            ProgressWatch watch(kStall, kTransferLimit);
            watch.watch(pair.client.get());
            watch.watch(pair.server.get());
            std::thread writer([&] {
                for (std::uint64_t until = accepted + 128 * kMiB; source.sent() < until && error.empty();) {
                    ssize_t n = source.send_some(fd);
                    if (n > 0) {
                        watch.counter() += n;
                        continue;
                    }
                    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                        error = "send after the reader started: " + errno_name(errno);
                    else if (!wait_event(fd, POLLOUT, watch.deadline()))
                        error = "send after the reader started: no room until the deadline";
                }
                ::shutdown(fd, SHUT_WR);
            });
            while (!eof && read_error.empty()) {
                ssize_t n = sink.recv_some(pair.server.get(), 1 << 16);
                if (n > 0) {
                    watch.counter() += n;
                    continue;
                }
                if (n == 0)
                    eof = true;
                else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    read_error = "recv: " + errno_name(errno);
                else if (!wait_event(pair.server.get(), POLLIN, watch.deadline()))
                    read_error = "recv: nothing until the deadline";
            }
            writer.join();
            watch.stop();
            EXPECT_FALSE(watch.fired()) << watch.reason();
            EXPECT_EQ(error, "");
            EXPECT_EQ(read_error, "") << failure_of(watch, read_error);
        }
        EXPECT_TRUE(eof);
        EXPECT_FALSE(sink.first_mismatch().has_value()) << "damaged at offset " << sink.first_mismatch().value_or(0);
        auto sent = source.digest();
        EXPECT_TRUE(digest_is(sink.digest(), sent)) << "the stream as the reader got it";
        expect_accelerated_or_stepped_aside(sent.length);
        end_half();
    }
}

// ---------------------------------------------------------------------------------------------------------
// SIGTERM to the daemon a third of the way into a 200 MB transfer, a new daemon two thirds in. The writer sends
// at 50 MiB/s so that both land mid-transfer, and the reader keeps up, so no queue builds: what is measured is
// the restart. Baseline: the same transfer, no daemon.
TEST_F(Applications, DaemonRestartedInTheMiddleOfATransfer)
{
    for (Mode mode : kModes) {
        begin(mode);
        one_way(ReadPace{}, 50 * kMiB, true);
        end_half();
    }
}

} // namespace
} // namespace smdtest
