// One-line refusals for bad command lines; CLI11's own output would add a second "Run with --help" line.
#include "sockmapd/cli.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

namespace sockmapd {

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv, const char* program)
{
    try {
        app.parse(argc, argv);
        return std::nullopt;
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
            return app.exit(e); // --help and --version print to stdout and exit 0
        std::string message = e.what();
        std::replace(message.begin(), message.end(), '\n', ' ');
        std::fprintf(stderr, "%s: %s; see '%s --help'\n", program, message.c_str(), program);
        return e.get_exit_code();
    }
}

} // namespace sockmapd
