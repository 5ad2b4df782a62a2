// Finding and validating the cgroup v2 directory sock_ops attaches to.
#include "sockmapd/cgroup.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>

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

namespace {

// A kernfs file handle is the node id, which for a cgroup is its cgroup id.
struct CgroupHandle {
    struct file_handle header;
    std::uint64_t id;
};

} // namespace

CgroupPaths::CgroupPaths()
{
    auto root = find_mount(read_mountinfo(), "cgroup2");
    if (!root)
        return;
    root_ = Fd(::open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    CgroupHandle handle {};
    handle.header.handle_bytes = sizeof(handle.id);
    int mount_id = 0;
    // Learn the handle type from the root instead of assuming FILEID_KERNFS.
    if (root_ && ::name_to_handle_at(root_.get(), "", &handle.header, &mount_id, AT_EMPTY_PATH) == 0 &&
        handle.header.handle_bytes == sizeof(handle.id))
        handle_type_ = handle.header.handle_type;
}

std::optional<std::string> CgroupPaths::path(std::uint64_t id)
{
    if (handle_type_ < 0)
        return std::nullopt;
    auto cached = cache_.find(id);
    if (cached != cache_.end())
        return cached->second;
    CgroupHandle handle {};
    handle.header.handle_bytes = sizeof(handle.id);
    handle.header.handle_type = handle_type_;
    handle.id = id;
    std::optional<std::string> path;
    Fd dir(::open_by_handle_at(root_.get(), &handle.header, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) {
        char target[4096];
        std::string link = "/proc/self/fd/" + std::to_string(dir.get());
        ssize_t n = ::readlink(link.c_str(), target, sizeof(target));
        if (n > 0 && static_cast<std::size_t>(n) < sizeof(target))
            path = std::string(target, static_cast<std::size_t>(n));
    }
    return cache_[id] = path;
}

} // namespace sockmapd
