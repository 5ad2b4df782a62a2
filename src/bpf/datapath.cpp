// Loads the BPF skeleton with maps pinned (and reused) under the pin path, and attaches its programs.
#include "sockmapd/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>

#include "sockmapd/error.hpp"
#include "sockmapd/hints.hpp"
#include "sockmapd/kernel_object.hpp"
#include "sockmapd/skeleton.hpp"
#include "smd.skel.h"

namespace sockmapd {
namespace {

using SmdSkeleton = Skeleton<struct smd, &smd__open_opts, &smd__load, &smd__destroy>;

struct LinkDeleter {
    void operator()(struct bpf_link* link) const { bpf_link__destroy(link); }
};
using Link = std::unique_ptr<struct bpf_link, LinkDeleter>;

// The data path pins every map but the internal ones: .rodata knobs belong to one load, not to the pinned state.
bool pinned(const struct bpf_map* map)
{
    return !bpf_map__is_internal(map);
}

bool path_exists(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

struct bpf_map_info pinned_map_info(const std::string& path)
{
    Fd fd = open_pin(path);
    if (!fd)
        throw_errno(errno, "open pinned map " + path);
    return map_info(fd.get(), "pinned map " + path);
}

// A pinned map libbpf could not reuse fails the load with a screen of warnings; say which one and why first.
void check_reusable(const struct bpf_map* map, const struct bpf_map_info& pinned, const std::string& path)
{
    if (pinned.type == bpf_map__type(map) && pinned.key_size == bpf_map__key_size(map) &&
        pinned.value_size == bpf_map__value_size(map))
        return;
    throw Error("pinned map " + path + " does not match this sockmapd (type " + std::to_string(pinned.type) +
                ", key " + std::to_string(pinned.key_size) + " B, value " + std::to_string(pinned.value_size) +
                " B; expected type " + std::to_string(bpf_map__type(map)) + ", key " +
                std::to_string(bpf_map__key_size(map)) + " B, value " + std::to_string(bpf_map__value_size(map)) +
                " B); remove it or pass another --pin-path");
}

// smd_hints holds nothing that outlives a handshake, so a pinned one of another size, or the LRU of sockmapd
// before hint aging, is replaced rather than reused: --max-hints applies at the next start. Returns whether
// the pin was removed. Anything else under that name is not ours to remove, and check_reusable refuses it.
bool replace_pinned_hints(const struct bpf_map* map, const struct bpf_map_info& pinned, const std::string& path,
                          std::uint32_t max_hints)
{
    bool earlier_lru = pinned.type == BPF_MAP_TYPE_LRU_HASH && pinned.key_size == sizeof(struct smd_hint_key) &&
                       pinned.value_size == sizeof(std::uint64_t);
    bool resized = pinned.type == bpf_map__type(map) && pinned.key_size == bpf_map__key_size(map) &&
                   pinned.value_size == bpf_map__value_size(map) && pinned.max_entries != max_hints;
    if (!earlier_lru && !resized)
        return false;
    if (::unlink(path.c_str()) != 0)
        throw_errno(errno, "remove pinned " + path + " to replace it");
    spdlog::info("replacing pinned smd_hints ({}, {} entries) with a hash of {} entries; hints of handshakes in "
                 "flight are lost",
                 earlier_lru ? "LRU of an earlier sockmapd" : "another size", pinned.max_entries, max_hints);
    return true;
}

void check_pinned_abi(const std::string& info_path)
{
    if (!path_exists(info_path))
        return;
    Fd fd = open_pin(info_path);
    if (!fd)
        throw_errno(errno, "open pinned map " + info_path);
    struct smd_info info {};
    std::uint32_t zero = 0;
    int err = bpf_map_lookup_elem(fd.get(), &zero, &info);
    if (err == 0 && info.abi != 0 && info.abi != SMD_ABI_VERSION)
        throw Error("maps pinned at " + std::filesystem::path(info_path).parent_path().string() +
                    " are from an incompatible sockmapd (ABI " + std::to_string(info.abi) + ", this is " +
                    std::to_string(SMD_ABI_VERSION) + "); uninstall that version first or pass another --pin-path");
}

} // namespace

std::vector<std::string> pinned_map_names()
{
    SmdSkeleton skel;
    std::vector<std::string> names;
    struct bpf_map* map;
    bpf_object__for_each_map(map, skel->obj)
    {
        if (pinned(map))
            names.push_back(bpf_map__name(map));
    }
    return names;
}

std::vector<HelperCall> helpers_called()
{
    SmdSkeleton skel;
    std::vector<HelperCall> calls;
    std::set<std::pair<std::uint32_t, std::int32_t>> seen;
    struct bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj)
    {
        auto type = static_cast<std::uint32_t>(bpf_program__type(prog));
        const struct bpf_insn* insns = bpf_program__insns(prog);
        for (std::size_t i = 0; i < bpf_program__insn_cnt(prog); ++i) {
            const auto& insn = insns[i];
            bool helper_call = insn.code == (BPF_JMP | BPF_CALL) && insn.src_reg == 0; // not a subprogram or kfunc
            if (helper_call && seen.insert({type, insn.imm}).second)
                calls.push_back({type, insn.imm});
        }
    }
    return calls;
}

struct Datapath::Impl {
    SmdSkeleton skel;
    std::string pin_path;
    std::vector<struct bpf_map*> created_pins; // pinned by this process: unpinned again if start-up fails
    bool committed = false;
    Link sockops_link;
    Link release_link;
    std::vector<struct smd_pair_key> inherited; // see remember_inherited_pairs

    ~Impl()
    {
        sockops_link.reset();
        release_link.reset();
        if (committed)
            return;
        for (auto* map : created_pins)
            bpf_map__unpin(map, nullptr);
    }
};

Datapath::Datapath(const DatapathOptions& options) : impl_(std::make_unique<Impl>())
{
    auto& skel = impl_->skel;
    impl_->pin_path = options.pin_path;
    check_pinned_abi(options.pin_path + "/smd_info");

    std::vector<struct bpf_map*> fresh;
    std::size_t reused = 0;
    struct bpf_map* map;
    bpf_object__for_each_map(map, skel->obj)
    {
        if (!pinned(map))
            continue;
        std::string path = options.pin_path + "/" + bpf_map__name(map);
        if (int err = bpf_map__set_pin_path(map, path.c_str()))
            throw_errno(-err, "set pin path " + path);
        bool sized = map == skel->maps.smd_sockhash || map == skel->maps.smd_pairs;
        bool hints = map == skel->maps.smd_hints;
        if (hints)
            bpf_map__set_max_entries(map, options.max_hints);
        if (path_exists(path) && hints && replace_pinned_hints(map, pinned_map_info(path), path, options.max_hints)) {
            fresh.push_back(map);
        } else if (path_exists(path)) {
            auto pinned_info = pinned_map_info(path);
            check_reusable(map, pinned_info, path);
            if (sized) {
                std::uint32_t pinned = pinned_info.max_entries;
                if (pinned != options.max_sockets)
                    spdlog::warn("reusing pinned {} with {} entries; --max-sockets {} applies after uninstall",
                                 bpf_map__name(map), pinned, options.max_sockets);
                bpf_map__set_max_entries(map, pinned);
            }
            ++reused;
        } else {
            if (sized)
                bpf_map__set_max_entries(map, options.max_sockets);
            fresh.push_back(map);
        }
    }

    // The queued-bytes iterator is loaded on its own by whoever measures (queues.cpp), sockmapctl too.
    bpf_program__set_autoload(skel->progs.smd_queued, false);
    skel.load();
    spdlog::info("loaded BPF programs; maps pinned at {} ({} created, {} reused)", options.pin_path, fresh.size(),
                 reused);
    impl_->created_pins = std::move(fresh);
}

Datapath::~Datapath() = default;

void Datapath::attach_sk_msg()
{
    auto& skel = impl_->skel;
    int err = bpf_prog_attach(bpf_program__fd(skel->progs.smd_sk_msg), bpf_map__fd(skel->maps.smd_sockhash),
                              BPF_SK_MSG_VERDICT, 0);
    if (err)
        throw_errno(errno, "attach sk_msg program to smd_sockhash");
    spdlog::info("attached sk_msg program smd_sk_msg to map smd_sockhash");
}

void Datapath::attach_sockops(int cgroup_fd, const std::string& cgroup_path)
{
    struct bpf_link* link = bpf_program__attach_cgroup(impl_->skel->progs.smd_sockops, cgroup_fd);
    if (!link)
        throw_errno(errno, "attach sock_ops to " + cgroup_path);
    impl_->sockops_link.reset(link);
    spdlog::info("attached sock_ops program smd_sockops to cgroup {}", cgroup_path);
}

namespace {

bool end_in_sockhash(int sockhash, const struct smd_pair_key& pair, std::uint32_t role)
{
    std::uint64_t cookie = 0;
    struct smd_sock_key key {.pair = pair, .role = role, .pad = 0};
    return bpf_map_lookup_elem(sockhash, &key, &cookie) == 0;
}

bool pair_is_stale(int sockhash, const struct smd_pair_key& pair)
{
    return !end_in_sockhash(sockhash, pair, SMD_ROLE_ACTIVE) && !end_in_sockhash(sockhash, pair, SMD_ROLE_PASSIVE);
}

std::vector<struct smd_pair_key> all_pairs(int pairs)
{
    std::vector<struct smd_pair_key> keys;
    struct smd_pair_key key {}, next {};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(pairs, prev, &next) == 0) {
        keys.push_back(next);
        key = next;
        prev = &key;
    }
    return keys;
}

} // namespace

std::size_t Datapath::collect_stale_pairs()
{
    int pairs = bpf_map__fd(impl_->skel->maps.smd_pairs);
    int sockhash = bpf_map__fd(impl_->skel->maps.smd_sockhash);
    std::size_t removed = 0;
    for (const auto& k : all_pairs(pairs))
        if (pair_is_stale(sockhash, k))
            removed += bpf_map_delete_elem(pairs, &k) == 0;
    if (removed)
        spdlog::info("removed {} pair entries whose sockets closed while no daemon ran", removed);
    return removed;
}

std::size_t Datapath::expire_hints(std::chrono::nanoseconds max_age)
{
    return delete_old_hints(bpf_map__fd(impl_->skel->maps.smd_hints), max_age);
}

void Datapath::remember_inherited_pairs()
{
    impl_->inherited = all_pairs(bpf_map__fd(impl_->skel->maps.smd_pairs));
}

std::size_t Datapath::collect_inherited_pairs()
{
    int pairs = bpf_map__fd(impl_->skel->maps.smd_pairs);
    int sockhash = bpf_map__fd(impl_->skel->maps.smd_sockhash);
    auto& watched = impl_->inherited;
    std::size_t removed = 0;
    std::erase_if(watched, [&](const struct smd_pair_key& k) {
        struct smd_pair_state state {};
        if (bpf_map_lookup_elem(pairs, &k, &state) != 0)
            return true; // its sockets' close was seen by sock_ops, which removed it
        if (!pair_is_stale(sockhash, k))
            return false;
        removed += bpf_map_delete_elem(pairs, &k) == 0;
        return true;
    });
    if (removed)
        spdlog::debug("removed {} pair entries of connections that closed across the restart", removed);
    return watched.size();
}

std::size_t Datapath::leave_pairs_closed_unseen()
{
    int pairs = bpf_map__fd(impl_->skel->maps.smd_pairs);
    int sockhash = bpf_map__fd(impl_->skel->maps.smd_sockhash);
    std::size_t marked = 0;
    for (const auto& k : impl_->inherited) {
        struct smd_pair_state state {};
        if (bpf_map_lookup_elem(pairs, &k, &state) != 0)
            continue;
        for (std::uint32_t gone : {SMD_ROLE_ACTIVE, SMD_ROLE_PASSIVE}) {
            std::uint32_t other = gone ^ 1;
            if (!smd_pair_end_in_sockhash(state.flags, gone) || end_in_sockhash(sockhash, k, gone) ||
                !smd_pair_end_in_sockhash(state.flags, other) || !end_in_sockhash(sockhash, k, other))
                continue;
            // Replaces the value, so a flag a program sets on it meanwhile can be lost. Only the other end's
            // programs still run on this pair: its sk_msg (leaving, which this sets too; its own pin, which the
            // release sets again; a receive-buffer raise for the gone end, moot) and its close (the entry is
            // then collected as stale). The gone end counts as closed, so nothing reads its socket any more.
            state.flags |= SMD_PAIR_CLOSED(gone) | SMD_PAIR_RESET(gone) | SMD_PAIR_LEAVING;
            marked += bpf_map_update_elem(pairs, &k, &state, BPF_EXIST) == 0;
        }
    }
    if (marked)
        spdlog::info("{} connections lost an end while no daemon ran: their other end probes for a reset it may "
                     "have missed, and leaves the redirect",
                     marked);
    return marked;
}

void Datapath::resume_redirects(std::uint64_t max_queued_bytes, std::uint64_t rmem_max, std::uint64_t wmem_max,
                                bool raise_receive_buffers)
{
    std::uint32_t zero = 0;
    struct smd_control control {};
    control.flags = raise_receive_buffers ? SMD_CONTROL_RAISE_RCVBUF : 0;
    control.max_queued_bytes = max_queued_bytes;
    control.rmem_max = rmem_max;
    control.wmem_max = wmem_max;
    if (bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.smd_control), &zero, &control, BPF_ANY) != 0)
        throw_errno(errno, "write smd_control (drain flag off, queue caps)");
}

void Datapath::attach_release_iterator()
{
    struct bpf_link* link = bpf_program__attach_iter(impl_->skel->progs.smd_release, nullptr);
    if (!link)
        throw_errno(errno, "create the iter/tcp link of smd_release");
    impl_->release_link.reset(link);
}

int Datapath::release_iterator_fd() const
{
    return bpf_link__fd(impl_->release_link.get());
}

int Datapath::pairs_fd() const
{
    return bpf_map__fd(impl_->skel->maps.smd_pairs);
}

int Datapath::events_fd() const
{
    return bpf_map__fd(impl_->skel->maps.smd_events);
}

void Datapath::publish_info(const struct smd_info& info)
{
    std::uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.smd_info), &zero, &info, BPF_ANY) != 0)
        throw_errno(errno, "write smd_info");
}

void Datapath::commit_pins()
{
    impl_->committed = true;
}

PolicyMapFds Datapath::policy_maps() const
{
    const auto& maps = impl_->skel->maps;
    return {.ctl = bpf_map__fd(maps.smd_pol_ctl),
            .slots = bpf_map__fd(maps.smd_pol_slots),
            .ports = bpf_map__fd(maps.smd_pol_ports),
            .uids = bpf_map__fd(maps.smd_pol_uids),
            .cgroups = bpf_map__fd(maps.smd_pol_cgroups),
            .cidrs = bpf_map__fd(maps.smd_pol_cidrs),
            .rules = bpf_map__fd(maps.smd_pol_rules),
            .hits = bpf_map__fd(maps.smd_pol_hits)};
}

} // namespace sockmapd
