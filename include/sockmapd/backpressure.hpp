// The backpressure limit on redirected data a receiver has not read (docs/design.md, "Backpressure").
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sockmapd {

// The third field of a net.ipv4.tcp_rmem or tcp_wmem file at `path`: the largest buffer TCP autotuning may give
// a socket. Empty when it cannot be read or parsed.
std::optional<std::uint64_t> tcp_mem_max(const std::string& path);

// The daemon's default for --max-queued-bytes: what plain TCP would let one direction buffer, the receiver's
// largest receive buffer plus the sender's largest send buffer (tcp_rmem and tcp_wmem maxima; the kernel's own
// defaults, 6 + 4 MiB, for a file that cannot be read).
std::uint64_t default_max_queued_bytes();

// Empty when the running kernel lets sk_msg read a receiver's redirect queue (the BTF of struct
// sk_psock.msg_tot_len and the bpf_rdonly_cast kfunc); otherwise what is missing.
std::string backpressure_unavailable();

} // namespace sockmapd
