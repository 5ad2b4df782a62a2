// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sk_msg: on every send from a socket in the sockhash, move the data straight into the peer's receive queue. */
#include "smd.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Ordering rule: a direction that sent anything over TCP never redirects again. The receiver reads its
 * redirect queue before its TCP receive queue, so redirecting after TCP data could overtake it.
 * Going from redirect to TCP is safe while the receiver stays in the sockhash, for the same reason.
 */
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
	__u64 size = msg->size;

	ctx = bpf_sk_storage_get(&smd_sk_ctx, msg->sk, 0, 0);
	if (!ctx) {
		smd_count_message(SMD_CTR_FALLBACK_NO_CTX, SMD_CTR_FALLBACK_BYTES, size);
		return SK_PASS;
	}
	/* Uninstall drains: from here on this direction is TCP, and the receiver's redirect queue only empties. */
	if (smd_draining())
		ctx->flags |= SMD_CTX_TCP_PINNED;
	if (ctx->flags & SMD_CTX_TCP_PINNED) {
		ctx->passed_bytes += size;
		smd_count_message(SMD_CTR_FALLBACK_PINNED, SMD_CTR_FALLBACK_BYTES, size);
		return SK_PASS;
	}

	peer = ctx->key;
	peer.role = ctx->key.role == SMD_ROLE_ACTIVE ? SMD_ROLE_PASSIVE : SMD_ROLE_ACTIVE;
	if (bpf_msg_redirect_hash(msg, &smd_sockhash, &peer, BPF_F_INGRESS) != SK_PASS) {
		ctx->flags |= SMD_CTX_TCP_PINNED;
		ctx->passed_bytes += size;
		smd_count_message(SMD_CTR_FALLBACK_NO_PEER, SMD_CTR_FALLBACK_BYTES, size);
		return SK_PASS;
	}
	ctx->redirected_bytes += size;
	ctx->redirected_msgs++;
	smd_count_message(SMD_CTR_MSGS_REDIRECTED, SMD_CTR_BYTES_REDIRECTED, size);
	return SK_PASS;
}
