// Byte sizes in human output, plurals, and the size syntax of --max-queued-bytes.
#include "sockmapd/human_units.hpp"

#include <gtest/gtest.h>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

TEST(FormatBytes, BinaryUnitsWholeWhenExact)
{
    EXPECT_EQ(format_bytes(0), "0 B");
    EXPECT_EQ(format_bytes(1023), "1023 B");
    EXPECT_EQ(format_bytes(1024), "1 KiB");
    EXPECT_EQ(format_bytes(1536), "1.5 KiB");
    EXPECT_EQ(format_bytes(100000), "97.7 KiB");
    EXPECT_EQ(format_bytes(37748736), "36 MiB");
    EXPECT_EQ(format_bytes(std::uint64_t{4} << 30), "4 GiB");
    EXPECT_EQ(format_bytes(std::uint64_t{3} << 40), "3 TiB");
    EXPECT_EQ(format_bytes(std::uint64_t{5} << 50), "5120 TiB");
}

TEST(CountOf, SingularAndPlural)
{
    EXPECT_EQ(count_of(0, "socket"), "0 sockets");
    EXPECT_EQ(count_of(1, "socket"), "1 socket");
    EXPECT_EQ(count_of(2, "socket"), "2 sockets");
    EXPECT_EQ(count_of(1, "entry", "entries"), "1 entry");
    EXPECT_EQ(count_of(3, "entry", "entries"), "3 entries");
}

TEST(ParseByteSize, NumbersAndUnits)
{
    constexpr std::uint64_t max = std::uint64_t{4} << 30;
    EXPECT_EQ(parse_byte_size("0", max, "--x"), 0u);
    EXPECT_EQ(parse_byte_size("4096", max, "--x"), 4096u);
    EXPECT_EQ(parse_byte_size("64KiB", max, "--x"), 64u << 10);
    EXPECT_EQ(parse_byte_size("64k", max, "--x"), 64u << 10);
    EXPECT_EQ(parse_byte_size("8MiB", max, "--x"), 8u << 20);
    EXPECT_EQ(parse_byte_size("8 mb", max, "--x"), 8u << 20);
    EXPECT_EQ(parse_byte_size("1G", max, "--x"), 1u << 30);
    EXPECT_EQ(parse_byte_size("4GiB", max, "--x"), max);
    EXPECT_EQ(parse_byte_size("12b", max, "--x"), 12u);
}

TEST(ParseByteSize, RefusesNegativeFractionsUnknownUnitsAndTooLarge)
{
    constexpr std::uint64_t max = std::uint64_t{4} << 30;
    auto refusal = [&](const std::string& text) {
        return test::error_message([&] { parse_byte_size(text, max, "--max-queued-bytes"); }, text);
    };
    auto negative = refusal("-1");
    EXPECT_CONTAINS(negative, "--max-queued-bytes -1 is negative");
    EXPECT_CONTAINS(negative, "from 0 to 4 GiB");
    EXPECT_CONTAINS(refusal("-0"), "is negative");
    EXPECT_CONTAINS(refusal("18446744073709551615"), "is too large");
    EXPECT_CONTAINS(refusal("99999999999999999999999"), "is too large");
    EXPECT_CONTAINS(refusal("4294967297"), "is too large");
    EXPECT_CONTAINS(refusal("5GiB"), "is too large");
    EXPECT_CONTAINS(refusal("16777216TiB"), "is too large");
    EXPECT_CONTAINS(refusal("1.5MiB"), "not a whole number");
    EXPECT_CONTAINS(refusal("8XB"), "unknown unit 'XB'");
    EXPECT_CONTAINS(refusal("MiB"), "is not a size");
    EXPECT_CONTAINS(refusal(""), "--max-queued-bytes \"\" is not a size");
}

} // namespace
} // namespace sockmapd
