// The one JSON style of every --json / -o json output: an indented object (or array) and a newline; bytes that
// are not UTF-8 (cgroup and namespace names are any bytes) replaced instead of failing the whole output.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace sockmapd {

std::string format_json(const nlohmann::ordered_json& value);

// A failure as --json reports it on stdout: {"error": message}, plus `extra` keys (e.g. the file) first.
std::string format_error_json(const std::string& message, nlohmann::ordered_json extra = nlohmann::ordered_json::object());

} // namespace sockmapd
