// The sockmapd daemon: checks, loads and attaches the data path, then waits for signals.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "sockmapd/shared.h"

namespace sockmapd {

struct DaemonConfig {
    std::string cgroup;       // empty: the cgroup v2 mount point
    std::string pin_path;
    std::string log_level = "info";
    std::string log_format = "text";
    std::string metrics_address; // HOST:PORT of /metrics, /healthz, /readyz; empty: no HTTP server
    std::uint32_t max_sockets = SMD_DEFAULT_MAX_SOCKETS;
    std::string policy_path; // empty: the built-in default policy (accelerate every local pair)
    // Unread redirected bytes a receiver may hold before its sender moves to TCP; nullopt: net.ipv4.tcp_rmem's
    // maximum; 0: no limit.
    std::optional<std::uint64_t> max_queued_bytes;
    std::uint32_t max_hints = SMD_DEFAULT_MAX_HINTS;
    // SYN hints older than this are deleted: their handshake never completed.
    std::chrono::seconds hint_max_age{SMD_DEFAULT_HINT_MAX_AGE_S};
    // "auto", "on" or "off": raise a receiver's receive buffer as its redirect queue grows (docs/design.md, "Room
    // in the backlog"); auto: only on kernels whose iter/tcp has the refcount fix (iter_tcp_refcount_fixed()).
    std::string raise_receive_buffers = "auto";
};

// Blocks until SIGTERM or SIGINT. Throws sockmapd::Error on anything that keeps it from running;
// in that case nothing is left attached or newly pinned.
void run_daemon(const DaemonConfig& config);

} // namespace sockmapd
