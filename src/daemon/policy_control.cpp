// Loading, installing and reloading the policy; watching its directory for changes.
#include "sockmapd/policy_control.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

#include "sockmapd/error.hpp"

namespace sockmapd {
namespace {

CompiledPolicy load(const std::string& path, const std::string& cgroup2_root)
{
    Policy policy = path.empty() ? default_policy() : load_policy_file(path);
    return prepare_policy(policy, cgroup2_root);
}

std::string describe(const CompiledPolicy& policy)
{
    const char* fallback = policy.slot.default_action == SMD_ACTION_BYPASS ? "bypass" : "accelerate";
    return std::to_string(policy.rules.size()) + " rules, default " + fallback;
}

} // namespace

PolicyControl::PolicyControl(std::string path, std::string cgroup2_root)
    : path_(std::move(path)), cgroup2_root_(std::move(cgroup2_root)), current_(load(path_, cgroup2_root_))
{
}

void PolicyControl::install(const PolicyMapFds& maps)
{
    auto start = std::chrono::steady_clock::now();
    auto generation = install_policy(maps, current_);
    spdlog::debug("policy written into the maps in {} us", std::chrono::duration_cast<std::chrono::microseconds>(
                                                               std::chrono::steady_clock::now() - start)
                                                               .count());
    if (path_.empty())
        spdlog::info("policy: built-in default, accelerate every local pair (generation {})", generation);
    else
        spdlog::info("policy loaded from {}: {} (sha256 {}, generation {})", path_, describe(current_),
                     current_.sha256.substr(0, 12), generation);
}

bool PolicyControl::reload(const PolicyMapFds& maps, bool force, const std::function<void()>& on_error)
{
    try {
        CompiledPolicy next = load(path_, cgroup2_root_);
        last_error_.clear();
        if (!force && next.sha256 == current_.sha256)
            return false;
        auto generation = install_policy(maps, next);
        current_ = std::move(next);
        spdlog::info("policy reloaded from {}: {} (sha256 {}, generation {}); connections set up from now on "
                     "follow it, existing pairs stay accelerated",
                     path_, describe(current_), current_.sha256.substr(0, 12), generation);
        return true;
    } catch (const std::exception& e) {
        if (e.what() != last_error_)
            spdlog::error("policy reload failed, keeping the policy in force ({}): {}", describe(current_), e.what());
        last_error_ = e.what();
        on_error();
        return false;
    }
}

PolicyFileWatch::PolicyFileWatch(const std::string& policy_path)
    : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
{
    if (!fd_)
        throw_errno(errno, "inotify_init1");
    auto dir = std::filesystem::absolute(policy_path).parent_path().string();
    constexpr std::uint32_t kEvents =
        IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF;
    if (::inotify_add_watch(fd_.get(), dir.c_str(), kEvents) < 0)
        throw_errno(errno, "watch policy directory " + dir);
}

bool PolicyFileWatch::drain()
{
    alignas(struct inotify_event) char buffer[4096];
    bool any = false;
    for (;;) {
        ssize_t n = ::read(fd_.get(), buffer, sizeof(buffer));
        if (n <= 0)
            return any;
        any = true;
    }
}

} // namespace sockmapd
