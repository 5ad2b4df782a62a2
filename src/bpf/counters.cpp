// Names and per-CPU summing of the data-path counters declared in shared.h.
#include "sockmapd/counters.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <vector>

#include "sockmapd/error.hpp"

namespace sockmapd {
namespace {

// Same order as enum smd_counter.
constexpr std::string_view kNames[] = {
    "syn_hints",          "skipped_not_local",   "sockets_inserted",     "pairs_made",
    "redirected_messages", "redirected_bytes",   "fallback_no_peer",     "fallback_pinned",
    "fallback_no_context", "fallback_bytes",     "early_data",           "insert_failed_full",
    "insert_failed_refused", "key_collisions",   "pairs_closed",         "policy_bypassed",
    "fallback_backpressure", "left_backpressure", "hints_full",          "left_blocking_reader",
    "left_other",           "skipped_blocking",  "sockets_released",    "release_wakeups",
    "left_memcg",           "left_tcp_memory_pressure",
};
static_assert(std::size(kNames) == SMD_CTR_MAX, "every smd_counter needs a name");

} // namespace

std::string_view counter_name(enum smd_counter counter)
{
    return counter < SMD_CTR_MAX ? kNames[counter] : "unknown";
}

CounterValues sum_per_cpu(const struct smd_counters* per_cpu, int ncpus)
{
    CounterValues total{};
    for (int cpu = 0; cpu < ncpus; ++cpu)
        for (int i = 0; i < SMD_CTR_MAX; ++i)
            total[i] += per_cpu[cpu].value[i];
    return total;
}

CounterValues read_counters(int counters_map_fd)
{
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus < 0)
        throw_errno(-ncpus, "count possible CPUs");
    std::vector<struct smd_counters> per_cpu(ncpus);
    std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(counters_map_fd, &zero, per_cpu.data()) != 0)
        throw_errno(errno, "read smd_counters");
    return sum_per_cpu(per_cpu.data(), ncpus);
}

} // namespace sockmapd
