// Starting, probing and stopping the sockmapd binary for integration tests.
#include "daemon.hpp"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "env.hpp"
#include "sockmapd/shared.h"

namespace smdtest {

Daemon::Daemon(std::string cgroup)
    : cgroup_(std::move(cgroup)),
      pin_path_("/sys/fs/bpf/" + unique_name("smd-test")),
      log_path_("/tmp/" + unique_name("smd-test") + "-sockmapd.log")
{
}

Daemon::~Daemon()
{
    if (process_.running())
        stop(SIGTERM);
    process_.kill_and_reap();
    remove_pins(pin_path_);
    if (!::testing::Test::HasFailure())
        std::filesystem::remove(log_path_);
    else
        std::fprintf(stderr, "sockmapd log kept at %s\n", log_path_.c_str());
}

void Daemon::start(const std::vector<std::string>& extra_args)
{
    std::vector<std::string> argv{sockmapd_bin(), "--cgroup", cgroup_, "--pin-path", pin_path_, "--log-level", "debug"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    // Tests of pairing, lifecycle and capacity send several MiB each way from 4 threads on 2 cores. With the
    // TCP-like default a writer that runs a time slice ahead of its reader makes the connection leave the
    // redirect (design.md, "Queue caps"), which is not what they measure. Tests of transparency and memory pass
    // "--max-queued-bytes 0", the default (BaselineThenAccelerated, Backpressure, MemoryPressure, compat).
    if (std::find(extra_args.begin(), extra_args.end(), "--max-queued-bytes") == extra_args.end())
        argv.insert(argv.end(), {"--max-queued-bytes", "256MiB"});
    // The metrics server is off unless a test asks for it: its default port is one per machine, and tests
    // (and other people's runs) start daemons side by side.
    if (std::find(extra_args.begin(), extra_args.end(), "--metrics-address") == extra_args.end())
        argv.insert(argv.end(), {"--metrics-address", ""});
    process_ = Process(argv, {.output_file = log_path_});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
        if (!process_.running()) {
            ADD_FAILURE() << "sockmapd exited during start-up:\n" << log();
            return;
        }
        std::string out;
        if (run_command({sockmapctl_bin(), "status", "--json", "--pin-path", pin_path_}, &out) == 0) {
            auto status = nlohmann::json::parse(out, nullptr, false);
            if (!status.is_discarded() && status.value("daemon_running", false) &&
                status["programs"].size() >= 2 &&
                status.value("daemon_pid", 0u) == static_cast<unsigned>(process_.pid()))
                return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "sockmapd not ready after 15 s:\n" << log();
}

void Daemon::stop(int sig)
{
    process_.signal(sig);
    if (!process_.wait(std::chrono::seconds(10)))
        ADD_FAILURE() << "sockmapd did not exit within 10 s of signal " << sig;
}

std::string Daemon::log() const
{
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

nlohmann::json Daemon::status() const
{
    std::string out;
    int code = run_command({sockmapctl_bin(), "status", "--json", "--pin-path", pin_path_}, &out);
    EXPECT_EQ(code, 0) << "sockmapctl status failed: " << out;
    auto status = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(status.is_discarded()) << "sockmapctl status printed no JSON: " << out;
    return status.is_discarded() ? nlohmann::json::object() : status;
}

std::uint64_t Daemon::counter(const std::string& name) const
{
    auto status = this->status();
    if (!status.contains("counters") || !status["counters"].contains(name)) {
        ADD_FAILURE() << "no counter " << name << " in sockmapctl status";
        return 0;
    }
    return status["counters"][name].get<std::uint64_t>();
}

// Takes every socket still in the pinned smd_sockhash out of it. A socket in a sockhash holds the sk_msg program
// through its psock, and the program holds the maps: one that outlives its test (held by a process outside the
// test, or leaked by the kernel, as an iter/tcp refcount bug did once) would otherwise keep them loaded after the
// pins are gone, with nothing left to reach them by name. sockmapctl uninstall does the same for an operator.
std::size_t empty_sockhash(const std::string& pin_path)
{
    int fd = bpf_obj_get((pin_path + "/smd_sockhash").c_str());
    if (fd < 0)
        return 0;
    std::size_t removed = 0;
    struct smd_sock_key key {};
    while (bpf_map_get_next_key(fd, nullptr, &key) == 0 && bpf_map_delete_elem(fd, &key) == 0)
        ++removed;
    ::close(fd);
    return removed;
}

void remove_pins(const std::string& pin_path)
{
    if (std::size_t left = empty_sockhash(pin_path))
        std::fprintf(stderr, "%zu socket(s) still in %s/smd_sockhash after the test: taken out\n", left,
                     pin_path.c_str());
    std::error_code ec;
    std::filesystem::remove_all(pin_path, ec);
    if (ec)
        ADD_FAILURE() << "remove pins " << pin_path << ": " << ec.message();
}

} // namespace smdtest
