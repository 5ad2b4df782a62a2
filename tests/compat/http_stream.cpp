// Streaming HTTP/1.1 for the compatibility tier: heads read byte by byte (they are small), bodies hashed in flight.
#include "http_stream.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <sstream>

#include "bounded_io.hpp"

namespace smdtest {
namespace {

// Reads up to and including the blank line that ends a head; byte by byte, so no body byte is consumed.
std::string read_head(int fd, Clock::time_point deadline, std::string& error)
{
    std::string head;
    while (head.size() < 65536) {
        char c;
        ssize_t n = ::recv(fd, &c, 1, 0);
        if (n == 1) {
            head.push_back(c);
            if (head.size() >= 4 && head.compare(head.size() - 4, 4, "\r\n\r\n") == 0)
                return head;
            continue;
        }
        if (n == 0) {
            error = "connection closed after " + std::to_string(head.size()) + " bytes of the HTTP head";
            return head;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            error = "recv (HTTP head): " + errno_name(errno);
            return head;
        }
        if (!wait_event(fd, POLLIN, deadline)) {
            error = "no complete HTTP head before the deadline (" + std::to_string(head.size()) + " bytes)";
            return head;
        }
    }
    error = "HTTP head longer than 64 KiB";
    return head;
}

// The value of header `name` (case-insensitive), or "".
std::string header(const std::string& head, const std::string& name)
{
    std::istringstream lines(head);
    for (std::string line; std::getline(lines, line);) {
        if (line.size() > name.size() && line[name.size()] == ':' &&
            ::strncasecmp(line.c_str(), name.c_str(), name.size()) == 0) {
            auto value = line.substr(name.size() + 1);
            auto first = value.find_first_not_of(" \t"), last = value.find_last_not_of(" \t\r");
            return first == std::string::npos ? "" : value.substr(first, last - first + 1);
        }
    }
    return "";
}

int status_of(const std::string& head)
{
    // "HTTP/1.1 200 OK"
    auto space = head.find(' ');
    return space == std::string::npos ? 0 : std::atoi(head.c_str() + space + 1);
}

std::string send_text(int fd, const std::string& text, Clock::time_point deadline)
{
    auto r = write_all(fd, text.data(), text.size(), deadline);
    return r.ok() ? "" : "send: " + r.describe();
}

// Reads a small body of `length` bytes.
std::string read_small_body(int fd, std::uint64_t length, Clock::time_point deadline, std::string& error)
{
    std::string body(length, '\0');
    auto r = read_exact(fd, body.data(), length, deadline);
    if (!r.ok())
        error = "reply body: " + r.describe();
    return body;
}

} // namespace

std::string download_path(std::uint64_t seed, std::uint64_t length)
{
    return "/download/" + std::to_string(seed) + "/" + std::to_string(length);
}

HttpResult http_download(int fd, const std::string& path, Clock::time_point deadline, const ReadPace& pace,
                         std::atomic<std::uint64_t>* progress)
{
    HttpResult result;
    result.error = send_text(fd, "GET " + path + " HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n", deadline);
    if (!result.error.empty())
        return result;
    result.head = read_head(fd, deadline, result.error);
    if (!result.error.empty())
        return result;
    result.status = status_of(result.head);
    std::string length = header(result.head, "Content-Length");
    std::uint64_t expected = length.empty() ? ~0ull : std::stoull(length);
    auto body = recv_stream_paced(fd, expected, true, deadline, pace, progress);
    result.body = body.digest;
    result.error = body.error;
    if (result.error.empty() && !length.empty() && body.digest.length != expected)
        result.error = "body ended after " + std::to_string(body.digest.length) + " of " + length + " bytes";
    return result;
}

HttpResult http_upload(int fd, const std::string& path, std::uint64_t seed, std::uint64_t length,
                       Clock::time_point deadline, std::atomic<std::uint64_t>* progress)
{
    HttpResult result;
    result.error = send_text(fd,
                             "PUT " + path + " HTTP/1.1\r\nHost: app\r\nContent-Type: application/octet-stream\r\n"
                             "Content-Length: " + std::to_string(length) + "\r\nConnection: close\r\n\r\n",
                             deadline);
    if (!result.error.empty())
        return result;
    auto sent = send_stream(fd, seed, length, {65536, 16384, 100000}, deadline, progress);
    result.body = sent.digest;
    if (!sent.error.empty()) {
        result.error = "request body: " + sent.error;
        return result;
    }
    result.head = read_head(fd, deadline, result.error);
    if (!result.error.empty())
        return result;
    result.status = status_of(result.head);
    std::string reply_length = header(result.head, "Content-Length");
    if (reply_length.empty()) {
        result.error = "reply without Content-Length";
        return result;
    }
    result.reply = read_small_body(fd, std::stoull(reply_length), deadline, result.error);
    return result;
}

Served serve_one_request(int fd, Clock::time_point deadline, std::atomic<std::uint64_t>* progress,
                         std::uint64_t bytes_per_second)
{
    Served served;
    std::string head = read_head(fd, deadline, served.error);
    if (!served.error.empty())
        return served;
    served.request_line = head.substr(0, head.find("\r\n"));
    std::uint64_t seed = 0, length = 0;
    if (std::sscanf(served.request_line.c_str(), "GET /download/%" SCNu64 "/%" SCNu64 " ", &seed, &length) == 2) {
        served.error = send_text(fd,
                                 "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                                     std::to_string(length) + "\r\nConnection: close\r\n\r\n",
                                 deadline);
        if (served.error.empty()) {
            auto sent = send_stream_paced(fd, seed, length, {65536, 16384, 100000}, deadline, bytes_per_second,
                                          progress);
            served.sent = sent.digest;
            served.error = sent.error;
        }
    } else {
        std::string content_length = header(head, "Content-Length");
        if (content_length.empty()) {
            served.error = "request without Content-Length: " + served.request_line;
            return served;
        }
        auto body = recv_stream(fd, std::stoull(content_length), false, deadline, 1 << 16, progress);
        served.received = body.digest;
        served.error = body.error;
        if (served.error.empty() && body.digest.length != std::stoull(content_length))
            served.error = "request body ended after " + std::to_string(body.digest.length) + " of " +
                           content_length + " bytes";
        std::string text = std::to_string(body.digest.length) + " " + body.digest.sha256;
        auto reply_error = send_text(fd,
                                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                         std::to_string(text.size()) + "\r\nConnection: close\r\n\r\n" + text,
                                     deadline);
        if (served.error.empty())
            served.error = reply_error;
    }
    ::shutdown(fd, SHUT_WR);
    return served;
}

} // namespace smdtest
