// sockmapctl: the operator's view of a running (or stopped) sockmapd, from its pinned maps.
#include <CLI/CLI.hpp>

#include <time.h>

#include <cstdio>
#include <iostream>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/cli.hpp"
#include "sockmapd/pinned.hpp"
#include "sockmapd/policy_check.hpp"
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
    auto* connections = app.add_subcommand("connections", "the connections in smd_pairs: paired or waiting for their peer");
    connections->add_option("--pin-path", pin_path, "bpffs directory of the pinned maps")->capture_default_str();
    connections->add_flag("--json", json, "machine-readable output");
    std::string policy_file;
    auto* policy = app.add_subcommand("policy", "acceleration policy files (docs/policy.md)");
    policy->require_subcommand(1);
    auto* policy_check = policy->add_subcommand("check", "validate a policy file without touching the kernel");
    policy_check->add_option("FILE", policy_file, "the policy file, e.g. /etc/sockmapd/policy.yaml")->required();
    policy_check->add_flag("--json", json, "machine-readable output");
    if (auto exit_code = sockmapd::parse_command_line(app, argc, argv, "sockmapctl"))
        return *exit_code;

    try {
        if (policy_check->parsed()) {
            std::cout << sockmapd::check_policy_file(policy_file, json);
            return 0;
        }
        sockmapd::PinnedDatapath datapath(pin_path);
        if (connections->parsed()) {
            struct timespec now {};
            ::clock_gettime(CLOCK_MONOTONIC, &now); // the clock of bpf_ktime_get_ns()
            auto now_ns = static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull + now.tv_nsec;
            auto pairs = datapath.pairs();
            std::cout << (json ? sockmapd::format_connections_json(pairs, now_ns)
                               : sockmapd::format_connections_text(pairs, now_ns));
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
