// The policy compiled for the BPF side (rule masks per port, uid, cgroup and network) and written into the
// pinned policy maps: the slot not in force first, then the switch -- see shared.h and docs/policy.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sockmapd/policy.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {

// A policy as masks: bit i of every mask stands for rule i.
struct CompiledPolicy {
    struct smd_policy_slot slot {};
    std::map<std::uint16_t, std::uint64_t> ports;
    std::map<std::uint32_t, std::uint64_t> uids;
    std::map<std::uint64_t, std::uint64_t> cgroups;
    // Every network any rule lists, with the rules of every network that contains it: an LPM lookup finds
    // only the longest match, which must therefore carry the shorter matches' rules too.
    std::vector<std::pair<Cidr, std::uint64_t>> cidrs;
    std::vector<struct smd_policy_rule> rules;
    std::string source;
    std::string sha256;
};

// cgroup_ids[i] holds the resolved ids of rule i's cgroup selectors (resolve_cgroup_ids).
CompiledPolicy compile_policy(const Policy& policy, const std::vector<std::vector<std::uint64_t>>& cgroup_ids);

// Loads, validates, resolves the cgroups against cgroup2_root and compiles: everything a (re)load does before
// the first write to a map. Throws PolicyError.
CompiledPolicy prepare_policy(const Policy& policy, const std::string& cgroup2_root);

// The policy maps of a loaded or pinned data path, by fd; not owned.
struct PolicyMapFds {
    int ctl = -1;
    int slots = -1;
    int ports = -1;
    int uids = -1;
    int cgroups = -1;
    int cidrs = -1;
    int rules = -1;
    int hits = -1;
};

// Writes the compiled policy into the slot not in force, then makes that slot the one in force. Connections
// set up from then on are decided by it; pairs made before keep their acceleration. Returns the generation
// number of the policy now in force. Throws sockmapd::Error when a map refuses a write (the old policy then
// stays in force: the switch is the last write).
std::uint32_t install_policy(const PolicyMapFds& maps, const CompiledPolicy& policy);

} // namespace sockmapd
