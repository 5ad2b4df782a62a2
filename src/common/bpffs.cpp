// Checks and prepares the bpffs pin directory; mounts bpffs at /sys/fs/bpf when the host has none.
#include "sockmapd/bpffs.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <filesystem>

#include "sockmapd/error.hpp"
#include "sockmapd/mountinfo.hpp"

namespace sockmapd {
namespace {

namespace fs = std::filesystem;

fs::path nearest_existing(fs::path path)
{
    while (!path.empty() && !fs::exists(path))
        path = path.parent_path();
    return path.empty() ? fs::path("/") : path;
}

} // namespace

bool is_on_bpffs(const std::string& path)
{
    struct statfs st {};
    return ::statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

PinPathPlan plan_pin_path(const std::string& pin_path)
{
    fs::path pin(pin_path);
    if (!pin.is_absolute())
        throw Error("--pin-path " + pin_path + " must be an absolute path on bpffs, e.g. " + kDefaultPinPath);
    fs::path normal = pin.lexically_normal();
    if (normal.has_filename() == false)
        normal = normal.parent_path();
    for (const auto& mount : read_mountinfo())
        if (mount.fs_type == "bpf" && fs::path(mount.mount_point) == normal)
            throw Error("--pin-path " + pin_path + " is a bpffs mount point itself; use a directory below it, e.g. " +
                        kDefaultPinPath);
    if (normal == fs::path(kDefaultBpffsMount))
        throw Error("--pin-path " + pin_path + " is the bpffs mount point itself; use a directory below it, e.g. " +
                    kDefaultPinPath);
    if (fs::exists(pin) && !fs::is_directory(pin))
        throw Error("--pin-path " + pin_path + " exists and is not a directory; choose a directory on bpffs");
    fs::path existing = nearest_existing(pin);
    if (is_on_bpffs(existing))
        return {};
    // Only the conventional mount point is mounted on the user's behalf.
    fs::path mount_point(kDefaultBpffsMount);
    bool under_default = pin.lexically_normal().string().rfind(mount_point.string() + "/", 0) == 0;
    if (under_default && fs::is_directory(mount_point) && existing == mount_point)
        return {.mount_bpffs = true};
    throw Error("--pin-path " + pin_path + " is not on a bpffs filesystem (" + existing.string() +
                " is not bpffs); mount bpffs there ('mount -t bpf bpf DIR') or use a path under " +
                kDefaultBpffsMount);
}

std::string bpffs_unmounted_with_admin()
{
    return std::string(kDefaultBpffsMount) + ": not mounted; the daemon will mount it (needs CAP_SYS_ADMIN)";
}

std::string bpffs_unmounted_without_admin()
{
    return std::string(kDefaultBpffsMount) + ": not mounted; the daemon would mount it, but that needs CAP_SYS_ADMIN, "
           "which this process lacks (as under the systemd unit)";
}

std::string bpffs_mount_remedy()
{
    return std::string("mount it before starting the daemon ('mount -t bpf bpf ") + kDefaultBpffsMount +
           "'; systemd does at boot, and sockmapd.service requires it), or grant CAP_SYS_ADMIN";
}

std::vector<std::string> prepare_pin_path(const std::string& pin_path, const PinPathPlan& plan)
{
    if (plan.mount_bpffs) {
        if (::mount("bpf", kDefaultBpffsMount, "bpf", 0, "mode=0700") != 0)
            throw_errno(errno, std::string("mount bpffs at ") + kDefaultBpffsMount);
    }
    std::vector<std::string> created;
    for (fs::path missing = fs::path(pin_path).lexically_normal(); !fs::exists(missing); missing = missing.parent_path())
        created.insert(created.begin(), missing.string());
    std::error_code ec;
    fs::create_directories(pin_path, ec);
    if (ec)
        throw Error("create pin directory " + pin_path + ": " + ec.message());
    fs::permissions(pin_path, fs::perms::owner_all, ec);
    return created;
}

} // namespace sockmapd
