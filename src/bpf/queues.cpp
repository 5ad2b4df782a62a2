// Loads the smd_queued iterator alone and runs it in the namespaces of the sockets in the sockhash.
#include "sockmapd/queues.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "sockmapd/error.hpp"
#include "sockmapd/netns_scan.hpp"
#include "sockmapd/pinned_map.hpp"
#include "sockmapd/shared.h"
#include "sockmapd/skeleton.hpp"
#include "smd.skel.h"

namespace sockmapd {
namespace {

using SmdSkeleton = Skeleton<struct smd, &smd__open_opts, &smd__load, &smd__destroy>;

struct LinkDeleter {
    void operator()(struct bpf_link* link) const { bpf_link__destroy(link); }
};

// One pass of the iterator in the calling thread's namespace, its records added to `queued`; an error text or "".
std::string add_records(int link_fd, QueuedBytes& queued)
{
    Fd it(bpf_iter_create(link_fd));
    if (!it)
        return "run the smd_queued iterator: " + errno_name(errno);
    constexpr std::size_t kRecord = sizeof(struct smd_queued_record);
    std::vector<char> buffer(64 * 1024);
    std::size_t have = 0;
    for (;;) {
        ssize_t n = ::read(it.get(), buffer.data() + have, buffer.size() - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return "read the smd_queued iterator: " + errno_name(errno);
        if (n == 0)
            return have ? "the smd_queued iterator ended inside a record" : "";
        have += static_cast<std::size_t>(n);
        std::size_t whole = have / kRecord * kRecord;
        for (std::size_t at = 0; at < whole; at += kRecord) {
            struct smd_queued_record record {};
            std::memcpy(&record, buffer.data() + at, kRecord);
            queued.total += record.queued_bytes;
            queued.largest = std::max<std::uint64_t>(queued.largest, record.queued_bytes);
            ++queued.sockets;
        }
        std::memmove(buffer.data(), buffer.data() + whole, have - whole);
        have -= whole;
    }
}

} // namespace

struct QueueMeter::Impl {
    SmdSkeleton skel;
    Fd sk_ctx;
    std::unique_ptr<struct bpf_link, LinkDeleter> link;
};

QueueMeter::QueueMeter(const std::string& pin_path) : impl_(std::make_unique<Impl>())
{
    auto& skel = impl_->skel;
    impl_->sk_ctx = open_pinned_map(pin_path, "smd_sk_ctx");
    // Only the iterator is loaded. It reads the daemon's socket storage, so that one map is the pinned one; the
    // other maps are not created at all (the programs that use them are not loaded).
    struct bpf_program* program;
    bpf_object__for_each_program(program, skel->obj) bpf_program__set_autoload(program, program == skel->progs.smd_queued);
    struct bpf_map* map;
    bpf_object__for_each_map(map, skel->obj)
    {
        if (map == skel->maps.smd_sk_ctx) {
            if (int err = bpf_map__reuse_fd(map, impl_->sk_ctx.get()))
                throw_errno(-err, "use the pinned " + pin_path + "/smd_sk_ctx for smd_queued");
        } else if (!bpf_map__is_internal(map)) {
            bpf_map__set_autocreate(map, false);
        }
    }
    skel.load();
    impl_->link.reset(bpf_program__attach_iter(skel->progs.smd_queued, nullptr));
    if (!impl_->link)
        throw_errno(errno, "create the iter/tcp link of smd_queued");
}

QueueMeter::~QueueMeter() = default;

QueuedBytes QueueMeter::measure(const std::set<std::uint64_t>& netns_cookies)
{
    std::erase_if(netns_, [&](const auto& entry) { return !netns_cookies.count(entry.first); });
    std::set<std::uint64_t> unknown;
    for (auto cookie : netns_cookies)
        if (!netns_.count(cookie))
            unknown.insert(cookie);
    if (!unknown.empty())
        for (auto& found : open_netns(unknown))
            netns_.emplace(found.cookie, std::move(found.ns));

    QueuedBytes queued;
    queued.unreachable_netns = netns_cookies.size() - netns_.size();
    int link_fd = bpf_link__fd(impl_->link.get());
    for (const auto& [cookie, ns] : netns_) {
        std::string error;
        if (!run_in_netns(ns.get(), [&] { error = add_records(link_fd, queued); }))
            ++queued.unreachable_netns;
        else if (!error.empty())
            throw Error(error + " in network namespace " + std::to_string(cookie));
    }
    return queued;
}

} // namespace sockmapd
