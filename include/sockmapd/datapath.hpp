// The loaded data path: BPF programs and pinned maps, the sk_msg attachment and the sock_ops link.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sockmapd/policy_maps.hpp"
#include "sockmapd/shared.h"

struct smd;
struct bpf_link;

namespace sockmapd {

struct DatapathOptions {
    std::string pin_path;
    std::uint32_t max_sockets = SMD_DEFAULT_MAX_SOCKETS;
    std::uint32_t max_hints = SMD_DEFAULT_MAX_HINTS;
};

// File names of the pinned maps under the pin path: every map of the BPF object but its .rodata/.bss, named as
// in bpf/maps.bpf.h. Read from the skeleton, opened but not loaded (no privileges needed).
std::vector<std::string> pinned_map_names();

// A BPF helper that a program of the BPF object calls, with that program's type (enum bpf_prog_type and
// enum bpf_func_id values). Read from the programs' instructions, so the doctor probes what the data path uses.
struct HelperCall {
    std::uint32_t program_type = 0;
    std::int32_t helper = 0;
};
std::vector<HelperCall> helpers_called();

class Datapath {
public:
    // Loads the programs; maps are reused from pin_path when pinned there, else created and pinned.
    explicit Datapath(const DatapathOptions& options);
    ~Datapath();
    Datapath(const Datapath&) = delete;
    Datapath& operator=(const Datapath&) = delete;

    // Attaches sk_msg to the sockhash. Deliberately map-owned: it stays while the pinned map lives, so
    // connections already paired keep working while no daemon runs (see docs/design.md).
    void attach_sk_msg();

    // Attaches sock_ops to the cgroup through a link this object owns: new connections are paired
    // only while the daemon runs.
    void attach_sockops(int cgroup_fd, const std::string& cgroup_path);

    // Deletes smd_pairs entries none of whose sockets is still in the sockhash: they outlived their
    // sockets while no sock_ops program ran to see the close (no daemon). Returns how many.
    std::size_t collect_stale_pairs();

    // Deletes SYN hints older than max_age: their handshakes never completed (no passive end deleted them).
    // Returns how many.
    std::size_t expire_hints(std::chrono::nanoseconds max_age);

    // The pairs found at start-up may have seen their sockets' close while no daemon ran, and then lose those
    // sockets silently later: remember them (before sock_ops attaches) and check just them, often, until they
    // are all gone. Returns how many are still watched.
    void remember_inherited_pairs();
    std::size_t collect_inherited_pairs();

    // Of the pairs remembered above, those with one end that closed while no daemon ran (out of the sockhash, its
    // flags still in) and the other still in: that close may have been a reset dropped at the other end's socket
    // backlog, which nothing sends again. Marks them as sock_ops marks a reset it saw (docs/design.md, "A reset the
    // reader missed"), so that the release iterator has the other end probe for it and leave. Call once sock_ops
    // is attached: a close after that is seen. Returns how many.
    std::size_t leave_pairs_closed_unseen();

    // Clears the drain flag an interrupted `sockmapctl uninstall` may have left set, and sets what bounds a
    // receiver's unread redirected bytes: its queue cap is sized against what TCP holds (wmem_max) and grows up
    // to rmem_max like a TCP receive buffer, never past max_queued_bytes (0: no bound beyond the TCP-like one);
    // and whether a receiver's buffer is raised as its queue grows (design.md, "Room in the backlog").
    void resume_redirects(std::uint64_t max_queued_bytes, std::uint64_t rmem_max, std::uint64_t wmem_max,
                          bool raise_receive_buffers);

    // Creates the link of the release iterator (release.bpf.c); owned, so it ends with this object.
    void attach_release_iterator();
    int release_iterator_fd() const;
    int pairs_fd() const;
    int events_fd() const;

    void publish_info(const struct smd_info& info);

    // Keeps the pins: called once the daemon is up, so a later failure no longer removes them.
    void commit_pins();

    PolicyMapFds policy_maps() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace sockmapd
