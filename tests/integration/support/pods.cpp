// Two-pod mesh topology: veth, addresses, Istio-style iptables REDIRECT and a sidecar per pod, all owned here.
#include "pods.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "env.hpp"

namespace smdtest {
namespace {

std::string read_text(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string cgroup_of(const std::string& pid)
{
    std::ifstream in("/proc/" + pid + "/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0)
            return line.substr(3);
    return "";
}

// The capture rules and the haproxy config live in scripts/mesh-pod.sh, shared with bench/run.sh.
void install_redirect_rules(const NetNs& ns)
{
    must_run({SMD_MESH_POD_SCRIPT, "redirect", ns.name(), std::to_string(kSidecarUid),
              std::to_string(kSidecarOutboundPort), std::to_string(kSidecarInboundPort)});
}

std::string haproxy_config()
{
    std::string config;
    int code = run_command({SMD_MESH_POD_SCRIPT, "haproxy-config", std::to_string(kSidecarOutboundPort),
                            std::to_string(kSidecarInboundPort)},
                           &config);
    EXPECT_EQ(code, 0) << SMD_MESH_POD_SCRIPT << " haproxy-config failed: " << config;
    return config;
}

bool is_haproxy(Sidecar kind)
{
    return kind == Sidecar::Haproxy || kind == Sidecar::HaproxySpliceAuto || kind == Sidecar::HaproxySplice;
}

// The shared config, with splicing switched on for the splicing kinds.
std::string haproxy_config(Sidecar kind)
{
    std::string config = haproxy_config();
    if (kind == Sidecar::Haproxy)
        return config;
    if (auto at = config.find("    nosplice\n"); at != std::string::npos)
        config.erase(at, std::string("    nosplice\n").size());
    std::string options = kind == Sidecar::HaproxySpliceAuto ? "    option splice-auto\n"
                                                             : "    option splice-request\n    option splice-response\n";
    if (auto at = config.find("defaults\n"); at != std::string::npos)
        config.insert(at + 9, options);
    return config;
}

// One line per session in access.log, "conn client=..." as the haproxy sidecars log it (at the end, not at once).
std::string nginx_sidecar_config(Sidecar kind, const std::string& peer_ipv4)
{
    auto out = std::to_string(kSidecarOutboundPort), in = std::to_string(kSidecarInboundPort);
    std::string upstream_out = peer_ipv4 + ":8080", upstream_in = "127.0.0.1:8080";
    if (kind == Sidecar::NginxStream)
        return nginx_main_context(true) +
               "stream {\n"
               "    log_format conn 'conn client=$remote_addr:$remote_port local=$server_addr:$server_port "
               "upstream=$upstream_addr sent=$bytes_sent received=$bytes_received status=$status "
               "time=$session_time';\n"
               "    access_log access.log conn;\n"
               "    server { listen 0.0.0.0:" + out + "; proxy_pass " + upstream_out + "; }\n"
               "    server { listen 0.0.0.0:" + in + "; proxy_pass " + upstream_in + "; }\n"
               "}\n";
    // Default buffering both ways; only the body size limit (1 MB by default) is lifted, for the uploads.
    return nginx_main_context(false) +
           "http {\n"
           "    log_format conn 'conn client=$remote_addr:$remote_port local=$server_addr:$server_port "
           "upstream=$upstream_addr request=\"$request\" status=$status upstream_status=$upstream_status "
           "sent=$bytes_sent received=$request_length time=$request_time';\n"
           "    access_log access.log conn;\n"
           "    client_max_body_size 0;\n" +
           nginx_http_temp_paths() +
           "    server { listen 0.0.0.0:" + out + "; location / { proxy_pass http://" + upstream_out + "; } }\n"
           "    server { listen 0.0.0.0:" + in + "; location / { proxy_pass http://" + upstream_in + "; } }\n"
           "}\n";
}

} // namespace

std::string sidecar_name(Sidecar sidecar)
{
    switch (sidecar) {
    case Sidecar::Haproxy: return "haproxy";
    case Sidecar::OrigDstProxy: return "origdst_proxy";
    case Sidecar::HaproxySpliceAuto: return "haproxy_splice_auto";
    case Sidecar::HaproxySplice: return "haproxy_splice";
    case Sidecar::NginxStream: return "nginx_stream";
    case Sidecar::NginxProxyPass: return "nginx_proxy_pass";
    }
    return "unknown";
}

Pod::Pod(const std::string& name_prefix, std::string ipv4, std::string ipv6)
    : netns_(name_prefix),
      ipv4_(std::move(ipv4)),
      ipv6_(std::move(ipv6)),
      log_path_("/tmp/" + netns_.name() + "-sidecar.log")
{
}

Pod::~Pod()
{
    sidecar_.kill_and_reap();
    if (!config_path_.empty())
        std::filesystem::remove(config_path_);
    if (!stats_path_.empty())
        std::filesystem::remove(stats_path_);
    if (!::testing::Test::HasFailure())
        std::filesystem::remove(log_path_);
    else if (std::filesystem::exists(log_path_))
        std::fprintf(stderr, "sidecar log of %s kept at %s\n", netns_.name().c_str(), log_path_.c_str());
}

void Pod::start_sidecar(Sidecar kind, const std::string& peer_ipv4)
{
    if (kind == Sidecar::NginxStream || kind == Sidecar::NginxProxyPass) {
        nginx_.emplace(netns_, nginx_sidecar_config(kind, peer_ipv4),
                       std::vector<std::string>{"0.0.0.0:" + std::to_string(kSidecarOutboundPort),
                                                "0.0.0.0:" + std::to_string(kSidecarInboundPort)},
                       kSidecarUid);
        return;
    }
    std::vector<std::string> argv;
    if (is_haproxy(kind)) {
        config_path_ = "/tmp/" + netns_.name() + "-haproxy.cfg";
        // The tests' own addition: a stats socket, to dump haproxy's view of its streams when one hangs.
        stats_path_ = "/tmp/" + netns_.name() + "-haproxy.sock";
        std::string config = haproxy_config(kind);
        if (auto global = config.find("global\n"); global != std::string::npos)
            config.insert(global + 7, "    stats socket " + stats_path_ + " mode 600 level admin\n");
        std::ofstream(config_path_) << config;
        std::filesystem::permissions(config_path_, std::filesystem::perms::owner_read |
                                                       std::filesystem::perms::owner_write |
                                                       std::filesystem::perms::group_read |
                                                       std::filesystem::perms::others_read);
        argv = {"haproxy", "-db", "-f", config_path_};
    } else {
        auto out = std::to_string(kSidecarOutboundPort), in = std::to_string(kSidecarInboundPort);
        argv = {SMD_ORIGDST_PROXY_BIN, "0.0.0.0:" + out, "0.0.0.0:" + in, "[::]:" + out, "[::]:" + in};
    }
    // Forked by the test process, so in the test's cgroup: its sockets are in the daemon's scope.
    sidecar_ = Process(argv, {.netns = netns_.name(), .uid = kSidecarUid, .output_file = log_path_});

    std::vector<std::string> wanted{"0.0.0.0:" + std::to_string(kSidecarOutboundPort),
                                    "0.0.0.0:" + std::to_string(kSidecarInboundPort)};
    if (kind == Sidecar::OrigDstProxy) {
        wanted.push_back("[::]:" + std::to_string(kSidecarOutboundPort));
        wanted.push_back("[::]:" + std::to_string(kSidecarInboundPort));
    }
    // Listening is checked over netlink (ss): a probe connection would itself go through the mesh.
    if (auto problem = wait_until_listening(netns_, wanted, sidecar_); !problem.empty()) {
        ADD_FAILURE() << "sidecar " << argv[0] << " in " << netns_.name() << ": " << problem << "\n" << sidecar_log();
        return;
    }
    EXPECT_EQ(cgroup_of(std::to_string(sidecar_.pid())), cgroup_of("self"))
        << "the sidecar must share the test's cgroup, or its sockets are out of scope";
}

Fd Pod::listen(const std::string& addr, std::uint16_t port) const
{
    InNetns in(netns_);
    return tcp_listen(addr, port);
}

Fd Pod::connect(const std::string& addr, std::uint16_t port) const
{
    InNetns in(netns_);
    return tcp_connect(addr, port);
}

std::string Pod::sidecar_log() const { return nginx_ ? nginx_->log() : read_text(log_path_); }

std::string Pod::haproxy_command(const std::string& command) const
{
    if (stats_path_.empty())
        return "(this sidecar has no stats socket)\n";
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", stats_path_.c_str());
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
        return "(cannot connect to " + stats_path_ + ": " + std::strerror(errno) + ")\n";
    std::string line = command + "\n", out;
    timeval two_seconds{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof(two_seconds));
    if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
        return "(cannot send to " + stats_path_ + ": " + std::strerror(errno) + ")\n";
    char buf[16384];
    ssize_t n;
    while (out.size() < (8u << 20) && (n = ::recv(fd.get(), buf, sizeof(buf), 0)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    return out;
}

std::vector<std::string> Pod::sidecar_connections(std::size_t count, std::chrono::milliseconds timeout) const
{
    auto deadline = Clock::now() + timeout;
    for (;;) {
        std::vector<std::string> lines;
        std::istringstream log(sidecar_log());
        for (std::string line; std::getline(log, line);)
            if (line.rfind("conn ", 0) == 0)
                lines.push_back(line);
        if (lines.size() >= count || Clock::now() >= deadline)
            return lines;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

TwoPods::TwoPods(Sidecar sidecar)
    : sidecar_(sidecar), a_("smd-poda", "10.199.0.1", "fd00:199::1"), b_("smd-podb", "10.199.0.2", "fd00:199::2")
{
    // Created straight inside the two namespaces: nothing ever appears in the host's.
    must_run({"ip", "link", "add", "eth0", "netns", a_.netns().name(), "type", "veth", "peer", "name", "eth0",
              "netns", b_.netns().name()});
    for (Pod* pod : {&a_, &b_}) {
        pod->netns().ip({"addr", "add", pod->ipv4() + "/24", "dev", "eth0"});
        pod->netns().ip({"addr", "add", pod->ipv6() + "/64", "dev", "eth0", "nodad"});
        pod->netns().ip({"link", "set", "eth0", "up"});
        install_redirect_rules(pod->netns());
        if (::testing::Test::HasFatalFailure())
            return;
        pod->start_sidecar(sidecar, (pod == &a_ ? b_ : a_).ipv4());
    }
}

DuplexResult request_response(int client, int server, std::uint64_t request_seed, std::uint64_t request_len,
                              std::uint64_t reply_seed, std::uint64_t reply_len,
                              const std::vector<std::size_t>& write_sizes, std::chrono::seconds timeout,
                              std::atomic<std::uint64_t>* progress)
{
    DuplexResult r;
    auto deadline = Clock::now() + timeout;
    std::thread server_side([&] {
        r.b_received = recv_stream(server, request_len, true, deadline, 1 << 16, progress);
        if (!r.b_received.error.empty()) {
            ::shutdown(server, SHUT_RDWR); // the client must not wait out its deadline for a reply
            return;
        }
        r.b_sent = send_stream(server, reply_seed, reply_len, write_sizes, deadline, progress);
        ::shutdown(server, SHUT_WR);
    });
    r.a_sent = send_stream(client, request_seed, request_len, write_sizes, deadline, progress);
    ::shutdown(client, SHUT_WR);
    r.a_received = recv_stream(client, reply_len, true, deadline, 1 << 16, progress);
    server_side.join();
    return r;
}

} // namespace smdtest
