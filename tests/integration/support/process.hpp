// Child processes for tests: optionally in a network namespace and as another user; killed when dropped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace smdtest {

struct SpawnOptions {
    std::string netns{};        // name under /run/netns, empty: the test's own
    std::optional<uid_t> uid{}; // setgid/setuid before exec
    std::string output_file{};  // stdout and stderr, empty: /dev/null
};

// For a forked child, after its own set-up: become `uid` (if any, with no supplementary groups) and exec
// argv. On failure prints one line to stderr and exits 126 (setuid) or 127 (exec), as a shell would.
[[noreturn]] void become_and_exec(const std::vector<std::string>& argv, std::optional<uid_t> uid);

// A waitpid() status as a shell reports it: the exit code, or 128 + the signal; -1 for anything else.
int decode_wait_status(int status);

class Process {
public:
    Process() = default;
    Process(const std::vector<std::string>& argv, const SpawnOptions& options = {});
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    ~Process();

    pid_t pid() const { return pid_; }
    bool running();
    void signal(int sig);
    // Exit status (or 128+signal); nullopt if still running after timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    void kill_and_reap();

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// Runs a command to completion (bounded), returns exit code; output into *output when given.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr,
                std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Runs a shell-free command and fails the current test if it exits non-zero.
void must_run(const std::vector<std::string>& argv);

} // namespace smdtest
