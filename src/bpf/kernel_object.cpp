// bpf_obj_get, bpf_obj_get_info_by_fd and bpf_prog_query, each called once with one way of handling errors.
#include "sockmapd/kernel_object.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>

#include "sockmapd/error.hpp"

namespace sockmapd {

Fd open_pin(const std::string& path)
{
    return Fd(bpf_obj_get(path.c_str()));
}

struct bpf_map_info map_info(int fd, const std::string& what)
{
    struct bpf_map_info info {};
    std::uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        throw_errno(errno, "inspect " + what);
    return info;
}

std::optional<ProgramSummary> program_summary(int fd)
{
    constexpr std::uint32_t kMaxMaps = 64;
    std::uint32_t map_ids[kMaxMaps] = {};
    struct bpf_prog_info info {};
    info.nr_map_ids = kMaxMaps;
    info.map_ids = reinterpret_cast<std::uint64_t>(map_ids);
    std::uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        return std::nullopt;
    return ProgramSummary{.id = info.id,
                          .name = info.name,
                          .type = static_cast<enum bpf_prog_type>(info.type),
                          .map_ids = {map_ids, map_ids + std::min(info.nr_map_ids, kMaxMaps)},
                          .run_count = info.run_cnt,
                          .run_time_ns = info.run_time_ns};
}

std::optional<ProgramSummary> program_by_id(std::uint32_t id)
{
    Fd fd(bpf_prog_get_fd_by_id(id));
    if (!fd)
        return std::nullopt;
    return program_summary(fd.get());
}

std::vector<std::uint32_t> attached_program_ids(int target_fd, enum bpf_attach_type type, std::uint32_t flags)
{
    std::uint32_t ids[64] = {};
    std::uint32_t count = 64;
    if (bpf_prog_query(target_fd, type, flags, nullptr, ids, &count) != 0)
        return {};
    return {ids, ids + count};
}

} // namespace sockmapd
