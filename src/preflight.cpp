// Privilege and kernel-feature probes run before the daemon touches the system.
#include "sockmapd/preflight.hpp"

#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <string>

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

std::vector<PreflightIssue> check_privileges()
{
    std::uint64_t caps = effective_capabilities();
    bool admin = has_cap(caps, CAP_SYS_ADMIN);
    bool split = has_cap(caps, CAP_BPF) && has_cap(caps, CAP_NET_ADMIN) && has_cap(caps, CAP_PERFMON);
    if (admin || split)
        return {};
    return {{"missing privileges: sockmapd needs CAP_SYS_ADMIN, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON",
             "run it as root or grant those capabilities (systemd AmbientCapabilities=, Kubernetes securityContext)"}};
}

std::vector<PreflightIssue> check_kernel_features()
{
    std::vector<PreflightIssue> issues;
    struct stat st {};
    if (::stat("/sys/kernel/btf/vmlinux", &st) != 0)
        issues.push_back({"kernel has no BTF (/sys/kernel/btf/vmlinux is missing)",
                          "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.15 or newer)"});

    struct MapProbe { enum bpf_map_type type; const char* name; };
    for (auto [type, name] : {MapProbe{BPF_MAP_TYPE_SOCKHASH, "sockhash"},
                              MapProbe{BPF_MAP_TYPE_SK_STORAGE, "sk_storage"},
                              MapProbe{BPF_MAP_TYPE_LRU_HASH, "lru_hash"}})
        if (libbpf_probe_bpf_map_type(type, nullptr) != 1)
            issues.push_back({std::string("kernel lacks BPF map type ") + name,
                              "use a kernel with CONFIG_BPF_STREAM_PARSER=y, 5.15 or newer"});

    struct ProgProbe { enum bpf_prog_type type; const char* name; };
    for (auto [type, name] : {ProgProbe{BPF_PROG_TYPE_SOCK_OPS, "sock_ops"}, ProgProbe{BPF_PROG_TYPE_SK_MSG, "sk_msg"}})
        if (libbpf_probe_bpf_prog_type(type, nullptr) != 1)
            issues.push_back({std::string("kernel lacks BPF program type ") + name,
                              "use a kernel with CONFIG_CGROUP_BPF=y and CONFIG_BPF_STREAM_PARSER=y"});

    struct HelperProbe { enum bpf_prog_type type; enum bpf_func_id helper; const char* name; };
    for (auto [type, helper, name] : {
             HelperProbe{BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_hash_update, "bpf_sock_hash_update"},
             HelperProbe{BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get, "bpf_sk_storage_get (sock_ops)"},
             HelperProbe{BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, "bpf_get_netns_cookie (sock_ops)"},
             HelperProbe{BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_ops_cb_flags_set, "bpf_sock_ops_cb_flags_set"},
             HelperProbe{BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, "bpf_msg_redirect_hash"},
             HelperProbe{BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get, "bpf_sk_storage_get (sk_msg)"},
         })
        if (libbpf_probe_bpf_helper(type, helper, nullptr) != 1)
            issues.push_back({std::string("kernel lacks BPF helper ") + name, "use a kernel 5.15 or newer"});
    return issues;
}

} // namespace sockmapd
