// spdlog set-up; libbpf's messages are routed into the same log.
#include "sockmapd/log.hpp"

#include <bpf/libbpf.h>
#include <spdlog/pattern_formatter.h>
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
    std::string message =
        libbpf_log_message(std::string_view(buffer, n > 0 ? std::min<std::size_t>(n, sizeof(buffer) - 1) : 0));
    switch (level) {
    case LIBBPF_WARN:
        spdlog::warn("{}", message);
        break;
    case LIBBPF_INFO:
        spdlog::debug("{}", message);
        break;
    case LIBBPF_DEBUG:
        spdlog::trace("{}", message);
        break;
    }
    return n;
}

// %* in a pattern: the message, escaped for a JSON string.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override
    {
        std::string escaped = json_escape(std::string_view(msg.payload.data(), msg.payload.size()));
        dest.append(escaped.data(), escaped.data() + escaped.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

} // namespace

std::string libbpf_log_message(std::string_view raw)
{
    constexpr std::string_view kPrefix = "libbpf: ";
    while (!raw.empty() && raw.back() == '\n')
        raw.remove_suffix(1);
    if (raw.starts_with(kPrefix)) // most of libbpf's own messages carry it already
        raw.remove_prefix(kPrefix.size());
    return std::string(kPrefix) + std::string(raw);
}

std::string json_escape(std::string_view text)
{
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += kHex[c >> 4];
                out += kHex[c & 0xf];
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out;
}

std::unique_ptr<spdlog::formatter> make_log_formatter(const std::string& format)
{
    if (format == "text")
        return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    if (format == "json") {
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<JsonMessageFlag>('*').set_pattern(
            R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%*"})");
        return formatter;
    }
    throw Error("--log-format " + format + " is not a format; use text or json");
}

void setup_logging(const std::string& level, const std::string& format)
{
    auto parsed = spdlog::level::from_str(level);
    if (parsed == spdlog::level::off && level != "off")
        throw Error("--log-level " + level + " is not a level; use trace, debug, info, warn, error or off");
    auto formatter = make_log_formatter(format);
    auto logger = spdlog::stderr_logger_mt("sockmapd");
    logger->set_formatter(std::move(formatter));
    logger->set_level(parsed);
    spdlog::set_default_logger(logger);
    libbpf_set_print(libbpf_print);
}

} // namespace sockmapd
