// Helpers for tests that start the daemon as a deployment file describes it.
#include "deployed.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "env.hpp"
#include "process.hpp"

namespace smdtest {

std::string find_program(const std::string& name)
{
    for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"})
        if (::access((std::string(dir) + "/" + name).c_str(), X_OK) == 0)
            return std::string(dir) + "/" + name;
    return "";
}

std::vector<std::string> restricted_privileges(const std::vector<std::string>& capabilities, bool no_new_privs)
{
    std::string bounding = "-all";
    for (const auto& cap : capabilities) {
        std::string name = cap.substr(cap.rfind("CAP_", 0) == 0 ? 4 : 0);
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        bounding += ",+" + name;
    }
    std::vector<std::string> argv{find_program("setpriv"), "--bounding-set", bounding, "--inh-caps", "-all"};
    if (no_new_privs)
        argv.push_back("--no-new-privs");
    argv.push_back("--");
    return argv;
}

std::uint64_t effective_capabilities(pid_t pid)
{
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("CapEff:", 0) == 0)
            return std::stoull(line.substr(7), nullptr, 16);
    return ~0ull;
}

nlohmann::json ctl_status(const std::string& pin_path)
{
    std::string out;
    int code = run_command({sockmapctl_bin(), "status", "--json", "--pin-path", pin_path}, &out);
    EXPECT_EQ(code, 0) << out;
    auto status = nlohmann::json::parse(out, nullptr, false);
    return status.is_discarded() ? nlohmann::json::object() : status;
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

} // namespace smdtest
