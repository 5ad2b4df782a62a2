// Opening one pinned sockmapd map, and reading strings out of map values safely.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sockmapd/error.hpp"
#include "sockmapd/fd.hpp"

namespace sockmapd {

// Throws "nothing pinned at PATH; is sockmapd installed with --pin-path ...?" when the pin is missing.
Fd open_pinned_map(const std::string& pin_path, const char* name);

// Visits every entry of a hash map, in batches of 4096: a few syscalls per thousand entries. Entries added or
// deleted meanwhile may or may not be seen. Throws with `what` (e.g. "read smd_pairs") on any other error.
template <typename Key, typename Value, typename Visit>
void for_each_entry(int fd, const char* what, Visit visit)
{
    constexpr std::uint32_t kBatch = 4096;
    std::vector<Key> keys(kBatch);
    std::vector<Value> values(kBatch);
    std::uint64_t position = 0;
    bool first = true;
    for (;;) {
        std::uint32_t count = kBatch;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &position, &position, keys.data(), values.data(), &count,
                                       nullptr);
        int saved = errno;
        first = false;
        if (err != 0 && saved != ENOENT)
            throw_errno(saved, what);
        for (std::uint32_t i = 0; i < count; ++i)
            visit(keys[i], values[i]);
        if (err != 0) // ENOENT: that was the last batch, possibly partial
            return;
    }
}

// Strings in map values come from a map anyone with the pin can write: never read past their buffer.
template <std::size_t N>
std::string bounded_string(const char (&buffer)[N])
{
    return std::string(buffer, ::strnlen(buffer, N));
}

} // namespace sockmapd
