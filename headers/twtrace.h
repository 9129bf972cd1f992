/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The event ABI shared by every twtrace BPF program and, through bpf2go's
 * generated types, by the Go consumer. This is the only place the layout is
 * written down: change it here and run `make generate`.
 *
 * Rules: fixed-size fields only, no pointers (kernel addresses would be __u64),
 * explicit padding so that the C and Go layouts cannot disagree.
 */
#ifndef TWTRACE_H
#define TWTRACE_H

/* Sizes of the ABI's arrays: an enum, so that bpf2go generates them for Go. */
enum tw_limit {
	TW_COMM_LEN = 16,  /* TASK_COMM_LEN */
	TW_MAX_PORTS = 16, /* ports the in-kernel filter holds */
	TW_MAX_UIDS = 8,   /* uids the in-kernel filter holds */
	TW_STATES = 16,    /* TCP states are 1..13: aggregates are indexed by state & 15 */
	TW_LOG2_SLOTS = 64, /* time-in-state histogram slots: slot s holds 2^(s-1) < ns <= 2^s */
};

/* Event kinds: the first byte of every record in the ring buffer. */
enum tw_kind {
	TW_KIND_STATE = 1,   /* sock:inet_sock_set_state */
	TW_KIND_BIND = 2,    /* bind() on an AF_INET/AF_INET6 TCP socket */
	TW_KIND_CONNECT = 3, /* connect() failed with EADDRNOTAVAIL or EADDRINUSE */
	TW_KIND_LISTEN = 4,  /* listen() failed with EADDRINUSE */
};

/* tw_head.flags */
enum tw_flag {
	TW_F_OLD_KNOWN = 1 << 0,   /* tw_state_event.old_ns is valid */
	TW_F_OWNER_KNOWN = 1 << 1, /* tw_state_event.owner_* is valid */
	TW_F_REUSEADDR = 1 << 2,   /* socket had SO_REUSEADDR (bind, state) */
	TW_F_REUSEPORT = 1 << 3,   /* socket had SO_REUSEPORT (bind, state) */
	TW_F_SOCK_KNOWN = 1 << 4,  /* the socket behind the fd was found (syscalls) */
	TW_F_SK_ERR = 1 << 5,      /* sk_err was set: the connection was reset */
};

/* Common head of every event. 48 bytes. */
struct tw_head {
	__u8 kind;      /* enum tw_kind */
	__u8 flags;     /* enum tw_flag */
	__u16 family;   /* AF_INET or AF_INET6 */
	__u32 pid;      /* tgid of the task running when the event fired */
	__u32 tid;
	__u32 netns;    /* inode number of the socket's network namespace */
	__u64 ts_ns;    /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id; /* of the running task, when it is the socket's own; else 0 */
	char comm[TW_COMM_LEN];
};

/* A TCP state transition. 128 bytes. */
struct tw_state_event {
	struct tw_head h;
	__u64 cookie;   /* socket cookie: SO_COOKIE, `ss -e` sk:, sock_diag */
	__u64 old_ns;   /* time spent in oldstate, valid with TW_F_OLD_KNOWN */
	__u8 saddr[16]; /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;    /* host byte order */
	__u16 dport;
	__u8 oldstate;  /* TCP_* from include/net/tcp_states.h */
	__u8 newstate;
	__u16 _pad0;
	__u32 owner_pid; /* attributed owner, valid with TW_F_OWNER_KNOWN */
	__u32 uid;       /* the socket's owner uid (sk_uid: its creator's), which SO_REUSEPORT compares */
	char owner_comm[TW_COMM_LEN];
};

/*
 * A bind() (every result), connect() or listen() (failures only).
 * addr/port: the local address for bind, the destination for connect, the
 * bound port for listen. 80 bytes.
 */
struct tw_sys_event {
	struct tw_head h;
	__u8 addr[16];
	__s32 ret;      /* 0 or -errno */
	__s32 fd;
	__u16 port;     /* host byte order */
	__u16 _pad0;
	__u32 uid;      /* the task's uid */
};

/*
 * Run-time configuration, set from Go before loading (a volatile const in
 * .rodata): a filter that is unused is pruned by the verifier and costs nothing.
 */
struct tw_config {
	__u16 ports[TW_MAX_PORTS]; /* local or remote port, host byte order */
	__u32 nports;
	__u32 pid;            /* tgid; 0: any */
	__u32 uids[TW_MAX_UIDS]; /* the socket's uid (state), the task's (syscalls) */
	__u32 nuids;
	__u32 netns;          /* the socket's network namespace inode; 0: any */
	__u16 family;         /* AF_INET, AF_INET6; 0: any */
	__u8 batch_wakeup;    /* 1: wake the reader only above wakeup_bytes */
	__u8 aggregate;       /* enum tw_aggregate bits: count transitions in the kernel (serve) */
	__u32 wakeup_bytes;
	/* This architecture's numbers of bind, connect, listen (raw sys_enter/sys_exit). */
	__s32 nr_bind;
	__s32 nr_connect;
	__s32 nr_listen;
	/*
	 * 1: connect() is traced at its exit alone, its fd and address read from
	 * the task's saved registers (bpf_task_pt_regs, Linux 5.15): no entry
	 * program, no map update per connect(); 0: remembered at the entry.
	 */
	__u32 connect_regs;
};

/* Indexes into tw_counters.v. */
enum tw_stat {
	TW_STAT_STATE_SEEN = 0,     /* TCP transitions the program ran for */
	TW_STAT_STATE_FILTERED = 1, /* dropped by the filters, never written */
	TW_STAT_STATE_EMITTED = 2,  /* written to the ring buffer */
	TW_STAT_SYS_SEEN = 3,       /* bind/connect/listen results on TCP/MPTCP sockets */
	TW_STAT_SYS_FILTERED = 4,
	TW_STAT_SYS_EMITTED = 5,
	TW_STAT_LOST = 6,           /* ring buffer full: a state event could not be reserved */
	TW_STAT_SOCKMAP_FULL = 7,   /* socket storage not allocated: owner/duration unknown */
	TW_STAT_OTHER_PROTO = 8,    /* transitions of SCTP, MPTCP: counted, not traced */
	TW_STAT_INFLIGHT_FULL = 9,  /* syscall entry could not be remembered */
	TW_STAT_SYS_LOST = 10,      /* ring buffer full: a bind/connect/listen event could not be reserved */
	TW_STAT_RESCUED = 11,       /* transitions the state program missed (it was running) and the nested one handled */
	TW_STAT_AGGREGATED = 12,    /* counted in tw_state_agg only, not written (TW_AGG_COUNT | TW_AGG_ONLY) */
	TW_STAT_MAX = 13,
};

/* The slots of the counters map: one per program that can interrupt another. */
enum tw_slot {
	TW_SLOT_MAIN = 0,   /* the state program (not nested) and the syscall programs */
	TW_SLOT_NESTED = 1, /* the nested state program */
	TW_SLOTS = 2,
};

/*
 * tw_config.aggregate. With TW_AGG_COUNT the state program counts every
 * transition the filters keep, by old and new state, and the time spent in
 * the old state, in the per-CPU map aggs (struct tw_state_agg, one per slot
 * and old state: key slot * TW_STATES + old). With TW_AGG_ONLY as well, only
 * the transitions the socket table needs reach the ring buffer: TIME_WAIT
 * enters (FIN_WAIT2 or CLOSING to CLOSE), listener changes (CLOSE to
 * LISTEN, LISTEN to CLOSE) and connect()'s start (CLOSE to SYN_SENT); and of
 * bind() only failures. Loaded without
 * either, the programs do what trace and record need, and aggs is unused.
 */
enum tw_aggregate {
	TW_AGG_COUNT = 1 << 0,
	TW_AGG_ONLY = 1 << 1,
};

/* One old state's aggregates, per CPU. */
struct tw_state_agg {
	__u64 to[TW_STATES];        /* transitions from this state, by new state */
	__u64 slots[TW_LOG2_SLOTS]; /* the time spent in this state, when known, by log2 slot */
	__u64 sum_lo;               /* the sum of those times in ns: 128 bits, low ... */
	__u64 sum_hi;               /* ... and high */
};

/* The per-CPU counters: one struct, so that a program looks it up once. */
struct tw_counters {
	__u64 v[TW_STAT_MAX];
};

/*
 * One socket's address-reuse options, as the iter/tcp program writes them to
 * its seq_file: sock_diag does not report them, and they decide whether a
 * bind() next to this socket succeeds.
 */
struct tw_sock_reuse {
	__u64 cookie;
	__u8 state;     /* TCP state */
	__u8 flags;     /* TW_F_REUSEADDR, TW_F_REUSEPORT, as in tw_head.flags */
	__u8 _pad[6];
};

#endif /* TWTRACE_H */
