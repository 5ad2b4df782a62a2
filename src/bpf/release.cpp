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
// A sweep walks every TCP socket of the namespaces it enters: 20 ms for one of 10 000 sockets on a 2-vCPU VM. A
// connection that stays pending (a reader that does not read) would have it repeat every 50 ms for as long, so
// sweeps between events are spaced 20 times as long as the last one took: at most 5 % of a CPU.
constexpr int kSweepCostRatio = 20;
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

namespace {

// What one pair entry asks of a sweep: to release a leaving connection's sockets (pending until they are out of
// the sockhash), or to raise a receive buffer (one sweep does it).
struct Work {
    bool leaving = false;
    bool grow = false;
};

Work work_of(const struct smd_pair_state& state, std::uint64_t now)
{
    auto has = [&](std::uint32_t role, std::uint32_t flag) {
        return (state.flags & flag) && smd_pair_end_in_sockhash(state.flags, role);
    };
    // The release iterator marks such an active end leaving (release.bpf.c, alone_too_long()).
    bool alone = smd_pair_end_in_sockhash(state.flags, SMD_ROLE_ACTIVE) &&
                 !(state.flags & (SMD_PAIR_PASSIVE_JOINING | SMD_PAIR_PASSIVE_IN)) &&
                 now - state.created_ns > SMD_LONE_ACTIVE_NS;
    return {.leaving = has(SMD_ROLE_ACTIVE, SMD_PAIR_LEAVING) || has(SMD_ROLE_PASSIVE, SMD_PAIR_LEAVING) || alone,
            .grow = has(SMD_ROLE_ACTIVE, SMD_PAIR_GROW(SMD_ROLE_ACTIVE)) ||
                    has(SMD_ROLE_PASSIVE, SMD_PAIR_GROW(SMD_ROLE_PASSIVE))};
}

void add(LeavingPairs& found, const struct smd_pair_key& key, const Work& work)
{
    if (work.leaving)
        found.pending.push_back(key);
    if (work.leaving || work.grow)
        found.netns_cookies.insert(key.netns_cookie);
}

} // namespace

LeavingPairs find_leaving_pairs(int pairs_fd)
{
    LeavingPairs found;
    const std::uint64_t now = monotonic_ns();
    for_each_entry<struct smd_pair_key, struct smd_pair_state>(
        pairs_fd, "smd_pairs", [&](const struct smd_pair_key& key, const struct smd_pair_state& state) {
            add(found, key, work_of(state, now));
        });
    return found;
}

LeavingPairs still_leaving(int pairs_fd, const std::vector<struct smd_pair_key>& keys)
{
    LeavingPairs found;
    const std::uint64_t now = monotonic_ns();
    for (const auto& key : keys) {
        struct smd_pair_state state {};
        if (bpf_map_lookup_elem(pairs_fd, &key, &state) == 0)
            add(found, key, {.leaving = work_of(state, now).leaving, .grow = false});
    }
    return found;
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
    // A new leaving connection or a buffer to raise always comes with an event; between events only the pending
    // pairs can have work, and the whole table is read again only after the idle period, for active ends left alone.
    LeavingPairs leaving;
    auto started = std::chrono::steady_clock::now();
    auto full_period = std::max<std::chrono::milliseconds>(kIdlePeriod, full_read_ * kIdleCostRatio);
    if (after_event || pending_.empty() || started - last_full_ >= full_period) {
        leaving = find_leaving_pairs(pairs_fd_);
        last_full_ = started;
        full_read_ = std::chrono::ceil<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    } else {
        leaving = still_leaving(pairs_fd_, pending_);
    }
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

    std::size_t before = pending_.size();
    pending_ = still_leaving(pairs_fd_, leaving.pending).pending;
    if (pending_.empty())
        return idle_period_ = full_period;
    if (after_event || pending_.size() < before)
        idle_period_ = kFirstPeriod;
    else
        idle_period_ = std::min<std::chrono::milliseconds>(idle_period_ * 2, kLongestPeriod);
    auto took = std::chrono::ceil<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    return std::max<std::chrono::milliseconds>(idle_period_, took * kSweepCostRatio);
}

} // namespace sockmapd
