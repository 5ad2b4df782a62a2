// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * release: takes the sockets of a connection that leaves the redirect out of the sockhash, once nothing
 * redirected to them is unread or in flight, and wakes a reader that may be waiting for an edge. Run by the
 * daemon as an iter/tcp iterator in each network namespace that has such a connection: the iterator holds the
 * socket's lock and may call bpf_setsockopt() on it, which nothing else that can see a pair can.
 */
#include "smd.bpf.h"
#include "backpressure.bpf.h"


#define SMD_SOL_SOCKET 1
#define SMD_SO_RCVLOWAT 18

/*
 * Whether nothing the peer sent can still arrive in this socket's redirect queue. The peer's sends go by TCP
 * once SMD_PAIR_PINNED(peer) is set (written under the peer's lock, so every later sendmsg sees it); a sendmsg
 * that chose the redirect before holds a reference on the peer's psock from its start until after its message
 * is queued. So: the peer has no psock any more, or it is still in the sockhash (the sockhash holds the one
 * reference it has when idle) with no other reference. A peer that reached TCP_CLOSE sends nothing new.
 */
static __always_inline bool peer_quiet(const struct smd_pair_state *state, __u32 peer_role)
{
	struct sk_psock *psock;
	__u32 flags = state->flags;

	if (flags & SMD_PAIR_CLOSED(peer_role))
		return true;
	if (!(flags & SMD_PAIR_PINNED(peer_role)))
		return false;
	psock = smd_psock_of(state->sk[peer_role & 1]);
	if (!psock)
		return true;
	return !(flags & SMD_PAIR_RELEASED(peer_role)) && psock->refcnt.refs.counter == 1;
}

/* Whether this socket must leave: its connection is leaving, an uninstall drains, or it reads in blocking mode. */
static __always_inline bool leaving(struct smd_pair_state *state, __u64 self)
{
	__u32 zero = 0, old;
	struct smd_control *control;

	if (state->flags & SMD_PAIR_LEAVING)
		return true;
	control = bpf_map_lookup_elem(&smd_control, &zero);
	if (control && (control->flags & SMD_CONTROL_DRAIN)) {
		old = __sync_fetch_and_or(&state->flags, SMD_PAIR_LEAVING);
		if (!(old & SMD_PAIR_LEAVING))
			smd_count(SMD_CTR_LEFT_OTHER, 1);
		return true;
	}
	if (smd_blocking(self)) {
		old = __sync_fetch_and_or(&state->flags, SMD_PAIR_LEAVING);
		if (!(old & SMD_PAIR_LEAVING))
			smd_count(SMD_CTR_LEFT_BLOCKING_READER, 1);
		return true;
	}
	return false;
}

SEC("iter/tcp")
int smd_release(struct bpf_iter__tcp *it)
{
	struct sock_common *skc = it->sk_common;
	struct smd_pair_state *state;
	struct smd_sock_ctx *ctx;
	struct sk_psock *psock;
	struct tcp_sock *tp;
	__u32 role, lowat;
	__u64 self;

	if (!skc || !smd_backpressure_supported())
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	ctx = bpf_sk_storage_get(&smd_sk_ctx, tp, 0, 0);
	if (!ctx)
		return 0;
	self = (__u64)tp;
	psock = smd_psock_of(self);
	if (!psock)
		return 0; /* not in the sockhash (never paired, or released already) */
	state = bpf_map_lookup_elem(&smd_pairs, &ctx->key.pair);
	if (!state || !leaving(state, self))
		return 0;

	/* This socket's lock is held: its own sk_msg cannot be running, and every later one sees the pin. */
	role = ctx->key.role & 1;
	ctx->flags |= SMD_CTX_TCP_PINNED;
	__sync_fetch_and_or(&state->flags, SMD_PAIR_PINNED(role));

	/* Under this lock too: a redirect into this socket queues its message holding the same lock. */
	if (psock->msg_tot_len || !peer_quiet(state, role ^ 1))
		return 0;
	if (bpf_map_delete_elem(&smd_sockhash, &ctx->key))
		return 0;
	__sync_fetch_and_or(&state->flags, SMD_PAIR_RELEASED(role));
	smd_count(SMD_CTR_SOCKETS_RELEASED, 1);

	/*
	 * From here the socket is plain TCP: FIONREAD, splice and blocking reads count its TCP receive queue again.
	 * A reader that was told "nothing to read" while only TCP bytes were waiting (FIONREAD counted the redirect
	 * queue alone) waits for an edge that no new data may bring: setting SO_RCVLOWAT to its own value calls
	 * tcp_data_ready(), which signals EPOLLIN if TCP bytes wait.
	 */
	if (tp->rcv_nxt != tp->copied_seq) {
		lowat = smd_sock_at(self)->sk_rcvlowat;
		if (!bpf_setsockopt(tp, SMD_SOL_SOCKET, SMD_SO_RCVLOWAT, &lowat, sizeof(lowat)))
			smd_count(SMD_CTR_RELEASE_WAKEUPS, 1);
	}
	return 0;
}
