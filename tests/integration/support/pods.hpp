// Two pods on one node wired like a service mesh: each pod a network namespace, a veth between them,
// Istio-style REDIRECT rules and a real sidecar proxy running as uid 1337. For mesh tests and benchmarks.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "netns.hpp"
#include "nginx.hpp"
#include "process.hpp"
#include "sockets.hpp"

namespace smdtest {

enum class Sidecar {
    // Debian's haproxy, TCP mode, `server orig 0.0.0.0:0`: forwards to the destination the client asked for.
    // IPv4 only: HAProxy 2.6 reads SO_ORIGINAL_DST for AF_INET listeners only, so an IPv6 (or dual-stack)
    // REDIRECTed connection makes it connect to its own listener, over and over.
    Haproxy,
    // smd_origdst_proxy from this test tree: the same job for IPv4 and IPv6 (IP6T_SO_ORIGINAL_DST).
    OrigDstProxy,
    // The haproxy above with splicing on (no `nosplice`): `option splice-auto`, or splice-request and
    // splice-response, which splice whenever they can. splice(2) reads what sockmap redirected differently.
    HaproxySpliceAuto,
    HaproxySplice,
    // nginx as it is run as a sidecar (IPv4): `stream` proxy_pass, or http proxy_pass with default buffering.
    // nginx cannot read SO_ORIGINAL_DST, so outbound goes to the other pod's app (PEER:8080) and inbound to
    // 127.0.0.1:8080, as Istio's inbound does: one destination, which is all the tests dial.
    NginxStream,
    NginxProxyPass,
};

// "haproxy", "nginx_stream", ...: for test names and messages.
std::string sidecar_name(Sidecar sidecar);
// gtest prints a parameter with it.
inline void PrintTo(Sidecar sidecar, std::ostream* os) { *os << sidecar_name(sidecar); }

// The sidecar's outbound listener (app -> anywhere) and inbound listener (anywhere -> app), as in Istio.
constexpr std::uint16_t kSidecarOutboundPort = 15001;
constexpr std::uint16_t kSidecarInboundPort = 15006;
// Connections of this uid skip the REDIRECT: the sidecar's own upstream connections.
constexpr uid_t kSidecarUid = 1337;

class Pod {
public:
    Pod(const std::string& name_prefix, std::string ipv4, std::string ipv6);
    ~Pod();
    Pod(const Pod&) = delete;
    Pod& operator=(const Pod&) = delete;

    const NetNs& netns() const { return netns_; }
    const std::string& ipv4() const { return ipv4_; } // on eth0, /24
    const std::string& ipv6() const { return ipv6_; } // on eth0, /64, no DAD
    pid_t sidecar_pid() const { return nginx_ ? nginx_->pid() : sidecar_.pid(); }

    // An app socket of this pod: its connections go through this pod's sidecar.
    Fd listen(const std::string& addr, std::uint16_t port) const;
    Fd connect(const std::string& addr, std::uint16_t port) const;

    // The sidecar's "conn client=IP:PORT orig_dst=IP:PORT upstream=IP:PORT" lines, one per proxied
    // connection, once at least `count` are there (bounded wait; fewer on timeout).
    std::vector<std::string> sidecar_connections(std::size_t count,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
    std::string sidecar_log() const;
    // haproxy's "show sess all" (every stream with its state and both connections); a note for other sidecars.
    std::string sidecar_sessions() const { return haproxy_command("show sess all"); }
    // The answer to one command on haproxy's stats socket ("show info", ...); a note for other sidecars.
    std::string haproxy_command(const std::string& command) const;

private:
    friend class TwoPods;
    // `peer_ipv4`: the other pod, where an nginx sidecar sends its outbound connections.
    void start_sidecar(Sidecar kind, const std::string& peer_ipv4);

    NetNs netns_; // first: destroyed last, after the sidecar that lives in it
    std::string ipv4_, ipv6_;
    std::string config_path_, stats_path_, log_path_;
    Process sidecar_;
    std::optional<Nginx> nginx_; // instead of sidecar_ for the nginx kinds
};

// Pod A (10.199.0.1, fd00:199::1) and pod B (10.199.0.2, fd00:199::2). An app in A connecting to B:8080 goes
// app -> sidecar A:15001 (same netns) -> veth -> sidecar B:15006 -> app in B:8080 (same netns).
// Everything is created by the constructor and removed by the destructor; failures are test failures.
class TwoPods {
public:
    explicit TwoPods(Sidecar sidecar = Sidecar::Haproxy);
    TwoPods(const TwoPods&) = delete;
    TwoPods& operator=(const TwoPods&) = delete;

    Pod& a() { return a_; }
    Pod& b() { return b_; }
    Sidecar sidecar() const { return sidecar_; }

private:
    Sidecar sidecar_;
    Pod a_, b_;
};

// One request/response exchange on a connected pair (a = client, b = server in the result): the client sends
// `request_len` bytes of stream `request_seed` and half-closes; the server reads to that EOF, then sends
// `reply_len` bytes of stream `reply_seed` and half-closes; the client reads to EOF.
DuplexResult request_response(int client, int server, std::uint64_t request_seed, std::uint64_t request_len,
                              std::uint64_t reply_seed, std::uint64_t reply_len,
                              const std::vector<std::size_t>& write_sizes = {65536},
                              std::chrono::seconds timeout = std::chrono::seconds(60),
                              std::atomic<std::uint64_t>* progress = nullptr);

} // namespace smdtest
