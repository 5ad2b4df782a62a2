// The backpressure limit's default and whether the running kernel can apply it.
#include "sockmapd/backpressure.hpp"

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <fstream>
#include <memory>

namespace sockmapd {
namespace {

// net.ipv4.tcp_rmem's and tcp_wmem's built-in maxima
constexpr std::uint64_t kKernelDefaultRmemMax = 6 * 1024 * 1024, kKernelDefaultWmemMax = 4 * 1024 * 1024;

bool struct_has_member(const struct btf* btf, const char* type, const char* member)
{
    int id = btf__find_by_name_kind(btf, type, BTF_KIND_STRUCT);
    if (id < 0)
        return false;
    const struct btf_type* t = btf__type_by_id(btf, id);
    const struct btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++m)
        if (std::strcmp(btf__name_by_offset(btf, m->name_off), member) == 0)
            return true;
    return false;
}

} // namespace

std::optional<std::uint64_t> tcp_mem_max(const std::string& path)
{
    std::ifstream in(path);
    std::uint64_t min = 0, initial = 0, max = 0;
    if (!(in >> min >> initial >> max) || max == 0)
        return std::nullopt;
    return max;
}

std::uint64_t default_max_queued_bytes()
{
    return tcp_mem_max("/proc/sys/net/ipv4/tcp_rmem").value_or(kKernelDefaultRmemMax) +
           tcp_mem_max("/proc/sys/net/ipv4/tcp_wmem").value_or(kKernelDefaultWmemMax);
}

std::string backpressure_unavailable()
{
    // Parsing the kernel's BTF takes milliseconds, and the daemon asks twice at start (preflight, then the log
    // line): once per process is enough, the kernel does not change under it.
    static const std::string missing = [] () -> std::string {
        std::unique_ptr<struct btf, decltype(&btf__free)> btf(btf__load_vmlinux_btf(), btf__free);
        if (!btf)
            return "no kernel BTF";
        if (!struct_has_member(btf.get(), "sk_psock", "msg_tot_len"))
            return "struct sk_psock has no msg_tot_len";
        if (btf__find_by_name_kind(btf.get(), "bpf_rdonly_cast", BTF_KIND_FUNC) < 0)
            return "no bpf_rdonly_cast kfunc (Linux 6.2 or newer)";
        return "";
    }();
    return missing;
}

} // namespace sockmapd
