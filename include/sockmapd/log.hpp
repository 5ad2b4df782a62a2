// One log: spdlog for the daemon and for libbpf's own messages.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>

namespace sockmapd {

// level: trace, debug, info, warn, error, critical, off. format: text (a line for humans, local time with its
// UTC offset) or json (one object per line: time, level, msg). Throws on anything else.
void setup_logging(const std::string& level, const std::string& format = "text");

// The formatter setup_logging installs for `format`; throws on an unknown format.
std::unique_ptr<spdlog::formatter> make_log_formatter(const std::string& format);

// A libbpf message as the log shows it: "libbpf: " once (libbpf adds it to most of its messages itself), no
// trailing newline.
std::string libbpf_log_message(std::string_view raw);

// text as the contents of a JSON string: quotes, backslashes and control characters escaped.
std::string json_escape(std::string_view text);

} // namespace sockmapd
