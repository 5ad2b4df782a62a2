// The metrics and health HTTP server (cpp-httplib), serving on its own thread for the daemon's life.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace httplib {
class Server;
}

namespace sockmapd {

// Loopback only by default: the counters say which workloads talk to each other. 9476 is not the
// OpenTelemetry SDKs' Prometheus port (9464), nor a Kubernetes, CNI or mesh port (see docs/metrics.md).
inline constexpr const char* kDefaultMetricsAddress = "127.0.0.1:9476";

struct ListenAddress {
    std::string host; // numeric IPv4 or IPv6 address, without brackets
    std::uint16_t port = 0;
};

// "127.0.0.1:9476", "0.0.0.0:9476", "[::1]:9476", "[::]:9476"; port 0 lets the kernel choose. Throws one
// sentence naming the flag on anything else.
ListenAddress parse_listen_address(std::string_view text);

// "[::1]:9476" style, for logs.
std::string format_listen_address(const ListenAddress& address);

struct HttpRoutes {
    // GET /metrics: the exposition text, or nullopt for 503 (not serving metrics yet).
    std::function<std::optional<std::string>()> metrics;
    // GET /readyz: nullopt when ready (200), else why not (503).
    std::function<std::optional<std::string>()> not_ready;
    // GET /healthz is 200 while the process serves it.
};

class HttpServer {
public:
    // Binds and listens now, so that a taken port fails the start before anything is attached (throws
    // sockmapd::Error with one sentence); then serves on its own thread.
    HttpServer(const ListenAddress& address, HttpRoutes routes);
    // Stops accepting, finishes requests in flight and joins the threads.
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // The address actually bound (the kernel's choice when the port was 0).
    const ListenAddress& address() const { return address_; }

private:
    ListenAddress address_;
    HttpRoutes routes_;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
};

} // namespace sockmapd
