// Quantities as people read and write them: byte sizes with binary units, counted nouns with their plural.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sockmapd {

// "512 B", "64 KiB", "1.5 MiB": whole numbers when exact, else one decimal; binary units up to TiB.
std::string format_bytes(std::uint64_t bytes);

// "1 socket", "2 sockets"; plural defaults to singular + "s".
std::string count_of(std::uint64_t n, std::string_view singular, std::string_view plural = {});

// A size as a flag takes it: digits, then optionally a unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB, any case,
// all powers of 1024). Throws sockmapd::Error naming `flag` on a sign, a fraction, an unknown unit or a value
// above `max`.
std::uint64_t parse_byte_size(std::string_view text, std::uint64_t max, std::string_view flag);

} // namespace sockmapd
