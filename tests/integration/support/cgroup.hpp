// A child cgroup v2 per test: the test process joins it, and it is removed (emptied first) when dropped.
#pragma once

#include <string>

namespace smdtest {

class TestCgroup {
public:
    TestCgroup();
    ~TestCgroup();
    TestCgroup(const TestCgroup&) = delete;
    TestCgroup& operator=(const TestCgroup&) = delete;

    const std::string& path() const { return path_; }
    // Moves the whole test process in: every socket it (or a child) creates from now on is in scope.
    void join();
    // Moves the test process back to the cgroup it came from.
    void leave();

private:
    std::string path_;
    std::string original_;
    bool joined_ = false;
};

} // namespace smdtest
