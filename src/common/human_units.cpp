// Byte sizes and plurals for human output, and the size syntax of flags such as --max-queued-bytes.
#include "sockmapd/human_units.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>

#include "sockmapd/error.hpp"

namespace sockmapd {
namespace {

constexpr std::array<const char*, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};

std::string lowercase(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

// log2 of the unit's size, or -1 for an unknown unit.
int unit_shift(std::string_view unit)
{
    std::string u = lowercase(unit);
    if (u.empty() || u == "b")
        return 0;
    static constexpr std::array<char, 4> kPrefixes = {'k', 'm', 'g', 't'};
    for (std::size_t i = 0; i < kPrefixes.size(); ++i) {
        std::string p(1, kPrefixes[i]);
        if (u == p || u == p + "b" || u == p + "ib")
            return static_cast<int>(10 * (i + 1));
    }
    return -1;
}

} // namespace

std::string format_bytes(std::uint64_t bytes)
{
    std::size_t unit = 0;
    while (unit + 1 < kUnits.size() && bytes >= (std::uint64_t{1} << (10 * (unit + 1))))
        ++unit;
    std::uint64_t scale = std::uint64_t{1} << (10 * unit);
    char text[48];
    if (bytes % scale == 0)
        std::snprintf(text, sizeof(text), "%llu %s", static_cast<unsigned long long>(bytes / scale), kUnits[unit]);
    else
        std::snprintf(text, sizeof(text), "%.1f %s", static_cast<double>(bytes) / static_cast<double>(scale),
                      kUnits[unit]);
    return text;
}

std::string count_of(std::uint64_t n, std::string_view singular, std::string_view plural)
{
    std::string noun(n == 1 ? singular : plural.empty() ? std::string(singular) + "s" : std::string(plural));
    return std::to_string(n) + " " + noun;
}

std::uint64_t parse_byte_size(std::string_view text, std::uint64_t max, std::string_view flag)
{
    std::string shown = std::string(flag) + " " + (text.empty() ? "\"\"" : std::string(text));
    std::string expected = "expected a size from 0 to " + format_bytes(max) + ", e.g. 8MiB";
    auto digits_end = std::find_if(text.begin(), text.end(), [](unsigned char c) { return !std::isdigit(c); });
    std::string_view digits = text.substr(0, static_cast<std::size_t>(digits_end - text.begin()));
    std::string_view unit = text.substr(digits.size());
    while (!unit.empty() && unit.front() == ' ')
        unit.remove_prefix(1);
    if (!text.empty() && text.front() == '-')
        throw Error(shown + " is negative; " + expected);
    if (digits.empty())
        throw Error(shown + " is not a size; " + expected);
    if (!unit.empty() && (unit.front() == '.' || unit.front() == ','))
        throw Error(shown + " is not a whole number; use a smaller unit, e.g. 1536KiB for 1.5MiB");
    int shift = unit_shift(unit);
    if (shift < 0)
        throw Error(shown + ": unknown unit '" + std::string(unit) + "'; use B, KiB, MiB, GiB or TiB");
    std::uint64_t value = 0;
    for (char c : digits)
        if (__builtin_mul_overflow(value, 10u, &value) ||
            __builtin_add_overflow(value, static_cast<unsigned>(c - '0'), &value) || value > (max >> shift))
            throw Error(shown + " is too large; " + expected);
    return value << shift;
}

} // namespace sockmapd
