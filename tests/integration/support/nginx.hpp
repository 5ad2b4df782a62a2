// A real nginx for tests: its own prefix directory and config, run as a given uid inside a network namespace
// and in the test's cgroup (the test process forks it); stopped and removed when dropped.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "netns.hpp"
#include "process.hpp"

namespace smdtest {

class Nginx {
public:
    // `config` is a whole nginx.conf; relative paths in it (pid, logs, temp paths, root) resolve inside the prefix
    // directory, which belongs to `uid`. Waits (bounded) until nginx listens on every one of `listening`
    // ("127.0.0.1:8080"); a failure to start is a test failure with nginx's own messages.
    Nginx(const NetNs& ns, const std::string& config, const std::vector<std::string>& listening, uid_t uid);
    ~Nginx();
    Nginx(const Nginx&) = delete;
    Nginx& operator=(const Nginx&) = delete;

    const std::string& prefix() const { return prefix_; }
    pid_t pid() const { return process_.pid(); }
    bool running() { return process_.running(); }
    // nginx's stderr (its error log) followed by access.log, if the config writes one there.
    std::string log() const;

private:
    std::string prefix_;
    Process process_;
};

// The main context every test nginx shares: in the foreground, one worker, the pid file in the prefix, the error
// log on stderr and, with `stream`, Debian's dynamic stream module.
std::string nginx_main_context(bool stream);
// http{} temp paths inside the prefix: nginx running as a non-root uid cannot create those under /var/lib/nginx.
std::string nginx_http_temp_paths();

} // namespace smdtest
