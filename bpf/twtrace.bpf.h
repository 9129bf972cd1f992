/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every twtrace program shares: the ring buffer, the loss and filter
 * counters, the load-time configuration and the helpers that fill an event's
 * head. Both objects define these maps identically; the Go loader creates
 * them once and hands them to the second object as replacements.
 */
#ifndef TWTRACE_BPF_H
#define TWTRACE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "twtrace.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

char __license[] SEC("license") = "Dual BSD/GPL";

/* The size is set from Go (--ring-size) before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/*
 * Per-CPU counters (enum tw_stat), summed by the reader. Slot TW_SLOT_MAIN is
 * every program's but one: TW_SLOT_NESTED is the nested state program's,
 * which runs while the main one is interrupted on the same CPU (sockstate.c),
 * so that neither increment can undo the other's.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TW_SLOTS);
	__type(key, __u32);
	__type(value, struct tw_counters);
} stats SEC(".maps");

volatile const struct tw_config cfg = {};

/* This CPU's counters in a slot; a per-CPU slot needs no atomics. */
static __always_inline struct tw_counters *counters(__u32 slot)
{
	return bpf_map_lookup_elem(&stats, &slot);
}

static __always_inline void stat_inc(__u32 idx)
{
	struct tw_counters *st = counters(TW_SLOT_MAIN);

	if (st && idx < TW_STAT_MAX)
		st->v[idx]++;
}

/* True when no port filter is set or either port is one of the filter's. */
static __always_inline bool port_match(__u16 a, __u16 b)
{
	if (cfg.nports == 0)
		return true;
	for (int i = 0; i < TW_MAX_PORTS; i++) {
		if (i >= cfg.nports)
			break;
		if (cfg.ports[i] == a || cfg.ports[i] == b)
			return true;
	}
	return false;
}

/* True when no uid filter is set or uid is one of the filter's. */
static __always_inline bool uid_match(__u32 uid)
{
	if (cfg.nuids == 0)
		return true;
	for (int i = 0; i < TW_MAX_UIDS; i++) {
		if (i >= cfg.nuids)
			break;
		if (cfg.uids[i] == uid)
			return true;
	}
	return false;
}

static __always_inline bool family_match(__u16 family)
{
	return cfg.family == 0 || cfg.family == family;
}

/*
 * Fill the head from the task running now. Its cgroup is read only when the
 * task is the socket's own (process context): in softirq it would name
 * whichever task was interrupted, and costs a lookup per event.
 */
static __always_inline void fill_head(struct tw_head *h, __u8 kind, __u64 now, bool own_task)
{
	__u64 id = bpf_get_current_pid_tgid();

	h->kind = kind;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->ts_ns = now;
	h->cgroup_id = own_task ? bpf_get_current_cgroup_id() : 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/*
 * Submit with the configured wake-up policy. By default the kernel wakes the
 * reader for every record it finds idle; with batch_wakeup the reader polls
 * on a short deadline and is only woken early when the ring fills up, which
 * saves a wake-up (several microseconds of kernel time) per event. Reading
 * the fill level touches the consumer's cache line (a miss: ~100 ns), so it
 * is checked on every 64th event of a CPU only (seq counts them).
 */
static __always_inline void submit(void *e, __u64 seq)
{
	__u64 flags = 0;

	if (cfg.batch_wakeup) {
		flags = BPF_RB_NO_WAKEUP;
		if ((seq & 63) == 0 &&
		    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg.wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

#endif /* TWTRACE_BPF_H */
