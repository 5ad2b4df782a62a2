// Opening one pinned sockmapd map, and reading strings out of map values safely.
#pragma once

#include <cstring>
#include <string>

#include "sockmapd/fd.hpp"

namespace sockmapd {

// Throws "nothing pinned at PATH; is sockmapd installed with --pin-path ...?" when the pin is missing.
Fd open_pinned_map(const std::string& pin_path, const char* name);

// Strings in map values come from a map anyone with the pin can write: never read past their buffer.
template <std::size_t N>
std::string bounded_string(const char (&buffer)[N])
{
    return std::string(buffer, ::strnlen(buffer, N));
}

} // namespace sockmapd
