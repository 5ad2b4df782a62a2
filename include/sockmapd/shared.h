/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Keys, values and constants shared by the BPF programs and the C++ user space: declared once, here. */
#ifndef SOCKMAPD_SHARED_H
#define SOCKMAPD_SHARED_H

#include <linux/types.h>

/* Bumped whenever a pinned map's key, value or meaning changes: a daemon refuses pins of another ABI. */
#define SMD_ABI_VERSION 5

/* Default sizes; the daemon may override max_entries before load. */
#define SMD_DEFAULT_MAX_SOCKETS 65536
#define SMD_DEFAULT_MAX_HINTS 16384
/* Hints older than this are deleted by the daemon: the handshake that recorded them did not complete. */
#define SMD_DEFAULT_HINT_MAX_AGE_S 30

/* Which end of a TCP connection a socket is. */
enum smd_role {
	SMD_ROLE_ACTIVE = 0,  /* called connect() */
	SMD_ROLE_PASSIVE = 1, /* returned by accept() */
};

/*
 * Identifies one TCP connection from either end, through DNAT/REDIRECT. NAT rewrites addresses, never
 * sequence numbers, and REDIRECT leaves the connecting side's port alone, so both sockets compute
 * the same key. All fields are host byte order.
 */
struct smd_pair_key {
	__u64 netns_cookie; /* both ends must live in one network namespace */
	__u32 active_seq;   /* first sequence number after the active side's SYN */
	__u32 passive_seq;  /* first sequence number after the passive side's SYN-ACK */
	__u16 active_port;  /* the connecting socket's local port */
	__u16 pad0;
	__u32 pad1;
};

/* A socket's key in the sockhash: its connection plus which end it is. */
struct smd_sock_key {
	struct smd_pair_key pair;
	__u32 role; /* enum smd_role */
	__u32 pad;
};

/*
 * Written when a listener in scope receives a SYN: "a local passive end exists for this client
 * endpoint". The active side only enters the sockhash if it finds one, so connections to remote
 * peers never pay for the sk_msg path. A hint may collide; it never decides a pairing.
 */
struct smd_hint_key {
	__u64 netns_cookie;
	__u32 addr[4]; /* client address as IPv6; IPv4 as ::ffff:a.b.c.d, network byte order */
	__u16 port;    /* client port, host byte order */
	__u16 pad0;
	__u32 pad1;
};

/*
 * smd_hints value. A dual-stack listener's request socket gets two entries (sockops.bpf.c, record_syn_hint);
 * each names the other's address, so that the accepted socket, which knows only the right one, deletes both.
 */
struct smd_hint {
	__u64 syn_ns;       /* bpf_ktime_get_ns() of the SYN with bit 0 clear: the daemon deletes hints older than
	                       --hint-max-age; bit 0 is SMD_HINT_DECIDED */
	__u32 partner[4];   /* the other entry's addr, or this entry's own for a single-entry hint */
};

/*
 * smd_hint.syn_ns bit 0: the connecting end found this hint and the policy bypassed its connection right there (it
 * never entered the sockhash). It only keeps the accepting end, which then finds no pair entry, from counting the
 * connection as skipped_not_local; whether it pairs is still decided by the pair entry alone. Set by sock_ops; a
 * sockmapd before it never sets it, and reads syn_ns as a time, 1 ns off (and a hint it wrote with an odd time
 * only changes that count).
 */
#define SMD_HINT_DECIDED 1ull

/* smd_pair_state.flags */
#define SMD_PAIR_ACTIVE_IN (1u << 0)  /* active socket is in the sockhash */
#define SMD_PAIR_PASSIVE_IN (1u << 1) /* passive socket is in the sockhash: the pair is complete */
#define SMD_PAIR_ACTIVE_CLOSED (1u << 2)
#define SMD_PAIR_PASSIVE_CLOSED (1u << 3)
#define SMD_PAIR_POISONED (1u << 4) /* two connections produced one key: never redirect under it */
/*
 * The connection leaves the redirect for good (docs/design.md, "A direction's life"): both directions move to
 * TCP, and each socket is taken out of the sockhash (released) once nothing redirected to it is left unread or
 * in flight, so that from then on every socket operation is plain TCP's.
 */
#define SMD_PAIR_LEAVING (1u << 5)
#define SMD_PAIR_PINNED(role) (1u << (6 + (role)))   /* that end's own sends go by TCP from now on */
#define SMD_PAIR_RELEASED(role) (1u << (8 + (role))) /* that end was taken out of the sockhash */
/*
 * That end closed with a reset (ESTABLISHED or CLOSE_WAIT straight to CLOSE) while the other was in the sockhash:
 * the reset may have been dropped at the other's socket backlog (docs/design.md, "A reset the reader missed"), so
 * the release iterator has the other end probe it (keepalive), and the reset comes again.
 */
#define SMD_PAIR_RESET(role) (1u << (10 + (role)))
/*
 * That end's redirect queue outgrew half its socket backlog bound: the release iterator raises its SO_RCVBUF, as
 * TCP's receive-buffer tuning would for a reader that keeps this much in flight, so that what arrives by TCP while
 * its reader copies (a FIN, a RST) is not dropped (docs/design.md, "Room in the backlog"). Cleared when done.
 */
#define SMD_PAIR_GROW(role) (1u << (12 + (role)))
/*
 * The passive end began to join (set by its sock_ops before its insertion, with one fetch-or that also reads
 * SMD_PAIR_LEAVING). A pair that was leaving first never gets its passive end, so an entry read with leaving set and
 * neither this nor SMD_PAIR_PASSIVE_IN never will: its active end leaves without waiting (release.bpf.h).
 */
#define SMD_PAIR_PASSIVE_JOINING (1u << 14)
/*
 * An active end whose passive end has not begun to join this long after its insertion never gets one (its hint was
 * another handshake's, its peer is out of scope, or the daemon stopped in between): the release iterator has it
 * leave. A passive end that comes later is refused and its connection stays plain TCP.
 */
#define SMD_LONE_ACTIVE_NS 1000000000ull
#define SMD_PAIR_CLOSED(role) ((role) == SMD_ROLE_ACTIVE ? SMD_PAIR_ACTIVE_CLOSED : SMD_PAIR_PASSIVE_CLOSED)

/* Whether that end is in the sockhash by the pair's flags: inserted, and neither released nor closed since. */
static inline int smd_pair_end_in_sockhash(__u32 flags, __u32 role)
{
	__u32 in = role == SMD_ROLE_ACTIVE ? SMD_PAIR_ACTIVE_IN : SMD_PAIR_PASSIVE_IN;

	return (flags & in) && !(flags & SMD_PAIR_RELEASED(role & 1)) && !(flags & SMD_PAIR_CLOSED(role));
}

/*
 * Which policy rules one end of a connection satisfies, one bit per rule (bit i = rule i), by selector kind.
 * The connection's rules are (end_a | end_p) & (ports_a | ports_p) & (cidrs_a | cidrs_p): see docs/policy.md.
 */
struct smd_policy_match {
	__u64 end;   /* rules whose uid and cgroup selectors this socket satisfies */
	__u64 ports; /* rules listing this socket's local or remote port */
	__u64 cidrs; /* rules listing a network that holds this socket's peer address */
};

/* One entry per connection whose active end is in the sockhash. */
struct smd_pair_state {
	__u64 cookie[2];     /* socket cookie by role, 0 until that end is inserted */
	__u64 created_ns;    /* bpf_ktime_get_ns() when the active end was inserted */
	__u32 flags;         /* SMD_PAIR_* */
	__u32 policy_slot;   /* the policy slot the active end was matched against */
	struct smd_policy_match active_match;
	__u64 sk[2];         /* kernel address of each end's struct sock by role, 0 until inserted: sk_msg reads
	                        the receiver's redirect queue through it (never dereferenced by user space) */
};

/* Per-socket context, in BPF socket storage; read by sk_msg on every send. */
#define SMD_CTX_TCP_PINNED (1u << 0)   /* this direction used the TCP path once: never redirect again */
#define SMD_CTX_PROBING (1u << 1)      /* the peer reset; keepalive probes it until the reset arrives */

/* What one queued sk_msg costs the receiver's node besides its payload (struct sk_msg, from kmalloc-1k). */
#define SMD_MSG_OVERHEAD 1024

struct smd_sock_ctx {
	struct smd_sock_key key;
	__u64 redirected_bytes; /* bytes this socket sent through the redirect */
	__u64 redirected_msgs;
	__u64 passed_bytes;     /* bytes this socket sent on the TCP path while in the sockhash */
	__u32 flags;            /* SMD_CTX_* */
	__u32 queue_cap;        /* how much this direction may leave unread in the receiver; grows like a TCP
	                           receive buffer as the receiver reads (backpressure.bpf.h) */
	__u64 peer_sk;          /* the peer's smd_pair_state.sk, cached by sk_msg once known */
	__u64 read_at_growth;   /* bytes the receiver had read of this direction when queue_cap last grew */
	__u64 tcp_pressure_at;  /* kernel address of the node's TCP memory pressure flag (this socket's
	                           sk_prot->memory_pressure, &tcp_memory_pressure), stored by sock_ops; 0: unknown */
};

/*
 * One record of the smd_queued iterator (bpf/queued.bpf.c): a socket in the sockhash whose redirect queue holds
 * bytes its reader has not read. Not a map value: read by user space from the iterator, never pinned.
 */
struct smd_queued_record {
	__u64 queued_bytes; /* the socket's psock msg_tot_len, read under its lock */
};

/* Per-CPU counters, indexes into smd_counters.value[]. Keep names in counters.cpp in the same order. */
enum smd_counter {
	SMD_CTR_SYN_HINTS = 0,         /* SYNs seen by listeners in scope */
	SMD_CTR_SKIP_NOT_LOCAL,        /* established sockets whose peer is not a local socket in scope */
	SMD_CTR_SOCKETS_INSERTED,      /* sockets put into the sockhash */
	SMD_CTR_PAIRS_MADE,            /* connections with both ends in the sockhash */
	SMD_CTR_MSGS_REDIRECTED,       /* sk_msg verdicts redirected to the peer */
	SMD_CTR_BYTES_REDIRECTED,      /* bytes in those messages */
	SMD_CTR_FALLBACK_NO_PEER,      /* message passed to TCP: peer not (or no longer) in the sockhash */
	SMD_CTR_FALLBACK_PINNED,       /* message passed to TCP: its direction used TCP before */
	SMD_CTR_FALLBACK_NO_CTX,       /* message passed to TCP: socket has no sockmapd context */
	SMD_CTR_FALLBACK_BYTES,        /* bytes in all passed messages */
	SMD_CTR_EARLY_DATA,            /* connections that sent data before insertion (TCP Fast Open) */
	SMD_CTR_INSERT_FAIL_FULL,      /* sockhash or pair table full */
	SMD_CTR_INSERT_FAIL_REFUSED,   /* kernel refused the socket (ULP, state, ...) */
	SMD_CTR_KEY_COLLISION,         /* two connections produced one pair key */
	SMD_CTR_PAIRS_CLOSED,          /* pair entries removed after both ends closed */
	SMD_CTR_POLICY_BYPASSED,       /* local connections the policy kept on TCP */
	SMD_CTR_FALLBACK_BACKPRESSURE, /* message passed to TCP for memory: queue cap, memcg, TCP memory pressure */
	SMD_CTR_LEFT_BACKPRESSURE,     /* connections that left the redirect: a receiver fell behind its queue cap */
	SMD_CTR_HINTS_FULL,            /* SYNs whose hint could not be recorded: smd_hints full */
	SMD_CTR_LEFT_BLOCKING_READER,  /* connections that left the redirect: an end is a blocking socket */
	SMD_CTR_LEFT_OTHER,            /* connections that left the redirect: uninstall drain, or a peer gone */
	SMD_CTR_SKIPPED_BLOCKING,      /* connections never paired: the connecting socket is blocking */
	SMD_CTR_SOCKETS_RELEASED,      /* sockets taken out of the sockhash once nothing to them was unread */
	SMD_CTR_RELEASE_WAKEUPS,       /* released sockets with TCP bytes waiting whose readers were woken */
	SMD_CTR_LEFT_MEMCG,            /* connections that left the redirect: the receiver's memory cgroup was nearly full */
	SMD_CTR_LEFT_TCP_PRESSURE,     /* connections that left the redirect: the node was under TCP memory pressure */
	SMD_CTR_MAX,
};

struct smd_counters {
	__u64 value[SMD_CTR_MAX];
};

/*
 * The acceleration policy, compiled by the daemon into maps (docs/policy.md). Two slots: the daemon writes
 * the slot not in force, then flips smd_pol_ctl.active_slot, so no connection sees a half-written policy.
 */
#define SMD_POLICY_SLOTS 2
#define SMD_POLICY_MAX_RULES 64
#define SMD_POLICY_DEFAULT_RULE SMD_POLICY_MAX_RULES /* hit index of "no rule matched" */
#define SMD_POLICY_HITS_PER_SLOT (SMD_POLICY_MAX_RULES + 1)
#define SMD_POLICY_MAX_SELECTORS 1024 /* uids, cgroups, cidrs: entries per slot, each */
#define SMD_POLICY_MAX_CGROUP_DEPTH 32  /* cgroup ancestors a socket's cgroup is matched through */

enum smd_action {
	SMD_ACTION_ACCELERATE = 0,
	SMD_ACTION_BYPASS = 1,
};

/* smd_pol_slots value: the rule masks that need no lookup. */
struct smd_policy_slot {
	__u64 rules;      /* bit i: rule i exists */
	__u64 bypass;     /* bit i: rule i's action is bypass */
	__u64 any_uid;    /* bit i: rule i has no uid selector */
	__u64 any_cgroup; /* ... no cgroup selector */
	__u64 any_port;   /* ... no ports selector */
	__u64 any_cidr;   /* ... no cidrs selector */
	__u32 default_action; /* enum smd_action */
	__u32 pad;
};

/* smd_pol_uids key; value: __u64 mask of rules listing the uid. */
struct smd_policy_uid_key {
	__u32 uid;
	__u32 slot;
};

/* smd_pol_cgroups key; value: __u64 mask of rules listing the cgroup (matched with its subtree). */
struct smd_policy_cgroup_key {
	__u64 cgroup_id;
	__u32 slot;
	__u32 pad;
};

/* smd_pol_cidrs (LPM trie) key: the slot byte, then the address as IPv6 (IPv4 mapped). Value: __u64 mask
 * of rules with a network holding the prefix -- including shorter networks, since a lookup sees only the
 * longest match. */
struct smd_policy_cidr_key {
	__u32 prefixlen; /* 8 (slot) + address bits */
	__u8 slot;
	__u8 addr[16];
	__u8 pad[3];
};

/* smd_pol_ports: an array indexed by slot << 16 | port; value: __u64 mask of rules listing the port. */
#define SMD_POLICY_PORT_INDEX(slot, port) (((__u32)(slot) << 16) | (__u32)(port))

/* smd_pol_rules value, indexed by slot * SMD_POLICY_MAX_RULES + rule: for sockmapctl and metrics only. */
#define SMD_POLICY_NAME_MAX 64
#define SMD_POLICY_SELECTORS_MAX 192

struct smd_policy_rule {
	char name[SMD_POLICY_NAME_MAX];
	char selectors[SMD_POLICY_SELECTORS_MAX]; /* human-readable summary, truncated */
	__u32 action;                             /* enum smd_action */
	__u32 pad;
};

/* The one entry of smd_pol_ctl: which slot is in force, and where it came from. */
#define SMD_POLICY_SOURCE_MAX 256

struct smd_policy_ctl {
	__u32 active_slot; /* read by sock_ops at every decision; written last by the daemon */
	__u32 generation;  /* policies loaded since the maps were created */
	__u64 loaded_unix; /* when the policy in force was loaded */
	__u32 nrules;
	__u32 pad;
	char source[SMD_POLICY_SOURCE_MAX]; /* the policy file, "" for the built-in default */
	char sha256[65];                    /* hex digest of its bytes */
	char pad2[7];
};

/* The one entry of smd_info: who runs the data path, for sockmapctl. */
#define SMD_INFO_PATH_MAX 256
#define SMD_INFO_VERSION_MAX 32

struct smd_info {
	__u32 abi;           /* SMD_ABI_VERSION of the daemon that last started */
	__u32 daemon_pid;    /* 0 when no daemon runs */
	__u64 started_unix;  /* seconds since the epoch */
	__u64 cgroup_id;
	char cgroup_path[SMD_INFO_PATH_MAX];
	char version[SMD_INFO_VERSION_MAX];
};

/* The one entry of smd_control: written by the daemon and sockmapctl uninstall, read by sk_msg on every send. */
#define SMD_CONTROL_DRAIN (1u << 0) /* stop redirecting: every direction moves to TCP for good */
/* raise a receiver's receive buffer as its redirect queue grows (SMD_PAIR_GROW; --raise-receive-buffers) */
#define SMD_CONTROL_RAISE_RCVBUF (1u << 1)

struct smd_control {
	__u32 flags; /* SMD_CONTROL_* */
	__u32 pad;
	/* Every direction's first queue cap (unread redirected bytes, payload plus SMD_MSG_OVERHEAD per message)
	 * and the least it may grow to; 0: the TCP-like first cap (backpressure.bpf.h). */
	__u64 max_queued_bytes;
	/* net.ipv4.tcp_rmem's maximum: a queue cap grows up to it as a TCP receive buffer would. */
	__u64 rmem_max;
	/* net.ipv4.tcp_wmem's maximum: what a TCP sender buffers for a reader that stopped, which the first queue
	 * cap is sized against. */
	__u64 wmem_max;
};

#endif /* SOCKMAPD_SHARED_H */
