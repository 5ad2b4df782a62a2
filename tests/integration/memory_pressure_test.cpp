// TESTPLAN case 5: the receiver's socket memory is limited by its memory cgroup while its reader stalls; the
// sender must see what plain TCP shows it (no error), every byte must arrive, and the limit must hold.
#include <linux/sock_diag.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "bounded_io.hpp"
#include "checked_stream.hpp"
#include "fixture.hpp"
#include "memcg_v1.hpp"
#include "modes.hpp"
#include "poll_until.hpp"

namespace smdtest {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
constexpr std::uint64_t kTotal = 32 * kMiB;
constexpr std::uint64_t kBeforeStop = 4 * kMiB; // read first, so plain TCP's receive window has grown
constexpr std::uint64_t kTcpLimit = 2 * kMiB;   // far below any per-socket queue limit of sockmapd
constexpr std::uint64_t kChildTcpLimit = 1024 * kMiB; // LimitOn::Parent: the child's own limit, never reached
// One send() fits one sk_msg; a larger one spans several and can be refused part-way (a short write).
const std::vector<std::size_t> kWriteSizes = {64 * kKiB, 1 * kMiB};
// TCP charges a segment that reaches an empty receive queue even over the limit (tcp_data_queue() ->
// sk_forced_mem_schedule()); accelerated, the TCP queue is always empty, so the peer's FIN is charged so.
constexpr std::uint64_t kForcedChargeSlack = 128 * kKiB;
constexpr int kLargeRcvbuf = 8 * kMiB; // the kernel doubles it: plain TCP's window then exceeds the limit
constexpr auto kStop = 500ms;           // the reader stops this long while the sender goes on
constexpr auto kDeadline = 20s;        // for each run, from the first send to the last byte; longer is a hang

enum class Sender { NonBlocking, Blocking };
inline constexpr Sender kSenders[] = {Sender::NonBlocking, Sender::Blocking};

std::string sender_name(Sender sender) { return sender == Sender::NonBlocking ? "nonblocking" : "blocking"; }

// Where the 2 MiB limit is: on the accepting thread's memcg, or on its parent (the thread's own memcg then has
// a 1 GiB limit, so that its sockets are charged to the hierarchy and only the parent's counter can refuse).
enum class LimitOn { OwnMemcg, Parent };

// What the application on the sending side saw.
struct SendReport {
    std::uint64_t sent = 0;
    std::map<std::string, int> errors; // errno name -> how many send() calls failed with it (EAGAIN excluded)
    int short_writes = 0;              // blocking sender: send() took less than it was given
    bool hung = false;                 // blocking sender: the watchdog had to shut the socket down
    Digest digest;

    std::string describe_errors() const
    {
        std::ostringstream out;
        for (const auto& [name, count] : errors)
            out << name << " x" << count << " ";
        return errors.empty() ? "none" : out.str();
    }
};

// A failed charge is retried after a pause, as a robust application could: nothing (no POLLOUT, no wake-up)
// tells the sender when the receiver's memory is free again. Any other error ends the stream.
bool retryable(int err) { return err == ENOMEM || err == ENOBUFS; }

SendReport send_nonblocking(int fd, Clock::time_point deadline, std::atomic<std::uint64_t>& progress)
{
    SendReport report;
    StreamSource source(55, kTotal, kWriteSizes);
    while (!source.done() && Clock::now() < deadline) {
        ssize_t n = source.send_some(fd);
        if (n > 0) {
            progress = source.sent();
            continue;
        }
        int err = n < 0 ? errno : EIO;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
            wait_event(fd, POLLOUT, std::min(deadline, Clock::now() + 100ms));
            continue;
        }
        report.errors[errno_name(err)]++;
        if (!retryable(err))
            break;
        std::this_thread::sleep_for(1ms);
    }
    report.sent = source.sent();
    report.digest = source.digest();
    return report;
}

// A plain blocking writer: on plain TCP, send() sleeps until it took everything, so it never returns short.
SendReport send_blocking(int fd, Clock::time_point deadline, std::atomic<std::uint64_t>& progress)
{
    SendReport report;
    set_blocking(fd, true);
    PatternStream stream(55);
    Sha256 sha;
    std::vector<std::uint8_t> buf(*std::max_element(kWriteSizes.begin(), kWriteSizes.end()));
    std::size_t next_size = 0;
    auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    report.hung = run_with_watchdog(fd, limit, [&] {
        while (report.sent < kTotal && Clock::now() < deadline) {
            std::size_t n = std::min<std::uint64_t>(kWriteSizes[next_size++ % kWriteSizes.size()], kTotal - report.sent);
            stream.seek(report.sent);
            stream.fill(buf.data(), n);
            ssize_t w = ::send(fd, buf.data(), n, MSG_NOSIGNAL);
            if (w > 0) {
                sha.update(buf.data(), static_cast<std::size_t>(w));
                report.sent += static_cast<std::uint64_t>(w);
                progress = report.sent;
                report.short_writes += static_cast<std::size_t>(w) < n;
                continue;
            }
            int err = w < 0 ? errno : EIO;
            if (err == EINTR)
                continue;
            report.errors[errno_name(err)]++;
            if (!retryable(err))
                break;
            std::this_thread::sleep_for(1ms);
        }
    });
    report.digest = {report.sent, sha.hex()};
    return report;
}

// TcpExt counters of the calling thread's network namespace, e.g. TCPRcvQDrop (segments dropped because the
// receiver's memory could not be charged).
std::map<std::string, std::uint64_t> tcp_ext_counters()
{
    std::ifstream in("/proc/thread-self/net/netstat");
    std::string names, values;
    std::map<std::string, std::uint64_t> out;
    while (std::getline(in, names) && std::getline(in, values)) {
        if (names.rfind("TcpExt:", 0) != 0)
            continue;
        std::istringstream n(names), v(values);
        std::string name, prefix;
        std::uint64_t value;
        n >> prefix;
        v >> prefix;
        while (n >> name && v >> value)
            out[name] = value;
    }
    return out;
}

// Everything one run measured.
struct RunResult {
    SendReport sent;
    std::uint64_t received = 0;
    bool eof = false;
    std::string read_error;
    std::optional<std::uint64_t> first_mismatch;
    Digest received_digest;
    std::uint64_t max_usage = 0;  // memory.kmem.tcp.max_usage_in_bytes of the receiver's memcg
    bool usage_returned = false;  // memory.kmem.tcp.usage_in_bytes back to 0 after both sockets closed
    Counters counters_moved;      // accelerated only
};

class MemoryPressure : public BaselineThenAccelerated {
protected:
    void SetUp() override
    {
        BaselineThenAccelerated::SetUp();
        if (HasFatalFailure() || IsSkipped())
            return;
        auto mount = memcg_v1_mount();
        if (!mount)
            GTEST_SKIP() << "no cgroup v1 memory controller on this machine: a v1 memcg's socket-memory limit is "
                            "how this test puts the receiver under memory pressure";
        if (::access((*mount + "/memory.kmem.tcp.limit_in_bytes").c_str(), W_OK) != 0)
            GTEST_SKIP() << "the cgroup v1 memory controller at " << *mount
                         << " has no memory.kmem.tcp.limit_in_bytes (kernel without it)";
        mount_ = *mount;
        ns_.emplace("smd-mem"); // its own TcpExt counters
    }

    // One run, in a fresh memcg that only the accepting thread visits: the reader reads kBeforeStop, stops for
    // kStop while the sender goes on, then reads to the end. What it measured is recorded under `key(...)`.
    // `rcvbuf` > 0: the receiving socket's SO_RCVBUF (forced past net.core.rmem_max), so that plain TCP's window
    // lets more than the memcg's limit in flight.
    RunResult stalled_reader_run(Mode mode, Sender sender_kind, int rcvbuf = 0, LimitOn limit_on = LimitOn::OwnMemcg)
    {
        std::string what = sender_name(sender_kind) + "_sender_" + (rcvbuf ? "large_rcvbuf_" : "") +
                           (limit_on == LimitOn::Parent ? "limit_on_parent_" : "");
        auto key = [&](const std::string& name) { return label(mode, what + name); };
        RunResult result;
        MemcgV1 memcg(mount_, kTcpLimit); // the limited one: its usage is what the run reports
        if (!memcg.created() || memcg.tcp_limit() != kTcpLimit) {
            ADD_FAILURE() << "could not set up the memory cgroup " << memcg.path();
            return result;
        }
        std::optional<MemcgV1> child;
        if (limit_on == LimitOn::Parent && !child.emplace(memcg, kChildTcpLimit).created()) {
            ADD_FAILURE() << "could not set up the child memory cgroup " << child->path();
            return result;
        }
        Counters before = accelerated() ? read_counters(daemon()) : Counters{};
        InNetns in_ns(*ns_);
        auto tcp_before = tcp_ext_counters();
        Fd listener = tcp_listen("127.0.0.1");
        if (rcvbuf > 0) // inherited by the accepted socket
            ::setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
        Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
        Fd server;
        {
            // The accepted socket is charged to the memcg of the thread in accept().
            InMemcgV1 in_memcg(child ? *child : memcg);
            server = tcp_accept(listener.get());
        }

        auto start = Clock::now();
        auto deadline = start + kDeadline;
        std::atomic<std::uint64_t> progress{0};
        std::thread sender([&] {
            result.sent = sender_kind == Sender::NonBlocking ? send_nonblocking(client.get(), deadline, progress)
                                                             : send_blocking(client.get(), deadline, progress);
            ::shutdown(client.get(), SHUT_WR);
        });
        StreamSink sink(55);
        auto read_until = [&](std::uint64_t until) {
            while (!result.eof && result.read_error.empty() && sink.received() < until) {
                ssize_t n = sink.recv_some(server.get(), 65536);
                result.eof = n == 0;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    result.read_error = "recv: " + errno_name(errno);
                else if (n < 0 && !wait_event(server.get(), POLLIN, deadline))
                    result.read_error = "recv timed out after " + std::to_string(sink.received()) + " bytes";
            }
        };
        read_until(kBeforeStop);
        std::uint64_t received_at_stop = sink.received();
        std::this_thread::sleep_for(kStop);
        std::uint64_t queued_at_end_of_stop = progress - received_at_stop;
        std::uint64_t usage_at_end_of_stop = memcg.tcp_usage();
        std::uint32_t meminfo[SK_MEMINFO_VARS] = {};
        socklen_t len = sizeof(meminfo);
        ::getsockopt(server.get(), SOL_SOCKET, SO_MEMINFO, meminfo, &len);
        read_until(~0ull);
        sender.join();
        double elapsed = elapsed_ms(start);

        result.received = sink.received();
        result.first_mismatch = sink.first_mismatch();
        result.received_digest = sink.digest();
        result.max_usage = memcg.tcp_max_usage();
        auto tcp_after = tcp_ext_counters();
        client.reset();
        server.reset();
        listener.reset();
        result.usage_returned = poll_until([&] { return memcg.tcp_usage() == 0; }, 2s);

        record(key("send_errors"), result.sent.describe_errors());
        record(key("short_writes"), result.sent.short_writes);
        record(key("bytes_sent_and_received"), std::to_string(result.sent.sent) + " / " + std::to_string(result.received));
        record(key("bytes_queued_at_end_of_stop"), static_cast<long long>(queued_at_end_of_stop));
        record(key("memcg_tcp_usage_at_end_of_stop"), static_cast<long long>(usage_at_end_of_stop));
        record(key("memcg_tcp_max_usage_and_limit"), std::to_string(result.max_usage) + " / " + std::to_string(kTcpLimit));
        record(key("receiver_rmem_alloc_and_rcvbuf_at_end_of_stop"),
               std::to_string(meminfo[SK_MEMINFO_RMEM_ALLOC]) + " / " + std::to_string(meminfo[SK_MEMINFO_RCVBUF]));
        std::ostringstream tcp;
        for (const char* name : {"TCPRcvQDrop", "PruneCalled", "TCPRcvCollapsed", "TCPZeroWindowDrop"})
            tcp << name << "=" << tcp_after[name] - tcp_before[name] << " ";
        record(key("tcp_ext_counters"), tcp.str());
        record(key("elapsed_ms"), std::to_string(elapsed));
        if (accelerated()) {
            auto after = read_counters(daemon());
            std::ostringstream counters;
            for (const char* name : {"pairs_made", "redirected_messages", "redirected_bytes", "fallback_bytes",
                                     "fallback_no_peer", "fallback_pinned", "fallback_backpressure",
                                     "left_backpressure", "left_memcg", "left_blocking_reader"}) {
                result.counters_moved[name] = moved(before, after, name);
                counters << name << "=" << result.counters_moved[name] << " ";
            }
            record(key("counters"), counters.str());
        }
        return result;
    }

    std::string mount_;
    std::optional<NetNs> ns_;
};

// With the sender retrying a failed send() the way a careful application could, the stream arrives whole, the
// receiver's socket memory never exceeds the memcg's limit, and all of it is uncharged after close. Plain TCP
// holds the limit by dropping segments the receiver cannot charge (TCPRcvQDrop) and retransmitting them.
TEST_F(MemoryPressure, StalledReaderUnderSocketMemoryLimitLosesNothingAndStaysBounded)
{
    struct Case {
        Sender sender;
        int rcvbuf;
    };
    constexpr Case kCases[] = {{Sender::NonBlocking, 0}, {Sender::Blocking, 0}, {Sender::NonBlocking, kLargeRcvbuf}};
    for (Mode mode : kModes) {
        enter(mode);
        for (const Case& c : kCases) {
            std::string run = label(mode, sender_name(c.sender) + " sender" + (c.rcvbuf ? ", large SO_RCVBUF" : "") + ": ");
            RunResult r = stalled_reader_run(mode, c.sender, c.rcvbuf);
            EXPECT_FALSE(r.sent.hung) << run << "the blocking sender was stuck until the deadline";
            EXPECT_EQ(r.sent.sent, kTotal) << run << "send errors: " << r.sent.describe_errors();
            EXPECT_EQ(r.read_error, "") << run;
            EXPECT_TRUE(r.eof) << run << "no EOF after the last byte";
            EXPECT_FALSE(r.first_mismatch.has_value()) << run << "damaged at offset " << r.first_mismatch.value_or(0);
            EXPECT_TRUE(digest_is(r.received_digest, r.sent.digest)) << run;
            EXPECT_EQ(r.received, kTotal) << run;
            EXPECT_GT(r.max_usage, 0u) << run << "the accepted socket was not charged to the accepting thread's memcg";
            EXPECT_LE(r.max_usage, kTcpLimit + kForcedChargeSlack) << run << "socket memory above the memcg's limit";
            EXPECT_TRUE(r.usage_returned) << run << "socket memory still charged to the memcg after close";
            if (accelerated()) {
                // The stream started on the redirect; the queue cap or the memcg's limit made it leave for TCP
                // while the reader stalled -- or, for the blocking sender, its first send did.
                EXPECT_EQ(r.counters_moved["pairs_made"], 1u) << run;
                if (c.sender == Sender::Blocking) {
                    EXPECT_GE(r.counters_moved["left_blocking_reader"], 1u) << run;
                } else {
                    EXPECT_GT(r.counters_moved["redirected_bytes"], 0u) << run;
                    EXPECT_GE(r.counters_moved["fallback_backpressure"], 1u) << run << "the limits moved nothing";
                }
            }
        }
    }
}

// When the receiver's memcg cannot be charged, the kernel fails the sender's send() of redirected data with
// ENOMEM -- also a blocking send(), which on plain TCP would sleep: bpf_tcp_ingress() gets false from
// __sk_rmem_schedule() and tcp_bpf_sendmsg() returns its -ENOMEM instead of waiting as tcp_sendmsg() does. An
// application that treats ENOMEM from send() as fatal (nearly all do) would drop the connection. sk_msg moves
// the direction to TCP before a charge that would not fit (design.md, "The receiver's memory cgroup"), so the
// sender sees what plain TCP shows it: nothing.
TEST_F(MemoryPressure, SenderSeesNoErrorWhenTheReceiversMemoryIsExhausted)
{
    for (Mode mode : kModes) {
        enter(mode);
        for (Sender sender : kSenders) {
            std::string run = label(mode, sender_name(sender) + " sender: ");
            RunResult r = stalled_reader_run(mode, sender);
            EXPECT_EQ(r.sent.describe_errors(), "none") << run << "send() failed";
            EXPECT_EQ(r.sent.short_writes, 0) << run << "a blocking send() returned short";
            EXPECT_TRUE(digest_is(r.received_digest, r.sent.digest)) << run;
            EXPECT_EQ(r.received, kTotal) << run;
        }
    }
}

// The same with the limit one level up: the receiver's own memcg has room, its parent does not. The kernel
// charges every level and fails at the parent, so sk_msg must compare usage and limit up the hierarchy.
TEST_F(MemoryPressure, LimitOnTheParentMemcgAlsoKeepsTheSenderErrorFree)
{
    for (Mode mode : kModes) {
        enter(mode);
        for (Sender sender : kSenders) {
            std::string run = label(mode, sender_name(sender) + " sender, limit on the parent: ");
            RunResult r = stalled_reader_run(mode, sender, 0, LimitOn::Parent);
            EXPECT_EQ(r.sent.describe_errors(), "none") << run << "send() failed";
            EXPECT_EQ(r.sent.short_writes, 0) << run << "a blocking send() returned short";
            EXPECT_TRUE(digest_is(r.received_digest, r.sent.digest)) << run;
            EXPECT_EQ(r.received, kTotal) << run;
            EXPECT_LE(r.max_usage, kTcpLimit + kForcedChargeSlack) << run << "socket memory above the parent's limit";
            if (accelerated()) {
                // A blocking sender leaves at its first send; a non-blocking one when a limit is reached.
                EXPECT_GE(r.counters_moved["fallback_backpressure"] + r.counters_moved["left_blocking_reader"], 1u)
                    << run << "the parent's limit moved nothing";
            }
        }
    }
}

} // namespace
} // namespace smdtest
