// The policy's cgroup selectors against the running system: each must be a cgroup v2 directory.
#include "sockmapd/policy.hpp"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>

#include "sockmapd/error.hpp"

namespace sockmapd {

std::vector<std::uint64_t> resolve_cgroup_ids(const Policy& policy, const PolicyRule& rule,
                                              const std::string& cgroup2_root)
{
    std::vector<std::uint64_t> ids;
    std::string root = cgroup2_root;
    while (root.size() > 1 && root.back() == '/')
        root.pop_back();
    for (const auto& selector : rule.cgroups) {
        auto where = policy.source.empty() ? std::string("policy") : policy.source;
        if (selector.position.line > 0)
            where += ":" + std::to_string(selector.position.line) + ":" + std::to_string(selector.position.column);
        auto full = selector.path == "/" ? root : (root == "/" ? "" : root) + selector.path;
        auto refuse = [&](const std::string& what) {
            return PolicyError(where + ": cgroup " + selector.path + " of rule " + rule.name + ": " + full + " " + what);
        };
        struct stat st {};
        if (::stat(full.c_str(), &st) != 0) {
            int err = errno;
            std::string hint = "; expected a cgroup that exists below the cgroup v2 mount " + root;
            if (root != "/" && (selector.path == root || selector.path.rfind(root + "/", 0) == 0))
                hint = "; write the path without the mount point " + root + ": " +
                       (selector.path == root ? std::string("/") : selector.path.substr(root.size()));
            throw refuse(err == ENOENT ? "does not exist" + hint : "cannot be read: " + errno_name(err) + hint);
        }
        if (!S_ISDIR(st.st_mode))
            throw refuse("is not a directory; expected a cgroup v2 directory");
        struct statfs fs {};
        if (::statfs(full.c_str(), &fs) != 0)
            throw refuse("cannot be read: " + errno_name(errno));
        if (fs.f_type != CGROUP2_SUPER_MAGIC)
            throw refuse("is not on a cgroup v2 filesystem; expected a directory below " + root);
        ids.push_back(st.st_ino);
    }
    return ids;
}

} // namespace sockmapd
