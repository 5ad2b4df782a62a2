// What BPF objects exist right now, through bpftool: to prove a failed start left nothing behind.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace smdtest {

// IDs of the loaded BPF programs whose names start with "smd_".
std::set<std::uint32_t> smd_program_ids();

// "name (attach type)" of each program attached directly to the cgroup directory `cgroup`.
std::vector<std::string> cgroup_programs(const std::string& cgroup);

// PIDs of the running processes whose command name (comm) is `name`.
std::vector<int> processes_named(const std::string& name);

// Names of the entries in a directory (e.g. a pin path), sorted; empty if it does not exist.
std::vector<std::string> directory_entries(const std::string& dir);

} // namespace smdtest
