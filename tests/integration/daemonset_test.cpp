// deploy/kubernetes/daemonset.yaml's daemon container as the kubelet would run it, short of a container
// runtime: its command and args with every $(VAR) resolved from configmap.yaml (only --cgroup and --pin-path
// moved to this test's own), its capabilities (drop ALL, add the listed ones) and allowPrivilegeEscalation:
// false, in a network namespace of its own like a pod. From another namespace, the way the kubelet and
// Prometheus reach the pod IP, the readiness probe must turn 200 once sock_ops is attached, the liveness probe
// and the scrape path must answer, connections inside the pod must be redirected, and SIGTERM must end it
// within terminationGracePeriodSeconds with the maps left pinned.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <thread>

#include "bpf_inventory.hpp"
#include "deployed.hpp"
#include "fixture.hpp"
#include "sockmapd/error.hpp"

namespace smdtest {
namespace {

namespace fs = std::filesystem;

const std::string kKubernetes = std::string(SMD_SOURCE_DIR) + "/deploy/kubernetes";
// The pod's address on its veth, and the node side's: both inside namespaces this test creates.
const std::string kPodIp = "10.198.0.1";
const std::string kNodeIp = "10.198.0.2";
constexpr std::uint64_t kBulk = 4ull << 20;

struct HttpResponse {
    int status = 0;     // 0: no response
    std::string body;
    std::string error;  // why there is no response
};

// One HTTP/1.1 GET with Connection: close, bounded by `timeout`, from the namespace `from`.
HttpResponse http_get(const NetNs& from, const std::string& ip, std::uint16_t port, const std::string& path,
                      std::chrono::milliseconds timeout)
{
    HttpResponse response;
    Fd fd;
    try {
        InNetns in(from);
        fd = tcp_connect(ip, port, timeout);
    } catch (const std::exception& e) {
        response.error = e.what();
        return response;
    }
    if (!fd) {
        response.error = "connect failed";
        return response;
    }
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + ip + "\r\nConnection: close\r\n\r\n";
    if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        response.error = "send: " + sockmapd::errno_name(errno);
        return response;
    }
    std::string raw;
    auto deadline = Clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        struct pollfd p {fd.get(), POLLIN, 0};
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
            response.error = "timed out reading the response";
            return response;
        }
        char buffer[4096];
        ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            response.error = "recv: " + sockmapd::errno_name(errno);
            return response;
        }
        raw.append(buffer, static_cast<std::size_t>(n));
    }
    std::smatch m;
    if (!std::regex_search(raw, m, std::regex(R"(^HTTP/1\.[01] (\d{3}))"))) {
        response.error = "not an HTTP response: " + raw.substr(0, 80);
        return response;
    }
    response.status = std::stoi(m[1].str());
    auto body = raw.find("\r\n\r\n");
    response.body = body == std::string::npos ? "" : raw.substr(body + 4);
    return response;
}

YAML::Node container_named(const YAML::Node& list, const std::string& name)
{
    for (const auto& c : list)
        if (c["name"].as<std::string>() == name)
            return c;
    ADD_FAILURE() << "no container " << name << " in daemonset.yaml";
    return YAML::Node();
}

std::vector<std::string> strings(const YAML::Node& list)
{
    std::vector<std::string> out;
    for (const auto& item : list)
        out.push_back(item.as<std::string>());
    return out;
}

class DaemonSet : public IntegrationTest {
protected:
    void SetUp() override
    {
        IntegrationTest::SetUp();
        if (HasFatalFailure() || IsSkipped())
            return;
        daemonset_ = YAML::LoadFile(kKubernetes + "/daemonset.yaml");
        configmap_ = YAML::LoadFile(kKubernetes + "/configmap.yaml");
        pod_spec_ = daemonset_["spec"]["template"]["spec"];
        container_ = container_named(pod_spec_["containers"], "sockmapd");
        pin_path_ = "/sys/fs/bpf/" + unique_name("smd-ds");
        log_path_ = "/tmp/" + unique_name("smd-ds") + "-sockmapd.log";
        // The pod and the node it runs on, joined by a veth, as the kubelet sees a pod without hostNetwork.
        pod_ns_.emplace("smd-pod");
        node_ns_.emplace("smd-node");
        must_run({"ip", "link", "add", "eth0", "netns", pod_ns_->name(), "type", "veth", "peer", "name", "eth0",
                  "netns", node_ns_->name()});
        pod_ns_->ip({"addr", "add", kPodIp + "/24", "dev", "eth0"});
        node_ns_->ip({"addr", "add", kNodeIp + "/24", "dev", "eth0"});
        pod_ns_->ip({"link", "set", "eth0", "up"});
        node_ns_->ip({"link", "set", "eth0", "up"});
    }

    void TearDown() override
    {
        daemon_process_.kill_and_reap();
        pod_ns_.reset(); // removes the veth with it
        node_ns_.reset();
        std::error_code ec;
        fs::remove_all(pin_path_, ec);
        if (HasFailure())
            std::fprintf(stderr, "sockmapd log kept at %s\n", log_path_.c_str());
        else
            fs::remove(log_path_, ec);
        IntegrationTest::TearDown();
    }

    // The container's command line: $(VAR) from its env (ConfigMap keys), --cgroup and --pin-path replaced
    // after checking they point into the host mounts the pod declares.
    std::vector<std::string> command_line()
    {
        std::map<std::string, std::string> env;
        for (const auto& e : container_["env"]) {
            auto name = e["name"].as<std::string>();
            if (e["value"])
                env[name] = e["value"].as<std::string>();
            else if (auto ref = e["valueFrom"]["configMapKeyRef"])
                env[name] = configmap_["data"][ref["key"].as<std::string>()].as<std::string>();
        }
        std::map<std::string, std::string> mount_of; // volume name -> mount path in the container
        for (const auto& m : container_["volumeMounts"])
            mount_of[m["name"].as<std::string>()] = m["mountPath"].as<std::string>();
        std::map<std::string, std::string> host_mount; // host path -> mount path in the container
        for (const auto& v : pod_spec_["volumes"])
            if (v["hostPath"])
                host_mount[v["hostPath"]["path"].as<std::string>()] = mount_of[v["name"].as<std::string>()];

        std::vector<std::string> argv = strings(container_["command"]);
        for (auto arg : strings(container_["args"])) {
            static const std::regex reference(R"(\$\(([A-Za-z_][A-Za-z0-9_]*)\))");
            std::smatch m;
            while (std::regex_search(arg, m, reference)) {
                EXPECT_TRUE(env.count(m[1].str())) << "$(" << m[1] << ") undefined";
                arg.replace(m.position(0), m.length(0), env[m[1].str()]);
            }
            argv.push_back(arg);
        }
        EXPECT_EQ(argv.front(), "/usr/sbin/sockmapd");
        argv.front() = sockmapd_bin();
        auto replace_value = [&](const std::string& flag, const std::string& must_be_under, const std::string& ours) {
            auto it = std::find(argv.begin(), argv.end(), flag);
            if (it == argv.end() || it + 1 == argv.end()) {
                ADD_FAILURE() << flag << " missing from the container's args";
                return;
            }
            EXPECT_EQ((it + 1)->rfind(must_be_under + "/", 0), 0u)
                << flag << " " << *(it + 1) << " is not below the host mount " << must_be_under;
            *(it + 1) = ours;
        };
        replace_value("--cgroup", host_mount["/sys/fs/cgroup"], cgroup_path());
        replace_value("--pin-path", host_mount["/sys/fs/bpf"], pin_path_);
        if (std::count(argv.begin(), argv.end(), "--cgroup") != 1) {
            ADD_FAILURE() << "refusing to start: the container's args would not attach only to the test cgroup";
            return {};
        }

        // The container's privileges: the bounding set keeps only what securityContext adds.
        auto security = container_["securityContext"];
        EXPECT_EQ(strings(security["capabilities"]["drop"]), std::vector<std::string>{"ALL"});
        auto wrapped = restricted_privileges(strings(security["capabilities"]["add"]),
                                             !security["allowPrivilegeEscalation"].as<bool>(true));
        wrapped.insert(wrapped.end(), argv.begin(), argv.end());
        return wrapped;
    }

    std::uint16_t metrics_port()
    {
        for (const auto& p : container_["ports"])
            if (p["name"].as<std::string>("") == container_["readinessProbe"]["httpGet"]["port"].as<std::string>(""))
                return static_cast<std::uint16_t>(p["containerPort"].as<int>());
        ADD_FAILURE() << "the readiness probe's port is not a named containerPort";
        return 0;
    }

    YAML::Node daemonset_, configmap_, pod_spec_, container_;
    std::string pin_path_, log_path_;
    std::optional<NetNs> pod_ns_, node_ns_;
    Process daemon_process_;
};

TEST_F(DaemonSet, ContainerAsTheKubeletRunsItBecomesReadyAcceleratesAndStops)
{
    ASSERT_NE(find_program("setpriv"), "") << "setpriv (util-linux) is needed to apply the capability set";
    auto argv = command_line();
    ASSERT_FALSE(argv.empty());
    const std::uint16_t port = metrics_port();
    ASSERT_NE(port, 0);
    const auto readiness = container_["readinessProbe"]["httpGet"]["path"].as<std::string>();
    const auto liveness = container_["livenessProbe"]["httpGet"]["path"].as<std::string>();
    const auto scrape = daemonset_["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"].as<std::string>();
    EXPECT_EQ(daemonset_["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"].as<std::string>(),
              std::to_string(port));

    daemon_process_ = Process(argv, {.netns = pod_ns_->name(), .uid = std::nullopt, .output_file = log_path_});

    // The kubelet probes the pod IP every periodSeconds; here every 100 ms until the start-up deadline.
    HttpResponse ready;
    auto deadline = Clock::now() + std::chrono::seconds(15);
    while (Clock::now() < deadline && daemon_process_.running()) {
        ready = http_get(*node_ns_, kPodIp, port, readiness, std::chrono::seconds(2));
        if (ready.status == 200)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(ready.status, 200) << readiness << " never answered 200 from the node side (last: " << ready.status
                                 << " " << ready.body << ready.error << ")\n"
                                 << read_file(log_path_);

    // Ready means new connections are paired from now on.
    auto attached = cgroup_programs(cgroup_path());
    EXPECT_TRUE(std::any_of(attached.begin(), attached.end(),
                            [](const std::string& p) { return p.rfind("smd_sockops ", 0) == 0; }))
        << readiness << " was 200 before smd_sockops was attached";
    EXPECT_EQ(effective_capabilities(daemon_process_.pid()) & kCapSysAdmin, 0u) << "the daemon ran with CAP_SYS_ADMIN";

    auto alive = http_get(*node_ns_, kPodIp, port, liveness, std::chrono::seconds(2));
    EXPECT_EQ(alive.status, 200) << liveness << ": " << alive.body << alive.error;
    auto metrics = http_get(*node_ns_, kPodIp, port, scrape, std::chrono::seconds(5));
    EXPECT_EQ(metrics.status, 200) << scrape << ": " << metrics.error;
    EXPECT_NE(metrics.body.find("sockmapd_"), std::string::npos) << "no sockmapd metrics at " << scrape;

    // App and sidecar inside the pod: their connection is redirected, both directions intact.
    {
        auto before = ctl_status(pin_path_)["counters"].value("redirected_bytes", 0ull);
        Fd client, server;
        {
            InNetns in(*pod_ns_);
            Fd listener = tcp_listen("127.0.0.1");
            client = tcp_connect("127.0.0.1", local_port(listener.get()));
            server = tcp_accept(listener.get());
        }
        auto r = duplex_transfer(client.get(), server.get(), 81, kBulk, 82, kBulk, {65536, 1000});
        expect_intact(r, 81, kBulk, 82, kBulk);
        // The manifest's default queue caps: 4 threads on 2 cores may make the connection leave the redirect
        // once a writer runs ahead (design.md, "Queue caps"); then it was counted, and the rest went over TCP.
        auto counters = ctl_status(pin_path_)["counters"];
        auto redirected = counters.value("redirected_bytes", 0ull) - before;
        EXPECT_GT(redirected, 0u) << "nothing went through the redirect";
        EXPECT_LE(redirected, 2 * kBulk);
        if (redirected < 2 * kBulk) {
            EXPECT_GE(counters.value("left_backpressure", 0ull), 1u) << "bytes went over TCP without a reason";
        }
    }

    // Pod deletion: SIGTERM, then SIGKILL after terminationGracePeriodSeconds.
    auto grace = std::chrono::seconds(pod_spec_["terminationGracePeriodSeconds"].as<int>(30));
    daemon_process_.signal(SIGTERM);
    auto code = daemon_process_.wait(grace);
    ASSERT_TRUE(code) << "sockmapd still running " << grace.count() << " s after SIGTERM: the kubelet would kill it";
    EXPECT_EQ(*code, 0) << read_file(log_path_);
    EXPECT_FALSE(directory_entries(pin_path_).empty()) << "the maps must stay pinned when the pod goes";
}

} // namespace
} // namespace smdtest
