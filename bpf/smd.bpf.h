/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Helpers shared by the sockmapd BPF programs: counters and key construction. */
#ifndef SMD_BPF_H
#define SMD_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <linux/errno.h>
#include <stdbool.h>
#include "maps.bpf.h"

#define SMD_AF_INET 2
#define SMD_AF_INET6 10

#ifdef SMD_DEBUG
#define smd_debug(fmt, ...) bpf_printk("smd: " fmt, ##__VA_ARGS__)
#else
#define smd_debug(fmt, ...) do { } while (0)
#endif

static __always_inline struct smd_counters *smd_counters_this_cpu(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&smd_counters, &zero);
}

static __always_inline void smd_count(enum smd_counter counter, __u64 n)
{
	struct smd_counters *ctrs = smd_counters_this_cpu();

	if (ctrs && counter < SMD_CTR_MAX)
		ctrs->value[counter] += n;
}

/*
 * Marks a connection leaving, with `also` set by the same fetch-or. The first mark counts `reason` and tells the
 * daemon on smd_events, which reads the pair table for new work only when told (src/bpf/release.cpp).
 */
static __always_inline void smd_mark_leaving(struct smd_pair_state *state, __u64 netns_cookie, __u32 also,
					     enum smd_counter reason)
{
	__u32 old = __sync_fetch_and_or(&state->flags, SMD_PAIR_LEAVING | also);

	if (!(old & SMD_PAIR_LEAVING)) {
		smd_count(reason, 1);
		bpf_ringbuf_output(&smd_events, &netns_cookie, sizeof(netns_cookie), 0);
	}
}

/* A message and its bytes with one map lookup: the per-message path counts two things every time. */
static __always_inline void smd_count_message(enum smd_counter messages, enum smd_counter bytes, __u64 size)
{
	struct smd_counters *ctrs = smd_counters_this_cpu();

	if (ctrs && messages < SMD_CTR_MAX && bytes < SMD_CTR_MAX) {
		ctrs->value[messages] += 1;
		ctrs->value[bytes] += size;
	}
}

static __always_inline void smd_v4_mapped(__u32 addr[4], __u32 ip4_be)
{
	addr[0] = 0;
	addr[1] = 0;
	addr[2] = bpf_htonl(0x0000ffff);
	addr[3] = ip4_be;
}

#endif
