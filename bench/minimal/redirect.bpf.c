// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The smallest correct sock_ops + sk_msg loopback redirect, the reference bench/prog-cost.sh --minimal measures
 * sockmapd against: every established TCP socket goes into a sockhash under its own (local, remote) 4-tuple, and
 * every send is redirected to the socket whose tuple is the reverse, if there is one. No counters, no policy, no
 * backpressure, no fallback bookkeeping.
 *
 * Ports are kept in host order on both sides. local_port is host order in both contexts; remote_port is the
 * network-order 16-bit port loaded into the upper half of the 32-bit field (the kernel shifts it left by 16 on
 * little-endian), so bpf_ntohl() of it is the port in host order, in sock_ops and in sk_msg alike.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10

struct tuple {
	__u32 family;
	__u32 local_ip[4]; /* IPv4: [0], the rest zero */
	__u32 remote_ip[4];
	__u32 local_port;  /* host order */
	__u32 remote_port; /* host order */
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple);
	__type(value, __u64);
} minimal_socks SEC(".maps");

SEC("sockops")
int minimal_sockops(struct bpf_sock_ops *skops)
{
	struct tuple key = {};

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	key.family = skops->family;
	if (key.family == AF_INET) {
		key.local_ip[0] = skops->local_ip4;
		key.remote_ip[0] = skops->remote_ip4;
	} else if (key.family == AF_INET6) {
		key.local_ip[0] = skops->local_ip6[0];
		key.local_ip[1] = skops->local_ip6[1];
		key.local_ip[2] = skops->local_ip6[2];
		key.local_ip[3] = skops->local_ip6[3];
		key.remote_ip[0] = skops->remote_ip6[0];
		key.remote_ip[1] = skops->remote_ip6[1];
		key.remote_ip[2] = skops->remote_ip6[2];
		key.remote_ip[3] = skops->remote_ip6[3];
	} else {
		return 1;
	}
	key.local_port = skops->local_port;
	key.remote_port = bpf_ntohl(skops->remote_port);
	bpf_sock_hash_update(skops, &minimal_socks, &key, BPF_ANY);
	return 1;
}

SEC("sk_msg")
int minimal_sk_msg(struct sk_msg_md *msg)
{
	/* The peer's own key: its local side is our remote side. */
	struct tuple key = {};

	key.family = msg->family;
	if (key.family == AF_INET) {
		key.local_ip[0] = msg->remote_ip4;
		key.remote_ip[0] = msg->local_ip4;
	} else if (key.family == AF_INET6) {
		key.local_ip[0] = msg->remote_ip6[0];
		key.local_ip[1] = msg->remote_ip6[1];
		key.local_ip[2] = msg->remote_ip6[2];
		key.local_ip[3] = msg->remote_ip6[3];
		key.remote_ip[0] = msg->local_ip6[0];
		key.remote_ip[1] = msg->local_ip6[1];
		key.remote_ip[2] = msg->local_ip6[2];
		key.remote_ip[3] = msg->local_ip6[3];
	} else {
		return SK_PASS;
	}
	key.local_port = bpf_ntohl(msg->remote_port);
	key.remote_port = msg->local_port;
	/* Sets the redirect target when the peer is in the map; SK_PASS then redirects, else the send stays on TCP. */
	bpf_msg_redirect_hash(msg, &minimal_socks, &key, BPF_F_INGRESS);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
