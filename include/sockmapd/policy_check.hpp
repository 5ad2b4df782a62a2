// `sockmapctl policy check FILE`: validate a policy file as sockmapd would load it, without touching the kernel.
#pragma once

#include <string>

#include "sockmapd/policy.hpp"

namespace sockmapd {

// Loads and validates path, resolving cgroup selectors below cgroup2_root ("" detects the cgroup v2 mount, and
// only when a rule has a cgroup selector). Returns the report to print; throws PolicyError (or Error when no
// cgroup v2 is mounted) with the one line to print instead.
std::string check_policy_file(const std::string& path, bool json, const std::string& cgroup2_root = "");

// "FILE: ok: N rules, default accelerate", or the same as a JSON object with the rules and the file's digest.
std::string format_policy_check(const Policy& policy, bool json);

// A refused file as `policy check --json` reports it: {"file": path, "ok": false, "error": message}.
std::string format_policy_check_error(const std::string& path, const std::string& message);

} // namespace sockmapd
