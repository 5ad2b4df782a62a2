// Runs a command with its stdout and stderr kept apart (optionally as another user), for CLI checks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace smdtest {

struct CommandOutput {
    int exit_code = -1; // exit status, 128+signal, or -1 if it had to be killed at the timeout
    std::string out;
    std::string err;
};

// Bounded: a command still running after `timeout` is killed and the current test fails.
CommandOutput run_split(const std::vector<std::string>& argv, std::optional<uid_t> uid = std::nullopt,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The lines of `text`, without their '\n'; a last line without '\n' counts too.
std::vector<std::string> lines_of(const std::string& text);

} // namespace smdtest
