// HTTP/1.1 over a test socket with bodies of hundreds of MB streamed and hashed, never held in memory: a client
// for downloads and uploads, and the app server behind a proxy, one request per connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "sockets.hpp"

namespace smdtest {

struct HttpResult {
    int status = 0;
    std::string head;  // status line and headers as received
    Digest body;       // of the body as received (download) or sent (upload)
    std::string reply; // upload: the server's small reply body, "<length> <sha256>" of what it received
    std::string error; // empty on success
};

// GET `path` with "Connection: close"; the body is read to EOF with `pace`.
HttpResult http_download(int fd, const std::string& path, Clock::time_point deadline, const ReadPace& pace = {},
                         std::atomic<std::uint64_t>* progress = nullptr);
// PUT `length` bytes of stream `seed` to `path`, then reads the reply.
HttpResult http_upload(int fd, const std::string& path, std::uint64_t seed, std::uint64_t length,
                       Clock::time_point deadline, std::atomic<std::uint64_t>* progress = nullptr);

// The path that makes serve_one_request() answer with `length` bytes of stream `seed`.
std::string download_path(std::uint64_t seed, std::uint64_t length);

struct Served {
    std::string request_line;
    Digest received; // the request body
    Digest sent;     // the response body
    std::string error;
};

// Serves one request on `fd`: GET /download/<seed>/<length> answers with that stream; any other method reads
// the request body (Content-Length) and answers "<length> <sha256>" of it. Then half-closes. A download is sent
// at `bytes_per_second` (0: as fast as it can).
Served serve_one_request(int fd, Clock::time_point deadline, std::atomic<std::uint64_t>* progress = nullptr,
                         std::uint64_t bytes_per_second = 0);

} // namespace smdtest
