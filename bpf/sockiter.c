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
	rec.cookie = bpf_get_socket_cookie(skc);
	rec.state = skc->skc_state;
	/* TIME_WAIT and request sockets share sock_common: same fields. */
	rec.reuse = BPF_CORE_READ_BITFIELD(skc, skc_reuse);
	rec.reuseport = BPF_CORE_READ_BITFIELD(skc, skc_reuseport);
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}
