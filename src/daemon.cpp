// Daemon life cycle: validate everything, then load, attach, announce, and wait for a signal.
#include "sockmapd/daemon.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/cgroup.hpp"
#include "sockmapd/datapath.hpp"
#include "sockmapd/error.hpp"
#include "sockmapd/http_server.hpp"
#include "sockmapd/instance_lock.hpp"
#include "sockmapd/metrics.hpp"
#include "sockmapd/notify.hpp"
#include "sockmapd/preflight.hpp"
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

constexpr int kHousekeepingSeconds = 60;

// SIGTERM/SIGINT/SIGHUP are blocked by main (ScopedSignalMask) and taken here synchronously;
// between signals the daemon does its periodic housekeeping.
void wait_for_stop(Datapath& datapath, MetricsSource& metrics)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    const struct timespec period {kHousekeepingSeconds, 0};
    for (;;) {
        int sig = sigtimedwait(&set, nullptr, &period);
        if (sig < 0) {
            if (errno == EAGAIN) {
                datapath.collect_stale_pairs();
                metrics.check_capacity();
                continue;
            }
            if (errno == EINTR)
                continue;
            throw_errno(errno, "wait for signals");
        }
        if (sig == SIGHUP) {
            spdlog::info("SIGHUP: nothing to reload yet");
            continue;
        }
        spdlog::info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
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

} // namespace

void run_daemon(const DaemonConfig& config)
{
    // Everything that can be checked without changing the system is checked first.
    std::optional<ListenAddress> metrics_address;
    if (!config.metrics_address.empty())
        metrics_address = parse_listen_address(config.metrics_address);
    throw_first(check_privileges());
    std::string cgroup = config.cgroup.empty() ? detect_cgroup2_root() : config.cgroup;
    validate_cgroup_dir(cgroup);
    PinPathPlan plan = plan_pin_path(config.pin_path);
    throw_first(check_kernel_features());
    // A second daemon on existing pins is told so before its metrics port could collide with the first's.
    std::optional<InstanceLock> lock;
    if (std::filesystem::is_directory(config.pin_path))
        lock.emplace(config.pin_path);
    // Listening is the last check: a taken port stops the start before anything is pinned or attached.
    MetricsSource metrics;
    std::optional<HttpServer> http;
    if (metrics_address)
        http.emplace(*metrics_address, HttpRoutes{.metrics = [&] { return metrics.scrape(); },
                                                  .not_ready = [&] { return metrics.not_ready(); }});

    CreatedDirectories pin_dirs(prepare_pin_path(config.pin_path, plan));
    if (!lock)
        lock.emplace(config.pin_path);
    Datapath datapath({.pin_path = config.pin_path, .max_sockets = config.max_sockets});
    datapath.collect_stale_pairs();
    datapath.resume_redirects();
    datapath.attach_sk_msg();
    Fd cgroup_fd = open_cgroup_dir(cgroup);
    datapath.attach_sockops(cgroup_fd.get(), cgroup);
    struct smd_info info = make_info(cgroup);
    datapath.publish_info(info);
    datapath.commit_pins();
    pin_dirs.keep();
    metrics.datapath_up(config.pin_path);
    metrics.check_capacity(); // reused maps may be full already
    if (http)
        spdlog::info("serving /metrics, /healthz and /readyz on http://{}", format_listen_address(http->address()));
    spdlog::info("ready: accelerating local TCP pairs in cgroup {} (pins at {})", cgroup, config.pin_path);
    notify_ready("accelerating local TCP pairs in cgroup " + cgroup);

    wait_for_stop(datapath, metrics);
    notify_stopping("detaching sock_ops; maps stay pinned at " + config.pin_path);

    metrics.datapath_down();
    http.reset();
    info.daemon_pid = 0;
    datapath.publish_info(info);
    spdlog::info("detaching sock_ops; paired connections keep their redirect through the maps pinned at {}",
                 config.pin_path);
}

} // namespace sockmapd
