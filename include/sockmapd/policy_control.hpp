// The daemon's policy: loaded and checked before anything changes, installed before sock_ops attaches,
// reloaded on SIGHUP and when its file changes, keeping the last good policy when a reload fails.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "sockmapd/fd.hpp"
#include "sockmapd/policy_maps.hpp"

namespace sockmapd {

class PolicyControl {
public:
    // path "" means the built-in default policy. Loads, validates and compiles now: throws PolicyError, so
    // the daemon refuses to start with an invalid policy before touching the kernel.
    PolicyControl(std::string path, std::string cgroup2_root);

    // Writes the current policy into the maps and makes it the one in force.
    void install(const PolicyMapFds& maps);

    // Loads the file again; installs it when it differs from the policy in force, or always when force is set
    // (SIGHUP: cgroup paths are resolved again too). Never throws: a failure is logged, on_error is called,
    // and the policy in force stays. Returns whether a new policy is in force.
    bool reload(const PolicyMapFds& maps, bool force, const std::function<void()>& on_error);

    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::string cgroup2_root_;
    CompiledPolicy current_;
    std::string last_error_; // logged once until it changes or a reload succeeds
};

// Watches the directory holding a policy file: editors replace files by rename and Kubernetes swaps the
// ..data symlink of a ConfigMap volume, neither of which an inotify watch on the file itself would see.
class PolicyFileWatch {
public:
    explicit PolicyFileWatch(const std::string& policy_path);
    int fd() const { return fd_.get(); }
    // Reads the pending events; true if any concerned the directory's entries.
    bool drain();

private:
    Fd fd_;
};

} // namespace sockmapd
