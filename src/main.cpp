// sockmapd: parse flags, block the stop/reload signals, run the daemon, map failures to one line.
#include <CLI/CLI.hpp>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/cli.hpp"
#include "sockmapd/daemon.hpp"
#include "sockmapd/doctor.hpp"
#include "sockmapd/error.hpp"
#include "sockmapd/http_server.hpp"
#include "sockmapd/log.hpp"
#include "sockmapd/version.h"

namespace {

// Blocks SIGTERM/SIGINT/SIGHUP for the process so that the daemon takes them synchronously.
class ScopedSignalMask {
public:
    ScopedSignalMask()
    {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, &previous_);
    }
    ~ScopedSignalMask() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
    ScopedSignalMask(const ScopedSignalMask&) = delete;
    ScopedSignalMask& operator=(const ScopedSignalMask&) = delete;

private:
    sigset_t previous_;
};

} // namespace

int main(int argc, char** argv)
{
    sockmapd::DaemonConfig config;
    config.pin_path = sockmapd::kDefaultPinPath;

    CLI::App app{"sockmapd: accelerates TCP connections between local sockets with eBPF sockmap"};
    app.set_version_flag("--version", SOCKMAPD_VERSION);
    app.add_option("--cgroup", config.cgroup,
                   "cgroup v2 directory whose processes' connections are accelerated (default: the cgroup v2 mount)");
    app.add_option("--pin-path", config.pin_path, "bpffs directory for the pinned maps")->capture_default_str();
    app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error or off")->capture_default_str();
    app.add_option("--log-format", config.log_format, "text, or json for one JSON object per line")
        ->capture_default_str();
    config.metrics_address = sockmapd::kDefaultMetricsAddress;
    app.add_option("--metrics-address", config.metrics_address,
                   "HOST:PORT for /metrics, /healthz and /readyz; \"\" disables the HTTP server")
        ->capture_default_str();
    app.add_option("--max-sockets", config.max_sockets, "capacity of the sockhash (sockets accelerated at once)")
        ->check(CLI::Range(2u, 1u << 24))
        ->capture_default_str();
    app.add_option("--policy", config.policy_path,
                   "YAML file saying which connections to accelerate (docs/policy.md); reloaded on SIGHUP and "
                   "when it changes; default: accelerate every local pair");
    app.add_option("--max-queued-bytes", config.max_queued_bytes,
                   "unread redirected bytes a receiver may hold before it must show that it reads, or its connection "
                   "leaves the redirect for TCP (suffixes KiB, MiB, GiB); the cap then grows as it reads, like a TCP "
                   "receive buffer. Default (or 0): a fifth of what TCP holds for a stalled reader, about 0.8 MiB; "
                   "more means fewer early moves to TCP and more memory per stalled reader")
        ->transform(CLI::AsSizeValue(false));
    app.add_option("--max-hints", config.max_hints,
                   "capacity of smd_hints: SYNs in flight plus those of handshakes that never completed, kept until "
                   "--hint-max-age; a SYN that finds it full is counted (hints_full) and its connection stays on TCP")
        ->check(CLI::Range(16u, 1u << 24))
        ->capture_default_str();
    std::uint32_t hint_max_age_s = SMD_DEFAULT_HINT_MAX_AGE_S;
    app.add_option("--hint-max-age", hint_max_age_s,
                   "seconds after which the SYN hint of a handshake that did not complete is deleted")
        ->check(CLI::Range(1u, 3600u))
        ->capture_default_str();
    bool check = false, check_json = false;
    app.add_flag("--check", check, "report whether this node can run sockmapd (as sockmapctl doctor), then exit");
    app.add_flag("--json", check_json, "with --check: machine-readable report");
    if (auto exit_code = sockmapd::parse_command_line(app, argc, argv, "sockmapd"))
        return *exit_code;
    if (check_json && !check) {
        std::fprintf(stderr, "sockmapd: --json applies only to --check; see 'sockmapd --help'\n");
        return 2;
    }
    if (check)
        return sockmapd::run_doctor(config.cgroup, config.pin_path, check_json);
    config.hint_max_age = std::chrono::seconds(hint_max_age_s);

    try {
        sockmapd::setup_logging(config.log_level, config.log_format);
        ScopedSignalMask signals;
        sockmapd::run_daemon(config);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sockmapd: %s\n", e.what());
        return 1;
    }
}
