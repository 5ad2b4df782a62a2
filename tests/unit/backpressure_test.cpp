// The default backpressure limit comes from net.ipv4.tcp_rmem and tcp_wmem.
#include "sockmapd/backpressure.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace sockmapd {
namespace {

class TempFile {
public:
    explicit TempFile(const std::string& content)
        : path_("/tmp/smd-unit-tcp_rmem-" + std::to_string(::getpid()))
    {
        std::ofstream(path_) << content;
    }
    ~TempFile() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

TEST(Backpressure, TheMaximumIsTheThirdField)
{
    TempFile file("4096\t131072\t33554432\n");
    EXPECT_EQ(tcp_mem_max(file.path()), 33554432u);
}

TEST(Backpressure, UnreadableOrMalformedTcpRmemIsUnknown)
{
    EXPECT_EQ(tcp_mem_max("/nonexistent/tcp_rmem"), std::nullopt);
    TempFile two_fields("4096 131072\n");
    EXPECT_EQ(tcp_mem_max(two_fields.path()), std::nullopt);
    TempFile words("a b c\n");
    EXPECT_EQ(tcp_mem_max(words.path()), std::nullopt);
    TempFile zero("0 0 0\n");
    EXPECT_EQ(tcp_mem_max(zero.path()), std::nullopt);
}

TEST(Backpressure, QueueCapsGrowUpToTcpRmemMax)
{
    auto rmem = tcp_mem_max("/proc/sys/net/ipv4/tcp_rmem");
    ASSERT_TRUE(rmem) << "/proc/sys/net/ipv4/tcp_rmem unreadable";
    EXPECT_EQ(tcp_rmem_max(), *rmem);
}

} // namespace
} // namespace sockmapd
