// The real build/sockmapd under test, on its own pin path, and its counters through sockmapctl.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "process.hpp"

namespace smdtest {

class Daemon {
public:
    // Does not start it; the pin path is unique to this object and removed when it dies.
    explicit Daemon(std::string cgroup);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Starts sockmapd and waits (bounded) until sockmapctl reports it running with both programs. Adds
    // --metrics-address "" (no HTTP server) unless extra_args set --metrics-address.
    void start(const std::vector<std::string>& extra_args = {});
    // SIGTERM (or another signal) and wait for the exit.
    void stop(int sig = 15);
    bool running() { return process_.running(); }

    const std::string& pin_path() const { return pin_path_; }
    const std::string& log_path() const { return log_path_; }
    std::string log() const;

    nlohmann::json status() const;
    // One counter from `sockmapctl status --json`, e.g. "redirected_bytes".
    std::uint64_t counter(const std::string& name) const;

private:
    std::string cgroup_;
    std::string pin_path_;
    std::string log_path_;
    Process process_;
};

// Empties the pinned smd_sockhash (a socket that outlived the test would keep the programs loaded), then removes
// the pin directory and everything in it (BPF objects are freed once nothing else holds them).
void remove_pins(const std::string& pin_path);

} // namespace smdtest
