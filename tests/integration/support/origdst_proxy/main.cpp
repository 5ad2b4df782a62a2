// smd_origdst_proxy: a minimal mesh sidecar that forwards each REDIRECTed connection to its SO_ORIGINAL_DST.
//
// Debian's haproxy 2.6 asks SO_ORIGINAL_DST only for AF_INET sockets, so it cannot serve IPv6 (or v4-mapped)
// REDIRECT; this proxy does both families. Usage: smd_origdst_proxy LISTEN... with LISTEN "0.0.0.0:15001" or
// "[::]:15001". Prints one line per connection: "conn client=C orig_dst=D upstream=U". One thread per direction on
// non-blocking sockets that wait in poll(), as event-driven sidecars do: sockmapd keeps blocking sockets out of
// the sockhash (docs/design.md, "A direction's life"), and this proxy must be accelerated like a real sidecar.
#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string format_address(const sockaddr_storage& s)
{
    char text[INET6_ADDRSTRLEN] = "?";
    if (s.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(s);
        ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
        return std::string(text) + ":" + std::to_string(ntohs(v4.sin_port));
    }
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(s);
    ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6.sin6_port));
}

bool same_endpoint(const sockaddr_storage& a, const sockaddr_storage& b)
{
    if (a.ss_family != b.ss_family)
        return false;
    if (a.ss_family == AF_INET) {
        const auto& x = reinterpret_cast<const sockaddr_in&>(a);
        const auto& y = reinterpret_cast<const sockaddr_in&>(b);
        return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0;
}

socklen_t address_length(const sockaddr_storage& s)
{
    return s.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

int listen_on(const std::string& spec)
{
    auto colon = spec.rfind(':');
    if (colon == std::string::npos)
        return -1;
    std::string host = spec.substr(0, colon);
    int port = std::stoi(spec.substr(colon + 1));
    sockaddr_storage s{};
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        auto& v6 = reinterpret_cast<sockaddr_in6&>(s);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6.sin6_addr) != 1)
            return -1;
    } else {
        auto& v4 = reinterpret_cast<sockaddr_in&>(s);
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        if (::inet_pton(AF_INET, host.c_str(), &v4.sin_addr) != 1)
            return -1;
    }
    int fd = ::socket(s.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    // One family per listener: IPv4 clients of a v6 socket would need the IPv4 conntrack lookup.
    if (s.ss_family == AF_INET6)
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&s), address_length(s)) != 0 || ::listen(fd, 1024) != 0) {
        std::fprintf(stderr, "listen %s: %s\n", spec.c_str(), std::strerror(errno));
        ::close(fd);
        return -1;
    }
    return fd;
}

// Where the client meant to go before iptables REDIRECT rewrote the destination to us.
bool original_destination(int fd, sockaddr_storage* out)
{
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0)
        return false;
    len = sizeof(*out);
    if (local.ss_family == AF_INET)
        return ::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len) == 0;
    return ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len) == 0;
}

void wait_for(int fd, short events)
{
    pollfd p{fd, events, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
}

bool send_all(int fd, const char* data, std::size_t n)
{
    while (n > 0) {
        ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            wait_for(fd, POLLOUT);
            continue;
        }
        if (w <= 0)
            return false;
        data += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

// Copies one direction; passes the peer's FIN on as a half-close, an error as a reset of both sides.
void relay(int from, int to)
{
    std::vector<char> buf(1 << 16);
    for (;;) {
        ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            wait_for(from, POLLIN);
            continue;
        }
        if (n == 0) {
            ::shutdown(to, SHUT_WR);
            return;
        }
        if (n < 0 || !send_all(to, buf.data(), static_cast<std::size_t>(n))) {
            std::printf("relay error: %s failed: %s\n", n < 0 ? "recv" : "send", std::strerror(errno));
            std::fflush(stdout);
            ::shutdown(from, SHUT_RDWR);
            ::shutdown(to, SHUT_RDWR);
            return;
        }
    }
}

void serve(int client)
{
    sockaddr_storage peer{}, local{}, dst{}, upstream_local{};
    socklen_t len = sizeof(peer);
    ::getpeername(client, reinterpret_cast<sockaddr*>(&peer), &len);
    len = sizeof(local);
    ::getsockname(client, reinterpret_cast<sockaddr*>(&local), &len);
    if (!original_destination(client, &dst) || same_endpoint(dst, local)) {
        // Not REDIRECTed: forwarding to ourselves would loop until the fd limit.
        std::printf("refused client=%s: no original destination\n", format_address(peer).c_str());
        std::fflush(stdout);
        ::close(client);
        return;
    }
    int upstream = ::socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int connected = ::connect(upstream, reinterpret_cast<sockaddr*>(&dst), address_length(dst));
    if (connected != 0 && errno == EINPROGRESS) {
        wait_for(upstream, POLLOUT);
        int error = 0;
        socklen_t error_len = sizeof(error);
        ::getsockopt(upstream, SOL_SOCKET, SO_ERROR, &error, &error_len);
        errno = error;
        connected = error ? -1 : 0;
    }
    if (connected != 0) {
        std::printf("failed client=%s orig_dst=%s: %s\n", format_address(peer).c_str(), format_address(dst).c_str(),
                    std::strerror(errno));
        std::fflush(stdout);
        ::close(upstream);
        ::close(client);
        return;
    }
    len = sizeof(upstream_local);
    ::getsockname(upstream, reinterpret_cast<sockaddr*>(&upstream_local), &len);
    std::printf("conn client=%s orig_dst=%s upstream=%s\n", format_address(peer).c_str(), format_address(dst).c_str(),
                format_address(upstream_local).c_str());
    std::fflush(stdout);
    std::thread back(relay, upstream, client);
    relay(client, upstream);
    back.join();
    ::close(upstream);
    ::close(client);
}

} // namespace

int main(int argc, char** argv)
{
    ::signal(SIGPIPE, SIG_IGN);
    std::vector<pollfd> listeners;
    for (int i = 1; i < argc; ++i) {
        int fd = listen_on(argv[i]);
        if (fd < 0) {
            std::fprintf(stderr, "usage: %s 0.0.0.0:PORT|[::]:PORT...\n", argv[0]);
            return 2;
        }
        listeners.push_back({fd, POLLIN, 0});
    }
    if (listeners.empty()) {
        std::fprintf(stderr, "usage: %s 0.0.0.0:PORT|[::]:PORT...\n", argv[0]);
        return 2;
    }
    for (;;) {
        if (::poll(listeners.data(), listeners.size(), -1) < 0 && errno != EINTR)
            return 1;
        for (auto& l : listeners) {
            if (!(l.revents & POLLIN))
                continue;
            int client = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (client >= 0)
                std::thread(serve, client).detach();
        }
    }
}
