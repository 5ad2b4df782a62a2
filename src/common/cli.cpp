// One-line refusals for bad command lines, exit 2; CLI11's own output would add a "Run with --help" line and
// leak its internal exit codes (105, 106, 109).
#include "sockmapd/cli.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ostream>
#include <regex>
#include <string>

#include "sockmapd/error.hpp"
#include "sockmapd/human_units.hpp"

namespace sockmapd {
namespace {

// The innermost subcommand the parse reached: where an unexpected word belongs.
CLI::App* innermost(CLI::App* app)
{
    for (;;) {
        auto parsed = app->get_subcommands();
        if (parsed.empty())
            return app;
        app = parsed.front();
    }
}

std::string subcommand_names(CLI::App* app)
{
    std::string names;
    auto subcommands = app->get_subcommands([](CLI::App*) { return true; });
    for (std::size_t i = 0; i < subcommands.size(); ++i)
        names += (i == 0 ? "" : i + 1 == subcommands.size() ? " or " : ", ") + subcommands[i]->get_name();
    return names;
}

// An unexpected word, named for what it is: "unknown subcommand 'x'" where a subcommand was expected,
// "unknown flag '--x' for 'status'" for a flag.
std::optional<std::string> unexpected_word(CLI::App& app)
{
    CLI::App* where = innermost(&app);
    auto extras = where->remaining();
    if (extras.empty())
        return std::nullopt;
    std::string of = where == &app ? "" : " for '" + where->get_name() + "'";
    if (extras.front().rfind("-", 0) == 0)
        return "unknown flag '" + extras.front() + "'" + of;
    if (where->get_subcommands([](CLI::App*) { return true; }).empty())
        return "unexpected argument '" + extras.front() + "'" + of;
    return "unknown subcommand '" + extras.front() + "'" + of + "; expected " + subcommand_names(where);
}

// CLI11 writes "--flag: what"; the checks of this project word `what` to follow the flag ("--cgroup is empty",
// "--max-queued-bytes -1 is negative"), CLI11's own start with a capital ("Value 1 not in range").
std::string one_line(std::string text)
{
    std::replace(text.begin(), text.end(), '\n', ' ');
    while (!text.empty() && text.back() == ' ')
        text.pop_back();
    static const std::regex missing_value(R"(^(-[-\w]+): \d+ required (\S+) missing$)");
    if (std::smatch m; std::regex_match(text, m, missing_value))
        return m[1].str() + " needs a value (" + m[2].str() + ")";
    auto colon = text.find(": ");
    if (text.rfind("-", 0) == 0 && colon != std::string::npos && text.find(' ') > colon &&
        colon + 2 < text.size() && !std::isupper(static_cast<unsigned char>(text[colon + 2])))
        text.erase(colon, 1);
    return text;
}

std::string shown(const std::string& value)
{
    return value.empty() ? "\"\"" : value;
}

std::string plain_number(double value)
{
    char text[32];
    std::snprintf(text, sizeof(text), "%g", value);
    return text;
}

} // namespace

std::vector<std::string> arguments(int argc, char** argv)
{
    return std::vector<std::string>(argv + std::min(argc, 1), argv + argc);
}

std::optional<int> parse_command_line(CLI::App& app, std::vector<std::string> args, const std::string& program,
                                      std::ostream& out, std::ostream& err)
{
    std::reverse(args.begin(), args.end()); // CLI11 takes them last first
    try {
        app.parse(args);
        return std::nullopt;
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        out << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::ParseError& e) {
        std::string message = one_line(e.what());
        if (dynamic_cast<const CLI::ExtrasError*>(&e))
            message = unexpected_word(app).value_or(message);
        err << program << ": " << message << "; see '" << program << " --help'\n";
        return kUsageError;
    }
}

CLI::Validator non_blank(const std::string& what_to_pass)
{
    return CLI::Validator(
        [what_to_pass](std::string& value) -> std::string {
            if (value.find_first_not_of(" \t\r\n") != std::string::npos)
                return "";
            return std::string(value.empty() ? "is empty" : "is blank") + " (an unset variable?); " + what_to_pass;
        },
        "", "non-blank");
}

CLI::Validator byte_size(std::uint64_t max)
{
    return CLI::Validator(
        [max](std::string& value) -> std::string {
            try {
                value = std::to_string(parse_byte_size(value, max, ""));
                return "";
            } catch (const Error& e) {
                std::string message = e.what(); // " VALUE is ...": the flag's name comes from CLI11
                return message.substr(message.find_first_not_of(' '));
            }
        },
        "", "byte size");
}

CLI::Validator whole_number(std::uint64_t min, std::uint64_t max)
{
    return CLI::Validator(
        [min, max](std::string& value) -> std::string {
            std::string expected = "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
            bool ok = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
            std::uint64_t number = 0;
            for (std::size_t i = 0; ok && i < value.size(); ++i)
                ok = !__builtin_mul_overflow(number, 10u, &number) &&
                     !__builtin_add_overflow(number, static_cast<unsigned>(value[i] - '0'), &number);
            if (!ok || number < min || number > max)
                return shown(value) + " is not " + expected;
            return "";
        },
        "", "whole number");
}

CLI::Validator seconds(double min, double max)
{
    return CLI::Validator(
        [min, max](std::string& value) -> std::string {
            std::size_t used = 0;
            double number = -1;
            try {
                number = std::stod(value, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (value.empty() || used != value.size() || value.find_first_of("-+") != std::string::npos ||
                !(number >= min && number <= max))
                return shown(value) + " is not a number of seconds from " + plain_number(min) + " to " +
                       plain_number(max);
            return "";
        },
        "", "seconds");
}

void use_plain_help(CLI::App& app)
{
    auto formatter = std::make_shared<CLI::Formatter>();
    formatter->column_width(34);
    app.formatter(formatter);
}

} // namespace sockmapd
