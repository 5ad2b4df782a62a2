// The per-CPU data-path counters, summed across CPUs and named for humans and metrics.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "sockmapd/shared.h"

namespace sockmapd {

using CounterValues = std::array<std::uint64_t, SMD_CTR_MAX>;

// Stable snake_case name of a counter, used in sockmapctl output and metrics.
std::string_view counter_name(enum smd_counter counter);

// Sums one smd_counters value per possible CPU, as bpf_map_lookup_elem returns them for a per-CPU map.
CounterValues sum_per_cpu(const struct smd_counters* per_cpu, int ncpus);

// Reads and sums the pinned or owned smd_counters map.
CounterValues read_counters(int counters_map_fd);

} // namespace sockmapd
