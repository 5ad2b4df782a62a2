// The acceleration policy end to end: each selector with two flows side by side in one run (one accelerated,
// one bypassed) proven by the counters and by intact data, and live reloads (rename, ConfigMap symlink swap,
// SIGHUP, an invalid file) that change new connections only.
#include <sys/fsuid.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "fixture.hpp"
#include "http_get.hpp"
#include "policy_dir.hpp"
#include "poll_until.hpp"

namespace smdtest {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kAccelerated = 512ull << 10; // bytes each way on the flow the policy accelerates: below
                                                      // the first queue cap, so none leaves for TCP
constexpr std::uint64_t kBypassed = 5ull << 20;    // ... and on the one it keeps on TCP: a different size
constexpr uid_t kOtherUid = 4321;


// The test cgroup as the cgroup v2 hierarchy names it (the "0::" line of /proc/self/cgroup).
std::string own_cgroup_in_hierarchy()
{
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0)
            return line.substr(3);
    ADD_FAILURE() << "no cgroup v2 line in /proc/self/cgroup";
    return "/";
}

// A listener whose socket is owned by uid (the socket inode takes the creator's fsuid).
Fd tcp_listen_owned_by(uid_t uid, const std::string& addr)
{
    ::setfsuid(uid);
    Fd listener = tcp_listen(addr);
    ::setfsuid(0);
    return listener;
}

class Policy : public IntegrationTest {
protected:
    // One connection through listener: connect, accept, a full-duplex transfer of len bytes each way, checked.
    void flow(int listener, const std::string& connect_addr, std::uint64_t seed, std::uint64_t len)
    {
        Fd client = tcp_connect(connect_addr, local_port(listener));
        Fd server = tcp_accept(listener);
        auto r = duplex_transfer(client.get(), server.get(), seed, len, seed + 1, len, {65536, 1000});
        expect_intact(r, seed, len, seed + 1, len);
    }

    nlohmann::json policy_show()
    {
        std::string out;
        int code = run_command({sockmapctl_bin(), "policy", "show", "--json", "--pin-path", daemon().pin_path()}, &out);
        EXPECT_EQ(code, 0) << out;
        auto json = nlohmann::json::parse(out, nullptr, false);
        EXPECT_FALSE(json.is_discarded()) << out;
        return json;
    }

    std::uint64_t decisions(const std::string& rule)
    {
        auto show = policy_show();
        if (rule == "default")
            return show["default"].value("decisions", 0ull);
        for (const auto& r : show["rules"])
            if (r.value("name", "") == rule)
                return r.value("decisions", 0ull);
        ADD_FAILURE() << "no rule " << rule << " in " << show.dump();
        return 0;
    }

    std::uint32_t generation() { return policy_show().value("generation", 0u); }

    // One rule of a policy file; selectors are "key: value" lines without indentation.
    static std::string rule(const std::string& name, const std::string& action,
                            std::initializer_list<std::string> selectors)
    {
        std::string text = "  - name: " + name + "\n    action: " + action + "\n";
        for (const auto& selector : selectors)
            text += "    " + selector + "\n";
        return text;
    }

    static std::string port_of(const Fd& listener) { return std::to_string(local_port(listener.get())); }

    // Writes policy.yaml and starts the daemon with it.
    void start_with_policy(const std::string& text) { daemon().start({"--policy", dir_.write("policy.yaml", text)}); }

    // Exactly one flow of kAccelerated bytes each way went through the redirect, one flow was kept off it.
    void expect_one_accelerated_one_bypassed()
    {
        EXPECT_EQ(daemon().counter("pairs_made"), 1u);
        EXPECT_EQ(daemon().counter("policy_bypassed"), 1u);
        EXPECT_EQ(daemon().counter("redirected_bytes"), 2 * kAccelerated);
        EXPECT_EQ(daemon().counter("fallback_bytes"), 0u) << "a bypassed socket must not be in the sockhash";
    }

    PolicyDir dir_;
};

TEST_F(Policy, WithoutPolicyEveryLocalPairIsAcceleratedAndDecisionsAreCounted)
{
    daemon().start();
    Fd listener = tcp_listen("127.0.0.1");
    flow(listener.get(), "127.0.0.1", 1, kAccelerated);
    EXPECT_EQ(daemon().counter("redirected_bytes"), 2 * kAccelerated);
    auto show = policy_show();
    EXPECT_EQ(show.value("source", "?"), "");
    EXPECT_EQ(show["default"].value("action", ""), "accelerate");
    EXPECT_EQ(show["default"].value("decisions", 0ull), 1u);
}

TEST_F(Policy, PortsSelectorBypassesOneListenerAndNotTheOther)
{
    Fd fast = tcp_listen("127.0.0.1");
    Fd slow = tcp_listen("127.0.0.1");
    start_with_policy("rules:\n" + rule("slow-port", "bypass", {"ports: [" + port_of(slow) + "]"}));
    flow(fast.get(), "127.0.0.1", 10, kAccelerated);
    flow(slow.get(), "127.0.0.1", 20, kBypassed);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("slow-port"), 1u);
    EXPECT_EQ(decisions("default"), 1u);
}

// The rule names the port range; either end's port matches, here the server's.
TEST_F(Policy, PortRangeWithDefaultBypassAcceleratesOnlyTheRange)
{
    Fd fast = tcp_listen("127.0.0.1");
    Fd slow = tcp_listen("127.0.0.1");
    start_with_policy("default: bypass\nrules:\n" +
                      rule("fast-range", "accelerate", {"ports: [\"" + port_of(fast) + "-" + port_of(fast) + "\"]"}));
    flow(fast.get(), "127.0.0.1", 30, kAccelerated);
    flow(slow.get(), "127.0.0.1", 40, kBypassed);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("fast-range"), 1u);
    EXPECT_EQ(decisions("default"), 1u);
}

// A bypass rule that comes first and that the connecting end satisfies by itself (here by the port it dials)
// decides at connect(): that socket never enters the sockhash, whose entering and leaving cost most of what pairing
// costs (docs/policy.md, "What a bypass saves"). The decision is counted once, and the accepting end counts nothing.
TEST_F(Policy, AFirstBypassRuleTheConnectingEndSatisfiesDecidesAtConnect)
{
    Fd fast = tcp_listen("127.0.0.1");
    Fd slow = tcp_listen("127.0.0.1");
    start_with_policy("rules:\n" + rule("slow-port", "bypass", {"ports: [" + port_of(slow) + "]"}));
    flow(slow.get(), "127.0.0.1", 130, kBypassed);
    EXPECT_EQ(daemon().counter("sockets_inserted"), 0u) << "the connecting end entered the sockhash";
    EXPECT_EQ(daemon().counter("skipped_not_local"), 0u) << "the accepting end counted a local peer as not local";
    EXPECT_EQ(daemon().status()["hints"], 0u) << "the accepting end left the hint behind";
    flow(fast.get(), "127.0.0.1", 140, kAccelerated);
    EXPECT_EQ(daemon().counter("sockets_inserted"), 2u);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("slow-port"), 1u);
    EXPECT_EQ(decisions("default"), 1u);
}

// The connecting end satisfies a bypass rule, but an earlier rule may still match through the accepting end, so
// only the accepting end can decide. On one listener the earlier rule matches (its owner) and the connection is
// accelerated; on the other it does not, and the bypass rule decides there, once both ends are known.
TEST_F(Policy, AnEarlierRuleTheAcceptingEndMayMatchIsWaitedFor)
{
    start_with_policy("rules:\n" + rule("proxy-user", "accelerate", {"uid: " + std::to_string(kOtherUid)}) +
                      rule("loopback", "bypass", {"cidrs: [127.0.0.0/8]"}));
    Fd owned = tcp_listen_owned_by(kOtherUid, "127.0.0.1");
    Fd root = tcp_listen("127.0.0.1");
    flow(owned.get(), "127.0.0.1", 150, kAccelerated);
    flow(root.get(), "127.0.0.1", 160, kBypassed);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("proxy-user"), 1u);
    EXPECT_EQ(decisions("loopback"), 1u);
    EXPECT_EQ(daemon().counter("sockets_inserted"), 3u) << "each connecting end enters before its accepting end";
    EXPECT_EQ(daemon().counter("skipped_not_local"), 0u);
}

// A first bypass rule that the connecting end satisfies only in part (the port it dials, not the uid, which must
// hold on one end) decides nothing at connect: where no end has the uid, the default accelerates; where the
// accepting end has it, the rule bypasses, decided there.
TEST_F(Policy, AFirstBypassRuleTheConnectingEndSatisfiesOnlyInPartWaitsForTheAcceptingEnd)
{
    Fd root = tcp_listen("127.0.0.1");
    Fd owned = tcp_listen_owned_by(kOtherUid, "127.0.0.1");
    start_with_policy("rules:\n" + rule("owner-and-port", "bypass",
                                         {"uid: " + std::to_string(kOtherUid),
                                          "ports: [" + port_of(root) + ", " + port_of(owned) + "]"}));
    flow(root.get(), "127.0.0.1", 170, kAccelerated);
    flow(owned.get(), "127.0.0.1", 180, kBypassed);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("owner-and-port"), 1u);
    EXPECT_EQ(decisions("default"), 1u);
    EXPECT_EQ(daemon().counter("sockets_inserted"), 3u) << "the bypassed connection's connecting end entered first";
}

// uid is the socket owner's: the server end is owned by kOtherUid on one flow; the client is root on both,
// so the accelerated flow also shows that one end satisfying the rule speaks for the connection.
TEST_F(Policy, UidSelectorMatchesTheSocketOwnerOfEitherEnd)
{
    start_with_policy("default: bypass\nrules:\n" +
                      rule("proxy-user", "accelerate", {"uid: " + std::to_string(kOtherUid)}));
    Fd owned = tcp_listen_owned_by(kOtherUid, "127.0.0.1");
    Fd root = tcp_listen("127.0.0.1");
    flow(owned.get(), "127.0.0.1", 50, kAccelerated);
    flow(root.get(), "127.0.0.1", 60, kBypassed);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("proxy-user"), 1u);
}

// A cgroup selector matches its whole subtree: the listener made inside <test>/bypassed/inner is bypassed by
// a rule naming <test>/bypassed; the listener in the test cgroup itself is not.
TEST_F(Policy, CgroupSelectorMatchesTheSubtree)
{
    fs::path outer = fs::path(cgroup_path()) / "bypassed";
    fs::path inner = outer / "inner";
    fs::create_directories(inner);
    struct RemoveCgroups {
        fs::path inner, outer;
        ~RemoveCgroups()
        {
            ::rmdir(inner.c_str());
            ::rmdir(outer.c_str());
        }
    } cleanup{inner, outer};

    auto move_self_to = [](const fs::path& cgroup) {
        std::ofstream procs(cgroup / "cgroup.procs");
        procs << "0\n";
        procs.flush();
        ASSERT_TRUE(procs.good()) << "cannot move the test process into " << cgroup;
    };
    move_self_to(inner);
    Fd in_subtree = tcp_listen("127.0.0.1");
    move_self_to(cgroup_path());
    Fd in_test_cgroup = tcp_listen("127.0.0.1");

    start_with_policy("rules:\n" + rule("subtree", "bypass", {"cgroup: " + own_cgroup_in_hierarchy() + "/bypassed"}));
    flow(in_test_cgroup.get(), "127.0.0.1", 70, kAccelerated);
    flow(in_subtree.get(), "127.0.0.1", 80, kBypassed);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("subtree"), 1u);
}

// Networks match the peer address of either end, IPv4 and IPv6. The /32 inside the /8 tests that a longest-prefix
// lookup still sees the shorter network's earlier rule (first match wins, not most specific).
TEST_F(Policy, CidrsMatchPeerAddressesAndTheFirstRuleWinsOverAMoreSpecificOne)
{
    start_with_policy("rules:\n" + rule("loopback-8", "bypass", {"cidrs: [127.0.0.0/8]"}) +
                      rule("one-host", "accelerate", {"cidrs: [127.0.0.2]"}) +
                      rule("v6-loopback", "accelerate", {"cidrs: [\"::1/128\"]"}));
    Fd v4 = tcp_listen("127.0.0.2");
    Fd v6 = tcp_listen("::1");
    flow(v4.get(), "127.0.0.2", 90, kBypassed);
    flow(v6.get(), "::1", 100, kAccelerated);
    expect_one_accelerated_one_bypassed();
    EXPECT_EQ(decisions("loopback-8"), 1u);
    EXPECT_EQ(decisions("one-host"), 0u);
    EXPECT_EQ(decisions("v6-loopback"), 1u);
}

// Issue 3's "done when": a reload flips a port from accelerated to bypassed for new connections, while a
// connection made before keeps its redirect and loses nothing. The file is replaced the way a Kubernetes
// ConfigMap volume does it: a new timestamped directory, then an atomic rename of the ..data symlink.
TEST_F(Policy, ConfigMapSwapFlipsAPortForNewConnectionsOnly)
{
    Fd listener = tcp_listen("127.0.0.1");
    const std::string port = std::to_string(local_port(listener.get()));
    auto configmap_version = [&](const std::string& version, const std::string& text) {
        fs::create_directories(dir_.path() / version);
        dir_.write(version + "/policy.yaml", text);
        fs::create_directory_symlink(version, dir_.path() / "..data_tmp");
        fs::rename(dir_.path() / "..data_tmp", dir_.path() / "..data");
    };
    configmap_version("..v1", "rules:\n  - name: port\n    action: accelerate\n    ports: [" + port + "]\n");
    fs::create_symlink("..data/policy.yaml", dir_.path() / "policy.yaml");
    daemon().start({"--policy", (dir_.path() / "policy.yaml").string()});
    ASSERT_EQ(generation(), 1u);

    // An open, accelerated connection with data both ways before the reload...
    Fd old_client = tcp_connect("127.0.0.1", local_port(listener.get()));
    Fd old_server = tcp_accept(listener.get());
    ASSERT_EQ(daemon().counter("pairs_made"), 1u);

    configmap_version("..v2", "rules:\n  - name: port\n    action: bypass\n    ports: [" + port + "]\n");
    ASSERT_TRUE(poll_until([&] { return generation() == 2u; }, std::chrono::seconds(10)))
        << "the ..data swap was not picked up\n" << daemon().log();
    EXPECT_NE(daemon().log().find("policy reloaded from"), std::string::npos);

    // ...a new connection to the same port stays on TCP...
    flow(listener.get(), "127.0.0.1", 110, kBypassed);
    EXPECT_EQ(daemon().counter("policy_bypassed"), 1u);
    EXPECT_EQ(decisions("port"), 1u) << "decisions count from the reload on";

    // ...and the old one is still redirected, every byte.
    auto r = duplex_transfer(old_client.get(), old_server.get(), 120, kAccelerated, 121, kAccelerated, {65536});
    expect_intact(r, 120, kAccelerated, 121, kAccelerated);
    EXPECT_EQ(daemon().counter("redirected_bytes"), 2 * kAccelerated);
    EXPECT_EQ(daemon().counter("pairs_made"), 1u);
}

// SIGHUP reloads even an unchanged file (cgroup paths are resolved again); an invalid file is refused, logged,
// counted in the metrics, and the last good policy keeps deciding.
TEST_F(Policy, InvalidReloadKeepsTheLastGoodPolicyAndIsCounted)
{
    Fd listener = tcp_listen("127.0.0.1");
    const std::string port = std::to_string(local_port(listener.get()));
    auto file = dir_.write("policy.yaml", "rules:\n  - name: port\n    action: bypass\n    ports: [" + port + "]\n");
    auto metrics_port = free_loopback_port();
    daemon().start({"--policy", file, "--metrics-address", "127.0.0.1:" + std::to_string(metrics_port)});
    ASSERT_EQ(generation(), 1u);

    ::kill(daemon().status().value("daemon_pid", 0), SIGHUP);
    ASSERT_TRUE(poll_until([&] { return generation() == 2u; }, std::chrono::seconds(10))) << daemon().log();

    dir_.write("policy.yaml", "rules:\n  - name: port\n    action: bypass\n    ports: [70000]\n");
    ASSERT_TRUE(poll_until([&] { return daemon().log().find("policy reload failed") != std::string::npos; },
                           std::chrono::seconds(10)))
        << daemon().log();
    EXPECT_NE(daemon().log().find("70000"), std::string::npos) << "the error names the bad value";
    auto metrics = http_get("127.0.0.1", metrics_port, "/metrics");
    EXPECT_NE(metrics.body.find("sockmapd_policy_reload_errors_total 1\n"), std::string::npos) << metrics.body;
    EXPECT_NE(metrics.body.find("sockmapd_policy_decisions_total{rule=\"port\",action=\"bypass\"} 0\n"),
              std::string::npos)
        << metrics.body;
    EXPECT_EQ(generation(), 2u);

    // The scrapes are local connections too (accelerated by default): compare counters around the flow only.
    auto bypassed_before = daemon().counter("policy_bypassed");
    auto redirected_before = daemon().counter("redirected_bytes");
    flow(listener.get(), "127.0.0.1", 130, kBypassed);
    EXPECT_EQ(daemon().counter("policy_bypassed") - bypassed_before, 1u) << "the last good policy still decides";
    EXPECT_EQ(daemon().counter("redirected_bytes") - redirected_before, 0u);
    metrics = http_get("127.0.0.1", metrics_port, "/metrics");
    EXPECT_NE(metrics.body.find("sockmapd_policy_decisions_total{rule=\"port\",action=\"bypass\"} 1\n"),
              std::string::npos)
        << metrics.body;

    // The file vanishing is a failed reload too; fixing the file makes it load again.
    fs::remove(file);
    ASSERT_TRUE(poll_until(
        [&] {
            return http_get("127.0.0.1", metrics_port, "/metrics").body.find("sockmapd_policy_reload_errors_total 2\n") !=
                   std::string::npos;
        },
        std::chrono::seconds(10)))
        << daemon().log();
    dir_.write("policy.yaml", "default: accelerate\n");
    ASSERT_TRUE(poll_until([&] { return generation() == 3u; }, std::chrono::seconds(10))) << daemon().log();
    redirected_before = daemon().counter("redirected_bytes");
    flow(listener.get(), "127.0.0.1", 140, kAccelerated);
    EXPECT_EQ(daemon().counter("redirected_bytes") - redirected_before, 2 * kAccelerated);
}

} // namespace
} // namespace smdtest
