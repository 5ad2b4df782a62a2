// sockmapd: parse flags, block the stop/reload signals, run the daemon, map failures to one line.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <variant>

#include "sockmapd/cli.hpp"
#include "sockmapd/daemon.hpp"
#include "sockmapd/daemon_command_line.hpp"
#include "sockmapd/doctor.hpp"
#include "sockmapd/log.hpp"

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
    auto parsed = sockmapd::parse_daemon_command_line(sockmapd::arguments(argc, argv), std::cout, std::cerr);
    if (auto* exit_code = std::get_if<int>(&parsed))
        return *exit_code;
    const auto& line = std::get<sockmapd::DaemonCommandLine>(parsed);
    if (line.check)
        return sockmapd::run_doctor(line.config.cgroup, line.config.pin_path, line.json);

    try {
        sockmapd::setup_logging(line.config.log_level, line.config.log_format);
        ScopedSignalMask signals;
        sockmapd::run_daemon(line.config);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sockmapd: %s\n", e.what());
        return 1;
    }
}
