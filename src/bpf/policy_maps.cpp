// Compiles a policy into rule masks and writes them into the policy maps, switching slots last.
#include "sockmapd/policy_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "sockmapd/error.hpp"

namespace sockmapd {
namespace {

std::uint64_t bit(std::size_t rule)
{
    return std::uint64_t{1} << rule;
}

// Whether network outer holds network inner (inner is as long or longer and agrees on outer's bits).
bool contains(const Cidr& outer, const Cidr& inner)
{
    if (outer.prefix_len > inner.prefix_len)
        return false;
    unsigned full = outer.prefix_len / 8, rest = outer.prefix_len % 8;
    if (std::memcmp(outer.addr.data(), inner.addr.data(), full) != 0)
        return false;
    if (rest == 0)
        return true;
    auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (outer.addr[full] & mask) == (inner.addr[full] & mask);
}

template <std::size_t N>
void copy_truncated(char (&dst)[N], const std::string& src)
{
    std::memset(dst, 0, N);
    std::memcpy(dst, src.data(), std::min(src.size(), N - 1));
}

void write(int fd, const void* key, const void* value, const char* what)
{
    if (bpf_map_update_elem(fd, key, value, BPF_ANY) != 0)
        throw_errno(errno, std::string("write policy map ") + what);
}

// Deletes every entry of a hash or LPM map whose key names the slot.
template <typename Key, typename SlotOf>
void clear_slot(int fd, std::uint32_t slot, SlotOf slot_of, const char* what)
{
    std::vector<Key> doomed;
    Key key {}, next {};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (slot_of(next) == slot)
            doomed.push_back(next);
        key = next;
        prev = &key;
    }
    for (const auto& k : doomed)
        if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT)
            throw_errno(errno, std::string("clear policy map ") + what);
}

// Writes the slot's 65536 port masks through a mapping of the array (BPF_F_MMAPABLE), touching only the entries
// that change: no syscall per port, and a start-up with the default policy writes nothing.
void write_ports(int fd, std::uint32_t slot, const std::map<std::uint16_t, std::uint64_t>& ports)
{
    constexpr std::size_t kPorts = 1u << 16;
    constexpr std::size_t kBytes = SMD_POLICY_SLOTS * kPorts * sizeof(std::uint64_t);
    void* mapping = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED)
        throw_errno(errno, "map policy map smd_pol_ports");
    auto* masks = static_cast<volatile std::uint64_t*>(mapping) + SMD_POLICY_PORT_INDEX(slot, 0);
    for (std::size_t port = 0; port < kPorts; ++port) {
        auto it = ports.find(static_cast<std::uint16_t>(port));
        std::uint64_t wanted = it == ports.end() ? 0 : it->second;
        if (masks[port] != wanted)
            masks[port] = wanted;
    }
    ::munmap(mapping, kBytes);
}

void clear_hits(int fd, std::uint32_t slot)
{
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus < 0)
        throw_errno(-ncpus, "count possible CPUs");
    std::vector<std::uint64_t> zeros(static_cast<std::size_t>(ncpus), 0);
    for (std::uint32_t rule = 0; rule < SMD_POLICY_HITS_PER_SLOT; ++rule) {
        std::uint32_t index = slot * SMD_POLICY_HITS_PER_SLOT + rule;
        write(fd, &index, zeros.data(), "smd_pol_hits");
    }
}

} // namespace

CompiledPolicy compile_policy(const Policy& policy, const std::vector<std::vector<std::uint64_t>>& cgroup_ids)
{
    if (policy.rules.size() > SMD_POLICY_MAX_RULES)
        throw PolicyError(policy.source + ": " + std::to_string(policy.rules.size()) + " rules; at most " +
                          std::to_string(SMD_POLICY_MAX_RULES) + " are supported");
    CompiledPolicy out;
    out.source = policy.source;
    out.sha256 = policy.sha256;
    out.slot.default_action =
        policy.default_action == PolicyAction::bypass ? SMD_ACTION_BYPASS : SMD_ACTION_ACCELERATE;

    std::vector<std::pair<Cidr, std::uint64_t>> listed; // each network with the rules that list it
    for (std::size_t i = 0; i < policy.rules.size(); ++i) {
        const PolicyRule& rule = policy.rules[i];
        out.slot.rules |= bit(i);
        if (rule.action == PolicyAction::bypass)
            out.slot.bypass |= bit(i);
        if (rule.uids.empty())
            out.slot.any_uid |= bit(i);
        if (rule.cgroups.empty())
            out.slot.any_cgroup |= bit(i);
        if (rule.ports.empty())
            out.slot.any_port |= bit(i);
        if (rule.cidrs.empty())
            out.slot.any_cidr |= bit(i);
        for (auto uid : rule.uids)
            out.uids[uid] |= bit(i);
        if (i < cgroup_ids.size())
            for (auto id : cgroup_ids[i])
                out.cgroups[id] |= bit(i);
        for (const auto& range : rule.ports)
            for (std::uint32_t port = range.first; port <= range.last; ++port)
                out.ports[static_cast<std::uint16_t>(port)] |= bit(i);
        for (const auto& cidr : rule.cidrs) {
            auto same = std::find_if(listed.begin(), listed.end(), [&](const auto& entry) {
                return entry.first.prefix_len == cidr.prefix_len && entry.first.addr == cidr.addr;
            });
            if (same == listed.end())
                listed.emplace_back(cidr, bit(i));
            else
                same->second |= bit(i);
        }

        struct smd_policy_rule compiled {};
        copy_truncated(compiled.name, rule.name);
        copy_truncated(compiled.selectors, describe_selectors(rule));
        compiled.action = rule.action == PolicyAction::bypass ? SMD_ACTION_BYPASS : SMD_ACTION_ACCELERATE;
        out.rules.push_back(compiled);
    }
    for (const auto& [network, unused] : listed) {
        std::uint64_t rules = 0;
        for (const auto& [outer, outer_rules] : listed)
            if (contains(outer, network))
                rules |= outer_rules;
        out.cidrs.emplace_back(network, rules);
    }
    if (out.uids.size() > SMD_POLICY_MAX_SELECTORS || out.cgroups.size() > SMD_POLICY_MAX_SELECTORS ||
        out.cidrs.size() > SMD_POLICY_MAX_SELECTORS)
        throw PolicyError(policy.source + ": more than " + std::to_string(SMD_POLICY_MAX_SELECTORS) +
                          " distinct uids, cgroups or networks");
    return out;
}

CompiledPolicy prepare_policy(const Policy& policy, const std::string& cgroup2_root)
{
    std::vector<std::vector<std::uint64_t>> cgroup_ids;
    for (const auto& rule : policy.rules)
        cgroup_ids.push_back(resolve_cgroup_ids(policy, rule, cgroup2_root));
    return compile_policy(policy, cgroup_ids);
}

std::uint32_t install_policy(const PolicyMapFds& maps, const CompiledPolicy& policy)
{
    std::uint32_t zero = 0;
    struct smd_policy_ctl ctl {};
    if (bpf_map_lookup_elem(maps.ctl, &zero, &ctl) != 0)
        throw_errno(errno, "read smd_pol_ctl");
    const std::uint32_t slot = (ctl.active_slot & (SMD_POLICY_SLOTS - 1)) ^ 1;

    // The slot being written is not in force: a connection decided against it meanwhile would need a second
    // reload within its handshake, and gets a valid verdict of one of the two policies even then.
    clear_slot<struct smd_policy_uid_key>(maps.uids, slot, [](const auto& k) { return k.slot; }, "smd_pol_uids");
    clear_slot<struct smd_policy_cgroup_key>(maps.cgroups, slot, [](const auto& k) { return k.slot; },
                                             "smd_pol_cgroups");
    clear_slot<struct smd_policy_cidr_key>(maps.cidrs, slot, [](const auto& k) { return std::uint32_t{k.slot}; },
                                           "smd_pol_cidrs");
    write_ports(maps.ports, slot, policy.ports);
    for (const auto& [uid, rules] : policy.uids) {
        struct smd_policy_uid_key key {.uid = uid, .slot = slot};
        write(maps.uids, &key, &rules, "smd_pol_uids");
    }
    for (const auto& [id, rules] : policy.cgroups) {
        struct smd_policy_cgroup_key key {.cgroup_id = id, .slot = slot, .pad = 0};
        write(maps.cgroups, &key, &rules, "smd_pol_cgroups");
    }
    for (const auto& [network, rules] : policy.cidrs) {
        struct smd_policy_cidr_key key {};
        key.prefixlen = 8 + network.prefix_len;
        key.slot = static_cast<std::uint8_t>(slot);
        std::memcpy(key.addr, network.addr.data(), sizeof(key.addr));
        write(maps.cidrs, &key, &rules, "smd_pol_cidrs");
    }
    for (std::uint32_t rule = 0; rule < SMD_POLICY_MAX_RULES; ++rule) {
        struct smd_policy_rule value {};
        if (rule < policy.rules.size())
            value = policy.rules[rule];
        std::uint32_t index = slot * SMD_POLICY_MAX_RULES + rule;
        write(maps.rules, &index, &value, "smd_pol_rules");
    }
    clear_hits(maps.hits, slot);
    write(maps.slots, &slot, &policy.slot, "smd_pol_slots");

    // The switch: sock_ops reads active_slot first at every decision.
    ctl.active_slot = slot;
    ctl.generation += 1;
    ctl.loaded_unix = static_cast<std::uint64_t>(std::time(nullptr));
    ctl.nrules = static_cast<std::uint32_t>(policy.rules.size());
    copy_truncated(ctl.source, policy.source);
    copy_truncated(ctl.sha256, policy.sha256);
    write(maps.ctl, &zero, &ctl, "smd_pol_ctl");
    return ctl.generation;
}

} // namespace sockmapd
