// deploy/ checked against the binaries it deploys: every flag the systemd unit, its settings file and the
// Kubernetes manifests use exists in `--help`; the DaemonSet has what a node agent needs, matches the unit's
// capability set and probes the port the daemon serves; the image ships every library the binaries link and
// every tool the manifests run; `cmake --install` lays out what docs/install.md says, and
// systemd-analyze accepts the installed unit. No root needed.
#include <sys/wait.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "sockmapd/pinned.hpp"
#include "systemd_unit.hpp"
#include "unit_helpers.hpp"

namespace sockmapd::test {
namespace {

namespace fs = std::filesystem;
using smdtest::UnitFile;

const fs::path kSource = SMD_SOURCE_DIR;
const fs::path kKubernetes = kSource / "deploy/kubernetes";
const fs::path kUnitPath = kSource / "deploy/systemd/sockmapd.service";
const fs::path kSettingsPath = kSource / "deploy/systemd/sockmapd.env";
const fs::path kDockerfile = kSource / "deploy/Dockerfile";

struct CommandResult {
    int exit_code = -1;
    std::string output; // stdout and stderr
};

std::string shell_quote(const std::string& word)
{
    std::string quoted = "'";
    for (char c : word)
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

// Runs argv through the shell, bounded by coreutils timeout(1) so a hang becomes a failure.
CommandResult run(const std::vector<std::string>& argv, const std::string& env_prefix = "", int timeout_s = 120)
{
    std::string command = env_prefix + " timeout " + std::to_string(timeout_s);
    for (const auto& word : argv)
        command += " " + shell_quote(word);
    command += " 2>&1";
    CommandResult result;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) {
        ADD_FAILURE() << "popen " << command;
        return result;
    }
    std::array<char, 4096> buffer;
    while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe))
        result.output.append(buffer.data(), n);
    int status = ::pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    EXPECT_NE(result.exit_code, 124) << "timed out: " << command;
    return result;
}

std::string read_text(const fs::path& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Every "--flag" in `text`.
std::set<std::string> flags_in(const std::string& text)
{
    static const std::regex flag(R"((^|[\s"'=(,])(--[a-z][a-z0-9-]*))");
    std::set<std::string> found;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), flag); it != std::sregex_iterator(); ++it)
        found.insert((*it)[2].str());
    return found;
}

std::set<std::string> help_flags(const std::vector<std::string>& command)
{
    auto argv = command;
    argv.push_back("--help");
    auto result = run(argv);
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return flags_in(result.output);
}

std::vector<fs::path> manifest_files()
{
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(kKubernetes))
        if (entry.path().extension() == ".yaml")
            files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

// Every document of every manifest except kustomization.yaml, by kind.
std::multimap<std::string, YAML::Node> resources()
{
    std::multimap<std::string, YAML::Node> by_kind;
    for (const auto& file : manifest_files()) {
        if (file.filename() == "kustomization.yaml")
            continue;
        for (const auto& doc : YAML::LoadAllFromFile(file.string()))
            by_kind.emplace(doc["kind"].as<std::string>(), doc);
    }
    return by_kind;
}

YAML::Node only(const std::string& kind)
{
    auto all = resources();
    EXPECT_EQ(all.count(kind), 1u) << "expected exactly one " << kind;
    auto it = all.find(kind);
    return it == all.end() ? YAML::Node() : it->second;
}

YAML::Node container_named(const YAML::Node& list, const std::string& name)
{
    for (const auto& c : list)
        if (c["name"].as<std::string>() == name)
            return c;
    ADD_FAILURE() << "no container " << name;
    return YAML::Node();
}

std::vector<std::string> strings(const YAML::Node& list)
{
    std::vector<std::string> out;
    for (const auto& item : list)
        out.push_back(item.as<std::string>());
    return out;
}

std::string join(const std::vector<std::string>& words)
{
    std::string text;
    for (const auto& w : words)
        text += (text.empty() ? "" : " ") + w;
    return text;
}

// The release of `sockmapd --version` ("sockmapd 0.1.0 (git ..., libbpf ...)"): the image tag.
std::string binary_version()
{
    auto result = run({SMD_SOCKMAPD_BIN, "--version"});
    EXPECT_EQ(result.exit_code, 0);
    std::istringstream words(result.output);
    std::string program, version;
    words >> program >> version;
    EXPECT_EQ(program, "sockmapd") << result.output;
    return version;
}

// The runtime (last) stage of the Dockerfile, continuation lines joined.
std::vector<std::string> dockerfile_stage_lines(bool last_stage)
{
    std::istringstream in(read_text(kDockerfile));
    std::vector<std::vector<std::string>> stages;
    std::string pending;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#')
            continue;
        if (!line.empty() && line.back() == '\\') {
            pending += line.substr(0, line.size() - 1) + " ";
            continue;
        }
        line = pending + line;
        pending.clear();
        if (line.rfind("FROM ", 0) == 0)
            stages.emplace_back();
        if (!stages.empty())
            stages.back().push_back(line);
    }
    EXPECT_GE(stages.size(), 2u) << "a multi-stage build";
    if (stages.empty())
        return {};
    return last_stage ? stages.back() : stages.front();
}

// Packages `apt-get install` names in the runtime stage.
std::set<std::string> runtime_packages()
{
    std::set<std::string> packages;
    for (const auto& line : dockerfile_stage_lines(true)) {
        if (line.rfind("RUN ", 0) != 0)
            continue;
        std::istringstream words(line);
        bool installing = false;
        for (std::string word; words >> word;) {
            if (word == "&&" || word == ";")
                installing = false;
            else if (word == "install" )
                installing = true;
            else if (installing && word[0] != '-')
                packages.insert(word);
        }
    }
    return packages;
}

// The Debian package that owns `path` on this (Debian 12) machine, without ":amd64"; "" if none.
std::string owning_package(const std::string& path)
{
    auto result = run({"dpkg-query", "-S", path});
    if (result.exit_code != 0)
        return "";
    // "libbpf1:amd64: /lib/x86_64-linux-gnu/libbpf.so.1" (diversions print other lines first)
    std::istringstream lines(result.output);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("diversion", 0) == 0)
            continue;
        auto name = line.substr(0, line.find(':'));
        return name.substr(0, name.find(','));
    }
    return "";
}

bool have_dpkg() { return run({"dpkg-query", "--version"}).exit_code == 0; }

// ---------------------------------------------------------------------------------------------------------
// Kubernetes manifests

TEST(DeployManifests, EveryYamlParsesAndNamesItsKind)
{
    auto files = manifest_files();
    ASSERT_FALSE(files.empty());
    for (const auto& file : files) {
        SCOPED_TRACE(file.string());
        std::vector<YAML::Node> docs;
        ASSERT_NO_THROW(docs = YAML::LoadAllFromFile(file.string()));
        ASSERT_FALSE(docs.empty());
        for (const auto& doc : docs) {
            ASSERT_TRUE(doc.IsMap());
            EXPECT_TRUE(doc["apiVersion"].IsScalar());
            ASSERT_TRUE(doc["kind"].IsScalar());
            auto kind = doc["kind"].as<std::string>();
            if (kind == "Kustomization")
                continue;
            EXPECT_TRUE(doc["metadata"]["name"].IsScalar());
            EXPECT_EQ(doc["metadata"]["labels"]["app.kubernetes.io/name"].as<std::string>(""), "sockmapd");
            if (kind != "Namespace") {
                EXPECT_EQ(doc["metadata"]["namespace"].as<std::string>(""), "sockmapd-system");
            }
        }
    }
}

TEST(DeployManifests, KustomizationListsEveryManifest)
{
    auto kustomization = YAML::LoadFile((kKubernetes / "kustomization.yaml").string());
    auto listed = strings(kustomization["resources"]);
    std::sort(listed.begin(), listed.end());
    std::vector<std::string> present;
    for (const auto& file : manifest_files())
        if (file.filename() != "kustomization.yaml")
            present.push_back(file.filename().string());
    EXPECT_EQ(listed, present);

    // kubectl's built-in kustomize renders it when kubectl is installed (it is not a dependency).
    if (run({"sh", "-c", "command -v kubectl"}).exit_code != 0) {
        std::printf("[ NOTE ] kubectl not installed: kustomize rendering not checked\n");
        return;
    }
    auto rendered = run({"kubectl", "kustomize", kKubernetes.string()});
    ASSERT_EQ(rendered.exit_code, 0) << rendered.output;
    EXPECT_EQ(YAML::LoadAll(rendered.output).size(), present.size());
}

TEST(DeployManifests, NamespaceAllowsWhatTheDaemonSetNeeds)
{
    auto ns = only("Namespace");
    EXPECT_EQ(ns["metadata"]["name"].as<std::string>(), "sockmapd-system");
    // hostPath volumes, added capabilities and a privileged init container: only the "privileged" level.
    EXPECT_EQ(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as<std::string>(""), "privileged");
}

TEST(DeployManifests, DaemonSetHasWhatANodeAgentNeeds)
{
    auto ds = only("DaemonSet");
    auto spec = ds["spec"];
    auto pod = spec["template"]["spec"];

    // Required by the API: a selector that matches the template's labels, and at least one container.
    ASSERT_TRUE(spec["selector"]["matchLabels"].IsMap());
    for (const auto& label : spec["selector"]["matchLabels"])
        EXPECT_EQ(spec["template"]["metadata"]["labels"][label.first.as<std::string>()].as<std::string>(""),
                  label.second.as<std::string>());
    ASSERT_TRUE(pod["containers"].IsSequence());
    ASSERT_GE(pod["containers"].size(), 1u);

    // Rolling update one node at a time, never two daemons on one node (the pin directory's lock).
    EXPECT_EQ(spec["updateStrategy"]["type"].as<std::string>(""), "RollingUpdate");
    EXPECT_EQ(spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"].as<std::string>(""), "1");
    EXPECT_EQ(spec["updateStrategy"]["rollingUpdate"]["maxSurge"].as<std::string>("0"), "0");

    // Every node: one toleration that matches every taint.
    ASSERT_TRUE(pod["tolerations"].IsSequence());
    bool tolerates_all = false;
    for (const auto& t : pod["tolerations"])
        tolerates_all |= t["operator"].as<std::string>("") == "Exists" && !t["key"] && !t["effect"];
    EXPECT_TRUE(tolerates_all);
    auto grace = pod["terminationGracePeriodSeconds"].as<int>(-1);
    EXPECT_GT(grace, 0);
    EXPECT_LE(grace, 30);

    // The ServiceAccount it names exists.
    EXPECT_EQ(pod["serviceAccountName"].as<std::string>(""), only("ServiceAccount")["metadata"]["name"].as<std::string>());

    // Host paths: bpffs and the cgroup tree.
    std::map<std::string, std::string> host_paths;
    for (const auto& v : pod["volumes"])
        if (v["hostPath"])
            host_paths[v["name"].as<std::string>()] = v["hostPath"]["path"].as<std::string>();
    auto daemon = container_named(pod["containers"], "sockmapd");
    std::map<std::string, std::string> mounted; // host path -> container path
    for (const auto& m : daemon["volumeMounts"]) {
        auto name = m["name"].as<std::string>();
        if (host_paths.count(name))
            mounted[host_paths[name]] = m["mountPath"].as<std::string>();
    }
    EXPECT_EQ(mounted["/sys/fs/bpf"], "/sys/fs/bpf");
    EXPECT_TRUE(mounted.count("/sys/fs/cgroup")) << "the host's cgroup tree must be mounted for --cgroup";

    // Bidirectional propagation is accepted by the API only on privileged containers.
    for (const auto* list : {"initContainers", "containers"})
        for (const auto& c : pod[list])
            for (const auto& m : c["volumeMounts"])
                if (m["mountPropagation"].as<std::string>("") == "Bidirectional") {
                    EXPECT_TRUE(c["securityContext"]["privileged"].as<bool>(false)) << c["name"];
                }

    // The daemon: not privileged, exactly the systemd unit's capability set, everything else dropped.
    auto security = daemon["securityContext"];
    EXPECT_FALSE(security["privileged"].as<bool>(false));
    EXPECT_EQ(strings(security["capabilities"]["drop"]), std::vector<std::string>{"ALL"});
    auto added = strings(security["capabilities"]["add"]);
    std::set<std::string> k8s_caps(added.begin(), added.end());
    std::set<std::string> unit_caps;
    for (const auto& cap : smdtest::split_words(UnitFile::parse(kUnitPath).value("Service", "CapabilityBoundingSet")))
        unit_caps.insert(cap.substr(4));
    EXPECT_EQ(k8s_caps, unit_caps) << "deploy/kubernetes and deploy/systemd should grant the same capabilities";

    // Resources (the probes have a test of their own).
    for (const auto* kind : {"requests", "limits"})
        EXPECT_TRUE(daemon["resources"][kind]["memory"].IsScalar()) << kind;
    EXPECT_TRUE(daemon["resources"]["requests"]["cpu"].IsScalar());
}

TEST(DeployManifests, EveryEnvironmentReferenceResolves)
{
    auto pod = only("DaemonSet")["spec"]["template"]["spec"];
    auto config = only("ConfigMap");
    auto daemon = container_named(pod["containers"], "sockmapd");
    std::set<std::string> defined;
    for (const auto& e : daemon["env"]) {
        defined.insert(e["name"].as<std::string>());
        if (auto ref = e["valueFrom"]["configMapKeyRef"]) {
            EXPECT_EQ(ref["name"].as<std::string>(), config["metadata"]["name"].as<std::string>());
            EXPECT_TRUE(config["data"][ref["key"].as<std::string>()].IsScalar())
                << "ConfigMap has no key " << ref["key"];
        }
    }
    static const std::regex reference(R"(\$\(([A-Za-z_][A-Za-z0-9_]*)\))");
    for (const auto& word : strings(daemon["args"])) {
        for (auto it = std::sregex_iterator(word.begin(), word.end(), reference); it != std::sregex_iterator(); ++it)
            EXPECT_TRUE(defined.count((*it)[1].str())) << "$(" << (*it)[1] << ") is not defined in env";
    }
}

// The flags the deployment files pass must be flags the binaries accept: a renamed flag would otherwise be
// found only when a node fails to start the daemon.
TEST(DeployManifests, EveryFlagUsedExistsInTheBinaries)
{
    auto sockmapd_flags = help_flags({SMD_SOCKMAPD_BIN});
    auto status_flags = help_flags({SMD_SOCKMAPCTL_BIN, "status"});
    ASSERT_TRUE(sockmapd_flags.count("--cgroup")) << "could not read sockmapd --help";
    ASSERT_TRUE(status_flags.count("--json")) << "could not read sockmapctl status --help";

    std::vector<std::pair<std::string, std::string>> sockmapd_uses; // (where, text)

    auto pod = only("DaemonSet")["spec"]["template"]["spec"];
    auto daemon = container_named(pod["containers"], "sockmapd");
    EXPECT_EQ(strings(daemon["command"]), std::vector<std::string>{"/usr/sbin/sockmapd"});
    sockmapd_uses.emplace_back("daemonset.yaml args", join(strings(daemon["args"])));

    auto unit = UnitFile::parse(kUnitPath);
    sockmapd_uses.emplace_back("sockmapd.service ExecStart", unit.value("Service", "ExecStart"));
    // The settings file documents the flags it takes in comments and sets SOCKMAPD_ARGS: check both.
    sockmapd_uses.emplace_back("sockmapd.env", read_text(kSettingsPath));

    for (const auto& [where, text] : sockmapd_uses)
        for (const auto& flag : flags_in(text))
            EXPECT_TRUE(sockmapd_flags.count(flag)) << where << " uses " << flag << ", which sockmapd does not have";
    // docs/install.md tells operators to run these.
    for (const auto& flag : flags_in("sockmapctl status --json --pin-path"))
        EXPECT_TRUE(status_flags.count(flag)) << flag;
}

// No shipped deployment leaves the scope to the default (the whole host): the unit and the DaemonSet pass --cgroup
// explicitly, and when its setting is missing the daemon is handed an empty --cgroup, which it refuses.
TEST(DeployManifests, EveryDeploymentPassesTheCgroupExplicitly)
{
    auto unit = UnitFile::parse(kUnitPath);
    auto exec_start = smdtest::split_words(unit.value("Service", "ExecStart"));
    auto flag = std::find(exec_start.begin(), exec_start.end(), "--cgroup");
    ASSERT_NE(flag, exec_start.end()) << "sockmapd.service must pass --cgroup";
    ASSERT_NE(flag + 1, exec_start.end());
    EXPECT_EQ(*(flag + 1), "${SOCKMAPD_CGROUP}") << "one word even when the variable is empty or unset";

    // As shipped (SOCKMAPD_CGROUP empty) and without the settings file at all, the start is refused: exit 2,
    // one line, nothing touched (the command line is refused before anything else).
    for (const auto& env : {smdtest::parse_environment_file(kSettingsPath), smdtest::EnvMap{}}) {
        auto argv = smdtest::expand_command_line(unit.value("Service", "ExecStart"), env);
        ASSERT_GE(argv.size(), 3u);
        EXPECT_EQ(argv[1], "--cgroup");
        EXPECT_EQ(argv[2], "");
        argv[0] = SMD_SOCKMAPD_BIN;
        auto refused = run(argv);
        EXPECT_EQ(refused.exit_code, 2) << refused.output;
        EXPECT_NE(refused.output.find("sockmapd: --cgroup is empty"), std::string::npos) << refused.output;
        EXPECT_EQ(std::count(refused.output.begin(), refused.output.end(), '\n'), 1) << refused.output;
    }

    auto daemon = container_named(only("DaemonSet")["spec"]["template"]["spec"]["containers"], "sockmapd");
    auto args = strings(daemon["args"]);
    auto cgroup = std::find(args.begin(), args.end(), "--cgroup");
    ASSERT_NE(cgroup, args.end()) << "the DaemonSet must pass --cgroup";
    ASSERT_NE(cgroup + 1, args.end());
    EXPECT_EQ(*(cgroup + 1), "$(SOCKMAPD_CGROUP)");
    std::string key;
    for (const auto& e : daemon["env"])
        if (e["name"].as<std::string>() == "SOCKMAPD_CGROUP")
            key = e["valueFrom"]["configMapKeyRef"]["key"].as<std::string>("");
    ASSERT_FALSE(key.empty());
    auto value = only("ConfigMap")["data"][key].as<std::string>("");
    EXPECT_NE(value.find_first_not_of(" \t"), std::string::npos) << "configmap.yaml's " << key << " is blank";
    EXPECT_NE(value, "/host/sys/fs/cgroup") << "the shipped scope must not be the whole host";
}

// The uninstall DaemonSet (outside the kustomization: applying it uninstalls) runs flags sockmapctl uninstall
// has, on the pin path the daemon uses, and sees the host's processes, which hold the sockets it drains.
TEST(DeployManifests, UninstallDaemonSetMatchesTheDaemonAndTheBinary)
{
    auto file = kKubernetes / "uninstall/uninstall.yaml";
    auto ds = YAML::LoadFile(file.string());
    EXPECT_EQ(ds["kind"].as<std::string>(""), "DaemonSet");
    EXPECT_EQ(ds["metadata"]["namespace"].as<std::string>(""), "sockmapd-system");
    auto pod = ds["spec"]["template"]["spec"];
    EXPECT_TRUE(pod["hostPID"].as<bool>(false)) << "uninstall finds socket owners in the host's /proc";
    auto container = container_named(pod["containers"], "uninstall");
    std::string command = join(strings(container["command"]));
    EXPECT_NE(command.find("/usr/sbin/sockmapctl uninstall "), std::string::npos) << command;

    auto uninstall_flags = help_flags({SMD_SOCKMAPCTL_BIN, "uninstall"});
    ASSERT_TRUE(uninstall_flags.count("--force")) << "could not read sockmapctl uninstall --help";
    for (const auto& flag : flags_in(command))
        EXPECT_TRUE(uninstall_flags.count(flag)) << "uninstall.yaml uses " << flag << ", which uninstall does not have";

    auto daemon_args = strings(container_named(only("DaemonSet")["spec"]["template"]["spec"]["containers"], "sockmapd")["args"]);
    auto pin = std::find(daemon_args.begin(), daemon_args.end(), "--pin-path");
    ASSERT_NE(pin, daemon_args.end());
    ASSERT_NE(pin + 1, daemon_args.end());
    EXPECT_NE(command.find("--pin-path " + *(pin + 1) + " "), std::string::npos) << command;
    auto caps = strings(container["securityContext"]["capabilities"]["add"]);
    for (const char* cap : {"SYS_ADMIN", "SYS_PTRACE", "BPF"})
        EXPECT_NE(std::find(caps.begin(), caps.end(), cap), caps.end()) << cap;
}

// The kubelet and Prometheus connect to the pod IP: the daemon must listen beyond loopback, on the port the
// probes, the containerPort and the scrape annotations name. (DaemonSetAsTheKubeletRunsIt, an integration
// test, sends the probes' requests to a daemon started with these arguments.)
TEST(DeployManifests, ProbesAndScrapeAnnotationsUseTheMetricsAddress)
{
    auto pod_template = only("DaemonSet")["spec"]["template"];
    auto daemon = container_named(pod_template["spec"]["containers"], "sockmapd");
    auto args = strings(daemon["args"]);
    auto flag = std::find(args.begin(), args.end(), "--metrics-address");
    ASSERT_NE(flag, args.end());
    ASSERT_NE(flag + 1, args.end());
    std::string address = *(flag + 1);
    auto colon = address.rfind(':');
    ASSERT_NE(colon, std::string::npos) << address;
    std::string host = address.substr(0, colon);
    int port = std::stoi(address.substr(colon + 1));
    EXPECT_TRUE(host == "0.0.0.0" || host == "[::]") << "the kubelet cannot reach " << host;

    int named_port = 0;
    for (const auto& p : daemon["ports"])
        if (p["name"].as<std::string>("") == "metrics")
            named_port = p["containerPort"].as<int>(0);
    EXPECT_EQ(named_port, port);
    EXPECT_EQ(pod_template["metadata"]["annotations"]["prometheus.io/port"].as<std::string>(""), std::to_string(port));
    EXPECT_EQ(pod_template["metadata"]["annotations"]["prometheus.io/path"].as<std::string>(""), "/metrics");

    EXPECT_EQ(daemon["readinessProbe"]["httpGet"]["path"].as<std::string>(""), "/readyz");
    EXPECT_EQ(daemon["livenessProbe"]["httpGet"]["path"].as<std::string>(""), "/healthz");
    for (const auto* probe : {"readinessProbe", "livenessProbe"}) {
        EXPECT_EQ(daemon[probe]["httpGet"]["port"].as<std::string>(""), "metrics") << probe;
        EXPECT_GT(daemon[probe]["timeoutSeconds"].as<int>(0), 0) << probe;
    }
}

TEST(DeployManifests, ImageTagIsTheBinaryVersion)
{
    auto version = binary_version();
    ASSERT_FALSE(version.empty());
    auto pod = only("DaemonSet")["spec"]["template"]["spec"];
    for (const auto* list : {"initContainers", "containers"})
        for (const auto& c : pod[list])
            EXPECT_EQ(c["image"].as<std::string>(), "sockmapd:" + version) << c["name"];
    auto kustomization = YAML::LoadFile((kKubernetes / "kustomization.yaml").string());
    for (const auto& image : kustomization["images"])
        EXPECT_EQ(image["newTag"].as<std::string>(""), version);
    EXPECT_NE(read_text(kDockerfile).find("-t sockmapd:" + version), std::string::npos)
        << "the build command in the Dockerfile's header names another tag";
}

// ---------------------------------------------------------------------------------------------------------
// systemd unit, statically (tests/integration/systemd_unit_test.cpp runs it)

TEST(SystemdUnitFile, IsTypeNotifyAndReloadsWithSighup)
{
    auto unit = UnitFile::parse(kUnitPath);
    EXPECT_EQ(unit.value("Service", "Type"), "notify");
    // The shell's builtin: /bin/kill (procps) is missing on minimal systems.
    EXPECT_EQ(unit.value("Service", "ExecReload"), "/bin/sh -c 'kill -HUP $MAINPID'");
    EXPECT_EQ(unit.value("Service", "KillSignal"), "") << "sockmapd stops cleanly on SIGTERM, the default";
    EXPECT_EQ(unit.value("Service", "Restart"), "on-failure");
    EXPECT_EQ(unit.value("Service", "EnvironmentFile"), "-/etc/sockmapd/sockmapd.env");
    EXPECT_EQ(unit.value("Unit", "AssertPathIsMountPoint"), "/sys/fs/bpf");
    auto rw = smdtest::split_words(unit.value("Service", "ReadWritePaths"));
    EXPECT_NE(std::find(rw.begin(), rw.end(), "/sys/fs/bpf"), rw.end()) << "the pins must stay writable";
    EXPECT_EQ(unit.value("Install", "WantedBy"), "multi-user.target");
    // Options that would take away what bpf() and the attachment need. ProtectKernelTunables=yes left
    // /sys/fs/bpf read-only despite ReadWritePaths= under systemd 252 (scripts/check-systemd-nspawn.sh), so
    // /proc/sys and /sys are made read-only by ReadOnlyPaths= instead.
    for (const auto* key :
         {"PrivateUsers", "PrivateNetwork", "SystemCallFilter", "User", "DynamicUser", "ProtectKernelTunables"})
        EXPECT_EQ(unit.value("Service", key), "") << key;
    std::string read_only;
    for (const auto& value : unit.all("Service", "ReadOnlyPaths"))
        read_only += " " + value + " ";
    EXPECT_NE(read_only.find(" /proc/sys "), std::string::npos);
    EXPECT_NE(read_only.find(" /sys "), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------
// Container image

TEST(Dockerfile, BuildsWithoutTestsAndShipsNoCompiler)
{
    auto build = dockerfile_stage_lines(false);
    auto runtime = dockerfile_stage_lines(true);
    ASSERT_FALSE(build.empty());
    ASSERT_FALSE(runtime.empty());
    EXPECT_EQ(build.front(), "FROM debian:12 AS build");
    EXPECT_EQ(runtime.front(), "FROM debian:12-slim");
    std::string build_text = join(build);
    EXPECT_NE(build_text.find("scripts/install-deps.sh --build-only"), std::string::npos);
    EXPECT_NE(build_text.find("-DSOCKMAPD_BUILD_TESTS=OFF"), std::string::npos);
    for (const auto& package : runtime_packages()) {
        EXPECT_EQ(package.find("-dev"), std::string::npos) << package;
        for (const auto* tool : {"clang", "llvm", "bpftool", "gcc", "linux-headers"}) {
            bool is_toolchain = package.rfind(tool, 0) == 0;
            EXPECT_FALSE(is_toolchain) << "the runtime stage installs " << package;
        }
    }
    // Both binaries, where the manifests run them; the entrypoint is the DaemonSet's command.
    std::string runtime_text = join(runtime);
    EXPECT_NE(runtime_text.find("COPY --from=build /out/usr/sbin/sockmapd /out/usr/sbin/sockmapctl /usr/sbin/"),
              std::string::npos);
    EXPECT_EQ(runtime.back(), "ENTRYPOINT [\"/usr/sbin/sockmapd\"]");
}

// ldd-resolved NEEDED libraries of both binaries, mapped to their Debian packages on this Debian 12 machine,
// must all be installed by the runtime stage (libc6 is in every image). Libraries those libraries need come
// with their packages' dependencies.
TEST(Dockerfile, RuntimeStageShipsEveryLibraryTheBinariesLink)
{
    if (!have_dpkg())
        GTEST_SKIP() << "not a Debian system: package names cannot be checked here";
    auto packages = runtime_packages();
    ASSERT_FALSE(packages.empty());
    for (const auto* binary : {SMD_SOCKMAPD_BIN, SMD_SOCKMAPCTL_BIN}) {
        SCOPED_TRACE(binary);
        auto needed = run({"objdump", "-p", binary});
        ASSERT_EQ(needed.exit_code, 0) << needed.output;
        auto resolved = run({"ldd", binary});
        ASSERT_EQ(resolved.exit_code, 0) << resolved.output;
        std::istringstream lines(needed.output);
        int libraries = 0;
        for (std::string line; std::getline(lines, line);) {
            std::istringstream words(line);
            std::string tag, soname;
            words >> tag >> soname;
            if (tag != "NEEDED")
                continue;
            ++libraries;
            static const std::regex path_of(R"(=>\s+(\S+))");
            auto at = resolved.output.find(soname + " =>");
            ASSERT_NE(at, std::string::npos) << soname << " not resolved by ldd";
            std::smatch m;
            std::string rest = resolved.output.substr(at, resolved.output.find('\n', at) - at);
            ASSERT_TRUE(std::regex_search(rest, m, path_of)) << rest;
            auto package = owning_package(fs::canonical(m[1].str()).string());
            if (package.empty())
                package = owning_package(m[1].str());
            ASSERT_FALSE(package.empty()) << "no package owns " << m[1];
            if (package == "libc6")
                continue;
            EXPECT_TRUE(packages.count(package)) << binary << " needs " << soname << " from " << package
                                                 << ", which the runtime stage does not install";
        }
        EXPECT_GE(libraries, 3) << "objdump found too few NEEDED entries to be credible";
    }
}

TEST(Dockerfile, RuntimeStageHasTheToolsTheManifestsRun)
{
    if (!have_dpkg())
        GTEST_SKIP() << "not a Debian system: package names cannot be checked here";
    auto packages = runtime_packages();
    // Whichever of these the manifests' commands and exec probes run (today: the init container's sh,
    // mountpoint and mount).
    auto pod = only("DaemonSet")["spec"]["template"]["spec"];
    std::string commands;
    for (const auto* list : {"initContainers", "containers"})
        for (const auto& c : pod[list]) {
            commands += join(strings(c["command"])) + "\n";
            for (const auto* probe : {"readinessProbe", "livenessProbe"})
                if (c[probe] && c[probe]["exec"])
                    commands += join(strings(c[probe]["exec"]["command"])) + "\n";
        }
    for (const auto* tool : {"sh", "grep", "mountpoint", "mount"}) {
        if (!std::regex_search(commands, std::regex(std::string(R"((^|[\s/|]))") + tool + R"(\s)")))
            continue;
        std::string package;
        for (const auto* dir : {"/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/"})
            if (package.empty())
                package = owning_package(std::string(dir) + tool);
        if (std::string(tool) == "sh")
            package = "dash"; // /bin/sh is a diversion-managed link to dash on Debian
        EXPECT_TRUE(packages.count(package)) << "the manifests run " << tool << " from " << package
                                             << ", which the runtime stage does not install";
    }
}

// ---------------------------------------------------------------------------------------------------------
// cmake --install

class Install : public TempDirTest {
protected:
    CommandResult install(const std::string& prefix, const std::string& destdir = "")
    {
        std::string env = destdir.empty() ? "" : "DESTDIR=" + shell_quote(destdir);
        auto result = run({SMD_CMAKE_COMMAND, "--install", SMD_BINARY_DIR, "--prefix", prefix}, env);
        EXPECT_EQ(result.exit_code, 0) << result.output;
        return result;
    }
};

TEST_F(Install, LaysOutBinariesUnitSettingsAndDocs)
{
    auto root = (dir_ / "root").string();
    install("/usr", root);
    std::set<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(root))
        if (entry.is_regular_file())
            files.insert(entry.path().string().substr(root.size()));
    for (const auto* expected :
         {"/usr/sbin/sockmapd", "/usr/sbin/sockmapctl", "/usr/lib/systemd/system/sockmapd.service",
          "/etc/sockmapd/sockmapd.env", "/usr/share/doc/sockmapd/install.md", "/usr/share/doc/sockmapd/README.md",
          "/usr/share/doc/sockmapd/examples/sockmapd.env", "/usr/share/doc/sockmapd/examples/kubernetes/daemonset.yaml",
          "/usr/share/doc/sockmapd/examples/Dockerfile", "/usr/share/doc/sockmapd/policy.md",
          "/usr/share/doc/sockmapd/operations.md", "/usr/share/doc/sockmapd/metrics.md",
          "/usr/share/doc/sockmapd/examples/policies/istio.yaml"})
        EXPECT_TRUE(files.count(expected)) << expected << " not installed; installed:\n" << join(std::vector<std::string>(files.begin(), files.end()));

    // With the /usr prefix the unit's paths are the ones in deploy/systemd, unchanged.
    EXPECT_EQ(read_text(root + "/usr/lib/systemd/system/sockmapd.service"), read_text(kUnitPath));
    auto sbin = fs::status(root + "/usr/sbin/sockmapd").permissions();
    EXPECT_NE(sbin & fs::perms::owner_exec, fs::perms::none);

    // An upgrade keeps the operator's settings.
    std::ofstream(root + "/etc/sockmapd/sockmapd.env") << "SOCKMAPD_ARGS=--cgroup /sys/fs/cgroup/mine\n";
    auto again = install("/usr", root);
    EXPECT_NE(again.output.find("Keeping:"), std::string::npos) << again.output;
    EXPECT_EQ(read_text(root + "/etc/sockmapd/sockmapd.env"), "SOCKMAPD_ARGS=--cgroup /sys/fs/cgroup/mine\n");
}

// Another prefix moves every path the unit names, and systemd-analyze then checks the unit as installed
// (it needs ExecStart's binary to exist, which a prefix of our own provides).
TEST_F(Install, SystemdAnalyzeVerifiesTheInstalledUnit)
{
    auto prefix = (dir_ / "usr").string();
    install(prefix);
    auto unit_path = prefix + "/lib/systemd/system/sockmapd.service";
    auto unit = UnitFile::parse(unit_path);
    EXPECT_EQ(smdtest::split_words(unit.value("Service", "ExecStart")).front(), prefix + "/sbin/sockmapd");
    EXPECT_EQ(unit.value("Service", "EnvironmentFile"), "-" + prefix + "/etc/sockmapd/sockmapd.env");
    EXPECT_TRUE(fs::exists(prefix + "/etc/sockmapd/sockmapd.env"));

    if (run({"sh", "-c", "command -v systemd-analyze"}).exit_code != 0)
        GTEST_SKIP() << "systemd-analyze not installed (scripts/install-deps.sh installs the systemd package)";
    auto verify = run({"systemd-analyze", "verify", unit_path});
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
    // Unknown keys and bad values are only warnings: any output is a finding.
    EXPECT_EQ(verify.output, "") << "systemd-analyze verify complained";
}

// `make package`: the .deb holds exactly what `cmake --install --prefix /usr` installs, with the unit unchanged,
// keeps the settings file as a conffile, and depends only on packages the container image installs too.
TEST_F(Install, DebianPackageMatchesTheInstallLayout)
{
    if (!have_dpkg())
        GTEST_SKIP() << "not a Debian system: no dpkg-deb";
    // cpack first builds every target (its "preinstall" step), which inside a unit test run after a partial
    // build would be a full build. ctest runs this test a second time as Install.DebianPackage, with
    // SMD_CHECK_PACKAGE=1, where the whole tree is built (tests/packaging/CMakeLists.txt).
    if (!std::getenv("SMD_CHECK_PACKAGE"))
        GTEST_SKIP() << "set SMD_CHECK_PACKAGE=1 after building all targets (ctest does: Install.DebianPackage)";
    auto out = (dir_ / "package").string();
    auto packed = run({SMD_CPACK_COMMAND, "-G", "DEB", "--config", std::string(SMD_BINARY_DIR) + "/CPackConfig.cmake",
                       "-B", out},
                      "", 600);
    ASSERT_EQ(packed.exit_code, 0) << packed.output;
    std::string deb;
    for (const auto& entry : fs::directory_iterator(out))
        if (entry.path().extension() == ".deb")
            deb = entry.path().string();
    ASSERT_FALSE(deb.empty()) << packed.output;

    auto root = (dir_ / "root").string();
    install("/usr", root);
    std::set<std::string> installed;
    for (const auto& entry : fs::recursive_directory_iterator(root))
        if (entry.is_regular_file())
            installed.insert(entry.path().string().substr(root.size()));
    auto listing = run({"dpkg-deb", "--contents", deb});
    ASSERT_EQ(listing.exit_code, 0) << listing.output;
    std::set<std::string> packaged;
    std::istringstream lines(listing.output);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line[0] == '-') // regular files: "-rw-r--r-- root/root 123 date time ./path"
            packaged.insert(line.substr(line.find("./") + 1));
    EXPECT_EQ(packaged, installed);

    auto extracted = (dir_ / "extracted").string();
    ASSERT_EQ(run({"dpkg-deb", "-x", deb, extracted}).exit_code, 0);
    EXPECT_EQ(read_text(extracted + "/usr/lib/systemd/system/sockmapd.service"), read_text(kUnitPath));
    auto conffiles = run({"dpkg-deb", "--info", deb, "conffiles"});
    EXPECT_EQ(conffiles.output, "/etc/sockmapd/sockmapd.env\n");

    auto depends = run({"dpkg-deb", "--field", deb, "Depends"});
    ASSERT_EQ(depends.exit_code, 0) << depends.output;
    auto image = runtime_packages();
    std::string provided; // virtual package names the image's packages provide, e.g. libspdlog1.10-fmt9
    for (const auto& package : image)
        provided += " " + run({"dpkg-query", "-W", "-f=${Provides}", package}).output + ",";
    static const std::regex name(R"((?:^|,)\s*([a-z0-9][a-z0-9.+-]*))");
    int count = 0;
    for (auto it = std::sregex_iterator(depends.output.begin(), depends.output.end(), name);
         it != std::sregex_iterator(); ++it) {
        auto package = (*it)[1].str();
        ++count;
        if (package == "libc6")
            continue;
        bool in_image = image.count(package) || provided.find(" " + package) != std::string::npos;
        EXPECT_TRUE(in_image) << "the package depends on " << package << ", which the image does not install";
    }
    EXPECT_GE(count, 3) << depends.output;
}

} // namespace
} // namespace sockmapd::test
