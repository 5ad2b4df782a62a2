// Redirected bytes that readers have not read yet, measured in the kernel at the moment of asking.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "sockmapd/fd.hpp"

namespace sockmapd {

// What the redirect queues of the sockets in the sockhash hold now (docs/metrics.md).
struct QueuedBytes {
    std::uint64_t total = 0;   // summed over every socket in the sockhash
    std::uint64_t largest = 0; // the most one socket holds
    std::uint64_t sockets = 0; // sockets whose redirect queue is not empty
    std::uint64_t unreachable_netns = 0; // namespaces with sockets in the sockhash that could not be entered:
                                         // their sockets are missing from the figures
};

// Runs the smd_queued iterator (bpf/queued.bpf.c) in each namespace asked for. It loads its own copy of that one
// program against the pinned smd_sk_ctx, so sockmapctl measures without a daemon and the daemon's /metrics does
// the same; nothing is pinned or attached, and the program goes with this object. Namespaces found once are kept
// open until they are no longer asked for.
class QueueMeter {
public:
    // Throws if the program cannot be loaded (no iter/tcp, no pinned smd_sk_ctx, too few privileges).
    explicit QueueMeter(const std::string& pin_path);
    ~QueueMeter();
    QueueMeter(const QueueMeter&) = delete;
    QueueMeter& operator=(const QueueMeter&) = delete;

    // netns_cookies: the namespaces of the sockets in the sockhash (MapFill::netns_cookies).
    QueuedBytes measure(const std::set<std::uint64_t>& netns_cookies);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::map<std::uint64_t, Fd> netns_; // cookie -> nsfs fd
};

} // namespace sockmapd
