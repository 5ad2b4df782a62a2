// sockmapctl uninstall. A socket that leaves its last sockhash has its psock dropped, and with it whatever
// redirected data its reader has not read yet. So: stop all redirects (the drain flag in smd_control), wait
// until each socket's redirect queue is empty, take it out of the sockhash, and only then unpin the maps.
#include "sockmapd/uninstall.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <thread>
#include <vector>

#include "sockmapd/error.hpp"
#include "sockmapd/human_units.hpp"
#include "sockmapd/fd.hpp"
#include "sockmapd/instance_lock.hpp"
#include "sockmapd/kernel_object.hpp"
#include "sockmapd/pinned.hpp"
#include "sockmapd/shared.h"

namespace sockmapd {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// Long enough for a sendmsg that read the flag just before it was set to finish its redirect.
constexpr std::chrono::milliseconds kGrace{500};
constexpr std::chrono::milliseconds kPoll{100};
// Map and program memory is freed by the kernel asynchronously after the last reference goes.
constexpr std::chrono::seconds kReleaseTimeout{5};

// A process holding a socket, by one of its descriptors.
struct SocketOwner {
    pid_t pid = 0;
    int fd = -1;
    std::string comm;
};

std::string comm_of(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

// A descriptor of our own for another process's socket (pidfd_getfd needs ptrace rights over it: root).
Fd borrow_socket(const SocketOwner& owner)
{
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, owner.pid, 0)));
    if (!pidfd)
        return Fd();
    return Fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), owner.fd, 0)));
}

std::optional<std::uint64_t> socket_cookie(int fd)
{
    std::uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0)
        return std::nullopt;
    return cookie;
}

// Finds the processes that hold the sockets in the sockhash: user space has no other way to reach a socket.
// A socket's cookie never changes, so each socket inode is looked at once per uninstall.
class SocketOwners {
public:
    std::map<std::uint64_t, SocketOwner> find(const std::set<std::uint64_t>& cookies)
    {
        std::map<std::uint64_t, SocketOwner> found;
        std::error_code ec;
        for (const auto& proc : fs::directory_iterator("/proc", ec)) {
            std::string name = proc.path().filename().string();
            if (name.find_first_not_of("0123456789") != std::string::npos)
                continue;
            pid_t pid = std::stoi(name);
            std::error_code fd_ec;
            for (const auto& entry : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
                char target[64] = {};
                ssize_t n = ::readlink(entry.path().c_str(), target, sizeof(target) - 1);
                if (n <= 0 || std::strncmp(target, "socket:[", 8) != 0)
                    continue;
                std::string inode(target, n);
                SocketOwner owner{pid, std::atoi(entry.path().filename().c_str()), ""};
                auto known = cookie_by_inode_.find(inode);
                if (known == cookie_by_inode_.end()) {
                    Fd borrowed = borrow_socket(owner);
                    auto cookie = borrowed ? socket_cookie(borrowed.get()) : std::nullopt;
                    if (!cookie)
                        continue; // the process or the descriptor went away meanwhile
                    known = cookie_by_inode_.emplace(inode, *cookie).first;
                }
                if (cookies.count(known->second) && !found.count(known->second)) {
                    owner.comm = comm_of(pid);
                    found.emplace(known->second, owner);
                }
            }
        }
        return found;
    }

private:
    std::map<std::string, std::uint64_t> cookie_by_inode_;
};

struct SockhashEntry {
    struct smd_sock_key key;
    std::uint64_t cookie = 0;
};

std::vector<SockhashEntry> sockhash_entries(int sockhash)
{
    std::vector<SockhashEntry> entries;
    struct smd_sock_key key {}, next {};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(sockhash, prev, &next) == 0) {
        SockhashEntry entry{next, 0};
        if (bpf_map_lookup_elem(sockhash, &next, &entry.cookie) == 0) // the sockhash's value is the socket cookie
            entries.push_back(entry);
        key = next;
        prev = &key;
    }
    return entries;
}

// A socket still holding (or possibly holding) unread redirected data.
struct Pending {
    std::uint64_t cookie = 0;
    std::optional<SocketOwner> owner;
    int queued = -1; // bytes, -1 unknown
};

std::string describe(const Pending& p, const struct smd_sock_key& key)
{
    std::string text = "socket cookie " + std::to_string(p.cookie) + ", client port " +
                       std::to_string(key.pair.active_port) +
                       (key.role == SMD_ROLE_ACTIVE ? ", client end" : ", server end");
    if (p.owner)
        text += ", held by pid " + std::to_string(p.owner->pid) + " (" + p.owner->comm + ") fd " +
                std::to_string(p.owner->fd);
    else
        text += ", no process found holding it";
    text += p.queued >= 0 ? ": " + format_bytes(static_cast<std::uint64_t>(p.queued)) + " unread"
                          : ": unread bytes unknown";
    return text;
}

// What the drain did so far: the sockets it took out of the sockhash (their pair flags still say they are in), and
// how many of them it had probe for a reset first.
struct Drained {
    std::set<std::string> taken;
    std::size_t removed = 0;
    std::size_t probed = 0;
};

std::string key_bytes(const struct smd_sock_key& key)
{
    return std::string(reinterpret_cast<const char*>(&key), sizeof(key));
}

// Whether this socket's peer closed while no daemon ran to see it (out of the sockhash, its flags still in), or with
// a reset that no release iterator has had this socket probe for yet: a reset dropped at this socket's backlog would
// never come again once the socket is plain TCP (docs/design.md, "A reset the reader missed").
bool peer_may_have_reset(int sockhash, int pairs, const struct smd_sock_key& key, const Drained& drained)
{
    struct smd_sock_key peer = key;
    peer.role ^= 1;
    std::uint64_t cookie = 0;
    struct smd_pair_state state {};
    if (pairs < 0 || bpf_map_lookup_elem(sockhash, &peer, &cookie) == 0 || drained.taken.count(key_bytes(peer)) ||
        bpf_map_lookup_elem(pairs, &key.pair, &state) != 0)
        return false;
    return (state.flags & SMD_PAIR_RESET(peer.role & 1)) || smd_pair_end_in_sockhash(state.flags, peer.role);
}

// The probe the release iterator would have set (release.bpf.c, probe_reset_peer()): its peer's stack answers it
// with the reset, or the peer's own socket with an ACK if it closed normally.
void probe_for_a_reset(int fd)
{
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &one, sizeof(one));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &one, sizeof(one));
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

// Takes every socket whose redirect queue is empty out of the sockhash; returns the others.
std::vector<std::pair<Pending, struct smd_sock_key>> remove_drained(int sockhash, int pairs, SocketOwners& owners,
                                                                    Drained& drained)
{
    auto entries = sockhash_entries(sockhash);
    std::set<std::uint64_t> cookies;
    for (const auto& e : entries)
        cookies.insert(e.cookie);
    auto found = owners.find(cookies);
    std::vector<std::pair<Pending, struct smd_sock_key>> pending;
    for (const auto& e : entries) {
        Pending p{e.cookie, std::nullopt, -1};
        auto it = found.find(e.cookie);
        if (it != found.end()) {
            p.owner = it->second;
            Fd sock = borrow_socket(it->second);
            int queued = 0;
            // On a socket in a sockhash, SIOCINQ counts the psock's redirect queue (tcp_bpf_ioctl); data
            // that came over TCP stays in the TCP receive queue, which survives the psock.
            if (sock && socket_cookie(sock.get()) == e.cookie && ::ioctl(sock.get(), SIOCINQ, &queued) == 0) {
                p.queued = queued;
                if (queued == 0) {
                    if (peer_may_have_reset(sockhash, pairs, e.key, drained)) {
                        probe_for_a_reset(sock.get());
                        ++drained.probed;
                    }
                    if (bpf_map_delete_elem(sockhash, &e.key) == 0) {
                        ++drained.removed;
                        drained.taken.insert(key_bytes(e.key));
                    }
                    continue;
                }
            }
        }
        pending.emplace_back(p, e.key);
    }
    return pending;
}

struct ObjectIds {
    std::set<std::uint32_t> maps;
    std::set<std::uint32_t> programs;
};

bool map_exists(std::uint32_t id)
{
    Fd fd(bpf_map_get_fd_by_id(id));
    return static_cast<bool>(fd);
}

bool program_exists(std::uint32_t id)
{
    Fd fd(bpf_prog_get_fd_by_id(id));
    return static_cast<bool>(fd);
}

std::uint32_t map_id(int fd)
{
    return map_info(fd, "pinned map").id;
}

void set_drain(int control_fd)
{
    std::uint32_t zero = 0;
    struct smd_control control {};
    if (bpf_map_lookup_elem(control_fd, &zero, &control) != 0)
        throw_errno(errno, "read smd_control");
    control.flags |= SMD_CONTROL_DRAIN;
    if (bpf_map_update_elem(control_fd, &zero, &control, BPF_ANY) != 0)
        throw_errno(errno, "set the drain flag in smd_control");
}

// The instance lock tells whether a daemon runs on the pin path; held until uninstall ends, so none starts.
InstanceLock lock_out_daemon(const std::string& pin_path)
{
    try {
        return InstanceLock(pin_path);
    } catch (const Error&) {
        throw Error("sockmapd is running on pin path " + pin_path +
                    "; stop it first (systemctl stop sockmapd, or delete the DaemonSet), then run uninstall again");
    }
}

} // namespace

int uninstall(const UninstallOptions& options, std::ostream& out, std::ostream& err)
{
    const std::string& pin_path = options.pin_path;
    struct stat st {};
    if (::stat(pin_path.c_str(), &st) != 0 && errno == ENOENT) {
        out << "uninstall: nothing is pinned at " << pin_path << "; nothing to do\n";
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        throw Error(pin_path + " is not a directory; pass the --pin-path sockmapd runs with");
    auto lock = lock_out_daemon(pin_path);

    // Everything under the pin path, by ID, so that the end can prove each object is gone.
    ObjectIds ids;
    std::map<std::string, Fd> pins;
    for (const auto& entry : fs::directory_iterator(pin_path)) {
        std::string name = entry.path().filename().string();
        Fd fd = open_pin(entry.path());
        if (!fd)
            throw Error(entry.path().string() + " is not a pinned BPF object; is " + pin_path +
                        " a sockmapd pin path? Nothing was changed");
        ids.maps.insert(map_id(fd.get()));
        pins.emplace(name, std::move(fd));
    }
    if (!pins.count("smd_sockhash"))
        throw Error(pin_path + " has no smd_sockhash; is it a sockmapd pin path? Nothing was changed");
    int sockhash = pins.at("smd_sockhash").get();
    std::uint32_t sockhash_id = map_id(sockhash);
    std::vector<ProgramInfo> sockhash_programs;
    for (auto id : ids.maps)
        for (const auto& prog : programs_using(id)) {
            ids.programs.insert(prog.id);
            if (id == sockhash_id)
                sockhash_programs.push_back(prog);
        }

    // 1. No redirect from here on: each direction moves to TCP on its next send.
    auto control = pins.find("smd_control");
    if (control != pins.end()) {
        set_drain(control->second.get());
        out << "uninstall: redirects stopped; waiting for " << count_of(sockhash_entries(sockhash).size(), "socket")
            << " to empty their redirect queues\n";
        std::this_thread::sleep_for(kGrace);
    } else if (!options.force) {
        throw Error("the maps at " + pin_path + " come from a sockmapd without the drain switch (smd_control), so "
                    "redirects cannot be stopped safely; stop the applications' connections first, or pass --force "
                    "to drop their unread redirected data. Nothing was changed");
    } else {
        out << "uninstall: --force: no drain switch at " << pin_path
            << "; unread redirected data will be dropped\n";
    }

    // 2. Every socket leaves the sockhash once its reader has read all redirected data.
    SocketOwners owners;
    Drained drained;
    auto pair_pin = pins.find("smd_pairs");
    int pairs = pair_pin != pins.end() ? pair_pin->second.get() : -1;
    auto deadline = Clock::now() + options.timeout;
    auto pending = remove_drained(sockhash, pairs, owners, drained);
    while (!pending.empty() && Clock::now() < deadline) {
        std::this_thread::sleep_for(kPoll);
        pending = remove_drained(sockhash, pairs, owners, drained);
    }
    if (drained.probed)
        out << "uninstall: " << count_of(drained.probed, "socket") << " whose peer closed while no daemon ran "
            << (drained.probed == 1 ? "probes" : "probe") << " for a reset it may have missed (TCP keepalive)\n";
    if (!pending.empty()) {
        auto seconds = std::chrono::duration_cast<std::chrono::seconds>(options.timeout).count();
        if (!options.force) {
            err << "sockmapctl: " << count_of(pending.size(), "socket") << " still "
                << (pending.size() == 1 ? "holds" : "hold") << " unread redirected data after " << seconds << " s:\n";
            for (const auto& [p, key] : pending)
                err << "  " << describe(p, key) << "\n";
            err << "sockmapctl: nothing was unpinned; redirects stay off. Let those readers read (or close), then run "
                   "uninstall again, or pass --force to drop that data\n";
            return 1;
        }
        out << "uninstall: --force: dropping the unread redirected data of " << count_of(pending.size(), "socket")
            << ":\n";
        for (const auto& [p, key] : pending)
            out << "  " << describe(p, key) << "\n";
        // Explicitly: a socket left in the sockhash keeps the unpinned map alive (its psock holds the sk_msg
        // program, which holds the map) until it closes.
        for (const auto& [p, key] : pending)
            bpf_map_delete_elem(sockhash, &key);
    } else {
        out << "uninstall: " << count_of(drained.removed, "socket") << " left smd_sockhash with empty redirect queues\n";
    }

    // 3. Detach, unpin, and let the kernel free what nothing holds any more.
    for (const auto& prog : sockhash_programs) {
        if (prog.type != "sk_msg")
            continue;
        Fd prog_fd(bpf_prog_get_fd_by_id(prog.id));
        if (prog_fd && bpf_prog_detach2(prog_fd.get(), sockhash, BPF_SK_MSG_VERDICT) == 0)
            out << "uninstall: detached " << prog.name << " (id " << prog.id << ") from smd_sockhash\n";
    }
    pins.clear();
    for (const auto& entry : fs::directory_iterator(pin_path))
        if (::unlink(entry.path().c_str()) != 0)
            throw_errno(errno, "unpin " + entry.path().string());
    if (::rmdir(pin_path.c_str()) != 0)
        throw_errno(errno, "remove " + pin_path);

    std::vector<std::string> left;
    auto release_deadline = Clock::now() + kReleaseTimeout;
    do {
        left.clear();
        for (auto id : ids.maps)
            if (map_exists(id))
                left.push_back("map " + std::to_string(id));
        for (auto id : ids.programs)
            if (program_exists(id))
                left.push_back("program " + std::to_string(id));
        if (!left.empty())
            std::this_thread::sleep_for(kPoll);
    } while (!left.empty() && Clock::now() < release_deadline);
    if (!left.empty()) {
        err << "sockmapctl: unpinned " << pin_path << ", but another process still holds";
        for (const auto& what : left)
            err << " " << what;
        err << " (see 'bpftool map show' / 'bpftool prog show' with pids); they go when it closes them\n";
        return 1;
    }
    out << "uninstall: removed " << pin_path << "; " << count_of(ids.maps.size(), "map") << " and "
        << count_of(ids.programs.size(), "program") << " released, no sockmapd BPF object left\n";
    return 0;
}

} // namespace sockmapd
