// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sk_msg: on every send from a socket in the sockhash, move the data straight into the peer's receive queue. */
#include "smd.bpf.h"
#include "backpressure.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Ordering rule: a direction that sent anything over TCP redirects again only once its receiver has read all
 * of it (backpressure.bpf.h, smd_may_resume); the receiver reads its redirect queue before its TCP receive
 * queue, so redirecting after unread TCP data could overtake it. Going from redirect to TCP is safe while the
 * receiver stays in the sockhash, for the same reason.
 */
static __always_inline int pass_to_tcp(struct smd_sock_ctx *ctx, enum smd_counter reason, __u64 size)
{
	ctx->flags |= SMD_CTX_TCP_PINNED;
	ctx->passed_bytes += size;
	smd_count_message(reason, SMD_CTR_FALLBACK_BYTES, size);
	return SK_PASS;
}

static __always_inline bool smd_draining(void)
{
	__u32 zero = 0;
	struct smd_control *control = bpf_map_lookup_elem(&smd_control, &zero);

	return control && (control->flags & SMD_CONTROL_DRAIN);
}

SEC("sk_msg")
int smd_sk_msg(struct sk_msg_md *msg)
{
	struct smd_sock_ctx *ctx;
	struct smd_sock_key peer;
	struct smd_control *control;
	__u32 zero = 0;
	__u64 size = msg->size;

	ctx = bpf_sk_storage_get(&smd_sk_ctx, msg->sk, 0, 0);
	if (!ctx) {
		smd_count_message(SMD_CTR_FALLBACK_NO_CTX, SMD_CTR_FALLBACK_BYTES, size);
		return SK_PASS;
	}
	if (ctx->flags & SMD_CTX_TCP_PINNED) {
		if (!(ctx->flags & SMD_CTX_BACKPRESSURE) || smd_draining() || !smd_may_resume(msg, ctx) ||
		    smd_receiver_memcg_full(ctx->peer_sk, size))
			return pass_to_tcp(ctx, SMD_CTR_FALLBACK_PINNED, size);
		ctx->flags &= ~(SMD_CTX_TCP_PINNED | SMD_CTX_BACKPRESSURE);
		smd_count(SMD_CTR_BACKPRESSURE_RESUMED, 1);
	}
	control = bpf_map_lookup_elem(&smd_control, &zero);
	if (control) {
		/* Uninstall drains: from here on this direction is TCP, and the receiver's redirect queue only empties. */
		if (control->flags & SMD_CONTROL_DRAIN)
			return pass_to_tcp(ctx, SMD_CTR_FALLBACK_PINNED, size);
		if ((control->max_queued_bytes && smd_receiver_over_limit(ctx, size, control->max_queued_bytes)) ||
		    smd_receiver_memcg_full(smd_peer_sk(ctx), size)) {
			ctx->flags |= SMD_CTX_BACKPRESSURE;
			return pass_to_tcp(ctx, SMD_CTR_FALLBACK_BACKPRESSURE, size);
		}
	}

	peer = ctx->key;
	peer.role = ctx->key.role == SMD_ROLE_ACTIVE ? SMD_ROLE_PASSIVE : SMD_ROLE_ACTIVE;
	if (bpf_msg_redirect_hash(msg, &smd_sockhash, &peer, BPF_F_INGRESS) != SK_PASS)
		return pass_to_tcp(ctx, SMD_CTR_FALLBACK_NO_PEER, size);
	ctx->redirected_bytes += size;
	ctx->redirected_msgs++;
	smd_count_message(SMD_CTR_MSGS_REDIRECTED, SMD_CTR_BYTES_REDIRECTED, size);
	return SK_PASS;
}
