// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * release: takes the sockets of a connection that leaves the redirect out of the sockhash, once nothing
 * redirected to them is unread or in flight, and wakes a reader that may be waiting for an edge. Run by the
 * daemon as an iter/tcp iterator in each network namespace that has such a connection: the iterator holds the
 * socket's lock and may call bpf_setsockopt() on it, which nothing else that can see a pair can.
 */
#include "release.bpf.h"


#define SMD_SOL_SOCKET 1
#define SMD_SO_RCVLOWAT 18
#define SMD_SO_KEEPALIVE 9
#define SMD_SOL_TCP 6
#define SMD_TCP_KEEPIDLE 4
#define SMD_TCP_KEEPINTVL 5

/*
 * The peer of this socket closed with a reset, which may have been dropped at this socket's backlog (sockops.bpf.c,
 * reset_sent()). A keepalive probe, sent once nothing has come by TCP for a second (the redirect does not count),
 * reaches no socket at the peer's address, whose stack answers with a reset at this socket's rcv_nxt: the one TCP
 * would have delivered. If the first reset arrives meanwhile, the socket closes and the probe never goes.
 */
static __always_inline void probe_reset_peer(struct tcp_sock *tp, struct smd_sock_ctx *ctx)
{
	int one = 1;

	ctx->flags |= SMD_CTX_PROBING;
	bpf_setsockopt(tp, SMD_SOL_TCP, SMD_TCP_KEEPIDLE, &one, sizeof(one));
	bpf_setsockopt(tp, SMD_SOL_TCP, SMD_TCP_KEEPINTVL, &one, sizeof(one));
	bpf_setsockopt(tp, SMD_SOL_SOCKET, SMD_SO_KEEPALIVE, &one, sizeof(one));
}

/*
 * sk_msg found this socket's redirect queue past half its backlog bound (backpressure.bpf.h, smd_backlog_short()).
 * Raises its receive buffer so that the bound holds twice the queue (or the receive memory, where the queue counts)
 * plus 64 KiB: smd_backlog_room() >= queue + 64 KiB. Through SO_RCVLOWAT, as TCP's own tuning
 * would grow it for a reader that keeps this much in flight: tcp_set_rcvlowat() grows sk_rcvbuf to hold a window
 * of that many bytes, up to tcp_rmem's maximum, and neither shrinks nor locks it; the socket's own low-water mark
 * is set again right after, under the same socket lock. Only while TCP's receive queue is empty, where the mark
 * changes nothing an application can see (poll() counts the redirect queue whatever the mark). The flag is
 * cleared once the bound is large enough; it stays set when nothing could be raised (tcp_rmem's maximum reached,
 * TCP bytes waiting), so that sk_msg does not ask again at every send (the next sweep of the namespace tries again).
 */
static __always_inline void grow_receive_buffer(struct tcp_sock *tp, struct sk_psock *psock,
						 struct smd_pair_state *state, __u32 role)
{
	struct sock *sk = smd_sock_at((__u64)tp);
	__u64 queued = psock->msg_tot_len, rmem = (__u32)sk->sk_backlog.rmem_alloc.counter, target;
	__u64 rcvbuf = (__u32)sk->sk_rcvbuf, room = smd_backlog_room(sk);
	int window, lowat = sk->sk_rcvlowat;

	target = (rmem > queued ? rmem : queued) + SMD_BACKLOG_SLACK;
	if (smd_rcvbuf_locked(sk) || target <= room) {
		__sync_fetch_and_and(&state->flags, ~SMD_PAIR_GROW(role)); /* nothing to raise (any more) */
		return;
	}
	if (tp->rcv_nxt != tp->copied_seq || target > 0x3fffffff)
		return;
	target -= room - rcvbuf; /* the sk_rcvbuf whose room holds the target */
	/* tcp_space_from_win(): the window is the buffer times scaling_ratio / 256 (6.6 and later), else half */
	if (bpf_core_field_exists(struct tcp_sock, scaling_ratio) && tp->scaling_ratio)
		window = (int)((target * tp->scaling_ratio) >> 8) + 1;
	else
		window = (int)(target >> 1) + 1;
	bpf_setsockopt(tp, SMD_SOL_SOCKET, SMD_SO_RCVLOWAT, &window, sizeof(window));
	bpf_setsockopt(tp, SMD_SOL_SOCKET, SMD_SO_RCVLOWAT, &lowat, sizeof(lowat));
	if ((__u64)(__u32)smd_sock_at((__u64)tp)->sk_rcvbuf > rcvbuf)
		__sync_fetch_and_and(&state->flags, ~SMD_PAIR_GROW(role));
}

/* The daemon's switches (SMD_CONTROL_*), read once per socket the iterator visits. */
static __always_inline __u32 control_flags(void)
{
	__u32 zero = 0;
	struct smd_control *control = bpf_map_lookup_elem(&smd_control, &zero);

	return control ? control->flags : 0;
}

/* An active end whose passive end had not begun to join SMD_LONE_ACTIVE_NS after its insertion (shared.h). */
static __always_inline bool alone_too_long(const struct smd_pair_state *state, __u32 role)
{
	return role == SMD_ROLE_ACTIVE && !(state->flags & (SMD_PAIR_PASSIVE_JOINING | SMD_PAIR_PASSIVE_IN)) &&
	       bpf_ktime_get_ns() - state->created_ns > SMD_LONE_ACTIVE_NS;
}

/*
 * Whether this socket must leave: its connection is leaving, an uninstall drains, it reads in blocking mode, or it
 * waited alone for its passive end too long.
 */
static __always_inline bool leaving(struct smd_sock_ctx *ctx, struct smd_pair_state *state, __u64 self,
				    __u32 control)
{
	if (state->flags & SMD_PAIR_LEAVING)
		return true;
	if (alone_too_long(state, ctx->key.role & 1) || (control & SMD_CONTROL_DRAIN)) {
		smd_mark_leaving(state, ctx->key.pair.netns_cookie, 0, SMD_CTR_LEFT_OTHER);
		return true;
	}
	if (smd_blocking(self)) {
		smd_mark_leaving(state, ctx->key.pair.netns_cookie, 0, SMD_CTR_LEFT_BLOCKING_READER);
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
	__u32 lowat, control;
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
	if (!state)
		return 0;
	control = control_flags();
	if ((state->flags & SMD_PAIR_GROW(ctx->key.role & 1)) && (control & SMD_CONTROL_RAISE_RCVBUF))
		grow_receive_buffer(tp, psock, state, ctx->key.role & 1);
	if (!leaving(ctx, state, self, control))
		return 0;
	if ((state->flags & SMD_PAIR_RESET((ctx->key.role & 1) ^ 1)) && !(ctx->flags & SMD_CTX_PROBING))
		probe_reset_peer(tp, ctx);

	/* This socket's lock is held: its own sk_msg cannot be running, and every later one sees the pin. */
	if (!smd_try_release(ctx, state, psock, smd_blocking(self)))
		return 0;

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
