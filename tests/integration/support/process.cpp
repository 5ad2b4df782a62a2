// fork/exec with namespaces and users for test peers, with bounded waits.
#include "process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace smdtest {
namespace {

[[noreturn]] void exec_child(const std::vector<std::string>& argv, const SpawnOptions& options)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setpgid(0, 0);
    std::string out = options.output_file.empty() ? "/dev/null" : options.output_file;
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
    }
    if (devnull >= 0)
        ::dup2(devnull, 0);
    if (!options.netns.empty()) {
        std::string path = "/run/netns/" + options.netns;
        int ns = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
            std::fprintf(stderr, "setns %s: %s\n", path.c_str(), std::strerror(errno));
            ::_exit(126);
        }
    }
    become_and_exec(argv, options.uid);
}

} // namespace

void become_and_exec(const std::vector<std::string>& argv, std::optional<uid_t> uid)
{
    if (uid && (::setgroups(0, nullptr) != 0 || ::setgid(*uid) != 0 || ::setuid(*uid) != 0)) {
        std::fprintf(stderr, "setuid %u: %s\n", *uid, std::strerror(errno));
        ::_exit(126);
    }
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
}

int decode_wait_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

Process::Process(const std::vector<std::string>& argv, const SpawnOptions& options)
{
    pid_ = ::fork();
    if (pid_ == 0)
        exec_child(argv, options);
    if (pid_ < 0)
        ADD_FAILURE() << "fork: " << std::strerror(errno);
}

Process::Process(Process&& other) noexcept : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}

Process& Process::operator=(Process&& other) noexcept
{
    if (this != &other) {
        kill_and_reap();
        pid_ = std::exchange(other.pid_, -1);
        status_ = other.status_;
    }
    return *this;
}

Process::~Process() { kill_and_reap(); }

bool Process::running()
{
    if (pid_ <= 0 || status_)
        return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        status_ = decode_wait_status(status);
        return false;
    }
    return true;
}

void Process::signal(int sig)
{
    if (running())
        ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status_;
}

void Process::kill_and_reap()
{
    if (pid_ > 0 && running()) {
        ::kill(-pid_, SIGKILL); // its process group: a daemonizing peer leaves no child behind
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        status_ = decode_wait_status(status);
    }
    pid_ = -1;
}

int run_command(const std::vector<std::string>& argv, std::string* output, std::chrono::milliseconds timeout)
{
    char path[] = "/tmp/smdtest-cmd-XXXXXX";
    int fd = ::mkstemp(path);
    ::close(fd);
    int code;
    {
        Process p(argv, {.output_file = path});
        auto status = p.wait(timeout);
        code = status ? *status : -1;
        if (!status)
            ADD_FAILURE() << "command timed out: " << argv[0];
    }
    if (output) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        *output = text.str();
    }
    ::unlink(path);
    return code;
}

void must_run(const std::vector<std::string>& argv)
{
    std::string output;
    int code = run_command(argv, &output);
    std::string line;
    for (const auto& a : argv)
        line += a + " ";
    ASSERT_EQ(code, 0) << line << "failed: " << output;
}

} // namespace smdtest
