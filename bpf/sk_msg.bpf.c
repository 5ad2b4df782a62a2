// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sk_msg: on every send from a socket in the sockhash, move the data straight into the peer's receive queue. */
#include "smd.bpf.h"
#include "backpressure.bpf.h"


/*
 * A direction moves from the redirect to TCP and never back: the receiver reads its redirect queue before its
 * TCP receive queue, so TCP bytes sent after redirected ones are read after them. Moving the other way could
 * let redirected bytes overtake unread TCP ones, so it never happens.
 */
static __always_inline int pass_to_tcp(struct smd_sock_ctx *ctx, enum smd_counter reason, __u64 size)
{
	ctx->flags |= SMD_CTX_TCP_PINNED;
	ctx->passed_bytes += size;
	smd_count_message(reason, SMD_CTR_FALLBACK_BYTES, size);
	return SK_PASS;
}

/*
 * The connection leaves the redirect: this direction moves to TCP now, and the pair is marked so that the
 * release iterator (release.bpf.c) moves the other direction too and takes both sockets out of the sockhash as
 * soon as nothing redirected to them is left unread. Until then the receiver still reads its redirect queue
 * first, so no byte is reordered. Counted once per connection.
 */
static __always_inline int leave_redirect(struct smd_sock_ctx *ctx, enum smd_counter message_reason,
					  enum smd_counter pair_reason, __u64 size)
{
	struct smd_pair_state *state = bpf_map_lookup_elem(&smd_pairs, &ctx->key.pair);

	if (state)
		smd_mark_leaving(state, ctx->key.pair.netns_cookie, SMD_PAIR_PINNED(ctx->key.role), pair_reason);
	return pass_to_tcp(ctx, message_reason, size);
}

/*
 * The receiver's queue outgrew half its backlog bound (smd_backlog_short()): the release iterator raises its
 * receive buffer. One event until that is done; a queue that grows on past the raised bound asks again.
 */
static __always_inline void ask_for_room(struct smd_sock_ctx *ctx)
{
	struct smd_pair_state *state = bpf_map_lookup_elem(&smd_pairs, &ctx->key.pair);
	__u32 grow = SMD_PAIR_GROW((ctx->key.role & 1) ^ 1);

	if (state && !(state->flags & grow) && !(__sync_fetch_and_or(&state->flags, grow) & grow))
		bpf_ringbuf_output(&smd_events, &ctx->key.pair.netns_cookie, sizeof(__u64), 0);
}

/* Which reason, if any, makes this direction leave the redirect before this message. */
static __always_inline int must_leave(struct sk_msg_md *msg, struct smd_sock_ctx *ctx,
				      const struct smd_control *control, __u64 size)
{
	struct sk_psock *psock;
	struct tcp_sock *self;
	__u64 peer_sk;

	if (control->flags & SMD_CONTROL_DRAIN)
		return SMD_CTR_LEFT_OTHER;
	if (!smd_backpressure_supported())
		return 0;
	peer_sk = smd_peer_sk(ctx);
	if (!peer_sk)
		return 0; /* the pair entry is gone: the redirect below finds no peer and moves to TCP */
	self = msg->sk ? bpf_skc_to_tcp_sock(msg->sk) : 0;
	if (smd_blocking(peer_sk) || (self && smd_blocking((__u64)self)))
		return SMD_CTR_LEFT_BLOCKING_READER;
	psock = smd_psock_of(peer_sk);
	if (!psock)
		return 0; /* released or closing: no peer in the sockhash */
	if (smd_tcp_memory_pressure(ctx))
		return SMD_CTR_LEFT_TCP_PRESSURE;
	if (smd_receiver_full(ctx, psock, peer_sk, (__u64)self, size, control))
		return SMD_CTR_LEFT_BACKPRESSURE;
	if (smd_receiver_memcg_full(peer_sk, size))
		return SMD_CTR_LEFT_MEMCG;
	if ((control->flags & SMD_CONTROL_RAISE_RCVBUF) && psock->msg_tot_len &&
	    smd_backlog_short(peer_sk, psock->msg_tot_len + size))
		ask_for_room(ctx);
	return 0;
}

/* The reasons to leave that are about memory: their message counts as fallback_backpressure. */
static __always_inline bool for_memory(int reason)
{
	return reason == SMD_CTR_LEFT_BACKPRESSURE || reason == SMD_CTR_LEFT_MEMCG || reason == SMD_CTR_LEFT_TCP_PRESSURE;
}

SEC("sk_msg")
int smd_sk_msg(struct sk_msg_md *msg)
{
	struct smd_sock_ctx *ctx;
	struct smd_sock_key peer;
	struct smd_control *control;
	__u32 zero = 0;
	__u64 size = msg->size;
	int reason;

	ctx = bpf_sk_storage_get(&smd_sk_ctx, msg->sk, 0, 0);
	if (!ctx) {
		smd_count_message(SMD_CTR_FALLBACK_NO_CTX, SMD_CTR_FALLBACK_BYTES, size);
		return SK_PASS;
	}
	if (ctx->flags & SMD_CTX_TCP_PINNED)
		return pass_to_tcp(ctx, SMD_CTR_FALLBACK_PINNED, size);
	control = bpf_map_lookup_elem(&smd_control, &zero);
	if (control) {
		reason = must_leave(msg, ctx, control, size);
		if (for_memory(reason))
			return leave_redirect(ctx, SMD_CTR_FALLBACK_BACKPRESSURE, reason, size);
		if (reason)
			return leave_redirect(ctx, SMD_CTR_FALLBACK_PINNED, reason, size);
	}

	peer = ctx->key;
	peer.role = ctx->key.role == SMD_ROLE_ACTIVE ? SMD_ROLE_PASSIVE : SMD_ROLE_ACTIVE;
	if (bpf_msg_redirect_hash(msg, &smd_sockhash, &peer, BPF_F_INGRESS) != SK_PASS)
		return leave_redirect(ctx, SMD_CTR_FALLBACK_NO_PEER, SMD_CTR_LEFT_OTHER, size);
	ctx->redirected_bytes += size;
	ctx->redirected_msgs++;
	smd_count_message(SMD_CTR_MSGS_REDIRECTED, SMD_CTR_BYTES_REDIRECTED, size);
	return SK_PASS;
}
