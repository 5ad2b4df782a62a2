// Helpers shared by the unit tests: a scratch directory and the message of an expected sockmapd::Error.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "sockmapd/error.hpp"

namespace sockmapd::test {

// Fails the current test with `what` if `call` does not throw sockmapd::Error; returns its message.
template <typename Call>
std::string error_message(Call call, const std::string& what)
{
    try {
        call();
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << what << " did not throw";
    return {};
}

// A fresh directory under $TMPDIR, removed after the test; never bpffs or cgroup2.
class TempDirTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "smd-unit-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path dir_;
};

} // namespace sockmapd::test

// Failure output shows both strings, unlike EXPECT_NE(haystack.find(needle), npos).
#define EXPECT_CONTAINS(haystack, needle) EXPECT_PRED_FORMAT2(::testing::IsSubstring, needle, haystack)
#define EXPECT_NOT_CONTAINS(haystack, needle) EXPECT_PRED_FORMAT2(::testing::IsNotSubstring, needle, haystack)
