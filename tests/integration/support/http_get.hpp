// A minimal HTTP/1.1 GET over a test socket that counts the bytes it moves, and Prometheus text look-ups.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace smdtest {

struct HttpReply {
    int status = 0;               // 0 if no status line arrived
    std::string content_type;
    std::string body;
    std::uint64_t bytes_sent = 0; // the request, as written to the socket
    std::uint64_t bytes_received = 0; // the whole response: status line, headers and body
    std::string error;            // empty on success: connect, write, read or timeout failure
};

// One request on a fresh connection ("Connection: close"), read to EOF; bounded by `timeout`.
HttpReply http_get(const std::string& addr, std::uint16_t port, const std::string& path,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The value of one series in exposition text, e.g. `sockmapd_pairs` or
// `sockmapd_fallback_messages_total{reason="pinned"}`; nullopt if no sample line has exactly that series.
std::optional<std::uint64_t> metric_value(const std::string& exposition, const std::string& series);

// The same for a fractional sample such as sockmapd_scrape_duration_seconds.
std::optional<double> metric_seconds(const std::string& exposition, const std::string& series);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, read back, closed).
std::uint16_t free_loopback_port();

} // namespace smdtest
