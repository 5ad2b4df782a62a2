// sockmapd's flags, their help text and their checks: everything wrong with a command line is found here,
// before the daemon touches the system.
#include "sockmapd/daemon_command_line.hpp"

#include <ostream>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/cli.hpp"
#include "sockmapd/http_server.hpp"
#include "sockmapd/version.hpp"

namespace sockmapd {

std::variant<DaemonCommandLine, int> parse_daemon_command_line(const std::vector<std::string>& args, std::ostream& out,
                                                               std::ostream& err)
{
    DaemonCommandLine line;
    auto& config = line.config;
    config.pin_path = kDefaultPinPath;
    config.metrics_address = kDefaultMetricsAddress;

    CLI::App app{"sockmapd: accelerates TCP connections between local sockets with eBPF sockmap", "sockmapd"};
    use_plain_help(app);
    bool version = false;
    app.add_flag("--version", version, "print the version, git revision and libbpf version, then exit");
    app.add_option("--cgroup", config.cgroup,
                   "cgroup v2 directory whose processes' connections are accelerated; without it, the cgroup v2 "
                   "mount: every process on the host")
        ->type_name("DIR")
        ->check(non_blank("pass a cgroup v2 directory, or leave --cgroup out to accelerate the whole host"));
    app.add_option("--pin-path", config.pin_path, "bpffs directory for the pinned maps")
        ->type_name("DIR")
        ->capture_default_str();
    app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error or off")
        ->type_name("LEVEL")
        ->capture_default_str();
    app.add_option("--log-format", config.log_format, "text, or json for one JSON object per line")
        ->type_name("FORMAT")
        ->capture_default_str();
    app.add_option("--metrics-address", config.metrics_address,
                   "where /metrics, /healthz and /readyz are served; \"\" disables the HTTP server")
        ->type_name("HOST:PORT")
        ->capture_default_str();
    app.add_option("--max-sockets", config.max_sockets,
                   "capacity of the sockhash, sockets accelerated at once (2 to 16777216)")
        ->type_name("N")
        ->check(whole_number(2, 1u << 24))
        ->capture_default_str();
    app.add_option("--policy", config.policy_path,
                   "YAML file saying which connections to accelerate (docs/policy.md); reloaded on SIGHUP and "
                   "when it changes; default: accelerate every local pair")
        ->type_name("FILE");
    app.add_option("--max-queued-bytes", config.max_queued_bytes,
                   "unread redirected bytes a receiver may hold before it must show that it reads, or its connection "
                   "leaves the redirect for TCP: 0 to 4GiB, e.g. 8MiB; the cap then grows as it reads, like a TCP "
                   "receive buffer. Default (or 0): a fifth of what TCP holds for a stalled reader, about 0.8MiB; more "
                   "means fewer early moves to TCP and more memory per stalled reader")
        ->type_name("SIZE")
        ->transform(byte_size(kMaxQueuedBytesLimit));
    app.add_option("--max-hints", config.max_hints,
                   "capacity of smd_hints (16 to 16777216): SYNs in flight plus those of handshakes that never "
                   "completed, kept until --hint-max-age; a SYN that finds it full is counted (hints_full) and its "
                   "connection stays on TCP")
        ->type_name("N")
        ->check(whole_number(16, 1u << 24))
        ->capture_default_str();
    std::uint32_t hint_max_age_s = SMD_DEFAULT_HINT_MAX_AGE_S;
    app.add_option("--hint-max-age", hint_max_age_s,
                   "seconds (1 to 3600) after which the SYN hint of a handshake that did not complete is deleted")
        ->type_name("SECONDS")
        ->check(whole_number(1, 3600))
        ->capture_default_str();
    app.add_option("--raise-receive-buffers", config.raise_receive_buffers,
                   "auto, on or off: raise a receiver's receive buffer as its redirect queue grows, so that a FIN or "
                   "RST arriving while it reads is not dropped. auto: on where the kernel has the iter/tcp refcount "
                   "fix (7.2; 7.1.9, 6.18.45, 6.12.104, 6.6.152, 6.1.183), which raising runs more often")
        ->type_name("MODE")
        ->check(CLI::IsMember({"auto", "on", "off"}).description(""))
        ->capture_default_str();
    app.add_flag("--check", line.check, "report whether this node can run sockmapd (as sockmapctl doctor), then exit");
    app.add_flag("--json", line.json, "with --check: machine-readable report (same as -o json)");
    std::string output = "text";
    app.add_option("-o,--output", output, "with --check: text or json")
        ->type_name("FORMAT")
        ->check(CLI::IsMember({"text", "json"}).description(""));
    if (auto exit_code = parse_command_line(app, args, "sockmapd", out, err))
        return *exit_code;
    if (version) {
        out << format_version_text("sockmapd", version_info());
        return 0;
    }
    line.json = line.json || output == "json";
    if (line.json && !line.check) {
        err << "sockmapd: --json and -o json apply only to --check; see 'sockmapd --help'\n";
        return kUsageError;
    }
    config.hint_max_age = std::chrono::seconds(hint_max_age_s);
    return line;
}

} // namespace sockmapd
