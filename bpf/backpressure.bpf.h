/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What sk_msg and the release iterator read of a pair's sockets to decide that a connection must leave the
 * redirect. The kernel charges a redirected message to the receiver's socket memory but never compares it with
 * the receiver's buffer, so a sender whose peer stops reading could queue without bound; and a blocking reader
 * of a socket in the sockhash can get EAGAIN. Reading the peer needs its struct sock address, which sock_ops
 * stored in the pair entry; the reads go through bpf_rdonly_cast, so they cannot fault, and a stale address can
 * only cause a needless move to TCP, which is always safe while the receiver is in the sockhash, because it
 * reads its redirect queue first. docs/design.md, "A direction's life".
 */
#ifndef SMD_BACKPRESSURE_BPF_H
#define SMD_BACKPRESSURE_BPF_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "smd.bpf.h"
#include "kernel.bpf.h"

/*
 * A __weak kfunc missing from the kernel resolves to 0 and the verifier drops the branch that would call it
 * (libbpf's bpf_ksym_exists, which Debian 12's libbpf 1.1 does not have yet). That linker cannot merge two
 * __weak declarations of one kfunc, so exactly one object (sk_msg.bpf.c) defines SMD_WEAK_KFUNCS; the linked
 * symbol is weak all the same. In the other objects the compiler takes the address as non-null, so what guards
 * the calls there is the CO-RE check of smd_backpressure_supported(), which the same kernels fail.
 */
#ifdef SMD_WEAK_KFUNCS
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
#else
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#endif
#define smd_ksym_exists(sym) (!!(sym))

/* sk_user_data flag bits (SK_USER_DATA_NOCOPY, _BPF, _PSOCK in include/net/sock.h). */
#define SMD_SK_USER_DATA_FLAGS 7ull
#define SMD_O_NONBLOCK 04000

/* Whether this kernel lets sk_msg read a receiver's redirect queue at all. */
static __always_inline bool smd_backpressure_supported(void)
{
	return bpf_core_field_exists(struct sk_psock, msg_tot_len) && smd_ksym_exists(bpf_rdonly_cast);
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

/* The struct sock at a kernel address sock_ops stored, for reads only. */
static __always_inline struct sock *smd_sock_at(__u64 addr)
{
	return bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct sock));
}

/* The socket's psock while it has one (in the sockhash, or leaving it with a reference still held), else 0. */
static __always_inline struct sk_psock *smd_psock_of(__u64 addr)
{
	struct sk_psock *psock;
	__u64 user_data;

	if (!addr)
		return 0;
	user_data = (__u64)smd_sock_at(addr)->sk_user_data;
	if (!user_data)
		return 0;
	psock = bpf_rdonly_cast((void *)(user_data & ~SMD_SK_USER_DATA_FLAGS), bpf_core_type_id_kernel(struct sk_psock));
	return (__u64)psock->sk == addr ? psock : 0;
}

/*
 * Whether a socket reads in blocking mode. tcp_bpf_recvmsg() sleeps only once and then returns EAGAIN where
 * TCP would sleep again (KERNEL-NOTES.md 4): any wake-up without data -- the socket's own FIN acknowledged, write
 * space, the peer's FIN -- reaches a blocking reader as an error. Such a socket must not stay in the sockhash.
 * A socket not yet accepted has no file and counts as non-blocking until it has one.
 */
static __always_inline bool smd_blocking(__u64 addr)
{
	struct socket *sock;
	struct file *file;

	if (!addr)
		return false;
	sock = smd_sock_at(addr)->sk_socket;
	if (!sock)
		return false;
	file = sock->file;
	return file && !(file->f_flags & SMD_O_NONBLOCK);
}

/*
 * Whether the receiver of this direction cannot take `size` more bytes. Once it cannot, the connection leaves
 * for TCP, which then holds what it holds for any reader that stopped: about the receiver's SO_RCVBUF plus
 * the sender's send buffer. So the first cap is a fifth of that, and a reader that never reads makes the node
 * hold at most 1.2x what plain TCP would. The sender's buffer is its own sk_sndbuf when the cap is set (TCP sized
 * it at the handshake from the route's MSS, about 2.6 MB on loopback), at most tcp_wmem max: tcp_wmem max alone
 * overstated it where autotuning stops below it (6.12 in a 2 GiB VM: 1.27x). A reader that reads earns more room, like TCP's
 * receive buffer auto-tuning: when the cap is reached and the reader has read anything since the cap last grew,
 * the cap doubles, up to tcp_rmem's maximum; only a reader that read nothing since leaves. One that stops keeps
 * what it had earned, as TCP's buffer would. --max-queued-bytes, if set, is the first cap instead: an operator
 * trades memory per stalled reader for fewer connections leaving early. Queued messages count at their payload
 * plus SMD_MSG_OVERHEAD each, their number estimated from this sender's mean message size, so one-byte writes are
 * bounded by their kernel memory.
 *
 * The redirect queue is charged to the receiver's receive memory (sk_rmem_alloc), which TCP compares with its
 * SO_RCVBUF, but the receiver's advertised TCP window never saw it. When the connection leaves, the sender may send
 * that whole window at once; if it does not fit beside the queue, the receiver drops it and the sender backs off
 * exponentially, so a reader that comes back waits for a retransmission timer instead of a window update. So the
 * queue always leaves room for the open window: an application that set SO_RCVBUF itself (SOCK_RCVBUF_LOCK) gets
 * its buffer minus that window, and together the two stay within its SO_RCVBUF, as on TCP; a write that does not
 * fit goes by TCP even into an empty queue. Without the lock TCP grows the receive buffer up to tcp_rmem's maximum
 * for what arrives (tcp_clamp_window()), so only the largest cap leaves that room.
 */
#define SMD_SOCK_RCVBUF_LOCK 2
#define SMD_FIRST_CAP_DIVISOR 5

static __always_inline bool smd_rcvbuf_locked(struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD(sk, sk_userlocks) & SMD_SOCK_RCVBUF_LOCK;
}

/* The TCP bytes the receiver has invited and not received yet, plus an eighth for their skb overhead. */
static __always_inline __u64 smd_open_window(__u64 peer_sk)
{
	struct tcp_sock *tp = bpf_rdonly_cast((void *)peer_sk, bpf_core_type_id_kernel(struct tcp_sock));
	__s32 open = (__s32)(tp->rcv_wup + tp->rcv_wnd - tp->rcv_nxt);

	return open > 0 ? (__u64)open + (__u64)open / 8 : 0;
}

static __always_inline __u64 smd_first_cap(struct sock *peer, __u64 peer_sk, bool locked, __u64 self_sk,
					   const struct smd_control *control)
{
	__u64 rcvbuf = peer->sk_rcvbuf > 0 ? peer->sk_rcvbuf : 1, sndbuf = control->wmem_max, window, cap;
	struct sock *self;

	if (locked) {
		window = smd_open_window(peer_sk);
		return rcvbuf > window ? rcvbuf - window : 0;
	}
	if (self_sk) {
		self = smd_sock_at(self_sk);
		if (self->sk_sndbuf > 0 && (__u64)self->sk_sndbuf < sndbuf)
			sndbuf = self->sk_sndbuf;
	}
	cap = (rcvbuf + sndbuf) / SMD_FIRST_CAP_DIVISOR;
	return cap > rcvbuf ? cap : rcvbuf;
}

static __always_inline __u32 smd_cap_value(__u64 cap)
{
	return cap > 0xffffffffull ? 0xffffffffull : cap;
}

static __always_inline bool smd_receiver_full(struct smd_sock_ctx *ctx, struct sk_psock *psock, __u64 peer_sk,
					      __u64 self_sk, __u64 size, const struct smd_control *control)
{
	__u64 queued, mean, cost, read, ceiling, window, cap = ctx->queue_cap, limit = control->max_queued_bytes;
	struct sock *peer = smd_sock_at(peer_sk);
	bool locked = smd_rcvbuf_locked(peer);

	queued = psock->msg_tot_len;
	/*
	 * A locked buffer's cap is computed again at every send: the application may set SO_RCVBUF after this
	 * direction's first send (a server that sets it on the accepted socket, after the client spoke first), or
	 * change it, and the bound must follow it as TCP's window does. The lock never goes away once set.
	 */
	if (!cap || locked) {
		cap = limit && !locked ? limit : smd_first_cap(peer, peer_sk, locked, self_sk, control);
		/* 0 is "not computed yet": a locked buffer that the open window fills gets one byte, which no write fits */
		ctx->queue_cap = cap ? smd_cap_value(cap) : 1;
		cap = ctx->queue_cap;
	}
	if (!queued && !locked)
		return false; /* a message larger than the cap still goes: TCP too takes a write larger than its window */
	mean = ctx->redirected_msgs ? ctx->redirected_bytes / ctx->redirected_msgs : size;
	if (!mean)
		mean = 1;
	cost = queued + (queued / mean + 1) * SMD_MSG_OVERHEAD + size;
	if (cost <= cap)
		return false;
	read = ctx->redirected_bytes > queued ? ctx->redirected_bytes - queued : 0;
	ceiling = control->rmem_max > limit ? control->rmem_max : limit;
	if (locked || read <= ctx->read_at_growth || cap >= ceiling)
		return true;
	window = smd_open_window(peer_sk);
	ceiling = ceiling > window ? ceiling - window : 0;
	cap = cap * 2 > ceiling ? ceiling : cap * 2;
	ctx->read_at_growth = read;
	ctx->queue_cap = smd_cap_value(cap);
	return cost > cap;
}

/*
 * Whether the receiver's socket backlog may no longer hold what arrives by TCP while its reader copies. While a
 * reader is inside recv() its socket is locked, and a segment that arrives (a FIN, a RST, an ACK) waits in the
 * backlog, which tcp_add_backlog() bounds together with the receive memory: a segment is dropped once both pass
 * 2 x sk_rcvbuf + sk_sndbuf / 2 + 64 KiB. The redirect queue counts in the receive memory, and TCP's buffer tuning
 * never sees it: a dropped FIN comes again after a retransmission timer, a dropped RST never does (design.md, "Room
 * in the backlog"). So once `queued` passes half that bound (the 64 KiB left for the segments themselves), sk_msg
 * asks the release iterator to raise the receiver's SO_RCVBUF. A locked SO_RCVBUF bounds the queue itself (its cap),
 * far below the bound, and is never raised.
 */
#define SMD_BACKLOG_SLACK (64 * 1024)

/* Half the backlog bound, less its slack: sk_rcvbuf + sk_sndbuf / 4. */
static __always_inline __u64 smd_backlog_room(struct sock *sk)
{
	return (__u64)(__u32)sk->sk_rcvbuf + (__u32)sk->sk_sndbuf / 4;
}

static __always_inline bool smd_backlog_short(__u64 peer_sk, __u64 queued)
{
	struct sock *peer = smd_sock_at(peer_sk);

	return !smd_rcvbuf_locked(peer) && queued > smd_backlog_room(peer);
}

/*
 * The address of the node's TCP memory pressure flag, from a socket's protocol: &tcp_memory_pressure for every TCP
 * socket, also through tcp_bpf's copies of tcp_prot. The kernel sets it when TCP's memory passes tcp_mem's second
 * value and clears it below the first. vmlinux BTF describes no global variable that is not per-CPU, so there is
 * no typed ksym for it: sock_ops reads the address once per socket (a cold path) and sk_msg reads the flag.
 */
static __always_inline __u64 smd_tcp_pressure_address(__u64 sk_addr)
{
	if (!sk_addr || !bpf_core_field_exists(struct proto, memory_pressure))
		return 0;
	return (__u64)smd_sock_at(sk_addr)->__sk_common.skc_prot->memory_pressure;
}

/*
 * Whether the node is under TCP memory pressure. There TCP clamps windows and prunes queues, but a redirect is
 * charged below the hard limit whatever the pressure (the receiver's sk_rmem_alloc stays under tcp_rmem's minimum
 * for __sk_mem_raise_allocated() as long as its TCP queue is empty) and, above the hard limit, fails the sender's
 * send() with ENOMEM where TCP would drop and retransmit unseen. So under pressure every direction leaves at its
 * next send, before the node reaches the hard limit: one load per message, of a word that changes only when the
 * pressure starts or ends.
 */
static __always_inline bool smd_tcp_memory_pressure(const struct smd_sock_ctx *ctx)
{
	struct cpumask *flag;

	if (!ctx->tcp_pressure_at)
		return false;
	flag = bpf_rdonly_cast((void *)ctx->tcp_pressure_at, bpf_core_type_id_kernel(struct cpumask));
	return flag->bits[0] != 0;
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

#endif
