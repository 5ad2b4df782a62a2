// What bounds redirected data a receiver has not read, and the kernel facts it needs (docs/design.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sockmapd {

// The third field of a net.ipv4.tcp_rmem or tcp_wmem file at `path`: the largest buffer TCP autotuning may give
// a socket. Empty when it cannot be read or parsed.
std::optional<std::uint64_t> tcp_mem_max(const std::string& path);

// net.ipv4.tcp_rmem's maximum (the kernel's built-in 6 MiB if it cannot be read): a redirect queue cap grows
// up to it, as a TCP receive buffer would.
std::uint64_t tcp_rmem_max();
// net.ipv4.tcp_wmem's maximum (built-in 4 MiB): what a TCP sender buffers for a reader that stopped.
std::uint64_t tcp_wmem_max();

// Empty when the running kernel lets sk_msg read a receiver's redirect queue (the BTF of struct
// sk_psock.msg_tot_len and the bpf_rdonly_cast kfunc); otherwise what is missing.
std::string backpressure_unavailable();

// Empty when FIONREAD on a socket in the sockhash counts its redirect queue (tcp_bpf_ioctl, from "bpf, sockmap:
// Fix FIONREAD for sockmap"); otherwise why a reader that sizes its reads by FIONREAD would stall.
std::string fionread_unavailable();

} // namespace sockmapd
