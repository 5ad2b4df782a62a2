// Finding and validating the cgroup v2 directory sock_ops attaches to.
#include "sockmapd/cgroup.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>

#include "sockmapd/error.hpp"
#include "sockmapd/mountinfo.hpp"

namespace sockmapd {

std::string detect_cgroup2_root()
{
    auto root = find_mount(read_mountinfo(), "cgroup2");
    if (!root)
        throw Error("no cgroup v2 filesystem is mounted (see /proc/self/mountinfo); mount one, e.g. "
                    "'mount -t cgroup2 none /sys/fs/cgroup/unified', or pass --cgroup");
    return *root;
}

void validate_cgroup_dir(const std::string& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        int err = errno;
        throw Error("--cgroup " + path + ": " + errno_name(err) +
                    "; pass an existing cgroup v2 directory (the cgroup v2 mount or a child of it)");
    }
    if (!S_ISDIR(st.st_mode))
        throw Error("--cgroup " + path + " is not a directory; pass a cgroup v2 directory");
    struct statfs fs {};
    if (::statfs(path.c_str(), &fs) != 0)
        throw_errno(errno, "statfs " + path);
    if (fs.f_type != CGROUP2_SUPER_MAGIC) {
        auto root = find_mount(read_mountinfo(), "cgroup2");
        throw Error("--cgroup " + path + " is not on a cgroup v2 filesystem; " +
                    (root ? "cgroup v2 is mounted at " + *root + ": pass it or a directory below it"
                          : std::string("mount cgroup v2 first")));
    }
}

Fd open_cgroup_dir(const std::string& path)
{
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd)
        throw_errno(errno, "open cgroup " + path);
    return fd;
}

std::uint64_t cgroup_id(const std::string& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw_errno(errno, "stat cgroup " + path);
    return st.st_ino;
}

} // namespace sockmapd
