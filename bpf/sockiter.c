//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The address-reuse options of every TCP socket of a network namespace, from
 * a BPF iterator over the kernel's TCP hash tables (iter/tcp): SO_REUSEADDR
 * and SO_REUSEPORT, which sock_diag does not report. The iterator walks the
 * namespace of the task that opens it; one fixed-size record per socket,
 * keyed by the socket cookie, which sock_diag also gives.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "twtrace.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Make bpf2go generate the Go type of the record. */
const struct tw_sock_reuse *unused_sock_reuse __attribute__((unused));

SEC("iter/tcp")
int sock_reuse(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tw_sock_reuse rec = {};

	if (!skc)
		return 0; /* the end of the walk */
	/*
	 * A request socket (a SYN not yet accepted) never has the options set:
	 * its sock_common is not filled from the listener's. A TIME_WAIT socket
	 * copies them from the socket it came from (inet_twsk_alloc).
	 */
	if (skc->skc_state == TCP_NEW_SYN_RECV)
		return 0;
	rec.cookie = bpf_get_socket_cookie(skc);
	rec.state = skc->skc_state;
	if (BPF_CORE_READ_BITFIELD(skc, skc_reuse))
		rec.flags |= TW_F_REUSEADDR;
	if (BPF_CORE_READ_BITFIELD(skc, skc_reuseport))
		rec.flags |= TW_F_REUSEPORT;
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}
