// /metrics, /healthz and /readyz over cpp-httplib, on a thread of their own.
#include "sockmapd/http_server.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <chrono>

#include "sockmapd/error.hpp"
#include "sockmapd/metrics.hpp"

namespace sockmapd {
namespace {

// Two workers: a scrape is serialized by MetricsSource anyway, and probes are trivial.
constexpr std::size_t kWorkers = 2;

[[noreturn]] void bad_address(std::string_view text, const std::string& why)
{
    throw Error("--metrics-address '" + std::string(text) + "' " + why +
                "; use a numeric address and port such as 127.0.0.1:9476 or [::1]:9476, or \"\" to disable "
                "the metrics server");
}

bool is_ip(const std::string& host, int family)
{
    unsigned char buffer[sizeof(struct in6_addr)];
    return ::inet_pton(family, host.c_str(), buffer) == 1;
}

} // namespace

ListenAddress parse_listen_address(std::string_view text)
{
    ListenAddress address;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            bad_address(text, "is not [IPv6]:PORT");
        address.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        if (!is_ip(address.host, AF_INET6))
            bad_address(text, "does not hold a numeric IPv6 address");
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            bad_address(text, "has no :PORT");
        address.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
        if (address.host.find(':') != std::string::npos)
            bad_address(text, "needs brackets around an IPv6 address");
        if (!is_ip(address.host, AF_INET))
            bad_address(text, "does not start with a numeric IPv4 address");
    }
    unsigned value = 0;
    auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || err != std::errc() || end != port.data() + port.size() || value > 65535)
        bad_address(text, "does not end with a port from 0 to 65535");
    address.port = static_cast<std::uint16_t>(value);
    return address;
}

std::string format_listen_address(const ListenAddress& address)
{
    bool v6 = address.host.find(':') != std::string::npos;
    return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

HttpServer::HttpServer(const ListenAddress& address, HttpRoutes routes)
    : address_(address), routes_(std::move(routes)), server_(std::make_unique<httplib::Server>())
{
    auto& server = *server_;
    // httplib's default adds SO_REUSEPORT, which would let a second daemon share the port silently.
    server.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    server.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
    // A worker only notices stop() between requests: one request per connection and short timeouts keep a
    // SIGTERM from waiting on an idle or stalled scraper (Prometheus reconnects each scrape anyway).
    server.set_keep_alive_max_count(1);
    server.set_keep_alive_timeout(1);
    server.set_read_timeout(2);
    server.set_write_timeout(2);
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        try {
            if (auto body = routes_.metrics()) {
                res.set_content(std::move(*body), kMetricsContentType);
                return;
            }
            res.status = 503;
            res.set_content("the data path is not attached yet\n", "text/plain");
        } catch (const std::exception& e) {
            spdlog::warn("metrics scrape failed: {}", e.what());
            res.status = 500;
            res.set_content(std::string(e.what()) + "\n", "text/plain");
        }
    });
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
    server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
        std::optional<std::string> problem;
        try {
            problem = routes_.not_ready();
        } catch (const std::exception& e) {
            problem = e.what();
        }
        if (problem) {
            res.status = 503;
            res.set_content("not ready: " + *problem + "\n", "text/plain");
        } else {
            res.set_content("ok\n", "text/plain");
        }
    });

    // httplib reports a failed bind as false: errno still holds the bind(2) or listen(2) error.
    errno = 0;
    bool bound;
    if (address.port == 0) {
        int port = server.bind_to_any_port(address.host);
        bound = port > 0;
        if (bound)
            address_.port = static_cast<std::uint16_t>(port);
    } else {
        bound = server.bind_to_port(address.host, address.port);
    }
    if (!bound) {
        int err = errno;
        std::string what = "--metrics-address " + format_listen_address(address) + ": cannot listen";
        std::string remedy = "; pick a free port with --metrics-address, or pass --metrics-address \"\" to disable "
                             "the metrics server";
        if (err == 0)
            throw Error(what + remedy);
        throw Error(what + ": " + errno_name(err) + " (" + std::strerror(err) + ")" + remedy);
    }

    thread_ = std::thread([this] {
        // A scraper that hangs up mid-response must cost an EPIPE, not the daemon: httplib sends without
        // MSG_NOSIGNAL. The workers are started from this thread and inherit the mask.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        server_->listen_after_bind();
    });
    // stop() only works on a running server: wait (bounded) until the accept loop has started.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server.is_running() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!server.is_running()) {
        thread_.join(); // listen_after_bind returns at once when it cannot run
        throw Error("--metrics-address " + format_listen_address(address_) + ": the HTTP server did not start");
    }
    // Logged at info by the daemon once it is ready: a refused start stays one line.
    spdlog::debug("listening on {} for /metrics, /healthz and /readyz", format_listen_address(address_));
}

HttpServer::~HttpServer()
{
    server_->stop();
    if (thread_.joinable())
        thread_.join();
    spdlog::debug("metrics server on {} stopped", format_listen_address(address_));
}

} // namespace sockmapd
