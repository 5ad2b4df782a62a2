// Command-line parsing shared by sockmapd and sockmapctl: a bad command line is one line on stderr.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

namespace sockmapd {

// Parses argv into app. Returns an exit code when the program should stop now (--help, --version: 0 after
// printing; a bad command line: non-zero after one line "program: what; see 'program --help'").
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv, const char* program);

} // namespace sockmapd
