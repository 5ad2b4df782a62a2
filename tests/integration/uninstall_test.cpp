// sockmapctl uninstall: the danger it avoids (a socket leaving the sockhash drops its unread redirected data),
// readers that read only after uninstall started, live transfers in both directions, and nothing left behind.
#include <bpf/bpf.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "bounded_io.hpp"
#include "bpf_inventory.hpp"
#include "fixture.hpp"
#include "poll_until.hpp"
#include "sockmapd/datapath.hpp"
#include "sockmapd/shared.h"
#include "split_command.hpp"

namespace smdtest {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

int queued_in(int fd)
{
    int n = 0;
    return ::ioctl(fd, SIOCINQ, &n) == 0 ? n : -errno;
}

std::uint32_t object_id(const std::string& pin)
{
    Fd fd(bpf_obj_get(pin.c_str()));
    EXPECT_TRUE(fd) << "open " << pin << ": " << std::strerror(errno);
    struct bpf_map_info info {};
    std::uint32_t len = sizeof(info);
    if (!fd || bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
        return 0;
    return info.id;
}

// The BPF objects of one daemon's pin path, by ID: the pinned maps and the programs the daemon reports.
struct Objects {
    std::set<std::uint32_t> maps;
    std::set<std::uint32_t> programs;
};

bool map_loaded(std::uint32_t id)
{
    Fd fd(bpf_map_get_fd_by_id(id));
    return static_cast<bool>(fd);
}

bool program_loaded(std::uint32_t id)
{
    Fd fd(bpf_prog_get_fd_by_id(id));
    return static_cast<bool>(fd);
}

class Uninstall : public IntegrationTest {
protected:
    Objects objects()
    {
        Objects o;
        for (const auto& name : directory_entries(daemon().pin_path()))
            o.maps.insert(object_id(daemon().pin_path() + "/" + name));
        for (const auto& prog : daemon().status()["programs"])
            o.programs.insert(prog.value("id", 0u));
        return o;
    }

    CommandOutput run_uninstall(const std::vector<std::string>& extra = {})
    {
        std::vector<std::string> argv{sockmapctl_bin(), "uninstall", "--pin-path", daemon().pin_path()};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return run_split(argv, std::nullopt, std::chrono::seconds(60));
    }

    // Nothing of `o` is loaded any more, no pin is left, and bpftool lists none of its programs.
    void expect_nothing_left(const Objects& o)
    {
        EXPECT_FALSE(std::filesystem::exists(daemon().pin_path())) << "pin path left behind";
        for (auto id : o.maps)
            EXPECT_FALSE(map_loaded(id)) << "map " << id << " still loaded";
        for (auto id : o.programs)
            EXPECT_FALSE(program_loaded(id)) << "program " << id << " still loaded";
        auto listed = smd_program_ids();
        for (auto id : o.programs)
            EXPECT_FALSE(listed.count(id)) << "bpftool prog list still shows smd_ program " << id;
        EXPECT_EQ(cgroup_programs(cgroup_path()), std::vector<std::string>{});
    }
};

// Why uninstall must drain: the kernel frees a socket's unread redirected data when it leaves the sockhash.
// This is what a naive uninstall (delete the entries or free the maps) does to a reader that is behind.
TEST_F(Uninstall, KernelDropsUnreadRedirectedDataWhenASocketLeavesTheSockhash)
{
    daemon().start();
    TcpPair pair = open_pair("127.0.0.1");
    auto deadline = Clock::now() + std::chrono::seconds(30);
    auto sent = send_stream(pair.client.get(), 51, 1 * kMiB, {65536}, deadline);
    ASSERT_EQ(sent.error, "");
    ASSERT_EQ(daemon().counter("redirected_bytes"), 1 * kMiB);
    ASSERT_EQ(queued_in(pair.server.get()), static_cast<int>(1 * kMiB)) << "SIOCINQ counts the redirect queue";
    daemon().stop();

    // The naive path: take both sockets out of the pinned sockhash while the reader has not read.
    Fd sockhash(bpf_obj_get((daemon().pin_path() + "/smd_sockhash").c_str()));
    ASSERT_TRUE(sockhash);
    struct smd_sock_key key {}, next {};
    std::vector<struct smd_sock_key> keys;
    for (const void* prev = nullptr; bpf_map_get_next_key(sockhash.get(), prev, &next) == 0; prev = &key) {
        keys.push_back(next);
        key = next;
    }
    ASSERT_EQ(keys.size(), 2u);
    for (const auto& k : keys)
        EXPECT_EQ(bpf_map_delete_elem(sockhash.get(), &k), 0) << std::strerror(errno);
    record("siocinq_after_leaving_sockhash", queued_in(pair.server.get()));

    ::shutdown(pair.client.get(), SHUT_WR);
    auto got = recv_stream(pair.server.get(), 1 * kMiB, true, deadline);
    record("bytes_read_of_1MiB_after_leaving_sockhash", static_cast<long long>(got.digest.length));
    EXPECT_TRUE(got.eof) << got.error;
    EXPECT_LT(got.digest.length, 1 * kMiB) << "the kernel kept the redirect queue: the drain may be unnecessary";
}

// A reader 4 MiB behind when uninstall starts, and a writer that keeps writing: uninstall waits for the reader,
// every byte arrives in order, and then nothing of sockmapd is left.
TEST_F(Uninstall, WaitsForAReaderThatReadsOnlyAfterUninstallStarted)
{
    daemon().start();
    TcpPair pair = open_pair("127.0.0.1");
    auto deadline = Clock::now() + std::chrono::seconds(60);
    PatternStream stream(61);
    Sha256 sent_sha;
    std::vector<std::uint8_t> buf(4 * kMiB);
    stream.fill(buf.data(), buf.size());
    sent_sha.update(buf.data(), buf.size());
    ASSERT_TRUE(write_all(pair.client.get(), buf.data(), buf.size(), deadline).ok());
    ASSERT_EQ(daemon().counter("redirected_bytes"), 4 * kMiB);
    Objects before = objects();
    daemon().stop();

    Process uninstall({sockmapctl_bin(), "uninstall", "--pin-path", daemon().pin_path(), "--timeout", "30"},
                      {.netns = "", .uid = std::nullopt, .output_file = daemon().log_path() + ".uninstall"});
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_TRUE(uninstall.running()) << "uninstall finished while 4 MiB were unread";
    EXPECT_EQ(queued_in(pair.server.get()), static_cast<int>(4 * kMiB)) << "uninstall must not touch unread data";

    // After the drain flag, the writer's next bytes go over TCP, behind the redirect queue.
    stream.fill(buf.data(), 1 * kMiB);
    sent_sha.update(buf.data(), 1 * kMiB);
    ASSERT_TRUE(write_all(pair.client.get(), buf.data(), 1 * kMiB, deadline).ok());
    ::shutdown(pair.client.get(), SHUT_WR);
    auto got = recv_stream(pair.server.get(), 5 * kMiB, true, deadline);
    EXPECT_EQ(got.error, "");
    EXPECT_TRUE(got.eof);
    EXPECT_TRUE(digest_is(got.digest, {5 * kMiB, sent_sha.hex()}));

    auto code = uninstall.wait(std::chrono::seconds(30));
    std::string output;
    {
        std::ifstream in(daemon().log_path() + ".uninstall");
        output.assign(std::istreambuf_iterator<char>(in), {});
    }
    std::filesystem::remove(daemon().log_path() + ".uninstall");
    ASSERT_TRUE(code.has_value()) << "uninstall still running 30 s after the reader read everything";
    EXPECT_EQ(*code, 0) << output;
    EXPECT_NE(output.find("no sockmapd BPF object left"), std::string::npos) << output;
    expect_nothing_left(before);
}

// Four connections stream both ways while the daemon stops and uninstall runs: all intact, nothing left.
TEST_F(Uninstall, LiveTransfersInBothDirectionsSurviveUninstall)
{
    constexpr int kConnections = 4;
    constexpr std::uint64_t kBytes = 48 * kMiB;
    daemon().start();
    std::vector<TcpPair> pairs;
    for (int i = 0; i < kConnections; ++i)
        pairs.push_back(open_pair("127.0.0.1"));
    std::vector<DuplexResult> results(kConnections);
    std::vector<std::thread> transfers;
    for (int i = 0; i < kConnections; ++i)
        transfers.emplace_back([&, i] {
            results[i] = duplex_transfer(pairs[i].client.get(), pairs[i].server.get(), 300 + i, kBytes, 400 + i,
                                         kBytes, {65536, 4097, 1000}, std::chrono::seconds(120));
        });
    bool flowing = poll_until([&] { return daemon().counter("redirected_bytes") >= 16 * kMiB; },
                              std::chrono::seconds(30));
    EXPECT_TRUE(flowing) << "no redirect under way";
    Objects before = objects();
    daemon().stop();
    auto result = run_uninstall({"--timeout", "60"});
    for (auto& t : transfers)
        t.join();
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    std::printf("[ OBSERVED ] uninstall during transfers:\n%s", result.out.c_str());
    for (int i = 0; i < kConnections; ++i) {
        SCOPED_TRACE("connection " + std::to_string(i));
        expect_intact(results[i], 300 + i, kBytes, 400 + i, kBytes);
    }
    expect_nothing_left(before);
}

// A reader that never reads: uninstall refuses after --timeout with the socket named and its bytes counted,
// unpins nothing, and succeeds once the reader has read.
TEST_F(Uninstall, RefusesAfterTimeoutWhileUnreadDataRemains)
{
    daemon().start();
    TcpPair pair = open_pair("127.0.0.1");
    auto deadline = Clock::now() + std::chrono::seconds(30);
    ASSERT_EQ(send_stream(pair.client.get(), 71, 256 * 1024, {65536}, deadline).error, "");
    std::uint64_t server_cookie = 0;
    socklen_t len = sizeof(server_cookie);
    ASSERT_EQ(::getsockopt(pair.server.get(), SOL_SOCKET, SO_COOKIE, &server_cookie, &len), 0);
    Objects before = objects();
    daemon().stop();

    auto refused = run_uninstall({"--timeout", "1"});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.err.find("socket cookie " + std::to_string(server_cookie)), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(": 256 KiB unread"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("pid " + std::to_string(::getpid())), std::string::npos) << refused.err;
    EXPECT_EQ(directory_entries(daemon().pin_path()).size(), sockmapd::pinned_map_names().size())
        << "a refused uninstall unpins nothing";

    ::shutdown(pair.client.get(), SHUT_WR);
    auto got = recv_stream(pair.server.get(), 256 * 1024, true, deadline);
    EXPECT_TRUE(digest_is(got.digest, expected_digest(71, 256 * 1024)));
    EXPECT_TRUE(got.eof);

    auto done = run_uninstall({"--timeout", "5"});
    EXPECT_EQ(done.exit_code, 0) << done.out << done.err;
    expect_nothing_left(before);
}

// --force after the timeout says what it drops, then removes everything.
TEST_F(Uninstall, ForceSaysWhatItDrops)
{
    daemon().start();
    TcpPair pair = open_pair("127.0.0.1");
    auto deadline = Clock::now() + std::chrono::seconds(30);
    ASSERT_EQ(send_stream(pair.client.get(), 72, 100000, {65536}, deadline).error, "");
    Objects before = objects();
    daemon().stop();

    auto forced = run_uninstall({"--timeout", "0.5", "--force"});
    EXPECT_EQ(forced.exit_code, 0) << forced.err;
    EXPECT_NE(forced.out.find("dropping the unread redirected data of 1 socket:"), std::string::npos) << forced.out;
    EXPECT_NE(forced.out.find(": 97.7 KiB unread"), std::string::npos) << forced.out;
    expect_nothing_left(before);
}

// A running daemon must be stopped first: uninstall says so and changes nothing.
TEST_F(Uninstall, RefusesWhileTheDaemonRuns)
{
    daemon().start();
    auto before = directory_entries(daemon().pin_path());
    auto refused = run_uninstall();
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_EQ(lines_of(refused.err).size(), 1u) << refused.err;
    EXPECT_NE(refused.err.find("stop it first"), std::string::npos) << refused.err;
    EXPECT_EQ(directory_entries(daemon().pin_path()), before);
    // Still accelerating: the drain flag was not set.
    TcpPair pair = open_pair("127.0.0.1");
    auto r = duplex_transfer(pair.client.get(), pair.server.get(), 81, kMiB, 82, kMiB, {65536});
    expect_intact(r, 81, kMiB, 82, kMiB);
    EXPECT_EQ(daemon().counter("redirected_bytes"), 2 * kMiB);
}

// A refused (timed-out) uninstall leaves redirects off; the next daemon turns them back on.
TEST_F(Uninstall, DaemonStartedAfterAnInterruptedUninstallRedirectsAgain)
{
    daemon().start();
    TcpPair held = open_pair("127.0.0.1");
    auto deadline = Clock::now() + std::chrono::seconds(30);
    ASSERT_EQ(send_stream(held.client.get(), 91, 4096, {4096}, deadline).error, "");
    daemon().stop();
    ASSERT_EQ(run_uninstall({"--timeout", "0.3"}).exit_code, 1);

    daemon().start();
    TcpPair pair = open_pair("127.0.0.1");
    auto before = daemon().counter("redirected_bytes");
    auto r = duplex_transfer(pair.client.get(), pair.server.get(), 92, kMiB, 93, kMiB, {65536});
    expect_intact(r, 92, kMiB, 93, kMiB);
    EXPECT_EQ(daemon().counter("redirected_bytes") - before, 2 * kMiB);
    auto got = recv_stream(held.server.get(), 4096, false, deadline);
    EXPECT_TRUE(digest_is(got.digest, expected_digest(91, 4096)));
}

TEST_F(Uninstall, NothingPinnedIsNothingToDo)
{
    auto result = run_uninstall();
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.out.find("nothing to do"), std::string::npos) << result.out;
}

} // namespace
} // namespace smdtest
