//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every TCP state transition, from the sock:inet_sock_set_state tracepoint as
 * a BTF-enabled raw tracepoint: it receives the struct sock itself, so each
 * event carries the socket cookie, the identity sock_diag and `ss -e` share,
 * and the socket's fields are read directly, without helper calls.
 *
 * Per socket we keep, in socket-local storage, when it entered its current
 * state and its attributed owner. Many transitions run in softirq, where
 * `current` is whoever happened to be on the CPU, so the owner is only taken
 * from transitions that run in the owning process (connect, listen, close).
 * The storage map has BPF_F_CLONE: the kernel copies a listener's storage to
 * each socket it accepts, so an accepted socket inherits its listener's
 * owner exactly, even among SO_REUSEPORT listeners of different processes.
 */
#include "twtrace.bpf.h"

struct sockinfo {
	__u64 cookie;     /* the socket this is about; a clone still has its listener's */
	__u64 since_ns;   /* when the socket entered its current state; 0: unknown */
	__u32 owner_pid;  /* 0: unknown */
	__u16 sport;      /* last known local port: skc_num reads 0 at CLOSE */
	__u16 _pad;
	char owner_comm[TW_COMM_LEN];
};

/* Freed with the socket: nothing to delete, nothing to leak. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sockinfo);
} socks SEC(".maps");

/*
 * Make bpf2go generate the Go types of the event ABI, its enums included:
 * Go never types a kind, a flag, a counter index or a limit by hand.
 */
const struct tw_state_event *unused_state_event __attribute__((unused));
const struct tw_config *unused_config __attribute__((unused));
const struct tw_counters *unused_counters __attribute__((unused));
const enum tw_kind *unused_kind __attribute__((unused));
const enum tw_flag *unused_flag __attribute__((unused));
const enum tw_stat *unused_stat __attribute__((unused));
const enum tw_limit *unused_limit __attribute__((unused));
const enum tw_slot *unused_slot __attribute__((unused));
const enum tw_aggregate *unused_aggregate __attribute__((unused));

/*
 * In-kernel aggregation (cfg.aggregate, serve): per CPU, per program slot
 * (the nested program interrupts the main one's increments) and old state.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TW_SLOTS * TW_STATES);
	__type(key, __u32);
	__type(value, struct tw_state_agg);
} aggs SEC(".maps");

/* floor(log2(v)) for v > 0, without a loop. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = (v > 0xFFFFFFFFULL) << 5, shift;

	v >>= r;
	shift = (v > 0xFFFF) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	return r | (__u32)(v >> 1);
}

/*
 * Count a transition and the time spent in the old state (0: unknown).
 * Slot s holds 2^(s-1) < ns <= 2^s, as metrics.Log2Slot: the Go side
 * exports the same buckets from the stream and from here. False when the
 * aggregates could not be reached (never, for a key in range).
 */
static __always_inline bool aggregate(__u32 slot, int old, int new, __u64 ns, bool known)
{
	__u32 key = slot * TW_STATES + (old & (TW_STATES - 1));
	struct tw_state_agg *a = bpf_map_lookup_elem(&aggs, &key);

	if (!a)
		return false;
	a->to[new & (TW_STATES - 1)]++;
	if (known) {
		__u32 s = ns <= 1 ? 0 : log2_u64(ns - 1) + 1;

		if (s >= TW_LOG2_SLOTS)
			s = TW_LOG2_SLOTS - 1;
		a->slots[s]++;
		a->sum_lo += ns;
		if (a->sum_lo < ns) /* carried */
			a->sum_hi++;
	}
	return true;
}

/*
 * With TW_AGG_ONLY: what the socket table needs from the stream. A dump
 * shows a socket's state, not whether connect() made it: connect()'s first
 * transition tells the table which sockets hold an ephemeral port (their
 * TIME_WAIT is not the service port's, and each counts against the range
 * towards its destination).
 */
static __always_inline bool table_needs(int old, int new)
{
	return (new == TCP_CLOSE && (old == TCP_FIN_WAIT2 || old == TCP_CLOSING)) || /* TIME_WAIT enters */
	       (old == TCP_CLOSE && new == TCP_LISTEN) || (old == TCP_LISTEN && new == TCP_CLOSE) ||
	       (old == TCP_CLOSE && new == TCP_SYN_SENT); /* connect() */
}

/* Transitions that only ever run in the context of the socket's process. */
static __always_inline bool process_context(int old, int new)
{
	return (old == TCP_CLOSE && new == TCP_SYN_SENT) ||       /* connect() */
	       (old == TCP_CLOSE && new == TCP_LISTEN) ||         /* listen() */
	       (old == TCP_ESTABLISHED && new == TCP_FIN_WAIT1) || /* close(), shutdown() */
	       (old == TCP_CLOSE_WAIT && new == TCP_LAST_ACK);    /* close(), shutdown() */
}

static __always_inline void read_addrs(const struct sock *sk, __u16 family,
				       struct tw_state_event *e)
{
	const struct sock_common *c = &sk->__sk_common;
	__u64 *s = (__u64 *)e->saddr, *d = (__u64 *)e->daddr;

	if (family == AF_INET) {
		s[0] = c->skc_rcv_saddr;
		d[0] = c->skc_daddr;
		s[1] = d[1] = 0;
	} else {
		s[0] = ((__u64 *)c->skc_v6_rcv_saddr.in6_u.u6_addr8)[0];
		s[1] = ((__u64 *)c->skc_v6_rcv_saddr.in6_u.u6_addr8)[1];
		d[0] = ((__u64 *)c->skc_v6_daddr.in6_u.u6_addr8)[0];
		d[1] = ((__u64 *)c->skc_v6_daddr.in6_u.u6_addr8)[1];
	}
}

/*
 * The socket's record, created on first sight. Owner attribution happens
 * here, before filtering, so that a socket whose port only becomes known
 * later (a client's SYN_SENT has source port 0) has its owner when it
 * starts to match.
 */
static __always_inline struct sockinfo *track(struct sock *sk, __u64 cookie, int old, int new,
					      struct tw_counters *st)
{
	struct sockinfo *si = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!si) {
		if (st)
			st->v[TW_STAT_SOCKMAP_FULL]++;
		return NULL;
	}
	if (si->cookie != cookie) {
		/* New, or cloned from its listener: the owner stays, the time does not. */
		si->cookie = cookie;
		si->since_ns = 0;
		si->sport = 0;
	}
	if (process_context(old, new)) {
		si->owner_pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(si->owner_comm, TW_COMM_LEN);
	}
	return si;
}

/* One transition: the socket's record, the filters, the aggregates, the event. */
static __always_inline int handle(struct sock *sk, int oldstate, int newstate, struct tw_counters *st,
				  __u32 slot)
{
	if (sk->sk_protocol != IPPROTO_TCP) {
		if (st)
			st->v[TW_STAT_OTHER_PROTO]++;
		return 0;
	}
	if (st)
		st->v[TW_STAT_STATE_SEEN]++;

	__u16 family = sk->__sk_common.skc_family;
	__u16 dport = bpf_ntohs(sk->__sk_common.skc_dport);
	__u16 sport = sk->__sk_common.skc_num;
	__u64 cookie = bpf_get_socket_cookie(sk);
	__u64 now = bpf_ktime_get_ns();
	struct sockinfo *si = track(sk, cookie, oldstate, newstate, st);

	if (si) {
		if (sport)
			si->sport = sport;
		else
			sport = si->sport;
	}
	if (!sport) /* first seen at CLOSE: the port survives in inet_sport */
		sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));

	__u64 since = si ? si->since_ns : 0;
	__u32 owner = si ? si->owner_pid : 0;
	if (si)
		si->since_ns = now;

	__u32 uid = sk->sk_uid.val;
	__u32 netns = sk->__sk_common.skc_net.net->ns.inum;
	bool keep = family_match(family) && port_match(sport, dport) && uid_match(uid) &&
		    (!cfg.netns || netns == cfg.netns);
	if (keep && cfg.pid)
		keep = owner == cfg.pid || (bpf_get_current_pid_tgid() >> 32) == cfg.pid;
	if (!keep) {
		if (st)
			st->v[TW_STAT_STATE_FILTERED]++;
		return 0;
	}
	if (cfg.aggregate & TW_AGG_COUNT) {
		if (!aggregate(slot, oldstate, newstate, now - since, since != 0)) {
			if (st)
				st->v[TW_STAT_LOST]++; /* counted nowhere: reported lost */
			return 0;
		}
		if ((cfg.aggregate & TW_AGG_ONLY) && !table_needs(oldstate, newstate)) {
			if (st)
				st->v[TW_STAT_AGGREGATED]++;
			return 0;
		}
	}

	struct tw_state_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		if (st)
			st->v[TW_STAT_LOST]++;
		return 0;
	}
	fill_head(&e->h, TW_KIND_STATE, now, process_context(oldstate, newstate));
	e->h.family = family;
	e->h.netns = netns;
	e->h.flags = 0;
	/* Tells a reset (no TIME_WAIT follows) from an orderly close. */
	if (newstate == TCP_CLOSE && sk->sk_err)
		e->h.flags |= TW_F_SK_ERR;
	/* SO_REUSEADDR/SO_REUSEPORT: on the cache line skc_state is read from. */
	if (BPF_CORE_READ_BITFIELD(&sk->__sk_common, skc_reuse))
		e->h.flags |= TW_F_REUSEADDR;
	if (BPF_CORE_READ_BITFIELD(&sk->__sk_common, skc_reuseport))
		e->h.flags |= TW_F_REUSEPORT;
	e->cookie = cookie;
	e->old_ns = 0;
	if (since) {
		e->old_ns = now - since;
		e->h.flags |= TW_F_OLD_KNOWN;
	}
	read_addrs(sk, family, e);
	e->sport = sport;
	e->dport = dport;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->_pad0 = 0;
	e->uid = uid;
	e->owner_pid = owner;
	if (si && owner) {
		e->h.flags |= TW_F_OWNER_KNOWN;
		__builtin_memcpy(e->owner_comm, si->owner_comm, TW_COMM_LEN);
	} else {
		__builtin_memset(e->owner_comm, 0, TW_COMM_LEN);
	}
	__u64 seq = 0;
	if (st)
		seq = st->v[TW_STAT_STATE_EMITTED]++;
	submit(e, seq);
	return 0;
}

/*
 * Per CPU: the main program is running. The kernel does not run a program
 * that is already running on the CPU: a transition in softirq that
 * interrupts the main program (one in process context, as connect()'s) is
 * skipped, and only counted, as a "recursion miss" of unknown socket, so
 * that with a filter it cannot be told from a miss that did not matter.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} busy SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	__u32 *b = bpf_map_lookup_elem(&busy, &zero);

	if (b)
		*b = 1;
	handle(sk, oldstate, newstate, counters(TW_SLOT_MAIN), TW_SLOT_MAIN);
	if (b)
		*b = 0;
	return 0;
}

/*
 * Attached after the main program, so the tracepoint runs it second. It
 * handles a transition only when the main program is busy on this CPU, that
 * is, when the kernel skipped the main program for it: the transition is
 * then an event like any other, and counted as rescued. Its counters have a
 * slot of their own: it interrupts the main program's increments.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state_nested, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	__u32 *b = bpf_map_lookup_elem(&busy, &zero);
	struct tw_counters *st;

	if (!b || !*b)
		return 0;
	st = counters(TW_SLOT_NESTED);
	if (st)
		st->v[TW_STAT_RESCUED]++;
	return handle(sk, oldstate, newstate, st, TW_SLOT_NESTED);
}
