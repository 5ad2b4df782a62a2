// Takes the sockets of connections that leave the redirect out of the sockhash, namespace by namespace.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "sockmapd/fd.hpp"
#include "sockmapd/shared.h"

struct ring_buffer;

namespace sockmapd {

// The leaving connections in smd_pairs (with the active ends alone too long, which the iterator makes leave) that
// still have a socket in the sockhash; and the namespaces a sweep has work in: theirs, and those of sockets whose
// receive buffer sk_msg asked to raise (SMD_PAIR_GROW), which one sweep does and which therefore are not pending.
struct LeavingPairs {
    std::vector<struct smd_pair_key> pending;
    std::set<std::uint64_t> netns_cookies;
};
// The whole table, in batches.
LeavingPairs find_leaving_pairs(int pairs_fd);
// Only these entries, one lookup each; raises are not looked for.
LeavingPairs still_leaving(int pairs_fd, const std::vector<struct smd_pair_key>& keys);

// sk_msg marks a connection as leaving, or a receiver as short of backlog room, and reports its namespace on
// smd_events; only an iter/tcp program, run inside that namespace, can take its sockets out of the sockhash, wake
// their readers and raise a receive buffer (release.bpf.c).
// While any leaving connection is not released yet (its reader has not read everything redirected to it),
// the namespaces are swept again, soon after an event and less often while nothing changes.
class Releaser {
public:
    Releaser(int iterator_link_fd, int pairs_fd, int events_fd);
    ~Releaser();
    Releaser(const Releaser&) = delete;
    Releaser& operator=(const Releaser&) = delete;

    // Polled for events by the daemon's loop.
    int fd() const;
    // Reads the events; true if there were any.
    bool drain_events();
    // Sweeps every namespace with a leaving connection, or an active end alone too long. Returns when to sweep
    // again: soon while any is pending, else in a few seconds, to look for active ends left alone.
    std::chrono::milliseconds sweep(bool after_event);
    std::size_t pending() const { return pending_.size(); }

private:
    int link_fd_, pairs_fd_;
    struct ring_buffer* events_ = nullptr;
    std::size_t event_count_ = 0;
    std::map<std::uint64_t, Fd> netns_; // cookie -> nsfs fd, of namespaces with leaving connections only
    std::map<std::uint64_t, std::chrono::steady_clock::time_point> unfindable_; // cookie -> when last looked for
    std::vector<struct smd_pair_key> pending_; // leaving pairs not released at the last sweep
    std::chrono::milliseconds idle_period_{0};
    std::chrono::milliseconds full_read_{0}; // how long the last read of the whole table took
    std::chrono::steady_clock::time_point last_full_{};
};

} // namespace sockmapd
