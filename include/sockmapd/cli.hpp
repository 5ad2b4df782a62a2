// Command-line conventions shared by sockmapd and sockmapctl: a usage error is one line on stderr and exit 2,
// help without parser type noise, flags that refuse blank values and take byte sizes.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace sockmapd {

// Every usage error (bad flag or value, missing or unknown subcommand) exits with this, as getopt tools do.
inline constexpr int kUsageError = 2;

// Parses args (argv without argv[0]) into app. Returns an exit code when the program should stop now: 0 after
// --help (printed to out), kUsageError after one line "program: what; see 'program --help'" on err.
// An unknown subcommand is named as such.
std::optional<int> parse_command_line(CLI::App& app, std::vector<std::string> args, const std::string& program,
                                      std::ostream& out, std::ostream& err);

// argv as parse_command_line takes it.
std::vector<std::string> arguments(int argc, char** argv);

// Refuses "" and whitespace-only values: an unset variable in a unit file or an empty ConfigMap key must not
// silently mean the default.
CLI::Validator non_blank(const std::string& what_to_pass);

// Parses a byte size (human_units.hpp: 8MiB, 64KiB, 0) up to max into the option's integer.
CLI::Validator byte_size(std::uint64_t max);

// Whole numbers from min to max, written as digits only (no sign, no fraction): "VALUE is not a whole number
// from MIN to MAX" otherwise, in place of CLI11's "Value VALUE not in range MIN to MAX".
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max);
// A number of seconds from min to max, fractions allowed.
CLI::Validator seconds(double min, double max);

// Help for humans: wide enough for "--metrics-address HOST:PORT". Options name their values themselves
// (->type_name("DIR")), so that no CLI11 type such as TEXT or UINT:SIZE shows.
void use_plain_help(CLI::App& app);

} // namespace sockmapd
