// --log-format json: one JSON object per line with time, level and msg, whatever the message holds.
#include "sockmapd/log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

// Logs `message` at `level` through the formatter for `format` and returns what the sink got.
std::string formatted(const std::string& format, spdlog::level::level_enum level, const std::string& message)
{
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
    spdlog::logger logger("test", sink);
    logger.set_formatter(make_log_formatter(format));
    logger.set_level(spdlog::level::trace);
    logger.log(level, message);
    return out.str();
}

TEST(JsonEscape, QuotesBackslashesAndControlCharacters)
{
    EXPECT_EQ(json_escape("plain"), "plain");
    EXPECT_EQ(json_escape("a \"b\" c\\d"), "a \\\"b\\\" c\\\\d");
    EXPECT_EQ(json_escape("x\ny\tz\r"), "x\\ny\\tz\\r");
    EXPECT_EQ(json_escape(std::string("\x01\x1f", 2)), "\\u0001\\u001f");
}

TEST(LogFormat, JsonIsOneObjectPerLineWithTimeLevelAndMsg)
{
    std::string message = "attached to /sys/fs/cgroup/\"odd\\name\"\nsecond line\t\x02";
    std::string out = formatted("json", spdlog::level::warn, message);
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\n');
    EXPECT_EQ(out.find('\n'), out.size() - 1) << "exactly one line: " << out;
    auto object = nlohmann::json::parse(out);
    ASSERT_TRUE(object.is_object());
    EXPECT_EQ(object.size(), 3u) << out;
    EXPECT_EQ(object["msg"], message);
    EXPECT_EQ(object["level"], "warning");
    std::string time = object["time"];
    EXPECT_EQ(time.size(), std::string("2025-01-02T03:04:05.678+00:00").size()) << time;
    EXPECT_EQ(time[10], 'T');
}

TEST(LogFormat, JsonLevelNames)
{
    for (auto [level, name] : {std::pair{spdlog::level::info, "info"}, std::pair{spdlog::level::err, "error"},
                               std::pair{spdlog::level::debug, "debug"}})
        EXPECT_EQ(nlohmann::json::parse(formatted("json", level, "x"))["level"], name);
}

TEST(LogFormat, TextIsOneLineForHumans)
{
    std::string out = formatted("text", spdlog::level::info, "ready");
    EXPECT_EQ(out.substr(out.size() - 12), " info ready\n") << out;
}

// Text timestamps carry the UTC offset: a log read on another machine (or after a TZ change) is unambiguous.
TEST(LogFormat, TextTimeHasTheTimeZone)
{
    std::string out = formatted("text", spdlog::level::info, "ready");
    // 2025-01-02T03:04:05.678+01:00 info ready
    ASSERT_GE(out.size(), 29u) << out;
    std::string offset = out.substr(23, 6);
    EXPECT_TRUE((offset[0] == '+' || offset[0] == '-') && offset[3] == ':') << out;
    EXPECT_EQ(out[29], ' ') << out;
}

TEST(LibbpfLog, PrefixOnceAndNoTrailingNewline)
{
    EXPECT_EQ(libbpf_log_message("libbpf: loading object 'smd'\n"), "libbpf: loading object 'smd'");
    EXPECT_EQ(libbpf_log_message("map 'smd_info': created\n\n"), "libbpf: map 'smd_info': created");
    EXPECT_EQ(libbpf_log_message(""), "libbpf: ");
}

TEST(LogFormat, UnknownFormatIsRefused)
{
    std::string message = test::error_message([] { make_log_formatter("xml"); }, "make_log_formatter(xml)");
    EXPECT_CONTAINS(message, "--log-format xml");
    EXPECT_CONTAINS(message, "text or json");
}

} // namespace
} // namespace sockmapd
