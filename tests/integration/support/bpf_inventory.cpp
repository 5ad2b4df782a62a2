// bpftool --json listings parsed with nlohmann::json.
#include "bpf_inventory.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "process.hpp"

namespace smdtest {
namespace {

nlohmann::json bpftool_json(const std::vector<std::string>& args)
{
    std::vector<std::string> argv{"bpftool", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    int code = run_command(argv, &out);
    if (code == 0 && out.find_first_not_of(" \n") == std::string::npos)
        return nlohmann::json::array(); // `cgroup show` prints nothing at all for an empty cgroup
    auto parsed = nlohmann::json::parse(out, nullptr, false);
    if (code != 0 || parsed.is_discarded()) {
        ADD_FAILURE() << "bpftool " << args.front() << " failed (" << code << "): " << out;
        return nlohmann::json::array();
    }
    return parsed;
}

} // namespace

std::set<std::uint32_t> smd_program_ids()
{
    std::set<std::uint32_t> ids;
    for (const auto& prog : bpftool_json({"prog", "list"}))
        if (prog.value("name", "").rfind("smd_", 0) == 0)
            ids.insert(prog.value("id", 0u));
    return ids;
}

std::vector<std::string> cgroup_programs(const std::string& cgroup)
{
    std::vector<std::string> names;
    for (const auto& prog : bpftool_json({"cgroup", "show", cgroup}))
        names.push_back(prog.value("name", "?") + " (" + prog.value("attach_type", "?") + ")");
    return names;
}

std::vector<int> processes_named(const std::string& name)
{
    std::vector<int> pids;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string pid = entry.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos)
            continue;
        std::ifstream comm(entry.path() / "comm");
        std::string text;
        if (std::getline(comm, text) && text == name)
            pids.push_back(std::stoi(pid));
    }
    return pids;
}

std::vector<std::string> directory_entries(const std::string& dir)
{
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

} // namespace smdtest
