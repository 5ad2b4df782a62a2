/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Keys, values and constants shared by the BPF programs and the C++ user space: declared once, here. */
#ifndef SOCKMAPD_SHARED_H
#define SOCKMAPD_SHARED_H

#include <linux/types.h>

/* Bumped whenever a pinned map's key, value or meaning changes: a daemon refuses pins of another ABI. */
#define SMD_ABI_VERSION 1

/* Default sizes; the daemon may override max_entries before load. */
#define SMD_DEFAULT_MAX_SOCKETS 65536
#define SMD_DEFAULT_MAX_HINTS 16384

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

/* smd_pair_state.flags */
#define SMD_PAIR_ACTIVE_IN (1u << 0)  /* active socket is in the sockhash */
#define SMD_PAIR_PASSIVE_IN (1u << 1) /* passive socket is in the sockhash: the pair is complete */
#define SMD_PAIR_ACTIVE_CLOSED (1u << 2)
#define SMD_PAIR_PASSIVE_CLOSED (1u << 3)
#define SMD_PAIR_POISONED (1u << 4) /* two connections produced one key: never redirect under it */

/* One entry per connection whose active end is in the sockhash. */
struct smd_pair_state {
	__u64 cookie[2];     /* socket cookie by role, 0 until that end is inserted */
	__u64 created_ns;    /* bpf_ktime_get_ns() when the active end was inserted */
	__u32 flags;         /* SMD_PAIR_* */
	__u32 pad;
};

/* Per-socket context, in BPF socket storage; read by sk_msg on every send. */
#define SMD_CTX_TCP_PINNED (1u << 0) /* this direction used the TCP path once: never redirect again */

struct smd_sock_ctx {
	struct smd_sock_key key;
	__u64 redirected_bytes; /* bytes this socket sent through the redirect */
	__u64 redirected_msgs;
	__u64 passed_bytes;     /* bytes this socket sent on the TCP path while in the sockhash */
	__u32 flags;            /* SMD_CTX_* */
	__u32 pad;
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
	SMD_CTR_MAX,
};

struct smd_counters {
	__u64 value[SMD_CTR_MAX];
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

/* The one entry of smd_control: written by sockmapctl uninstall, read by sk_msg on every send. */
#define SMD_CONTROL_DRAIN (1u << 0) /* stop redirecting: every direction moves to TCP for good */

struct smd_control {
	__u32 flags; /* SMD_CONTROL_* */
	__u32 pad;
};

#endif /* SOCKMAPD_SHARED_H */
