// sockmapctl: the operator's view of a running (or stopped) sockmapd, from its pinned maps.
#include <time.h>

#include <cstdio>
#include <iostream>
#include <variant>

#include "sockmapd/cli.hpp"
#include "sockmapd/connections.hpp"
#include "sockmapd/ctl_command_line.hpp"
#include "sockmapd/doctor.hpp"
#include "sockmapd/json_output.hpp"
#include "sockmapd/pinned.hpp"
#include "sockmapd/pinned_policy.hpp"
#include "sockmapd/policy_check.hpp"
#include "sockmapd/uninstall.hpp"
#include "sockmapd/version.hpp"

namespace {

int run(const sockmapd::CtlCommandLine& line)
{
    using sockmapd::CtlCommand;
    bool json = line.json;
    switch (line.command) {
    case CtlCommand::version: {
        auto info = sockmapd::version_info();
        std::cout << (json ? sockmapd::format_version_json("sockmapctl", info)
                           : sockmapd::format_version_text("sockmapctl", info));
        return 0;
    }
    case CtlCommand::doctor:
        return sockmapd::run_doctor(line.cgroup, line.pin_path, json);
    case CtlCommand::uninstall:
        return sockmapd::uninstall({.pin_path = line.pin_path,
                                    .timeout = std::chrono::milliseconds(static_cast<long>(line.timeout_seconds * 1000)),
                                    .force = line.force},
                                   std::cout, std::cerr);
    case CtlCommand::policy_check:
        std::cout << sockmapd::check_policy_file(line.policy_file, json);
        return 0;
    case CtlCommand::policy_show: {
        auto report = sockmapd::PinnedPolicy(line.pin_path).read();
        std::cout << (json ? sockmapd::format_policy_json(report) : sockmapd::format_policy_text(report));
        return 0;
    }
    case CtlCommand::connections: {
        sockmapd::PinnedDatapath datapath(line.pin_path);
        struct timespec now {};
        ::clock_gettime(CLOCK_MONOTONIC, &now); // the clock of bpf_ktime_get_ns()
        auto now_ns = static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull + now.tv_nsec;
        auto connections = sockmapd::list_connections(datapath);
        std::cout << (json ? sockmapd::format_connections_json(connections, now_ns)
                           : sockmapd::format_connections_text(connections, now_ns));
        return 0;
    }
    case CtlCommand::status: {
        auto report = sockmapd::PinnedDatapath(line.pin_path).status();
        std::cout << (json ? sockmapd::format_status_json(report) : sockmapd::format_status_text(report));
        return 0;
    }
    }
    return 1;
}

} // namespace

int main(int argc, char** argv)
{
    auto parsed = sockmapd::parse_ctl_command_line(sockmapd::arguments(argc, argv), std::cout, std::cerr);
    if (auto* exit_code = std::get_if<int>(&parsed))
        return *exit_code;
    const auto& line = std::get<sockmapd::CtlCommandLine>(parsed);
    try {
        return run(line);
    } catch (const std::exception& e) {
        // With --json the failure is JSON on stdout too, so that a script reads one object either way.
        if (line.json)
            std::cout << (line.command == sockmapd::CtlCommand::policy_check
                              ? sockmapd::format_policy_check_error(line.policy_file, e.what())
                              : sockmapd::format_error_json(e.what()));
        else
            std::fprintf(stderr, "sockmapctl: %s\n", e.what());
        return 1;
    }
}
