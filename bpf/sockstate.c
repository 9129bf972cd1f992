//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every TCP state transition, from the sock:inet_sock_set_state tracepoint as
 * a BTF-enabled raw tracepoint: it receives the struct sock itself, so each
 * event carries the socket cookie, the identity sock_diag and `ss -e` share.
 *
 * Per socket (keyed by cookie) we keep when it entered its current state and
 * its attributed owner. Many transitions run in softirq, where `current` is
 * whoever happened to be on the CPU, so the owner is only taken from
 * transitions that run in the owning process (connect, listen, close), and an
 * accepted socket inherits the owner of the listener it was cloned from.
 */
#include "twtrace.bpf.h"

struct sockinfo {
	__u64 since_ns;   /* when the socket entered its current state */
	__u32 owner_pid;  /* 0: unknown */
	__u32 _pad;
	char owner_comm[TW_COMM_LEN];
};

struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

struct listen_owner {
	__u64 cookie;     /* the listener that recorded this owner */
	__u32 pid;
	__u32 _pad;
	char comm[TW_COMM_LEN];
};

/* Live full sockets; an entry is removed when its socket reaches CLOSE. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 17);
	__type(key, __u64);
	__type(value, struct sockinfo);
} socks SEC(".maps");

/* Listening sockets by (netns, port): the owner an accepted socket inherits. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, struct listen_key);
	__type(value, struct listen_owner);
} listeners SEC(".maps");

/* Make bpf2go generate the Go types of the event ABI. */
const struct tw_state_event *unused_state_event __attribute__((unused));
const struct tw_config *unused_config __attribute__((unused));

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
	if (family == AF_INET) {
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/*
 * Update the per-socket record and return it (NULL when the map is full).
 * Owner attribution happens here, before filtering, so that a socket whose
 * port only becomes known later (a client's SYN_SENT has source port 0) still
 * has its owner when it starts to match.
 */
static __always_inline struct sockinfo *track(const struct sock *sk, __u64 cookie,
					      int old, int new, __u16 sport, __u32 netns)
{
	struct sockinfo *si = bpf_map_lookup_elem(&socks, &cookie);

	if (!si) {
		struct sockinfo fresh = {};

		/* EEXIST from a racing CPU is fine: the lookup finds its entry. */
		bpf_map_update_elem(&socks, &cookie, &fresh, BPF_NOEXIST);
		si = bpf_map_lookup_elem(&socks, &cookie);
		if (!si) {
			stat_inc(TW_STAT_SOCKMAP_FULL);
			return NULL;
		}
		si->since_ns = 0; /* first sighting: time in old state unknown */
		if (new == TCP_SYN_RECV) {
			/* A socket cloned from a listener: inherit its owner. */
			struct listen_key lk = { .netns = netns, .port = sport };
			struct listen_owner *lo = bpf_map_lookup_elem(&listeners, &lk);

			if (lo) {
				si->owner_pid = lo->pid;
				__builtin_memcpy(si->owner_comm, lo->comm, TW_COMM_LEN);
			}
		}
	}

	if (process_context(old, new)) {
		si->owner_pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(si->owner_comm, TW_COMM_LEN);
	}

	if (new == TCP_LISTEN && si->owner_pid) {
		struct listen_key lk = { .netns = netns, .port = sport };
		struct listen_owner lo = { .cookie = cookie, .pid = si->owner_pid };

		__builtin_memcpy(lo.comm, si->owner_comm, TW_COMM_LEN);
		bpf_map_update_elem(&listeners, &lk, &lo, BPF_ANY);
	} else if (old == TCP_LISTEN) {
		struct listen_key lk = { .netns = netns, .port = sport };
		struct listen_owner *lo = bpf_map_lookup_elem(&listeners, &lk);

		/* Other SO_REUSEPORT listeners on the port keep their entry. */
		if (lo && lo->cookie == cookie)
			bpf_map_delete_elem(&listeners, &lk);
	}
	return si;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP) {
		stat_inc(TW_STAT_OTHER_PROTO);
		return 0;
	}
	stat_inc(TW_STAT_STATE_SEEN);

	__u16 family = sk->__sk_common.skc_family;
	__u16 sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	__u16 dport = bpf_ntohs(sk->__sk_common.skc_dport);
	__u64 cookie = bpf_get_socket_cookie(sk);
	__u32 netns = sock_netns(sk);
	__u64 now = bpf_ktime_get_ns();

	struct sockinfo *si = track(sk, cookie, oldstate, newstate, sport, netns);
	__u64 since = si ? si->since_ns : 0;
	__u32 owner = si ? si->owner_pid : 0;

	bool keep = family_match(family) && port_match(sport, dport);
	if (keep && cfg.pid)
		keep = owner == cfg.pid || (bpf_get_current_pid_tgid() >> 32) == cfg.pid;

	if (keep) {
		struct tw_state_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

		if (!e) {
			stat_inc(TW_STAT_LOST);
		} else {
			fill_head(&e->h, TW_KIND_STATE, now);
			e->h.family = family;
			e->h.netns = netns;
			e->h.flags = 0;
			/* Tells a reset (no TIME_WAIT follows) from an orderly close. */
			if (newstate == TCP_CLOSE && sk->sk_err)
				e->h.flags |= TW_F_SK_ERR;
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
			e->_pad1 = 0;
			e->owner_pid = owner;
			if (si && owner) {
				e->h.flags |= TW_F_OWNER_KNOWN;
				__builtin_memcpy(e->owner_comm, si->owner_comm, TW_COMM_LEN);
			} else {
				__builtin_memset(e->owner_comm, 0, TW_COMM_LEN);
			}
			submit(e);
			stat_inc(TW_STAT_STATE_EMITTED);
		}
	} else {
		stat_inc(TW_STAT_STATE_FILTERED);
	}

	if (newstate == TCP_CLOSE)
		bpf_map_delete_elem(&socks, &cookie);
	else if (si)
		si->since_ns = now;
	return 0;
}
