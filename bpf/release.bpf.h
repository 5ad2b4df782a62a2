/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Taking a socket of a leaving connection out of the sockhash without losing a byte: shared by the release
 * iterator (release.bpf.c) and sock_ops (a blocking socket's own shutdown). The caller holds the socket's lock.
 */
#ifndef SMD_RELEASE_BPF_H
#define SMD_RELEASE_BPF_H

#include "smd.bpf.h"
#include "backpressure.bpf.h"

/*
 * Whether nothing the peer sent can still arrive in this socket's redirect queue. The peer's sends go by TCP
 * once SMD_PAIR_PINNED(peer) is set (written under the peer's lock, so every later sendmsg sees it), or once
 * this socket is blocking (every peer sendmsg checks that first, must_leave() in sk_msg.bpf.c); a sendmsg that
 * chose the redirect before holds a reference on the peer's psock from its start until after its message is
 * queued. So: the peer has no psock any more, or it is still in the sockhash (which holds the one reference it
 * has when idle) with no other reference. A peer that reached TCP_CLOSE sends nothing new.
 */
static __always_inline bool smd_peer_quiet(const struct smd_pair_state *state, __u32 peer_role, bool self_blocking)
{
	struct sk_psock *psock;
	/* One load: the rules below read leaving and the passive end's join from the same moment. */
	__u32 flags = *(volatile __u32 *)&state->flags;

	if (flags & SMD_PAIR_CLOSED(peer_role))
		return true;
	/* A passive end that had not begun to join when the pair began to leave never joins (sockops.bpf.c). */
	if (peer_role == SMD_ROLE_PASSIVE && (flags & SMD_PAIR_LEAVING) &&
	    !(flags & (SMD_PAIR_PASSIVE_JOINING | SMD_PAIR_PASSIVE_IN)))
		return true;
	if (!(flags & SMD_PAIR_PINNED(peer_role)) && !self_blocking)
		return false;
	psock = smd_psock_of(state->sk[peer_role & 1]);
	if (!psock)
		return true;
	return !(flags & SMD_PAIR_RELEASED(peer_role)) && psock->refcnt.refs.counter == 1;
}

/*
 * Whether the redirect queue holds no message: the list itself, not msg_tot_len, which is only a byte count kept
 * beside it (a count that lagged the list would keep a drained socket in the sockhash for good).
 */
static __always_inline bool smd_ingress_empty(struct sk_psock *psock)
{
	__u64 head = (__u64)psock + bpf_core_field_offset(struct sk_psock, ingress_msg);

	return (__u64)psock->ingress_msg.next == head;
}

/*
 * Pins this socket's own direction to TCP and, once nothing redirected to it is unread (checked under its lock,
 * under which every redirect into it queues) or in flight, deletes it from the sockhash: from then on it is a
 * plain TCP socket. Returns whether it was released.
 */
static __always_inline bool smd_try_release(struct smd_sock_ctx *ctx, struct smd_pair_state *state,
					    struct sk_psock *psock, bool self_blocking)
{
	__u32 role = ctx->key.role & 1;

	ctx->flags |= SMD_CTX_TCP_PINNED;
	__sync_fetch_and_or(&state->flags, SMD_PAIR_PINNED(role));
	if (!smd_ingress_empty(psock) || !smd_peer_quiet(state, role ^ 1, self_blocking))
		return false;
	if (bpf_map_delete_elem(&smd_sockhash, &ctx->key))
		return false;
	__sync_fetch_and_or(&state->flags, SMD_PAIR_RELEASED(role));
	smd_count(SMD_CTR_SOCKETS_RELEASED, 1);
	return true;
}

#endif
