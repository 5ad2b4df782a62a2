/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel structure fields the policy and the backpressure read, declared for CO-RE: libbpf relocates each access to the
 * running kernel's layout by name (preserve_access_index), so no vmlinux.h of the build machine is baked in.
 */
#ifndef SMD_KERNEL_BPF_H
#define SMD_KERNEL_BPF_H

#include <linux/types.h>

struct kernfs_node {
	__u64 id; /* the cgroup id user space sees as the directory's inode number */
} __attribute__((preserve_access_index));

struct cgroup;

struct cgroup_subsys_state {
	struct cgroup *cgroup;
	struct cgroup_subsys_state *parent;
} __attribute__((preserve_access_index));

struct cgroup {
	struct cgroup_subsys_state self;
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct sock_cgroup_data {
	struct cgroup *cgroup; /* cgroup v2 of the process that created the socket */
} __attribute__((preserve_access_index));

typedef struct {
	__u32 val;
} kuid_t;

struct file {
	unsigned int f_flags; /* O_NONBLOCK: reads never sleep */
} __attribute__((preserve_access_index));

struct socket {
	struct file *file;
} __attribute__((preserve_access_index));

/* Memory cgroup v1 TCP accounting (memory.kmem.tcp.*): what a redirect into a socket of the cgroup is charged to. */
struct page_counter {
	struct {
		long counter;
	} usage;                     /* pages charged */
	unsigned long max;           /* memory.kmem.tcp.limit_in_bytes, in pages */
	struct page_counter *parent; /* the parent cgroup's counter: a charge must fit at every level */
} __attribute__((preserve_access_index));

struct mem_cgroup {
	struct page_counter tcpmem;
	_Bool tcpmem_active; /* a v1 kmem.tcp limit was ever set: sockets of this cgroup are charged to tcpmem */
} __attribute__((preserve_access_index));

/* The protocol's operations and accounting; for TCP, tcp_prot (or tcp_bpf's copy of it while in a sockmap). */
struct proto {
	unsigned long *memory_pressure; /* &tcp_memory_pressure: non-zero while the node is under tcp_mem pressure */
} __attribute__((preserve_access_index));

struct sock_common {
	struct proto *skc_prot; /* sk->sk_prot */
} __attribute__((preserve_access_index));

/*
 * Any kernel struct whose first member is an unsigned long: bpf_rdonly_cast() needs a struct type to read a word
 * of kernel memory, and a load through a pointer to a plain integer member verifies only from 6.17 on.
 */
struct cpumask {
	unsigned long bits[1];
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct sock_cgroup_data sk_cgrp_data;
	int sk_rcvbuf;          /* receive buffer: what TCP lets a reader that does not read hold back */
	int sk_sndbuf;          /* send buffer: what TCP holds on the sender's side for a reader that does not read */
	int sk_rcvlowat;        /* SO_RCVLOWAT: written back unchanged to wake a released socket's reader */
	struct {
		struct {
			int counter;
		} rmem_alloc;   /* receive memory: TCP's queue, its backlog's bound counts it; the redirect queue too
				   (6.12 and 6.18 here) */
	} sk_backlog;
	__u8 sk_userlocks;      /* SOCK_RCVBUF_LOCK: the application set SO_RCVBUF (a bit field before 6.x) */
	kuid_t sk_uid;          /* owner; an accepted socket inherits the listener's */
	void *sk_user_data;     /* a socket in a sockmap: its struct sk_psock, flag bits in the low 3 bits */
	struct socket *sk_socket; /* NULL once the socket is orphaned */
	struct mem_cgroup *sk_memcg; /* NULL outside a memory cgroup that accounts socket memory */
} __attribute__((preserve_access_index));

/* Sequence numbers count TCP bytes only: redirected data never enters the TCP write or receive queue. */
struct tcp_sock {
	__u32 rcv_nxt;    /* receiver: next TCP byte expected; rcv_nxt != copied_seq: TCP bytes wait unread */
	__u32 rcv_wup;    /* receiver: rcv_nxt when the window was last advertised */
	__u32 rcv_wnd;    /* receiver: the window advertised then; the sender may send up to rcv_wup + rcv_wnd */
	__u32 copied_seq; /* receiver: next TCP byte the application will read */
	__u32 write_seq;  /* sender: next TCP byte the application will write */
	__u8 scaling_ratio; /* window / receive buffer in 256ths (6.6 and later): tcp_space_from_win() */
} __attribute__((preserve_access_index));

struct list_head {
	struct list_head *next;
} __attribute__((preserve_access_index));

/* The sockmap state of a socket (include/linux/skmsg.h). */
struct sk_psock {
	struct sock *sk;
	struct list_head ingress_msg; /* the redirect queue itself: empty when next points back at it */
	__u32 msg_tot_len; /* bytes in ingress_msg, the redirect queue the socket's reads drain first */
	struct {
		struct {
			int counter;
		} refs;
	} refcnt; /* 1 while the socket is in one map and idle; every sendmsg and recvmsg holds one more */
} __attribute__((preserve_access_index));

struct seq_file;

/* What an iterator program writes its output to (bpf_seq_write), read by user space from the iterator's fd. */
struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

/* The context of an iter/tcp program: one TCP socket of the iterator's network namespace, locked. */
struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

#endif
