// nginx as a static file server (TESTPLAN 25): a 200 MB file downloaded over loopback with `sendfile on` (nginx
// sends with sendfile(2)) and `sendfile off` (read(2) + writev(2)). Both ends compared: the client's length and
// SHA-256 with the file's, and nginx's own count of body bytes sent from its access log.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "compat.hpp"
#include "http_stream.hpp"
#include "nginx.hpp"
#include "pods.hpp"

namespace smdtest {
namespace {

constexpr std::uint64_t kFileSeed = 31;

class NginxStatic : public CompatTest, public ::testing::WithParamInterface<bool> {
protected:
    void SetUp() override
    {
        CompatTest::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        // The file, shared by both halves: stream kFileSeed, readable by nginx's uid.
        www_ = "/tmp/" + unique_name("smd-compat-www");
        std::filesystem::create_directories(www_);
        std::ofstream out(www_ + "/big.bin", std::ios::binary);
        PatternStream stream(kFileSeed);
        std::vector<std::uint8_t> buf(1 << 20);
        for (std::uint64_t left = kBulk; left > 0;) {
            std::size_t n = std::min<std::uint64_t>(buf.size(), left);
            stream.fill(buf.data(), n);
            out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n));
            left -= n;
        }
        out.close();
        ASSERT_TRUE(out) << "could not write " << www_ << "/big.bin";
        ::chmod(www_.c_str(), 0755);
    }

    void TearDown() override
    {
        std::error_code ec;
        if (!www_.empty())
            std::filesystem::remove_all(www_, ec);
        CompatTest::TearDown();
    }

    std::string config(bool sendfile) const
    {
        return nginx_main_context(false) +
               "http {\n"
               "    log_format served 'served request=\"$request\" status=$status body_bytes_sent=$body_bytes_sent';\n"
               "    access_log access.log served;\n" +
               nginx_http_temp_paths() + "    sendfile " + (sendfile ? "on" : "off") +
               ";\n"
               "    server { listen 127.0.0.1:8080; root " + www_ + "; }\n"
               "}\n";
    }

    std::string www_;
};

TEST_P(NginxStatic, TwoHundredMegabyteFile)
{
    const bool sendfile = GetParam();
    for (Mode mode : kModes) {
        begin(mode);
        NetNs ns("smd-compat");
        Nginx nginx(ns, config(sendfile), {"127.0.0.1:8080"}, kSidecarUid);
        if (half_failed()) {
            end_half();
            continue;
        }
        Fd client;
        {
            InNetns in(ns);
            client = tcp_connect("127.0.0.1", 8080);
        }
        HttpResult r;
        {
            ProgressWatch watch(kStall, kTransferLimit);
            watch.watch(client.get());
            watch.on_stall([&] { return tcp_queues(ns); });
            r = http_download(client.get(), "/big.bin", watch.deadline(), {}, &watch.counter());
            watch.stop();
            EXPECT_FALSE(watch.fired()) << watch.reason();
        }
        EXPECT_EQ(r.error, "") << "client: " << r.error;
        EXPECT_EQ(r.status, 200) << r.head;
        EXPECT_TRUE(digest_is(r.body, expected_digest(kFileSeed, kBulk))) << "the file as the client got it";
        client.reset();
        // nginx writes its access log line when the request ends, just after the last byte.
        std::string served = "body_bytes_sent=" + std::to_string(kBulk);
        bool logged = false;
        for (auto until = Clock::now() + 5s; !logged && Clock::now() < until; std::this_thread::sleep_for(20ms))
            logged = nginx.log().find(served) != std::string::npos;
        EXPECT_TRUE(logged) << "nginx did not log " << served << ": " << one_line(nginx.log());
        expect_accelerated_or_stepped_aside(kBulk);
        end_half();
    }
}

INSTANTIATE_TEST_SUITE_P(Sendfile, NginxStatic, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "sendfile_on" : "sendfile_off"); });

} // namespace
} // namespace smdtest
