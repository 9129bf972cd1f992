//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * An independent count of TCP state transitions, for the tests and the
 * benchmark: attached to the same tracepoint as twtrace, it only counts, so
 * that what twtrace delivered plus what it reported lost can be checked
 * against it. With a port set, only the transitions of sockets with that
 * local or remote port are counted, the port read its own way; with a
 * network namespace, only those of its sockets.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define IPPROTO_TCP 6

char __license[] SEC("license") = "Dual BSD/GPL";

volatile const __u16 port = 0;  /* 0: every port */
volatile const __u32 netns = 0; /* a network namespace inode; 0: every namespace */

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
	if (netns && sk->__sk_common.skc_net.net->ns.inum != netns)
		return 0;
	if (port) {
		/* The local port: skc_num, or inet_sport once the port is released. */
		__u16 local = sk->__sk_common.skc_num;
		if (!local)
			local = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
		if (local != port && bpf_ntohs(sk->__sk_common.skc_dport) != port)
			return 0;
	}
	n = bpf_map_lookup_elem(&transitions, &zero);
	if (n)
		*n += 1;
	return 0;
}
