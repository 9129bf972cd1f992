//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The benchmark's independent count of TCP state transitions: attached to
 * the same tracepoint as twtrace, it only counts, so that what twtrace
 * delivered plus what it reported lost can be checked against the truth.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define IPPROTO_TCP 6

char __license[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} transitions SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(count_transition, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	__u64 *n;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	n = bpf_map_lookup_elem(&transitions, &zero);
	if (n)
		*n += 1;
	return 0;
}
