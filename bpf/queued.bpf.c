// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * queued: how many redirected bytes each socket in the sockhash holds unread, for /metrics and sockmapctl status.
 * Run by user space as an iter/tcp iterator in each network namespace that has sockets in the sockhash; the
 * iterator holds each socket's lock, under which every redirect into it queues, so each figure is exact when read.
 */
#include "release.bpf.h"


SEC("iter/tcp")
int smd_queued(struct bpf_iter__tcp *it)
{
	struct sock_common *skc = it->sk_common;
	struct smd_queued_record record = {};
	struct sk_psock *psock;
	struct tcp_sock *tp;

	if (!skc || !smd_backpressure_supported())
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp || !bpf_sk_storage_get(&smd_sk_ctx, tp, 0, 0))
		return 0; /* not a socket sockmapd inserted */
	psock = smd_psock_of((__u64)tp);
	if (!psock || smd_ingress_empty(psock))
		return 0; /* not in the sockhash any more, or nothing queued */
	record.queued_bytes = psock->msg_tot_len;
	bpf_seq_write(it->meta->seq, &record, sizeof(record));
	return 0;
}
