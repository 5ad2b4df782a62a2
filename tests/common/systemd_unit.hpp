// Reading systemd unit and environment files the way systemd does, as far as deploy/systemd uses them, so that
// tests start the daemon exactly as the unit would.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace smdtest {

using EnvMap = std::map<std::string, std::string>;

class UnitFile {
public:
    // Throws std::runtime_error on a line that is neither a section, an assignment nor a comment, and on
    // backslash continuations (the unit does not use them, so a parser for them is not worth having).
    static UnitFile parse(const std::string& path);

    // Every value of `key` in `section`, in file order (Environment= may repeat); empty if none.
    std::vector<std::string> all(const std::string& section, const std::string& key) const;
    // The last value (systemd's rule for single-valued keys), or "" if none.
    std::string value(const std::string& section, const std::string& key) const;
    // Every key of `section`.
    std::vector<std::string> keys(const std::string& section) const;

private:
    std::map<std::string, std::map<std::string, std::vector<std::string>>> sections_;
};

// One Environment= value: space-separated KEY=VALUE words, each optionally in double quotes.
void apply_environment(const std::string& value, EnvMap& env);

// An EnvironmentFile=: KEY=VALUE lines, '#' and ';' comments, values optionally in single or double quotes.
EnvMap parse_environment_file(const std::string& path);

// A command line of ExecStart= and friends, expanded as systemd.service(5) says: a word that is exactly
// "$NAME" becomes the value split on whitespace (no word if empty or unset); "${NAME}" anywhere is replaced
// in place, keeping the word. Words may be double-quoted. Prefixes such as '-' or '+' are not supported
// (throws), as the unit does not use them.
std::vector<std::string> expand_command_line(const std::string& line, const EnvMap& env);

// Splits on whitespace, honouring double and single quotes (no escapes): for SOCKMAPD_ARGS-style values.
std::vector<std::string> split_words(const std::string& text);

} // namespace smdtest
