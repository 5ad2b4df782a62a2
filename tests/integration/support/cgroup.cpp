// Child cgroup lifecycle for integration tests; never touches the host's root cgroup attachments.
#include "cgroup.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "env.hpp"
#include "sockmapd/cgroup.hpp"

namespace smdtest {
namespace {

void write_file(const std::string& path, const std::string& value)
{
    std::ofstream out(path);
    out << value << std::flush;
    if (!out)
        ADD_FAILURE() << "write " << value << " to " << path << " failed";
}

std::string own_cgroup(const std::string& root)
{
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0)
            return root + line.substr(3);
    return root;
}

} // namespace

TestCgroup::TestCgroup()
{
    std::string root = sockmapd::detect_cgroup2_root();
    original_ = own_cgroup(root);
    path_ = root + "/" + unique_name("smd-test");
    if (::mkdir(path_.c_str(), 0755) != 0)
        ADD_FAILURE() << "mkdir " << path_ << ": " << std::strerror(errno);
}

void TestCgroup::join()
{
    write_file(path_ + "/cgroup.procs", std::to_string(::getpid()));
    joined_ = true;
}

void TestCgroup::leave()
{
    if (joined_)
        write_file(original_ + "/cgroup.procs", std::to_string(::getpid()));
    joined_ = false;
}

TestCgroup::~TestCgroup()
{
    leave();
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::ifstream procs(path_ + "/cgroup.procs");
        pid_t pid;
        bool any = false;
        while (procs >> pid) {
            ::kill(pid, SIGKILL);
            any = true;
        }
        if (::rmdir(path_.c_str()) == 0 || errno == ENOENT)
            return;
        if (!any && errno != EBUSY)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "could not remove cgroup " << path_ << ": " << std::strerror(errno);
}

} // namespace smdtest
