// Effective capabilities from /proc/self/status: the privileges sockmapd needs, probed without libbpf.
#include "sockmapd/capabilities.hpp"

#include <linux/capability.h>

#include <cstdint>
#include <fstream>

namespace sockmapd {
namespace {

std::uint64_t effective_capabilities()
{
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("CapEff:", 0) == 0)
            return std::stoull(line.substr(7), nullptr, 16);
    return 0;
}

bool has_cap(std::uint64_t caps, int cap)
{
    return caps & (std::uint64_t{1} << cap);
}

} // namespace

bool has_cap_sys_admin()
{
    return has_cap(effective_capabilities(), CAP_SYS_ADMIN);
}

std::string missing_privileges()
{
    std::uint64_t caps = effective_capabilities();
    bool admin = has_cap(caps, CAP_SYS_ADMIN);
    bool split = has_cap(caps, CAP_BPF) && has_cap(caps, CAP_NET_ADMIN) && has_cap(caps, CAP_PERFMON);
    if (admin || split)
        return {};
    return "missing privileges: sockmapd needs CAP_SYS_ADMIN, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON";
}

} // namespace sockmapd
