// Daemon life cycle: validate everything, then load, attach, announce, and wait for a signal.
#include "sockmapd/daemon.hpp"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>

#include "sockmapd/backpressure.hpp"
#include "sockmapd/bpffs.hpp"
#include "sockmapd/cgroup.hpp"
#include "sockmapd/conflicts.hpp"
#include "sockmapd/datapath.hpp"
#include "sockmapd/doctor.hpp"
#include "sockmapd/error.hpp"
#include "sockmapd/http_server.hpp"
#include "sockmapd/human_units.hpp"
#include "sockmapd/instance_lock.hpp"
#include "sockmapd/metrics.hpp"
#include "sockmapd/notify.hpp"
#include "sockmapd/policy_control.hpp"
#include "sockmapd/preflight.hpp"
#include "sockmapd/release.hpp"
#include "sockmapd/version.h"

namespace sockmapd {
namespace {

void throw_first(const std::vector<PreflightIssue>& issues)
{
    if (!issues.empty())
        throw Error(issues.front().what + "; " + issues.front().remedy);
}

struct smd_info make_info(const std::string& cgroup)
{
    struct smd_info info {};
    info.abi = SMD_ABI_VERSION;
    info.daemon_pid = static_cast<std::uint32_t>(::getpid());
    info.started_unix = static_cast<std::uint64_t>(std::time(nullptr));
    info.cgroup_id = cgroup_id(cgroup);
    std::strncpy(info.cgroup_path, cgroup.c_str(), sizeof(info.cgroup_path) - 1);
    std::strncpy(info.version, SOCKMAPD_VERSION, sizeof(info.version) - 1);
    return info;
}

constexpr auto kHousekeepingPeriod = std::chrono::seconds(60);
// Pairs inherited from the previous daemon are checked this often until they are gone (remember_inherited_pairs).
constexpr auto kInheritedPairsPeriod = std::chrono::seconds(2);
// A burst of directory events (an editor's temp file and rename, a ConfigMap's ..data swap) settles first.
constexpr auto kPolicySettle = std::chrono::milliseconds(200);

// A hint is deleted between max_age and 1.5 x max_age after its SYN; the sweep is one batch read of the map.
std::chrono::milliseconds hint_sweep_period(std::chrono::seconds max_age)
{
    return std::clamp<std::chrono::milliseconds>(std::chrono::milliseconds(max_age) / 2, std::chrono::seconds(1),
                                                 kHousekeepingPeriod);
}

void expire_hints_and_count(Datapath& datapath, MetricsSource& metrics, std::chrono::seconds max_age)
{
    try {
        auto start = std::chrono::steady_clock::now();
        auto expired = datapath.expire_hints(max_age);
        metrics.count_hints_expired(expired);
        if (expired)
            spdlog::debug("deleted {} SYN hints older than {} s (handshakes that never completed) in {} us", expired,
                          max_age.count(),
                          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                                start)
                              .count());
    } catch (const Error& e) {
        spdlog::warn("cannot expire SYN hints: {}", e.what());
    }
}

// SIGTERM/SIGINT/SIGHUP are blocked by main (ScopedSignalMask) and read here from a signalfd, next to the
// policy directory's inotify fd; between events the daemon does its periodic housekeeping.
void run_until_stopped(Datapath& datapath, Releaser& releaser, MetricsSource& metrics, PolicyControl& policy,
                       std::chrono::seconds hint_max_age)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    Fd signals(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signals)
        throw_errno(errno, "signalfd");
    std::optional<PolicyFileWatch> watch;
    if (!policy.path().empty())
        watch.emplace(policy.path());
    auto on_reload_error = [&] { metrics.count_policy_reload_error(); };

    using Clock = std::chrono::steady_clock;
    auto next_housekeeping = Clock::now() + kHousekeepingPeriod;
    constexpr auto kNever = Clock::time_point::max();
    auto policy_settled = kNever; // when a changed policy file has stopped changing and is read again
    bool watching_inherited = true;
    auto next_inherited_check = Clock::now() + kInheritedPairsPeriod;
    const auto hint_period = hint_sweep_period(hint_max_age);
    auto next_hint_sweep = Clock::now() + hint_period;
    // Connections that were leaving when the last daemon stopped are released from the start.
    auto release_period = releaser.sweep(true);
    auto next_release = Clock::now() + release_period;
    for (;;) {
        auto deadline = std::min(next_housekeeping, next_hint_sweep);
        if (watching_inherited)
            deadline = std::min(deadline, next_inherited_check);
        deadline = std::min({deadline, next_release, policy_settled});
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        struct pollfd fds[3] = {{.fd = signals.get(), .events = POLLIN, .revents = 0},
                                {.fd = watch ? watch->fd() : -1, .events = POLLIN, .revents = 0},
                                {.fd = releaser.fd(), .events = POLLIN, .revents = 0}};
        int ready = ::poll(fds, 3, static_cast<int>(std::max<std::int64_t>(wait.count(), 0)));
        if (ready < 0 && errno != EINTR)
            throw_errno(errno, "poll");

        bool left = fds[2].revents && releaser.drain_events();
        if (left || Clock::now() >= next_release) {
            release_period = releaser.sweep(left);
            next_release = Clock::now() + release_period;
        }

        if (fds[1].revents && watch->drain())
            policy_settled = Clock::now() + kPolicySettle;
        if (Clock::now() >= policy_settled) {
            policy_settled = kNever;
            policy.reload(datapath.policy_maps(), false, on_reload_error);
        }
        if (watching_inherited && Clock::now() >= next_inherited_check) {
            watching_inherited = datapath.collect_inherited_pairs() > 0;
            next_inherited_check = Clock::now() + kInheritedPairsPeriod;
        }
        if (Clock::now() >= next_hint_sweep) {
            expire_hints_and_count(datapath, metrics, hint_max_age);
            next_hint_sweep = Clock::now() + hint_period;
        }
        if (Clock::now() >= next_housekeeping) {
            datapath.collect_stale_pairs();
            metrics.check_capacity();
            next_housekeeping = Clock::now() + kHousekeepingPeriod;
        }

        struct signalfd_siginfo info {};
        while (::read(signals.get(), &info, sizeof(info)) == sizeof(info)) {
            if (info.ssi_signo == SIGHUP) {
                if (policy.path().empty())
                    spdlog::info("SIGHUP: no --policy file to reload");
                else
                    policy.reload(datapath.policy_maps(), true, on_reload_error);
                continue;
            }
            spdlog::info("{}: stopping", info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
    }
}

// Directories a start-up created; removed again (innermost first) unless the start-up succeeded.
class CreatedDirectories {
public:
    explicit CreatedDirectories(std::vector<std::string> dirs) : dirs_(std::move(dirs)) {}
    ~CreatedDirectories()
    {
        if (!keep_)
            for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it)
                ::rmdir(it->c_str());
    }
    CreatedDirectories(const CreatedDirectories&) = delete;
    CreatedDirectories& operator=(const CreatedDirectories&) = delete;
    void keep() { keep_ = true; }

private:
    std::vector<std::string> dirs_;
    bool keep_ = false;
};

// What bounds a receiver's unread redirected bytes, logged once.
std::uint64_t max_queued_bytes(const DaemonConfig& config, std::uint64_t rmem_max)
{
    std::uint64_t limit = config.max_queued_bytes.value_or(0);
    if (limit)
        spdlog::info("redirect queues: {} at first (--max-queued-bytes), growing as the receiver reads up to {}; a "
                     "connection whose receiver falls behind leaves the redirect for TCP",
                     format_bytes(limit), format_bytes(std::max(limit, rmem_max)));
    else
        spdlog::info("redirect queues: capped like a TCP receive buffer, growing as the receiver reads up to {} "
                     "(tcp_rmem max); a connection whose receiver falls behind leaves the redirect for TCP",
                     format_bytes(rmem_max));
    return limit;
}

// Whether a receiver's buffer is raised as its redirect queue grows, logged once. Raising runs the release iterator
// more often, which kernels without the iter/tcp refcount fix (doctor.hpp) make risky: auto turns it off there.
bool raise_receive_buffers(const std::string& mode, const std::string& release)
{
    bool fixed = iter_tcp_refcount_fixed(release).value_or(false);
    bool on = mode == "on" || (mode == "auto" && fixed);
    if (on)
        spdlog::info("receive buffers: raised as redirect queues grow, so that a FIN or RST arriving while a reader "
                     "copies is not dropped (--raise-receive-buffers {}{})",
                     mode, fixed ? "" : "; this kernel's release has no iter/tcp refcount fix: see sockmapd --check");
    else
        spdlog::info("receive buffers: not raised (--raise-receive-buffers {}{}); a FIN or RST that a reader's "
                     "backlog drops comes again by a timer",
                     mode, mode == "auto" ? ": kernel " + release + " has no iter/tcp refcount fix" : "");
    return on;
}

// No --cgroup means the whole host: allowed (the node-agent use), but said once, loudly. An empty --cgroup never
// gets here (the command line refuses it), and a blank one is refused here too, for callers other than main.
std::string resolve_cgroup(const std::string& flag)
{
    if (!flag.empty() && flag.find_first_not_of(" \t\r\n") == std::string::npos)
        throw Error("--cgroup is blank (an unset variable?); pass a cgroup v2 directory, or leave --cgroup out to "
                    "accelerate the whole host");
    if (!flag.empty())
        return flag;
    std::string root = detect_cgroup2_root();
    spdlog::warn("no --cgroup: attaching to the cgroup v2 root {}, so every process on this host is in scope; pass "
                 "--cgroup DIR to narrow it",
                 root);
    return root;
}

// Another sockmapd's sock_ops on this cgroup or above it takes every socket first: refuse. Other agents' programs
// may or may not get in the way: warn.
void check_sock_ops_conflicts(const std::string& cgroup, const std::string& pin_path)
{
    auto conflicts = find_sock_ops_conflicts(cgroup, pin_path);
    if (!conflicts.sockmapd.empty())
        throw Error(another_sockmapd_message(cgroup, conflicts.sockmapd));
    if (!conflicts.others.empty())
        spdlog::warn("{}", other_sock_ops_message(cgroup, conflicts.others));
}

} // namespace

void run_daemon(const DaemonConfig& config)
{
    // Everything that can be checked without changing the system is checked first.
    std::optional<ListenAddress> metrics_address;
    if (!config.metrics_address.empty())
        metrics_address = parse_listen_address(config.metrics_address);
    throw_first(check_privileges());
    std::string cgroup = resolve_cgroup(config.cgroup);
    validate_cgroup_dir(cgroup);
    PinPathPlan plan = plan_pin_path(config.pin_path);
    throw_first(check_bpffs_mount(plan));
    KernelReport kernel = check_kernel();
    throw_first(kernel.refusals);
    PolicyControl policy(config.policy_path, detect_cgroup2_root());
    // A second daemon on existing pins is told so before its metrics port could collide with the first's.
    std::optional<InstanceLock> lock;
    if (std::filesystem::is_directory(config.pin_path))
        lock.emplace(config.pin_path);
    check_sock_ops_conflicts(cgroup, config.pin_path);
    // Listening is the last check: a taken port stops the start before anything is pinned or attached.
    MetricsSource metrics;
    std::optional<HttpServer> http;
    if (metrics_address)
        http.emplace(*metrics_address, HttpRoutes{.metrics = [&] { return metrics.scrape(); },
                                                  .not_ready = [&] { return metrics.not_ready(); }});

    CreatedDirectories pin_dirs(prepare_pin_path(config.pin_path, plan));
    if (!lock)
        lock.emplace(config.pin_path);
    Datapath datapath({.pin_path = config.pin_path, .max_sockets = config.max_sockets, .max_hints = config.max_hints});
    datapath.collect_stale_pairs();
    expire_hints_and_count(datapath, metrics, config.hint_max_age); // hints of handshakes cut off by the last stop
    datapath.remember_inherited_pairs();
    std::uint64_t rmem_max = tcp_rmem_max();
    datapath.resume_redirects(max_queued_bytes(config, rmem_max), rmem_max, tcp_wmem_max(),
                              raise_receive_buffers(config.raise_receive_buffers, kernel.release));
    datapath.attach_release_iterator();
    Releaser releaser(datapath.release_iterator_fd(), datapath.pairs_fd(), datapath.events_fd());
    datapath.attach_sk_msg();
    policy.install(datapath.policy_maps()); // in force before the first connection is decided
    Fd cgroup_fd = open_cgroup_dir(cgroup);
    datapath.attach_sockops(cgroup_fd.get(), cgroup);
    datapath.leave_pairs_closed_unseen();
    struct smd_info info = make_info(cgroup);
    datapath.publish_info(info);
    datapath.commit_pins();
    pin_dirs.keep();
    metrics.datapath_up(config.pin_path);
    metrics.check_capacity(); // reused maps may be full already
    for (const auto& warning : kernel.warnings)
        spdlog::warn("{}", warning);
    if (http)
        spdlog::info("serving /metrics, /healthz and /readyz on http://{}", format_listen_address(http->address()));
    spdlog::info("ready: accelerating local TCP pairs in cgroup {} (pins at {})", cgroup, config.pin_path);
    notify_ready("accelerating local TCP pairs in cgroup " + cgroup);

    spdlog::info("SYN hints: up to {} in smd_hints; deleted once older than {} s", config.max_hints,
                 config.hint_max_age.count());
    run_until_stopped(datapath, releaser, metrics, policy, config.hint_max_age);
    notify_stopping("detaching sock_ops; maps stay pinned at " + config.pin_path);

    metrics.datapath_down();
    http.reset();
    info.daemon_pid = 0;
    datapath.publish_info(info);
    spdlog::info("detaching sock_ops; paired connections keep their redirect through the maps pinned at {}",
                 config.pin_path);
}

} // namespace sockmapd
