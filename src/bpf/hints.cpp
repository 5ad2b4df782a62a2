// Aging of SYN hints: smd_hints is a plain hash, so hints of handshakes that never complete are deleted here.
#include "sockmapd/hints.hpp"

#include <bpf/bpf.h>
#include <time.h>

#include <cerrno>

#include "sockmapd/error.hpp"
#include "sockmapd/pinned_map.hpp"

namespace sockmapd {

std::uint64_t monotonic_ns()
{
    struct timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(now.tv_nsec);
}

std::vector<HintEntry> read_hints(int hints_fd)
{
    std::vector<HintEntry> entries;
    for_each_entry<struct smd_hint_key, struct smd_hint>(
        hints_fd, "read smd_hints", [&](const auto& key, const auto& value) { entries.push_back({key, value}); });
    return entries;
}

std::vector<struct smd_hint_key> expired_hints(const std::vector<HintEntry>& entries, std::uint64_t now_ns,
                                               std::chrono::nanoseconds max_age)
{
    std::vector<struct smd_hint_key> expired;
    for (const auto& entry : entries)
        if (entry.value.syn_ns <= now_ns && now_ns - entry.value.syn_ns > static_cast<std::uint64_t>(max_age.count()))
            expired.push_back(entry.key);
    return expired;
}

std::size_t delete_old_hints(int hints_fd, std::chrono::nanoseconds max_age)
{
    std::uint64_t now = monotonic_ns(); // before the read: a hint recorded during it is never too old
    auto expired = expired_hints(read_hints(hints_fd), now, max_age);
    std::size_t deleted = 0, done = 0;
    while (done < expired.size()) {
        auto count = static_cast<std::uint32_t>(expired.size() - done);
        int err = bpf_map_delete_batch(hints_fd, &expired[done], &count, nullptr);
        int saved = errno;
        deleted += count;
        done += count;
        if (err == 0)
            continue;
        if (saved != ENOENT)
            throw_errno(saved, "delete expired hints from smd_hints");
        ++done; // deleted by the data path since we read it: the batch stops at it
    }
    return deleted;
}

} // namespace sockmapd
