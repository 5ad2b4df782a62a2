/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backpressure for redirected data. The kernel charges a redirected message to the receiver's socket memory
 * but never compares it with the receiver's buffer, so a sender whose peer stops reading could queue without
 * bound. sk_msg therefore looks at the receiver's redirect queue before each redirect; once it holds more than
 * smd_control.max_queued_bytes, the direction moves to TCP for good and the receive window bounds it from then
 * on. Reading the peer needs its struct sock address, which sock_ops stored in the pair entry; the reads go
 * through bpf_rdonly_cast, so they cannot fault, and a stale address can only cause a needless move to TCP --
 * which is always safe while the receiver is in the sockhash, because it reads its redirect queue first.
 * docs/design.md, "Backpressure".
 */
#ifndef SMD_BACKPRESSURE_BPF_H
#define SMD_BACKPRESSURE_BPF_H

#include <bpf/bpf_core_read.h>
#include "smd.bpf.h"
#include "kernel.bpf.h"

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* A __weak kfunc missing from the kernel resolves to 0 and the verifier drops the branch that would call it
 * (libbpf's bpf_ksym_exists, which Debian 12's libbpf 1.1 does not have yet). */
#define smd_ksym_exists(sym) (!!(sym))

/* sk_user_data flag bits (SK_USER_DATA_NOCOPY, _BPF, _PSOCK in include/net/sock.h). */
#define SMD_SK_USER_DATA_FLAGS 7ull
#define SMD_O_NONBLOCK 04000

/* Whether this kernel lets sk_msg read a receiver's redirect queue at all. */
static __always_inline bool smd_backpressure_supported(void)
{
	return smd_ksym_exists(bpf_rdonly_cast) && bpf_core_field_exists(struct sk_psock, msg_tot_len);
}

/* The peer's struct sock address: cached in the sender's context once the pair entry has it. */
static __always_inline __u64 smd_peer_sk(struct smd_sock_ctx *ctx)
{
	struct smd_pair_state *state;
	__u64 peer_sk = ctx->peer_sk;

	if (peer_sk)
		return peer_sk;
	state = bpf_map_lookup_elem(&smd_pairs, &ctx->key.pair);
	if (!state)
		return 0;
	peer_sk = state->sk[ctx->key.role == SMD_ROLE_ACTIVE ? SMD_ROLE_PASSIVE : SMD_ROLE_ACTIVE];
	ctx->peer_sk = peer_sk;
	return peer_sk;
}

/* Unread bytes in the receiver's redirect queue; 0 when unknown (address not yet known, or stale). */
static __always_inline __u64 smd_peer_queued(__u64 peer_sk)
{
	struct sock *sk;
	struct sk_psock *psock;
	__u64 user_data;

	if (!peer_sk)
		return 0;
	sk = bpf_rdonly_cast((void *)peer_sk, bpf_core_type_id_kernel(struct sock));
	user_data = (__u64)sk->sk_user_data;
	if (!user_data)
		return 0;
	psock = bpf_rdonly_cast((void *)(user_data & ~SMD_SK_USER_DATA_FLAGS), bpf_core_type_id_kernel(struct sk_psock));
	if ((__u64)psock->sk != peer_sk)
		return 0;
	return psock->msg_tot_len;
}

/*
 * Whether sending `size` more bytes would take the receiver over `limit`. Queued messages are counted at
 * their payload plus SMD_MSG_OVERHEAD each; their number is estimated from this sender's mean message size,
 * so a stream of one-byte writes is bounded by its kernel memory, not by its few bytes of payload.
 */
static __always_inline bool smd_receiver_over_limit(struct smd_sock_ctx *ctx, __u64 size, __u64 limit)
{
	__u64 queued, mean, cost;

	if (!smd_backpressure_supported())
		return false;
	queued = smd_peer_queued(smd_peer_sk(ctx));
	if (!queued)
		return false;
	mean = ctx->redirected_msgs ? ctx->redirected_bytes / ctx->redirected_msgs : size;
	if (!mean)
		mean = 1;
	cost = queued + (queued / mean + 1) * SMD_MSG_OVERHEAD;
	return cost + size > limit;
}

/*
 * Whether the receiver's memory cgroup would refuse `size` more redirected bytes. A redirect is charged to the
 * receiver's memory cgroup at once, and a refused charge fails the sender's send() with ENOMEM (tcp_bpf_sendmsg()
 * returns what bpf_tcp_ingress() got from __sk_rmem_schedule(); tcp_sendmsg() would have waited instead). With a
 * cgroup v1 TCP limit (memory.kmem.tcp.limit_in_bytes) such a charge fails exactly when it does not fit below the
 * limit at some level of the hierarchy, so the direction moves to TCP just before that: there the receiver drops
 * what it cannot charge and the sender retransmits, unseen by either application. SMD_MEMCG_SLACK_PAGES leaves
 * room for other sockets of the cgroup charging meanwhile. Cgroup v2 charges reclaim first and rarely fail, so
 * only v1 accounting is looked at; kernels without it (CONFIG_MEMCG_V1=n) keep the branch out at load time.
 */
#define SMD_PAGE_SHIFT 12 /* 4 KiB pages; with larger pages the estimate is only larger, the move earlier */
#define SMD_MEMCG_SLACK_PAGES 64
#define SMD_MEMCG_LEVELS 4

static __always_inline bool smd_receiver_memcg_full(__u64 peer_sk, __u64 size)
{
	struct page_counter *counter;
	struct mem_cgroup *memcg;
	struct sock *sk;
	__u64 pages = (size >> SMD_PAGE_SHIFT) + 1 + SMD_MEMCG_SLACK_PAGES;

	if (!smd_backpressure_supported() || !bpf_core_field_exists(struct sock, sk_memcg) ||
	    !bpf_core_field_exists(struct mem_cgroup, tcpmem_active) || !peer_sk)
		return false;
	sk = bpf_rdonly_cast((void *)peer_sk, bpf_core_type_id_kernel(struct sock));
	memcg = sk->sk_memcg;
	if (!memcg)
		return false;
	memcg = bpf_rdonly_cast(memcg, bpf_core_type_id_kernel(struct mem_cgroup));
	if (!memcg->tcpmem_active)
		return false;
	counter = &memcg->tcpmem;
	for (int level = 0; level < SMD_MEMCG_LEVELS && counter; level++) {
		if ((__u64)counter->usage.counter + pages > counter->max)
			return true;
		counter = counter->parent;
	}
	return false;
}

/*
 * Whether a direction that backpressure moved to TCP may redirect again without reordering: the receiver has
 * read every TCP byte this direction sent (its copied_seq reached our write_seq; both count TCP bytes only), so
 * no older byte is left behind the new redirected ones. And its socket is non-blocking: a blocking reader may be
 * asleep inside tcp_recvmsg() (MSG_WAITALL, SO_RCVLOWAT) waiting for TCP bytes, and would wait there while the
 * redirect queue fills -- then take newer TCP bytes before the redirected ones once the limit moved the direction
 * to TCP again. A non-blocking reader never sleeps there; every recv() it makes reads the redirect queue first.
 */
static __always_inline bool smd_may_resume(struct sk_msg_md *msg, struct smd_sock_ctx *ctx)
{
	struct tcp_sock *self, *peer;
	struct sock *peer_sk;
	struct socket *sock;
	struct file *file;
	__u64 addr = ctx->peer_sk;

	if (!smd_backpressure_supported() || !addr || !msg->sk)
		return false;
	self = bpf_skc_to_tcp_sock(msg->sk);
	if (!self)
		return false;
	peer = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct tcp_sock));
	if (peer->copied_seq != self->write_seq)
		return false;
	peer_sk = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct sock));
	sock = peer_sk->sk_socket;
	if (!sock)
		return false;
	file = sock->file;
	return file && (file->f_flags & SMD_O_NONBLOCK);
}

#endif
