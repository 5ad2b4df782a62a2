// sockmapctl: the operator's view of a running (or stopped) sockmapd, from its pinned maps.
#include <CLI/CLI.hpp>

#include <time.h>

#include <cstdio>
#include <iostream>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/cli.hpp"
#include "sockmapd/connections.hpp"
#include "sockmapd/doctor.hpp"
#include "sockmapd/pinned.hpp"
#include "sockmapd/pinned_policy.hpp"
#include "sockmapd/policy_check.hpp"
#include "sockmapd/uninstall.hpp"
#include "sockmapd/version.h"

int main(int argc, char** argv)
{
    std::string pin_path = sockmapd::kDefaultPinPath;
    bool json = false;

    CLI::App app{"sockmapctl: inspect and operate sockmapd"};
    app.set_version_flag("--version", SOCKMAPD_VERSION);
    app.require_subcommand(1);
    auto* status = app.add_subcommand("status", "attached cgroup, programs, sockets, pairs and counters");
    status->add_option("--pin-path", pin_path, "bpffs directory of the pinned maps")->capture_default_str();
    status->add_flag("--json", json, "machine-readable output");
    auto* connections = app.add_subcommand("connections", "accelerated connections: endpoints, namespace, cgroup, bytes per direction");
    connections->add_option("--pin-path", pin_path, "bpffs directory of the pinned maps")->capture_default_str();
    connections->add_flag("--json", json, "machine-readable output");
    std::string cgroup;
    auto* doctor = app.add_subcommand("doctor", "can this node run sockmapd? kernel, BTF, BPF features, cgroup, "
                                                "bpffs, privileges, conflicts; exit 1 if not");
    doctor->add_option("--cgroup", cgroup, "the cgroup sockmapd attaches to (default: the cgroup v2 mount)");
    doctor->add_option("--pin-path", pin_path, "bpffs directory of the pinned maps")->capture_default_str();
    doctor->add_flag("--json", json, "machine-readable output");
    double timeout_seconds = 30;
    bool force = false;
    auto* uninstall = app.add_subcommand("uninstall", "wait for redirect queues to drain, then detach and unpin everything");
    uninstall->add_option("--pin-path", pin_path, "bpffs directory of the pinned maps")->capture_default_str();
    uninstall->add_option("--timeout", timeout_seconds, "seconds to wait for readers to read redirected data")
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str();
    uninstall->add_flag("--force", force, "after the timeout, drop unread redirected data instead of refusing");
    std::string policy_file;
    auto* policy = app.add_subcommand("policy", "acceleration policy files (docs/policy.md)");
    policy->require_subcommand(1);
    auto* policy_check = policy->add_subcommand("check", "validate a policy file without touching the kernel");
    policy_check->add_option("FILE", policy_file, "the policy file, e.g. /etc/sockmapd/policy.yaml")->required();
    policy_check->add_flag("--json", json, "machine-readable output");
    auto* policy_show = policy->add_subcommand("show", "the policy in force, with the decisions of each rule");
    policy_show->add_option("--pin-path", pin_path, "bpffs directory of the pinned maps")->capture_default_str();
    policy_show->add_flag("--json", json, "machine-readable output");
    if (auto exit_code = sockmapd::parse_command_line(app, argc, argv, "sockmapctl"))
        return *exit_code;

    try {
        if (doctor->parsed())
            return sockmapd::run_doctor(cgroup, pin_path, json);
        if (uninstall->parsed())
            return sockmapd::uninstall({.pin_path = pin_path,
                                        .timeout = std::chrono::milliseconds(static_cast<long>(timeout_seconds * 1000)),
                                        .force = force},
                                       std::cout, std::cerr);
        if (policy_check->parsed()) {
            std::cout << sockmapd::check_policy_file(policy_file, json);
            return 0;
        }
        if (policy_show->parsed()) {
            auto report = sockmapd::PinnedPolicy(pin_path).read();
            std::cout << (json ? sockmapd::format_policy_json(report) : sockmapd::format_policy_text(report));
            return 0;
        }
        sockmapd::PinnedDatapath datapath(pin_path);
        if (connections->parsed()) {
            struct timespec now {};
            ::clock_gettime(CLOCK_MONOTONIC, &now); // the clock of bpf_ktime_get_ns()
            auto now_ns = static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull + now.tv_nsec;
            auto connections = sockmapd::list_connections(datapath);
            std::cout << (json ? sockmapd::format_connections_json(connections, now_ns)
                               : sockmapd::format_connections_text(connections, now_ns));
            return 0;
        }
        auto report = datapath.status();
        std::cout << (json ? sockmapd::format_status_json(report) : sockmapd::format_status_text(report));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sockmapctl: %s\n", e.what());
        return 1;
    }
}
