// --metrics-address parsing: numeric IPv4 and bracketed IPv6 with a port; anything else is one clear sentence.
#include "sockmapd/http_server.hpp"

#include <gtest/gtest.h>

#include "unit_helpers.hpp"

namespace sockmapd {
namespace {

using test::error_message;

TEST(ParseListenAddress, Ipv4AndPort)
{
    auto a = parse_listen_address("127.0.0.1:9476");
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 9476);
    EXPECT_EQ(parse_listen_address("0.0.0.0:0").port, 0);
    EXPECT_EQ(parse_listen_address("10.1.2.3:65535").port, 65535);
}

TEST(ParseListenAddress, BracketedIpv6)
{
    auto a = parse_listen_address("[::1]:9476");
    EXPECT_EQ(a.host, "::1");
    EXPECT_EQ(a.port, 9476);
    EXPECT_EQ(parse_listen_address("[::]:80").host, "::");
    EXPECT_EQ(format_listen_address(a), "[::1]:9476");
    EXPECT_EQ(format_listen_address(parse_listen_address("127.0.0.1:1")), "127.0.0.1:1");
}

TEST(ParseListenAddress, DefaultIsLoopback)
{
    auto a = parse_listen_address(kDefaultMetricsAddress);
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_NE(a.port, 0);
}

TEST(ParseListenAddress, RefusalsNameTheFlagAndTheRemedy)
{
    for (const char* bad : {"9476", ":9476", "localhost:9476", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                            "127.0.0.1:-1", "127.0.0.1:94x", "::1:9476", "[::1]9476", "[::1]:", "[127.0.0.1]:80",
                            "[::1:80", "300.1.1.1:80", " 127.0.0.1:80"}) {
        SCOPED_TRACE(bad);
        std::string message = error_message([&] { parse_listen_address(bad); }, bad);
        EXPECT_CONTAINS(message, "--metrics-address '" + std::string(bad) + "'");
        EXPECT_CONTAINS(message, "127.0.0.1:9476");
        EXPECT_CONTAINS(message, "to disable");
        EXPECT_EQ(message.find('\n'), std::string::npos);
    }
}

} // namespace
} // namespace sockmapd
