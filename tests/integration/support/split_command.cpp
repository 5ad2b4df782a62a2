// fork/exec with stdout and stderr in two temporary files, read back after a bounded wait.
#include "split_command.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "process.hpp"

namespace smdtest {
namespace {

// A temporary file already open for the child, so a child that drops privileges can still write it.
struct TempFile {
    TempFile()
    {
        char name[] = "/tmp/smdtest-split-XXXXXX";
        fd = ::mkstemp(name);
        path = name;
    }
    ~TempFile()
    {
        if (fd >= 0)
            ::close(fd);
        ::unlink(path.c_str());
    }
    std::string read() const
    {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }
    int fd = -1;
    std::string path;
};

} // namespace

CommandOutput run_split(const std::vector<std::string>& argv, std::optional<uid_t> uid,
                        std::chrono::milliseconds timeout)
{
    CommandOutput result;
    TempFile out, err;
    if (out.fd < 0 || err.fd < 0) {
        ADD_FAILURE() << "mkstemp: " << std::strerror(errno);
        return result;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        ::setpgid(0, 0);
        int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, 0);
        ::dup2(out.fd, 1);
        ::dup2(err.fd, 2);
        become_and_exec(argv, uid);
    }
    if (pid < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        return result;
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            result.exit_code = decode_wait_status(status);
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(-pid, SIGKILL);
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            ADD_FAILURE() << argv[0] << " still running after " << timeout.count() << " ms: killed";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    result.out = out.read();
    result.err = err.read();
    return result;
}

std::vector<std::string> lines_of(const std::string& text)
{
    std::vector<std::string> lines;
    std::string::size_type start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) {
            lines.push_back(text.substr(start));
            break;
        }
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

} // namespace smdtest
