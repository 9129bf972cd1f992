//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ring-buffer floor of the benchmark: on the tracepoint twtrace traces,
 * one empty reservation of a state record's size and its submit per TCP
 * transition, and nothing else. What it costs beyond the count-only program
 * (internal/kcount) is the price of shipping anything to user space; what
 * twtrace costs beyond it is what it does with the record.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "twtrace.h"

#define IPPROTO_TCP 6

char __license[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} records SEC(".maps");

/* Transitions whose record found no room: the floor's loss, exact. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(reserve_submit, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	void *r;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	r = bpf_ringbuf_reserve(&records, sizeof(struct tw_state_event), 0);
	if (!r) {
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);

		if (n)
			*n += 1;
		return 0;
	}
	/* The reader polls on a deadline, as twtrace's does: no wake-up per record. */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}
