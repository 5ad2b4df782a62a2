// A directory of policy files for one test, removed with everything in it.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "env.hpp"

namespace smdtest {

class PolicyDir {
public:
    PolicyDir() : path_(std::filesystem::temp_directory_path() / unique_name("smd-policy")) { std::filesystem::create_directories(path_); }
    ~PolicyDir()
    {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    PolicyDir(const PolicyDir&) = delete;
    PolicyDir& operator=(const PolicyDir&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Writes name atomically (temp file + rename, as editors and config management do) with mode 0644.
    std::filesystem::path write(const std::string& name, const std::string& text) const
    {
        std::filesystem::path target = path_ / name;
        std::filesystem::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp");
        {
            std::ofstream out(tmp);
            out << text;
        }
        ::chmod(tmp.c_str(), 0644);
        std::filesystem::rename(tmp, target);
        return target;
    }

private:
    std::filesystem::path path_;
};

} // namespace smdtest
