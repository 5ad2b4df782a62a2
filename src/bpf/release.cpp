// Runs the release iterator in the namespaces of leaving connections (docs/design.md, "A direction's life").
#include "sockmapd/release.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "sockmapd/error.hpp"
#include "sockmapd/netns_scan.hpp"
#include "sockmapd/pinned_map.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {
namespace {

// Right after an event the reader may be about to empty its queue: look again soon. While nothing changes, back
// off to the longest a reader that emptied its redirect queue may wait for the edge that the release gives it.
constexpr auto kFirstPeriod = std::chrono::milliseconds(2);
constexpr auto kLongestPeriod = std::chrono::milliseconds(50);
// With nothing leaving, how often the pair table is read for active ends left alone (SMD_LONE_ACTIVE_NS): every
// 2 s, or 200 times as long as the last read took, so that it never costs more than 0.5 % of a CPU (a full table
// of 65536 entries takes 28-40 ms on a 2-vCPU VM: every 7 s or so).
constexpr auto kIdlePeriod = std::chrono::milliseconds(2000);
constexpr int kIdleCostRatio = 200;
// A namespace that no process or bind mount shows (its sockets held by processes that left it) is looked for
// again at most this often: finding one reads every process's ns/net link, too much for every sweep.
constexpr auto kUnfindableRetry = std::chrono::seconds(1);

int count_event(void* ctx, void*, std::size_t)
{
    ++*static_cast<std::size_t*>(ctx);
    return 0;
}

// One pass of the iterator in the calling thread's namespace: reading it to the end runs the program on
// every TCP socket there.
void run_iterator(int link_fd)
{
    Fd it(bpf_iter_create(link_fd));
    if (!it) {
        spdlog::warn("cannot run the release iterator: {}", std::strerror(errno));
        return;
    }
    char buffer[64];
    while (::read(it.get(), buffer, sizeof(buffer)) > 0) {
    }
}

// bpf_ktime_get_ns()'s clock.
std::uint64_t monotonic_ns()
{
    struct timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(now.tv_nsec);
}

} // namespace

LeavingPairs find_leaving_pairs(int pairs_fd)
{
    LeavingPairs leaving;
    const std::uint64_t now = monotonic_ns();
    for_each_entry<struct smd_pair_key, struct smd_pair_state>(
        pairs_fd, "smd_pairs", [&](const struct smd_pair_key& key, const struct smd_pair_state& state) {
            auto has = [&](std::uint32_t role, std::uint32_t flag) {
                return (state.flags & flag) && smd_pair_end_in_sockhash(state.flags, role);
            };
            // The release iterator marks such an active end leaving (release.bpf.c, alone_too_long()).
            bool alone = smd_pair_end_in_sockhash(state.flags, SMD_ROLE_ACTIVE) &&
                         !(state.flags & (SMD_PAIR_PASSIVE_JOINING | SMD_PAIR_PASSIVE_IN)) &&
                         now - state.created_ns > SMD_LONE_ACTIVE_NS;
            bool left = has(SMD_ROLE_ACTIVE, SMD_PAIR_LEAVING) || has(SMD_ROLE_PASSIVE, SMD_PAIR_LEAVING) || alone;
            bool grow = has(SMD_ROLE_ACTIVE, SMD_PAIR_GROW(SMD_ROLE_ACTIVE)) ||
                        has(SMD_ROLE_PASSIVE, SMD_PAIR_GROW(SMD_ROLE_PASSIVE));
            if (left)
                ++leaving.pending;
            if (left || grow)
                leaving.netns_cookies.insert(key.netns_cookie);
        });
    return leaving;
}

Releaser::Releaser(int iterator_link_fd, int pairs_fd, int events_fd) : link_fd_(iterator_link_fd), pairs_fd_(pairs_fd)
{
    events_ = ring_buffer__new(events_fd, count_event, &event_count_, nullptr);
    if (!events_)
        throw_errno(errno, "read smd_events");
}

Releaser::~Releaser()
{
    ring_buffer__free(events_);
}

int Releaser::fd() const
{
    return ring_buffer__epoll_fd(events_);
}

bool Releaser::drain_events()
{
    std::size_t before = event_count_;
    ring_buffer__consume(events_);
    return event_count_ != before;
}

std::chrono::milliseconds Releaser::sweep(bool after_event)
{
    auto started = std::chrono::steady_clock::now();
    auto leaving = find_leaving_pairs(pairs_fd_);
    auto scan = std::chrono::ceil<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    std::erase_if(netns_, [&](const auto& entry) { return !leaving.netns_cookies.count(entry.first); });
    auto now = std::chrono::steady_clock::now();
    std::erase_if(unfindable_, [&](const auto& entry) {
        return !leaving.netns_cookies.count(entry.first) || now - entry.second >= kUnfindableRetry;
    });
    std::set<std::uint64_t> unknown;
    for (auto cookie : leaving.netns_cookies)
        if (!netns_.count(cookie) && !unfindable_.count(cookie))
            unknown.insert(cookie);
    for (auto& found : open_netns(unknown)) {
        unknown.erase(found.cookie);
        netns_.emplace(found.cookie, std::move(found.ns));
    }
    for (auto cookie : unknown) {
        spdlog::debug("network namespace {} of a leaving connection not found; looking again in {} s", cookie,
                      kUnfindableRetry.count());
        unfindable_.emplace(cookie, now);
    }

    for (const auto& [cookie, ns] : netns_)
        if (!run_in_netns(ns.get(), [this] { run_iterator(link_fd_); }))
            spdlog::warn("cannot enter network namespace {} to release its connections", cookie);

    std::size_t before = pending_;
    pending_ = leaving.netns_cookies.empty() ? 0 : find_leaving_pairs(pairs_fd_).pending;
    if (!pending_)
        return idle_period_ = std::max<std::chrono::milliseconds>(kIdlePeriod, scan * kIdleCostRatio);
    if (after_event || pending_ < before)
        idle_period_ = kFirstPeriod;
    else
        idle_period_ = std::min<std::chrono::milliseconds>(idle_period_ * 2, kLongestPeriod);
    return idle_period_;
}

} // namespace sockmapd
