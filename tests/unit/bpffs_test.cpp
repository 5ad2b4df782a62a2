// plan_pin_path refuses pin paths the daemon could not use, with a message that says what to do instead.
#include "sockmapd/bpffs.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

namespace fs = std::filesystem;

// plan_pin_path only reads, so a plain temp dir (never bpffs) stands in for "somewhere else".
class PlanPinPath : public test::TempDirTest {
protected:
    static std::string plan_error(const std::string& pin_path)
    {
        return test::error_message([&] { plan_pin_path(pin_path); }, "plan_pin_path(" + pin_path + ")");
    }
};

TEST_F(PlanPinPath, RejectsARelativePath)
{
    auto message = plan_error("sockmapd");
    EXPECT_CONTAINS(message, "--pin-path sockmapd must be an absolute path");
    EXPECT_CONTAINS(message, kDefaultPinPath);
}

TEST_F(PlanPinPath, RejectsAPathWhoseExistingAncestorIsNotBpffs)
{
    auto pin = (dir_ / "not-yet" / "sockmapd").string();
    auto message = plan_error(pin);
    EXPECT_CONTAINS(message, "--pin-path " + pin + " is not on a bpffs filesystem");
    EXPECT_CONTAINS(message, "(" + dir_.string() + " is not bpffs)");
    EXPECT_CONTAINS(message, "mount -t bpf bpf DIR");
    EXPECT_CONTAINS(message, std::string("use a path under ") + kDefaultBpffsMount);
}

TEST_F(PlanPinPath, RejectsAnExistingRegularFile)
{
    auto file = (dir_ / "pins").string();
    std::ofstream(file) << "not a directory";
    auto message = plan_error(file);
    EXPECT_CONTAINS(message, "--pin-path " + file + " exists and is not a directory");
    EXPECT_CONTAINS(message, "choose a directory on bpffs");
}

TEST_F(PlanPinPath, TempDirIsNotBpffs)
{
    EXPECT_FALSE(is_on_bpffs(dir_.string()));
    EXPECT_FALSE(is_on_bpffs((dir_ / "missing").string()));
}

// Read-only on the host's own bpffs: a not-yet-created directory below it needs no mount.
TEST_F(PlanPinPath, AcceptsANewDirectoryOnAMountedBpffs)
{
    if (!is_on_bpffs(kDefaultBpffsMount))
        GTEST_SKIP() << kDefaultBpffsMount << " is not bpffs on this host";
    auto pin = std::string(kDefaultBpffsMount) + "/smd-unit-test-never-created/sockmapd";
    ASSERT_FALSE(fs::exists(pin));
    EXPECT_FALSE(plan_pin_path(pin).mount_bpffs);
}

// Pinning straight into the bpffs root would mix our maps with everything else there.
TEST_F(PlanPinPath, RejectsTheBpffsMountPointItself)
{
    for (std::string root : {std::string(kDefaultBpffsMount), std::string(kDefaultBpffsMount) + "/"}) {
        auto message = plan_error(root);
        EXPECT_CONTAINS(message, "--pin-path " + root + " is");
        EXPECT_CONTAINS(message, "mount point itself; use a directory below it");
    }
}

} // namespace
} // namespace sockmapd
