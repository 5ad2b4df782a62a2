// sockmapctl: the operator's view of a running (or stopped) sockmapd, from its pinned maps.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "sockmapd/bpffs.hpp"
#include "sockmapd/pinned.hpp"
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
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version print to stdout and exit 0. A bad command line is one line on stderr, like every
        // other refusal (CLI11's own output adds a second "Run with --help" line, twice for subcommands).
        if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
            return app.exit(e);
        std::string message = e.what();
        std::replace(message.begin(), message.end(), '\n', ' ');
        std::fprintf(stderr, "sockmapctl: %s; see 'sockmapctl --help'\n", message.c_str());
        return e.get_exit_code();
    }

    try {
        sockmapd::PinnedDatapath datapath(pin_path);
        auto report = datapath.status();
        std::cout << (json ? sockmapd::format_status_json(report) : sockmapd::format_status_text(report));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sockmapctl: %s\n", e.what());
        return 1;
    }
}
