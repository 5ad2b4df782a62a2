// spdlog set-up; libbpf's messages are routed into the same log.
#include "sockmapd/log.hpp"

#include <bpf/libbpf.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <string>

#include "sockmapd/error.hpp"

namespace sockmapd {
namespace {

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args)
{
    static thread_local char buffer[1 << 16];
    int n = std::vsnprintf(buffer, sizeof(buffer), format, args);
    std::string message(buffer, n > 0 ? std::min<std::size_t>(n, sizeof(buffer) - 1) : 0);
    while (!message.empty() && message.back() == '\n')
        message.pop_back();
    switch (level) {
    case LIBBPF_WARN:
        spdlog::warn("libbpf: {}", message);
        break;
    case LIBBPF_INFO:
        spdlog::debug("libbpf: {}", message);
        break;
    case LIBBPF_DEBUG:
        spdlog::trace("libbpf: {}", message);
        break;
    }
    return n;
}

} // namespace

void setup_logging(const std::string& level)
{
    auto parsed = spdlog::level::from_str(level);
    if (parsed == spdlog::level::off && level != "off")
        throw Error("--log-level " + level + " is not a level; use trace, debug, info, warn, error or off");
    auto logger = spdlog::stderr_logger_mt("sockmapd");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->set_level(parsed);
    spdlog::set_default_logger(logger);
    libbpf_set_print(libbpf_print);
}

} // namespace sockmapd
