/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Map definitions shared by the sockops and sk_msg programs; the BPF linker merges the __weak copies. */
#ifndef SMD_MAPS_BPF_H
#define SMD_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sockmapd/shared.h"

/* Every socket in scope whose connection has a local peer, keyed by connection and role. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SMD_DEFAULT_MAX_SOCKETS);
	__type(key, struct smd_sock_key);
	__type(value, __u64);
} smd_sockhash SEC(".maps") __weak;

/* Connection state shared by both ends, keyed by connection. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMD_DEFAULT_MAX_SOCKETS);
	__type(key, struct smd_pair_key);
	__type(value, struct smd_pair_state);
} smd_pairs SEC(".maps") __weak;

/*
 * Client endpoints a local listener in scope has seen a SYN from. A plain hash, not an LRU: a full map refuses
 * new hints (counted) instead of evicting live ones at random, and the daemon deletes hints of handshakes that
 * never completed once they are older than --hint-max-age. Not preallocated: it is nearly empty outside bursts.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMD_DEFAULT_MAX_HINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct smd_hint_key);
	__type(value, struct smd_hint);
} smd_hints SEC(".maps") __weak;

/* Per-socket context read by sk_msg; freed by the kernel with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct smd_sock_ctx);
} smd_sk_ctx SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smd_counters);
} smd_counters SEC(".maps") __weak;

/* Written by user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smd_info);
} smd_info SEC(".maps") __weak;

/* Network namespace cookies of connections that just started to leave the redirect: wakes the daemon, which
 * runs the release iterator in those namespaces (release.bpf.c). Losing an event only delays a release: the
 * daemon also sweeps while any leaving connection is not yet released. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} smd_events SEC(".maps") __weak;

/* Redirect control: the drain switch (SMD_CONTROL_DRAIN, set by uninstall) and the backpressure limit; written by
 * user space only: every daemon start clears the drain flag and writes its --max-queued-bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smd_control);
} smd_control SEC(".maps") __weak;

/* The acceleration policy (shared.h, docs/policy.md). Written by user space, read at connection set-up only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smd_policy_ctl);
} smd_pol_ctl SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SMD_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct smd_policy_slot);
} smd_pol_slots SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SMD_POLICY_SLOTS << 16);
	__uint(map_flags, BPF_F_MMAPABLE); /* user space compares and writes the 2 x 64K masks in memory */
	__type(key, __u32);
	__type(value, __u64);
} smd_pol_ports SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMD_POLICY_SLOTS * SMD_POLICY_MAX_SELECTORS);
	__type(key, struct smd_policy_uid_key);
	__type(value, __u64);
} smd_pol_uids SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMD_POLICY_SLOTS * SMD_POLICY_MAX_SELECTORS);
	__type(key, struct smd_policy_cgroup_key);
	__type(value, __u64);
} smd_pol_cgroups SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SMD_POLICY_SLOTS * SMD_POLICY_MAX_SELECTORS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct smd_policy_cidr_key);
	__type(value, __u64);
} smd_pol_cidrs SEC(".maps") __weak;

/* For sockmapctl and metrics: rule names and a summary of their selectors. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SMD_POLICY_SLOTS * SMD_POLICY_MAX_RULES);
	__type(key, __u32);
	__type(value, struct smd_policy_rule);
} smd_pol_rules SEC(".maps") __weak;

/* Decisions per rule, indexed by slot * SMD_POLICY_HITS_PER_SLOT + rule (SMD_POLICY_DEFAULT_RULE: none matched). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SMD_POLICY_SLOTS * SMD_POLICY_HITS_PER_SLOT);
	__type(key, __u32);
	__type(value, __u64);
} smd_pol_hits SEC(".maps") __weak;

#endif
