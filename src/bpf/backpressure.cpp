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

std::uint64_t tcp_rmem_max()
{
    return tcp_mem_max("/proc/sys/net/ipv4/tcp_rmem").value_or(kKernelDefaultRmemMax);
}

std::uint64_t tcp_wmem_max()
{
    return tcp_mem_max("/proc/sys/net/ipv4/tcp_wmem").value_or(kKernelDefaultWmemMax);
}

namespace {

// Parsing the kernel's BTF takes milliseconds, and the daemon asks more than once at start (preflight, then the
// log line): once per process is enough, the kernel does not change under it.
const struct btf* kernel_btf()
{
    static std::unique_ptr<struct btf, decltype(&btf__free)> btf(btf__load_vmlinux_btf(), btf__free);
    return btf.get();
}

} // namespace

std::string fionread_unavailable()
{
    static const std::string missing = [] () -> std::string {
        const struct btf* btf = kernel_btf();
        if (!btf)
            return "no kernel BTF";
        if (btf__find_by_name_kind(btf, "tcp_bpf_ioctl", BTF_KIND_FUNC) < 0)
            return "FIONREAD on a socket in a sockhash counts only its TCP receive queue, so redirected bytes are "
                   "invisible to readers that size their reads by it (nginx, Java, .NET); fixed by 929e30f93125 "
                   "\"bpf, sockmap: Fix FIONREAD for sockmap\" in Linux 7.0, 6.18.14, 6.12.75 and 6.6.128";
        return "";
    }();
    return missing;
}

std::string backpressure_unavailable()
{
    static const std::string missing = [] () -> std::string {
        const struct btf* btf = kernel_btf();
        if (!btf)
            return "no kernel BTF";
        if (!struct_has_member(btf, "sk_psock", "msg_tot_len"))
            return "struct sk_psock has no msg_tot_len (Linux 6.2 or newer)";
        if (btf__find_by_name_kind(btf, "bpf_rdonly_cast", BTF_KIND_FUNC) < 0)
            return "no bpf_rdonly_cast kfunc (Linux 6.2 or newer)";
        return "";
    }();
    return missing;
}

} // namespace sockmapd
