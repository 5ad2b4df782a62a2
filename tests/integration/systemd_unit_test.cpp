// deploy/systemd/sockmapd.service as systemd would run it: its ExecStart expanded with its environment (the
// shipped settings file plus the operator's --cgroup and --pin-path), its capability bounding set, and
// NoNewPrivileges, with NOTIFY_SOCKET on a datagram socket this test owns. READY=1 must come from the main
// process only once sock_ops is attached, the daemon so started must accelerate, ExecReload must leave it
// running, and SIGTERM must notify STOPPING=1 and leave the maps pinned.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "bpf_inventory.hpp"
#include "deployed.hpp"
#include "fixture.hpp"
#include "systemd_unit.hpp"

namespace smdtest {
namespace {

namespace fs = std::filesystem;

const std::string kUnitPath = std::string(SMD_SOURCE_DIR) + "/deploy/systemd/sockmapd.service";
const std::string kSettingsPath = std::string(SMD_SOURCE_DIR) + "/deploy/systemd/sockmapd.env";
constexpr std::uint64_t kBulk = 4ull << 20;

// What systemd's end of NOTIFY_SOCKET sees: each datagram's text and the sender's pid (SCM_CREDENTIALS, which
// systemd uses to accept only the main process with the default NotifyAccess=main).
struct Notification {
    std::string text;
    pid_t pid = 0;
};

class NotifySocket {
public:
    NotifySocket() : path_("/tmp/" + unique_name("smd-notify") + ".sock")
    {
        fd_ = Fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        struct sockaddr_un addr {};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
        int on = 1;
        if (!fd_ || ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
            ::setsockopt(fd_.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0)
            ADD_FAILURE() << "notify socket " << path_ << ": " << std::strerror(errno);
    }
    ~NotifySocket() { ::unlink(path_.c_str()); }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    const std::string& path() const { return path_; }

    // The next notification whose text has the line `state` (e.g. "READY=1"); nullopt at the deadline or
    // as soon as `alive` says the sender is gone and nothing is queued.
    std::optional<Notification> wait_for(const std::string& state, Clock::time_point deadline,
                                         const std::function<bool()>& alive)
    {
        while (Clock::now() < deadline) {
            while (auto n = receive()) {
                seen_.push_back(n->text);
                std::istringstream lines(n->text);
                for (std::string line; std::getline(lines, line);)
                    if (line == state)
                        return n;
            }
            if (!alive())
                return receive();
            struct pollfd p {fd_.get(), POLLIN, 0};
            ::poll(&p, 1, 50);
        }
        return std::nullopt;
    }

    // Every datagram received so far, for failure messages.
    std::string seen() const
    {
        std::string all;
        for (const auto& text : seen_)
            all += "[" + text + "] ";
        return all;
    }

private:
    std::optional<Notification> receive()
    {
        char buffer[4096];
        alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(struct ucred))];
        struct iovec iov {buffer, sizeof(buffer)};
        struct msghdr msg {};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_DONTWAIT);
        if (n < 0)
            return std::nullopt;
        Notification note{std::string(buffer, static_cast<std::size_t>(n)), 0};
        for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                struct ucred cred {};
                std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
                note.pid = cred.pid;
            }
        return note;
    }

    std::string path_;
    Fd fd_;
    std::vector<std::string> seen_;
};

// "15s", "2min", "500ms" or plain seconds, as the unit's timeouts are written.
std::chrono::milliseconds parse_timespan(const std::string& text)
{
    std::size_t digits = 0;
    long value = std::stol(text, &digits);
    std::string unit = text.substr(digits);
    if (unit.empty() || unit == "s")
        return std::chrono::seconds(value);
    if (unit == "ms")
        return std::chrono::milliseconds(value);
    if (unit == "min")
        return std::chrono::minutes(value);
    ADD_FAILURE() << "timespan not understood by the test: " << text;
    return std::chrono::seconds(value);
}

class SystemdUnit : public IntegrationTest {
protected:
    void SetUp() override
    {
        IntegrationTest::SetUp();
        if (HasFatalFailure() || IsSkipped())
            return;
        unit_ = UnitFile::parse(kUnitPath);
        // The unit's default --metrics-address (127.0.0.1:9476) is one port per network namespace: a namespace
        // of its own lets this test run the unit's defaults next to any other sockmapd on the machine. Which
        // namespace the daemon is in does not matter to pairing, which follows the cgroup.
        netns_.emplace("smd-unit");
        pin_path_ = "/sys/fs/bpf/" + unique_name("smd-unit");
        log_path_ = "/tmp/" + unique_name("smd-unit") + "-sockmapd.log";
    }

    void TearDown() override
    {
        daemon_process_.kill_and_reap();
        netns_.reset();
        std::error_code ec;
        fs::remove_all(pin_path_, ec);
        if (!trace_path_.empty())
            fs::remove(trace_path_, ec);
        if (HasFailure())
            std::fprintf(stderr, "sockmapd log kept at %s\n", log_path_.c_str());
        else
            fs::remove(log_path_, ec);
        IntegrationTest::TearDown();
    }

    // The unit's ExecStart with the settings an operator would write for this test: the shipped settings file,
    // with SOCKMAPD_CGROUP set (this test's cgroup, never the host's root) and --pin-path added to SOCKMAPD_ARGS.
    std::vector<std::string> exec_start(EnvMap& env)
    {
        for (const auto& value : unit_.all("Service", "Environment"))
            apply_environment(value, env);
        EXPECT_EQ(unit_.all("Service", "EnvironmentFile"), std::vector<std::string>{"-/etc/sockmapd/sockmapd.env"})
            << "the test reads deploy/systemd/sockmapd.env in place of the installed settings file";
        for (const auto& [key, value] : parse_environment_file(kSettingsPath))
            env[key] = value;
        EXPECT_TRUE(env.count("SOCKMAPD_ARGS")) << "sockmapd.env should show the SOCKMAPD_ARGS line to edit";
        EXPECT_EQ(env["SOCKMAPD_CGROUP"], "") << "sockmapd.env must ship without a scope: the operator chooses it";
        env["SOCKMAPD_CGROUP"] = cgroup_path();
        env["SOCKMAPD_ARGS"] += " --pin-path " + pin_path_;

        auto argv = expand_command_line(unit_.value("Service", "ExecStart"), env);
        EXPECT_FALSE(argv.empty());
        if (argv.empty())
            return argv;
        EXPECT_EQ(argv[0], "/usr/sbin/sockmapd");
        argv[0] = sockmapd_bin();
        // Exactly one scope, ours: a stray default --cgroup in the shipped settings would attach to the host.
        auto cgroup_flag = std::find(argv.begin(), argv.end(), "--cgroup");
        EXPECT_EQ(std::count(argv.begin(), argv.end(), "--cgroup"), 1);
        if (cgroup_flag == argv.end() || cgroup_flag + 1 == argv.end() || *(cgroup_flag + 1) != cgroup_path()) {
            ADD_FAILURE() << "refusing to start: the expanded command line would not attach to the test cgroup";
            return {};
        }
        return argv;
    }

    // `command` wrapped the way systemd would run it: a clean environment with NOTIFY_SOCKET, the unit's
    // LimitMEMLOCK=, CapabilityBoundingSet= and NoNewPrivileges=.
    std::vector<std::string> as_systemd_would(const std::vector<std::string>& command, const EnvMap& env,
                                              const std::string& notify_socket)
    {
        std::vector<std::string> argv{find_program("env"), "-i",
                                      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                      "NOTIFY_SOCKET=" + notify_socket};
        for (const auto& [key, value] : env)
            argv.push_back(key + "=" + value);

        // Raising a hard limit takes CAP_SYS_RESOURCE, which some sandboxes (this CI's) do not give even to
        // root. The limit only matters on kernels before memcg accounting of BPF memory (5.11), older than the
        // 5.15 sockmapd needs, so the inherited limit is an acceptable stand-in there.
        EXPECT_EQ(unit_.value("Service", "LimitMEMLOCK"), "infinity");
        if (effective_capabilities(::getpid()) & kCapSysResource)
            argv.insert(argv.end(), {find_program("prlimit"), "--memlock=unlimited:unlimited", "--"});
        else
            std::printf("[ NOTE ] no CAP_SYS_RESOURCE here: LimitMEMLOCK=infinity not applied, the daemon runs "
                        "with the inherited RLIMIT_MEMLOCK\n");

        auto privileges = restricted_privileges(split_words(unit_.value("Service", "CapabilityBoundingSet")),
                                                unit_.value("Service", "NoNewPrivileges") == "yes");
        argv.insert(argv.end(), privileges.begin(), privileges.end());
        argv.insert(argv.end(), command.begin(), command.end());
        return argv;
    }

    bool daemon_alive() { return daemon_process_.running(); }

    UnitFile unit_;
    std::string pin_path_;
    std::string log_path_;
    std::string trace_path_;
    std::optional<NetNs> netns_;
    Process daemon_process_;
};

TEST_F(SystemdUnit, ReadyIsNotifiedAfterAttachAndTheDaemonAccelerates)
{
    ASSERT_NE(find_program("setpriv"), "") << "setpriv (util-linux) is needed to apply the capability set";
    ASSERT_NE(find_program("prlimit"), "") << "prlimit (util-linux) is needed to apply LimitMEMLOCK=";
    EnvMap env;
    auto command = exec_start(env);
    ASSERT_FALSE(command.empty());
    NotifySocket notify;
    daemon_process_ = Process(as_systemd_would(command, env, notify.path()), {.netns = netns_->name(), .uid = std::nullopt, .output_file = log_path_});
    const pid_t pid = daemon_process_.pid();

    auto ready = notify.wait_for("READY=1", Clock::now() + parse_timespan(unit_.value("Service", "TimeoutStartSec")),
                                 [&] { return daemon_alive(); });
    ASSERT_TRUE(ready) << "no READY=1 (got: " << notify.seen() << ")\n" << read_file(log_path_);

    // Readiness must mean "new connections are paired from now on": sock_ops is already attached here.
    auto attached = cgroup_programs(cgroup_path());
    EXPECT_TRUE(std::any_of(attached.begin(), attached.end(),
                            [](const std::string& p) { return p.rfind("smd_sockops ", 0) == 0; }))
        << "READY=1 before smd_sockops was attached to " << cgroup_path();
    EXPECT_EQ(ready->pid, pid) << "READY=1 must come from the main process (NotifyAccess=main)";
    EXPECT_NE(ready->text.find("STATUS="), std::string::npos) << ready->text;
    EXPECT_NE(ready->text.find(cgroup_path()), std::string::npos) << "STATUS should name the cgroup: " << ready->text;
    EXPECT_EQ(effective_capabilities(pid) & kCapSysAdmin, 0u) << "the daemon ran with CAP_SYS_ADMIN";
    auto status = ctl_status(pin_path_);
    EXPECT_EQ(status.value("daemon_running", false), true);
    EXPECT_EQ(status.value("daemon_pid", 0), pid);

    // The daemon this unit starts accelerates: both directions redirected, content intact.
    {
        auto before = ctl_status(pin_path_)["counters"].value("redirected_bytes", 0ull);
        Fd listener = tcp_listen("127.0.0.1");
        Fd client = tcp_connect("127.0.0.1", local_port(listener.get()));
        Fd server = tcp_accept(listener.get());
        auto r = duplex_transfer(client.get(), server.get(), 71, kBulk, 72, kBulk, {65536, 1000});
        expect_intact(r, 71, kBulk, 72, kBulk);
        // The unit's default queue caps: 4 threads on 2 cores may make the connection leave the redirect once a
        // writer runs ahead (design.md, "Queue caps"); then that was counted.
        auto counters = ctl_status(pin_path_)["counters"];
        auto redirected = counters.value("redirected_bytes", 0ull) - before;
        EXPECT_GT(redirected, 0u) << "nothing went through the redirect";
        EXPECT_LE(redirected, 2 * kBulk);
        if (redirected < 2 * kBulk) {
            EXPECT_GE(counters.value("left_backpressure", 0ull), 1u) << "bytes went over TCP without a reason";
        }
    }

    // ExecReload, with $MAINPID expanded and in its environment as systemd does, leaves the daemon running.
    EnvMap reload_env{{"MAINPID", std::to_string(pid)}};
    auto reload = expand_command_line(unit_.value("Service", "ExecReload"), reload_env);
    reload.insert(reload.begin(), {find_program("env"), "MAINPID=" + std::to_string(pid)});
    EXPECT_EQ(run_command(reload), 0);
    auto sighup_logged = Clock::now() + std::chrono::seconds(5);
    while (read_file(log_path_).find("SIGHUP") == std::string::npos && Clock::now() < sighup_logged)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_NE(read_file(log_path_).find("SIGHUP"), std::string::npos) << "ExecReload did not reach the daemon";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(daemon_alive()) << "SIGHUP from ExecReload stopped the daemon:\n" << read_file(log_path_);
    EXPECT_EQ(ctl_status(pin_path_).value("daemon_running", false), true);

    // systemctl stop: SIGTERM, STOPPING=1, exit 0 within TimeoutStopSec, maps still pinned.
    daemon_process_.signal(SIGTERM);
    auto stop_timeout = parse_timespan(unit_.value("Service", "TimeoutStopSec"));
    auto stopping = notify.wait_for("STOPPING=1", Clock::now() + stop_timeout, [&] { return daemon_alive(); });
    EXPECT_TRUE(stopping) << "no STOPPING=1 (got: " << notify.seen() << ")";
    if (stopping) {
        EXPECT_EQ(stopping->pid, pid);
    }
    auto code = daemon_process_.wait(stop_timeout);
    ASSERT_TRUE(code) << "sockmapd still running " << stop_timeout.count() << " ms after SIGTERM";
    EXPECT_EQ(*code, 0) << read_file(log_path_);
    EXPECT_FALSE(directory_entries(pin_path_).empty()) << "the maps must stay pinned after a stop";
    EXPECT_EQ(ctl_status(pin_path_).value("daemon_running", true), false);
}

// The unit allows only RestrictAddressFamilies= sockets: every socket the daemon opens, from start through
// readiness to stop, must be of one of those families, or the real service would fail where this passes.
TEST_F(SystemdUnit, RestrictAddressFamiliesCoversEverySocketTheDaemonOpens)
{
    auto strace = find_program("strace");
    ASSERT_NE(strace, "") << "strace is needed for this check (scripts/install-deps.sh installs it)";
    EnvMap env;
    auto command = exec_start(env);
    ASSERT_FALSE(command.empty());
    NotifySocket notify;
    trace_path_ = "/tmp/" + unique_name("smd-unit") + "-strace.txt";
    const std::string& trace_path = trace_path_;
    std::vector<std::string> traced{strace, "-f", "-qq", "-e", "trace=socket,socketpair", "-o", trace_path};
    auto wrapped = as_systemd_would(command, env, notify.path());
    traced.insert(traced.end(), wrapped.begin(), wrapped.end());
    daemon_process_ = Process(traced, {.netns = netns_->name(), .uid = std::nullopt, .output_file = log_path_});

    auto ready = notify.wait_for("READY=1", Clock::now() + std::chrono::seconds(30), [&] { return daemon_alive(); });
    ASSERT_TRUE(ready) << "no READY=1 under strace (got: " << notify.seen() << ")\n" << read_file(log_path_);
    ::kill(ready->pid, SIGTERM);
    EXPECT_TRUE(daemon_process_.wait(std::chrono::seconds(15))) << "sockmapd did not stop under strace";

    auto allowed_list = split_words(unit_.value("Service", "RestrictAddressFamilies"));
    std::set<std::string> allowed(allowed_list.begin(), allowed_list.end());
    std::set<std::string> used;
    std::ifstream trace(trace_path);
    for (std::string line; std::getline(trace, line);) {
        auto at = line.find("socket(");
        if (at == std::string::npos)
            at = line.find("socketpair(");
        if (at == std::string::npos)
            continue;
        auto open = line.find('(', at);
        auto end = line.find_first_of(",)", open);
        used.insert(line.substr(open + 1, end - open - 1));
    }
    EXPECT_TRUE(used.count("AF_UNIX")) << "the trace did not even see sd_notify's socket: is strace working?";
    for (const auto& family : used)
        EXPECT_TRUE(allowed.count(family)) << "sockmapd opens " << family
                                           << " sockets, which RestrictAddressFamilies= forbids";
}

} // namespace
} // namespace smdtest
