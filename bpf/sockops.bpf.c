// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sock_ops: finds TCP connections whose two ends are local sockets in scope and puts both into the sockhash. */
#include "smd.bpf.h"
#include "release.bpf.h"
#include "policy.bpf.h"


static __always_inline void hint_key_for_syn(struct bpf_sock_ops *skops, struct smd_hint_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->netns_cookie = bpf_get_netns_cookie(skops);
	key->port = bpf_ntohl(skops->remote_port);
}

static __always_inline void copy_addr(__u32 to[4], const __u32 from[4])
{
	to[0] = from[0];
	to[1] = from[1];
	to[2] = from[2];
	to[3] = from[3];
}

/*
 * A listener in scope got a SYN. A request socket has no reliable family for IPv4 clients of a
 * dual-stack listener (it keeps the listener's AF_INET6 but only fills the IPv4 address), so an
 * IPv6 request records both readings; the wrong one names no real endpoint. Each entry names the
 * other as its partner, so the accepted socket deletes both. A full map refuses the hint: counted,
 * and that connection stays on TCP.
 */
static __always_inline void record_syn_hint(struct bpf_sock_ops *skops)
{
	struct smd_hint_key key;
	struct smd_hint hint = {};
	__u32 mapped[4], raw[4] = {skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2],
				   skops->remote_ip6[3]};
	long err;

	hint_key_for_syn(skops, &key);
	hint.syn_ns = bpf_ktime_get_ns() & ~SMD_HINT_DECIDED;
	smd_v4_mapped(mapped, skops->remote_ip4);
	copy_addr(key.addr, mapped);
	copy_addr(hint.partner, skops->family == SMD_AF_INET6 ? raw : mapped);
	err = bpf_map_update_elem(&smd_hints, &key, &hint, BPF_ANY);
	if (skops->family == SMD_AF_INET6) {
		copy_addr(key.addr, raw);
		copy_addr(hint.partner, mapped);
		err |= bpf_map_update_elem(&smd_hints, &key, &hint, BPF_ANY);
	}
	smd_count(SMD_CTR_SYN_HINTS, 1);
	if (err)
		smd_count(SMD_CTR_HINTS_FULL, 1);
}

/* Addresses and port read as plain values: the verifier rejects a context read through a pointer
 * the compiler picked between two fields, so every field is read unconditionally, then chosen. */
static __always_inline void fill_hint_key(struct smd_hint_key *key, __u32 family, __u32 ip4, const __u32 ip6[4],
					  __u16 port)
{
	if (family == SMD_AF_INET) {
		smd_v4_mapped(key->addr, ip4);
	} else {
		key->addr[0] = ip6[0];
		key->addr[1] = ip6[1];
		key->addr[2] = ip6[2];
		key->addr[3] = ip6[3];
	}
	key->port = port;
}

/* The client endpoint of an established socket, as the listener's SYN hint recorded it. */
static __always_inline void hint_key_for_active(struct bpf_sock_ops *skops, struct smd_hint_key *key)
{
	__u32 ip6[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3]};
	__u32 ip4 = skops->local_ip4;

	__builtin_memset(key, 0, sizeof(*key));
	key->netns_cookie = bpf_get_netns_cookie(skops);
	fill_hint_key(key, skops->family, ip4, ip6, skops->local_port);
}

static __always_inline void hint_key_for_passive(struct bpf_sock_ops *skops, struct smd_hint_key *key)
{
	__u32 ip6[4] = {skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3]};
	__u32 ip4 = skops->remote_ip4;

	__builtin_memset(key, 0, sizeof(*key));
	key->netns_cookie = bpf_get_netns_cookie(skops);
	fill_hint_key(key, skops->family, ip4, ip6, bpf_ntohl(skops->remote_port));
}

/* The socket's kernel address, for the backpressure reads of its peer's sk_msg (backpressure.bpf.h). */
static __always_inline __u64 sock_address(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;

	return sk ? (__u64)bpf_skc_to_tcp_sock(sk) : 0;
}

static __always_inline void count_insert_failure(long err)
{
	if (err == -E2BIG || err == -ENOMEM || err == -ENOSPC)
		smd_count(SMD_CTR_INSERT_FAIL_FULL, 1);
	else
		smd_count(SMD_CTR_INSERT_FAIL_REFUSED, 1);
}

/*
 * Give the socket its context and put it into the sockhash. The context goes first: once the socket
 * is in the map, sk_msg runs on its next send and needs it.
 */
static __always_inline int insert_socket(struct bpf_sock_ops *skops, const struct smd_sock_key *key, __u32 ctx_flags)
{
	struct bpf_sock *sk = skops->sk;
	struct smd_sock_ctx *ctx;
	long err;

	if (!sk)
		return -1;
	ctx = bpf_sk_storage_get(&smd_sk_ctx, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ctx) {
		smd_count(SMD_CTR_INSERT_FAIL_FULL, 1);
		return -1;
	}
	__builtin_memset(ctx, 0, sizeof(*ctx));
	ctx->key = *key;
	ctx->flags = ctx_flags;
	if (smd_backpressure_supported())
		ctx->tcp_pressure_at = smd_tcp_pressure_address(sock_address(skops));

	err = bpf_sock_hash_update(skops, &smd_sockhash, (void *)key, BPF_NOEXIST);
	if (err) {
		count_insert_failure(err);
		bpf_sk_storage_delete(&smd_sk_ctx, sk);
		return -1;
	}
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	smd_count(SMD_CTR_SOCKETS_INSERTED, 1);
	return 0;
}

/*
 * The policy bypassed this connection at its connecting end, which stays out of the sockhash. The decision is counted
 * here; the mark on the hint keeps the accepting end, which will find no pair entry, from counting it as not local.
 */
static __always_inline void bypassed_at_connect(struct smd_hint *found)
{
	__sync_fetch_and_or(&found->syn_ns, SMD_HINT_DECIDED);
	smd_count(SMD_CTR_POLICY_BYPASSED, 1);
}

/* connect() completed: join the sockhash if a local listener in scope saw our SYN. */
static __always_inline void on_active_established(struct bpf_sock_ops *skops)
{
	struct smd_hint_key hint;
	struct smd_hint *found;
	struct smd_sock_key key = {};
	struct smd_pair_state state = {}, *existing;
	struct smd_policy_slot *policy;
	__u32 ctx_flags = 0, slot;
	long err;

	hint_key_for_active(skops, &hint);
	found = bpf_map_lookup_elem(&smd_hints, &hint);
	if (!found) {
		smd_count(SMD_CTR_SKIP_NOT_LOCAL, 1);
		return;
	}
	/* A blocking socket would see EAGAIN where TCP sleeps (backpressure.bpf.h, smd_blocking): stay on TCP. */
	if (smd_backpressure_supported() && smd_blocking(sock_address(skops))) {
		smd_count(SMD_CTR_SKIPPED_BLOCKING, 1);
		return;
	}

	slot = smd_policy_active_slot();
	policy = smd_policy_slot(slot);
	if (!policy)
		return;
	if (!smd_policy_may_accelerate(policy) && !policy->rules) {
		/* Nothing can be accelerated: do not even enter the sockhash. */
		smd_policy_count_hit(slot, SMD_POLICY_DEFAULT_RULE);
		bypassed_at_connect(found);
		return;
	}

	key.pair.netns_cookie = hint.netns_cookie;
	key.pair.active_seq = skops->snd_una;
	key.pair.passive_seq = skops->rcv_nxt;
	key.pair.active_port = skops->local_port;
	key.role = SMD_ROLE_ACTIVE;

	state.cookie[SMD_ROLE_ACTIVE] = bpf_get_socket_cookie(skops);
	state.sk[SMD_ROLE_ACTIVE] = sock_address(skops);
	state.created_ns = bpf_ktime_get_ns();
	state.policy_slot = slot;
	smd_policy_match_end(skops, slot, policy, &state.active_match);
	/* Entering the sockhash and leaving it again costs most of what pairing costs: skip it when this end decides. */
	if (smd_policy_bypassed_at_connect(slot, policy, &state.active_match)) {
		bypassed_at_connect(found);
		return;
	}
	err = bpf_map_update_elem(&smd_pairs, &key.pair, &state, BPF_NOEXIST);
	if (err == -EEXIST) {
		/* Another live connection has this key: neither may ever be paired under it. */
		existing = bpf_map_lookup_elem(&smd_pairs, &key.pair);
		if (existing)
			__sync_fetch_and_or(&existing->flags, SMD_PAIR_POISONED);
		smd_count(SMD_CTR_KEY_COLLISION, 1);
		return;
	}
	if (err) {
		smd_count(SMD_CTR_INSERT_FAIL_FULL, 1);
		return;
	}

	/* Data sent with the SYN (TCP Fast Open) went the TCP way: that direction must stay on TCP. */
	if (skops->data_segs_out) {
		ctx_flags |= SMD_CTX_TCP_PINNED;
		smd_count(SMD_CTR_EARLY_DATA, 1);
	}
	if (insert_socket(skops, &key, ctx_flags)) {
		bpf_map_delete_elem(&smd_pairs, &key.pair);
		return;
	}
	existing = bpf_map_lookup_elem(&smd_pairs, &key.pair);
	if (existing)
		__sync_fetch_and_or(&existing->flags, SMD_PAIR_ACTIVE_IN);
}

/*
 * The passive end will not join: the active end leaves the sockhash again, and the connection is plain TCP. Nothing
 * was redirected into the active end (its peer was never inserted), so no data can be lost by removing it; left
 * alone there, it would read its TCP bytes with FIONREAD counting only its empty redirect queue.
 */
static __always_inline void unpair_alone(const struct smd_sock_key *passive)
{
	struct smd_sock_key active = *passive;

	active.role = SMD_ROLE_ACTIVE;
	bpf_map_delete_elem(&smd_sockhash, &active);
	bpf_map_delete_elem(&smd_pairs, &passive->pair);
}

/* Both ends are known now: ask the policy. */
static __always_inline bool policy_bypasses(struct bpf_sock_ops *skops, struct smd_pair_state *state,
					    const struct smd_sock_key *passive)
{
	struct smd_policy_match active_match = state->active_match, passive_match;
	__u32 slot = state->policy_slot & (SMD_POLICY_SLOTS - 1);
	struct smd_policy_slot *policy = smd_policy_slot(slot);

	if (!policy)
		return false;
	smd_policy_match_end(skops, slot, policy, &passive_match);
	if (smd_policy_decide(slot, policy, &active_match, &passive_match) == SMD_ACTION_ACCELERATE)
		return false;

	unpair_alone(passive);
	smd_count(SMD_CTR_POLICY_BYPASSED, 1);
	return true;
}

/*
 * The handshake completed: its hint, and the other reading of a dual-stack request, are no longer needed. Returns
 * whether a connecting end marked it decided (SMD_HINT_DECIDED): only for counting.
 */
static __always_inline bool forget_syn_hint(const struct smd_hint_key *key)
{
	struct smd_hint_key partner = *key;
	struct smd_hint *hint = bpf_map_lookup_elem(&smd_hints, key);
	bool decided;

	if (!hint)
		return false;
	decided = hint->syn_ns & SMD_HINT_DECIDED;
	copy_addr(partner.addr, hint->partner);
	bpf_map_delete_elem(&smd_hints, key);
	if (partner.addr[0] != key->addr[0] || partner.addr[1] != key->addr[1] || partner.addr[2] != key->addr[2] ||
	    partner.addr[3] != key->addr[3])
		bpf_map_delete_elem(&smd_hints, &partner);
	return decided;
}

/* accept() side established: join the sockhash if the active end of this connection is in it. */
static __always_inline void on_passive_established(struct bpf_sock_ops *skops)
{
	struct smd_hint_key hint;
	struct smd_sock_key key = {};
	struct smd_pair_state *state;
	bool decided;
	__u32 flags;

	hint_key_for_passive(skops, &hint);
	decided = forget_syn_hint(&hint);

	key.pair.netns_cookie = hint.netns_cookie;
	key.pair.active_seq = skops->rcv_nxt;
	key.pair.passive_seq = skops->snd_una;
	key.pair.active_port = hint.port;
	key.role = SMD_ROLE_PASSIVE;

	/* The pair entry decides, never the hint: another handshake from the same client endpoint may have marked it. */
	state = bpf_map_lookup_elem(&smd_pairs, &key.pair);
	if (!state) {
		if (!decided) /* else bypassed at the connecting end, and counted there */
			smd_count(SMD_CTR_SKIP_NOT_LOCAL, 1);
		return;
	}
	flags = state->flags;
	if ((flags & (SMD_PAIR_POISONED | SMD_PAIR_ACTIVE_CLOSED | SMD_PAIR_PASSIVE_IN)) ||
	    !(flags & SMD_PAIR_ACTIVE_IN))
		return;
	if (policy_bypasses(skops, state, &key))
		return;
	if (skops->bytes_received)
		smd_count(SMD_CTR_EARLY_DATA, 1);

	/* A pair that left before this end began to join goes on without it (SMD_PAIR_PASSIVE_JOINING). */
	if (__sync_fetch_and_or(&state->flags, SMD_PAIR_PASSIVE_JOINING) & SMD_PAIR_LEAVING)
		return;
	/* Before the insertion: the active end's first redirect may look for it at once. */
	state->sk[SMD_ROLE_PASSIVE] = sock_address(skops);
	if (insert_socket(skops, &key, 0)) {
		unpair_alone(&key);
		return;
	}
	state->cookie[SMD_ROLE_PASSIVE] = bpf_get_socket_cookie(skops);
	__sync_fetch_and_or(&state->flags, SMD_PAIR_PASSIVE_IN);
	smd_count(SMD_CTR_PAIRS_MADE, 1);
	smd_debug("paired port %u", key.pair.active_port);
}

/*
 * ESTABLISHED or CLOSE_WAIT straight to CLOSE: this end sent a reset (an abortive close) or got one. A reset to a
 * peer whose reader holds its socket lock, with more redirected data queued than its socket backlog allows beside
 * it, is dropped (tcp_add_backlog()), and nothing sends it again: the peer would wait forever (docs/design.md,
 * "A reset the reader missed"). A normal close passes through FIN_WAIT or LAST_ACK.
 */
static __always_inline bool reset_sent(__u64 old_state)
{
	return old_state == BPF_TCP_ESTABLISHED || old_state == BPF_TCP_CLOSE_WAIT;
}

/* The kernel drops a closing socket from the sockhash itself; the pair entry goes with its last end. */
static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct smd_sock_ctx *ctx;
	struct smd_pair_state *state;
	struct bpf_sock *sk = skops->sk;
	__u32 closed_bit, old, now;

	if (!sk)
		return;
	ctx = bpf_sk_storage_get(&smd_sk_ctx, sk, 0, 0);
	if (!ctx)
		return;
	state = bpf_map_lookup_elem(&smd_pairs, &ctx->key.pair);
	if (!state)
		return;
	closed_bit = ctx->key.role == SMD_ROLE_ACTIVE ? SMD_PAIR_ACTIVE_CLOSED : SMD_PAIR_PASSIVE_CLOSED;
	if (reset_sent(skops->args[0]) && smd_pair_end_in_sockhash(state->flags, ctx->key.role ^ 1)) {
		/* Before the closed bit: a sweep that sees this end closed already sees the reset too. */
		old = __sync_fetch_and_or(&state->flags, SMD_PAIR_RESET(ctx->key.role & 1) | SMD_PAIR_LEAVING);
		if (!(old & SMD_PAIR_LEAVING))
			smd_count(SMD_CTR_LEFT_OTHER, 1);
		bpf_ringbuf_output(&smd_events, &ctx->key.pair.netns_cookie, sizeof(__u64), 0);
	}
	old = __sync_fetch_and_or(&state->flags, closed_bit);
	if (old & closed_bit)
		return;
	now = old | closed_bit;
	if ((now & SMD_PAIR_ACTIVE_CLOSED) && (now & SMD_PAIR_PASSIVE_CLOSED)) {
		bpf_map_delete_elem(&smd_pairs, &ctx->key.pair);
		smd_count(SMD_CTR_PAIRS_CLOSED, 1);
	} else if (ctx->key.role == SMD_ROLE_ACTIVE && !(now & SMD_PAIR_PASSIVE_IN)) {
		/* Never paired: no passive end will come to clean up. */
		bpf_map_delete_elem(&smd_pairs, &ctx->key.pair);
	}
}

/*
 * A blocking socket shuts down its sending side (FIN_WAIT1), typically to block in recv() for a reply next. In the
 * sockhash that recv() would return EAGAIN at the first wake-up without data -- the ACK of this very FIN is one
 * -- so the socket leaves the sockhash here, inside shutdown(), if nothing redirected to it is unread or in flight.
 */
static __always_inline void release_blocking_on_shutdown(struct bpf_sock_ops *skops)
{
	struct smd_pair_state *state;
	struct smd_sock_ctx *ctx;
	struct sk_psock *psock;
	__u64 self;

	if (!smd_backpressure_supported() || !skops->sk)
		return;
	ctx = bpf_sk_storage_get(&smd_sk_ctx, skops->sk, 0, 0);
	self = sock_address(skops);
	if (!ctx || !smd_blocking(self))
		return;
	psock = smd_psock_of(self);
	state = bpf_map_lookup_elem(&smd_pairs, &ctx->key.pair);
	if (!psock || !state)
		return;
	smd_mark_leaving(state, ctx->key.pair.netns_cookie, 0, SMD_CTR_LEFT_BLOCKING_READER);
	smd_try_release(ctx, state, psock, true);
}

SEC("sockops")
int smd_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_RWND_INIT:
		/* Called for the request socket of every SYN a listener accepts, syncookies included. */
		if (!skops->is_fullsock)
			record_syn_hint(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		else if (skops->args[1] == BPF_TCP_FIN_WAIT1)
			release_blocking_on_shutdown(skops);
		break;
	}
	return 1;
}
