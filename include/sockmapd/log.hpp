// One log: spdlog for the daemon and for libbpf's own messages.
#pragma once

#include <string>

namespace sockmapd {

// level: trace, debug, info, warn, error, critical, off. Throws on anything else.
void setup_logging(const std::string& level);

} // namespace sockmapd
