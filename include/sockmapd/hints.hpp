// SYN hints in smd_hints: read in batches, counted, and deleted once older than the aging bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "sockmapd/shared.h"

namespace sockmapd {

struct HintEntry {
    struct smd_hint_key key;
    struct smd_hint value;
};

// Every entry of a smd_hints map, a few syscalls per thousand (bpf_map_lookup_batch).
std::vector<HintEntry> read_hints(int hints_fd);

// The keys of the entries whose SYN is older than max_age at now_ns (CLOCK_MONOTONIC, as bpf_ktime_get_ns).
// A SYN stamped after now_ns (read before the map) is young, not billions of years old.
std::vector<struct smd_hint_key> expired_hints(const std::vector<HintEntry>& entries, std::uint64_t now_ns,
                                               std::chrono::nanoseconds max_age);

// Deletes the hints older than max_age in batches; returns how many it deleted. A hint the data path deleted
// meanwhile (its handshake completed) is skipped.
std::size_t delete_old_hints(int hints_fd, std::chrono::nanoseconds max_age);

// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns().
std::uint64_t monotonic_ns();

} // namespace sockmapd
