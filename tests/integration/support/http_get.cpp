// Raw HTTP GET for metrics tests: the byte counts matter, because a scrape in scope is redirected too.
#include "http_get.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <sstream>

#include "bounded_io.hpp"
#include "sockets.hpp"

namespace smdtest {

HttpReply http_get(const std::string& addr, std::uint16_t port, const std::string& path,
                   std::chrono::milliseconds timeout)
{
    HttpReply reply;
    auto deadline = Clock::now() + timeout;
    Fd fd;
    try {
        fd = tcp_connect(addr, port, timeout);
    } catch (const std::exception& e) {
        reply.error = std::string("connect: ") + e.what();
        return reply;
    }
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n";
    auto written = write_all(fd.get(), request.data(), request.size(), deadline);
    reply.bytes_sent = written.bytes;
    if (!written.ok()) {
        reply.error = "write: " + written.describe();
        return reply;
    }
    std::string response;
    char buffer[65536];
    for (;;) {
        ssize_t got = ::recv(fd.get(), buffer, sizeof(buffer), 0);
        if (got > 0) {
            response.append(buffer, got);
        } else if (got == 0) {
            break;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_event(fd.get(), POLLIN, deadline)) {
                reply.error = "read: timeout after " + std::to_string(response.size()) + " bytes";
                return reply;
            }
        } else {
            reply.error = std::string("read: ") + std::strerror(errno);
            return reply;
        }
    }
    reply.bytes_received = response.size();
    auto header_end = response.find("\r\n\r\n");
    if (response.rfind("HTTP/1.1 ", 0) != 0 || header_end == std::string::npos) {
        reply.error = "not an HTTP/1.1 response: " + response.substr(0, 200);
        return reply;
    }
    reply.status = std::stoi(response.substr(9, 3));
    std::istringstream headers(response.substr(0, header_end));
    for (std::string line; std::getline(headers, line);) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        constexpr std::string_view kContentType = "Content-Type: ";
        if (line.rfind(kContentType, 0) == 0)
            reply.content_type = line.substr(kContentType.size());
    }
    reply.body = response.substr(header_end + 4);
    return reply;
}

namespace {

std::optional<std::string> sample_text(const std::string& exposition, const std::string& series)
{
    std::istringstream in(exposition);
    for (std::string line; std::getline(in, line);) {
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return line.substr(series.size() + 1);
    }
    return std::nullopt;
}

} // namespace

std::optional<std::uint64_t> metric_value(const std::string& exposition, const std::string& series)
{
    auto text = sample_text(exposition, series);
    if (!text)
        return std::nullopt;
    return std::stoull(*text);
}

std::optional<double> metric_seconds(const std::string& exposition, const std::string& series)
{
    auto text = sample_text(exposition, series);
    if (!text)
        return std::nullopt;
    return std::stod(*text);
}

std::uint16_t free_loopback_port()
{
    Fd probe = tcp_listen("127.0.0.1", 0);
    return local_port(probe.get());
}

} // namespace smdtest
