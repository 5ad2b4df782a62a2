// validate_cgroup_dir: one actionable sentence for each way --cgroup can be wrong.
#include "sockmapd/cgroup.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

namespace fs = std::filesystem;

class ValidateCgroupDir : public test::TempDirTest {
protected:
    static std::string validate_error(const std::string& path)
    {
        return test::error_message([&] { validate_cgroup_dir(path); }, "validate_cgroup_dir(" + path + ")");
    }
};

TEST_F(ValidateCgroupDir, RejectsAMissingPath)
{
    auto missing = (dir_ / "missing").string();
    auto message = validate_error(missing);
    EXPECT_CONTAINS(message, "--cgroup " + missing + ": ENOENT;");
    EXPECT_CONTAINS(message, "pass an existing cgroup v2 directory");
}

TEST_F(ValidateCgroupDir, RejectsARegularFile)
{
    auto file = (dir_ / "file").string();
    std::ofstream(file) << "x";
    auto message = validate_error(file);
    EXPECT_CONTAINS(message, "--cgroup " + file + " is not a directory");
    EXPECT_CONTAINS(message, "pass a cgroup v2 directory");
}

// The message points at the real cgroup v2 mount, which on hybrid hosts is not /sys/fs/cgroup.
TEST_F(ValidateCgroupDir, RejectsADirectoryNotOnCgroup2AndNamesTheMount)
{
    auto message = validate_error(dir_.string());
    EXPECT_CONTAINS(message, "--cgroup " + dir_.string() + " is not on a cgroup v2 filesystem");
    EXPECT_CONTAINS(message, "cgroup v2 is mounted at " + detect_cgroup2_root() + ": pass it");
    EXPECT_NOT_CONTAINS(message, "\n");
}

TEST(DetectCgroup2Root, FindsADirectoryThatValidates)
{
    auto root = detect_cgroup2_root();
    EXPECT_TRUE(fs::path(root).is_absolute()) << root;
    EXPECT_NO_THROW(validate_cgroup_dir(root));
}

} // namespace
} // namespace sockmapd
