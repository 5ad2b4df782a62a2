/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The acceleration policy on the BPF side: which rules one end of a connection satisfies, and the verdict for
 * a connection from both ends. Runs once per socket at establishment, never per message. docs/policy.md.
 */
#ifndef SMD_POLICY_BPF_H
#define SMD_POLICY_BPF_H

#include "smd.bpf.h"
#include "kernel.bpf.h"

/* The slot in force; user space flips it after writing the other slot completely. */
static __always_inline __u32 smd_policy_active_slot(void)
{
	__u32 zero = 0;
	struct smd_policy_ctl *ctl = bpf_map_lookup_elem(&smd_pol_ctl, &zero);

	return ctl ? ctl->active_slot & (SMD_POLICY_SLOTS - 1) : 0;
}

static __always_inline struct smd_policy_slot *smd_policy_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&smd_pol_slots, &slot);
}

/* Whether a connection matched against this slot can end up accelerated at all. */
static __always_inline bool smd_policy_may_accelerate(const struct smd_policy_slot *p)
{
	return p->default_action == SMD_ACTION_ACCELERATE || (p->rules & ~p->bypass);
}

static __always_inline __u64 smd_policy_port_rules(__u32 slot, __u32 port)
{
	__u32 index = SMD_POLICY_PORT_INDEX(slot, port & 0xffff);
	__u64 *rules = bpf_map_lookup_elem(&smd_pol_ports, &index);

	return rules ? *rules : 0;
}

static __always_inline __u64 smd_policy_uid_rules(__u32 slot, __u32 uid)
{
	struct smd_policy_uid_key key = {.uid = uid, .slot = slot};
	__u64 *rules = bpf_map_lookup_elem(&smd_pol_uids, &key);

	return rules ? *rules : 0;
}

/* Rules naming the socket's cgroup or one of its ancestors. */
static __always_inline __u64 smd_policy_cgroup_rules(__u32 slot, struct sock *sk)
{
	struct smd_policy_cgroup_key key = {.slot = slot};
	struct cgroup *cgrp = sk->sk_cgrp_data.cgroup;
	__u64 found = 0, *rules;

	for (int depth = 0; depth < SMD_POLICY_MAX_CGROUP_DEPTH && cgrp; depth++) {
		struct cgroup_subsys_state *parent;

		key.cgroup_id = cgrp->kn->id;
		rules = bpf_map_lookup_elem(&smd_pol_cgroups, &key);
		if (rules)
			found |= *rules;
		parent = cgrp->self.parent;
		if (!parent)
			break;
		cgrp = parent->cgroup;
	}
	return found;
}

static __always_inline __u64 smd_policy_cidr_rules(__u32 slot, const __u32 addr[4])
{
	struct smd_policy_cidr_key key = {.prefixlen = 8 + 128, .slot = (__u8)slot};
	__u64 *rules;

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	rules = bpf_map_lookup_elem(&smd_pol_cidrs, &key);
	return rules ? *rules : 0;
}

/* The peer address as IPv6 (IPv4 mapped), from values read out of the context beforehand (see
 * fill_hint_key in sockops.bpf.c: the verifier rejects a context read through a computed pointer). */
static __always_inline void smd_policy_peer_addr(__u32 family, __u32 ip4, const __u32 ip6[4], __u32 addr[4])
{
	if (family == SMD_AF_INET) {
		smd_v4_mapped(addr, ip4);
	} else {
		addr[0] = ip6[0];
		addr[1] = ip6[1];
		addr[2] = ip6[2];
		addr[3] = ip6[3];
	}
}

/* Which rules of the slot this established socket satisfies, per selector kind. */
static __always_inline void smd_policy_match_end(struct bpf_sock_ops *skops, __u32 slot,
						 const struct smd_policy_slot *p, struct smd_policy_match *m)
{
	__u32 ip6[4] = {skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3]};
	__u32 ip4 = skops->remote_ip4, family = skops->family;
	__u32 local_port = skops->local_port, remote_port = bpf_ntohl(skops->remote_port);
	__u64 uid_rules = p->any_uid, cgroup_rules = p->any_cgroup;
	__u32 addr[4];

	m->end = m->ports = m->cidrs = 0;
	if (!p->rules)
		return;
	if ((p->rules & ~p->any_uid) || (p->rules & ~p->any_cgroup)) {
		struct bpf_sock *bsk = skops->sk;
		struct sock *sk = bsk ? (struct sock *)bpf_skc_to_tcp_sock(bsk) : NULL;

		if (sk) {
			if (p->rules & ~p->any_uid)
				uid_rules |= smd_policy_uid_rules(slot, sk->sk_uid.val);
			if (p->rules & ~p->any_cgroup)
				cgroup_rules |= smd_policy_cgroup_rules(slot, sk);
		}
	}
	m->end = uid_rules & cgroup_rules;

	m->ports = p->any_port;
	if (p->rules & ~p->any_port)
		m->ports |= smd_policy_port_rules(slot, local_port) | smd_policy_port_rules(slot, remote_port);

	m->cidrs = p->any_cidr;
	if (p->rules & ~p->any_cidr) {
		smd_policy_peer_addr(family, ip4, ip6, addr);
		m->cidrs |= smd_policy_cidr_rules(slot, addr);
	}
}

/* Index of the lowest set bit of a non-zero mask: the first rule that matched. */
static __always_inline __u32 smd_first_rule(__u64 mask)
{
	__u32 index = 0;

	if (!(mask & 0xffffffffULL)) { index += 32; mask >>= 32; }
	if (!(mask & 0xffffULL)) { index += 16; mask >>= 16; }
	if (!(mask & 0xffULL)) { index += 8; mask >>= 8; }
	if (!(mask & 0xfULL)) { index += 4; mask >>= 4; }
	if (!(mask & 0x3ULL)) { index += 2; mask >>= 2; }
	if (!(mask & 0x1ULL))
		index += 1;
	return index;
}

static __always_inline void smd_policy_count_hit(__u32 slot, __u32 rule)
{
	__u32 index = slot * SMD_POLICY_HITS_PER_SLOT + rule;
	__u64 *hits = bpf_map_lookup_elem(&smd_pol_hits, &index);

	if (hits)
		*hits += 1;
}

/*
 * Whether the connecting end alone already decides its connection for bypass: it satisfies the policy's first rule,
 * and that rule says bypass. The accepting end's selectors can add rules to those matched but not take any away,
 * and no rule comes before the first, so smd_policy_decide() would return the same at the accepting end. Any other
 * case waits for both ends. Counts the rule, as smd_policy_decide() would.
 */
static __always_inline bool smd_policy_bypassed_at_connect(__u32 slot, const struct smd_policy_slot *p,
							    const struct smd_policy_match *a)
{
	__u64 matched = a->end & a->ports & a->cidrs & p->rules;
	__u32 first;

	if (!matched)
		return false;
	first = smd_first_rule(p->rules);
	if (!((matched >> first) & 1) || !((p->bypass >> first) & 1))
		return false;
	smd_policy_count_hit(slot, first);
	return true;
}

/* The connection's verdict from both ends (enum smd_action); counts the deciding rule. */
static __always_inline __u32 smd_policy_decide(__u32 slot, const struct smd_policy_slot *p,
					       const struct smd_policy_match *a, const struct smd_policy_match *b)
{
	__u64 matched = (a->end | b->end) & (a->ports | b->ports) & (a->cidrs | b->cidrs) & p->rules;
	__u32 rule;

	if (!matched) {
		smd_policy_count_hit(slot, SMD_POLICY_DEFAULT_RULE);
		return p->default_action;
	}
	rule = smd_first_rule(matched);
	smd_policy_count_hit(slot, rule);
	return (p->bypass >> rule) & 1 ? SMD_ACTION_BYPASS : SMD_ACTION_ACCELERATE;
}

#endif
