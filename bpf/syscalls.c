//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bind(), connect() and listen() on TCP (and MPTCP) sockets, from the syscall
 * tracepoints. The arguments are read at entry (the sockaddr is user memory
 * that may change later), the result at exit; the socket behind the fd gives
 * the protocol, SO_REUSEADDR/SO_REUSEPORT and the network namespace.
 *
 * Every bind() is reported; connect() and listen() only when they fail with
 * EADDRINUSE or EADDRNOTAVAIL, the two faces of a port conflict. Syscall
 * tracepoints do not see io_uring's IORING_OP_BIND/LISTEN/CONNECT.
 *
 * Two sets of entry points share that work. The syscall tracepoints
 * (syscalls:sys_enter_bind, ...) need tracefs to be attached; the raw
 * sys_enter/sys_exit tracepoints, BTF-typed, need nothing but CAP_BPF and
 * CAP_PERFMON, but run for every syscall of every task, so they cost more
 * (docs/performance.md): the loader uses them only where tracefs is out of reach.
 */
#include "twtrace.bpf.h"

#define EADDRINUSE 98
#define EADDRNOTAVAIL 99
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define IPPROTO_MPTCP 262

/* A syscall between its entry and its exit, keyed by thread id. */
struct inflight {
	__u8 op;        /* enum tw_kind */
	__u8 _pad0;
	__u16 family;   /* from the sockaddr; 0 for listen() */
	__u16 port;     /* host byte order */
	__u16 _pad1;
	__s32 fd;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 13);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

/* Make bpf2go generate the Go type of the event ABI. */
const struct tw_sys_event *unused_sys_event __attribute__((unused));

/* struct sockaddr_in6 is the largest inet sockaddr; sockaddr_in fits in it. */
/*
 * A call's fd and address, when its task and address pass the filters:
 * false for a call that is not ours.
 */
static __always_inline bool take_call(struct inflight *in, __u64 id, __u8 op, int fd, const void *uaddr)
{
	in->op = op;
	in->fd = fd;
	if (cfg.pid && (id >> 32) != cfg.pid)
		return false;
	if (cfg.nuids && !uid_match((__u32)bpf_get_current_uid_gid()))
		return false;

	if (uaddr) {
		struct sockaddr_in6 sa = {};

		if (bpf_probe_read_user(&sa, sizeof(sa), uaddr) &&
		    bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), uaddr))
			return false;
		in->family = sa.sin6_family;
		if (in->family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&sa;

			in->port = bpf_ntohs(sin->sin_port);
			__builtin_memcpy(in->addr, &sin->sin_addr.s_addr, 4);
		} else if (in->family == AF_INET6) {
			in->port = bpf_ntohs(sa.sin6_port);
			__builtin_memcpy(in->addr, &sa.sin6_addr, 16);
		} else {
			return false; /* AF_UNIX, AF_NETLINK, ...: not ours */
		}
		if (!family_match(in->family))
			return false;
	}
	return true;
}

static __always_inline int remember(__u8 op, int fd, const void *uaddr)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight in = {};

	if (!take_call(&in, id, op, fd, uaddr))
		return 0;
	__u32 tid = (__u32)id;
	if (bpf_map_update_elem(&inflight, &tid, &in, BPF_ANY))
		stat_inc(TW_STAT_INFLIGHT_FULL);
	return 0;
}

/* The socket behind a file descriptor of the current task, or NULL. */
static __always_inline struct sock *sock_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file *f = NULL;

	if (fd < 0 || (unsigned int)fd >= max)
		return NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

/* A call's result: an event when it is one twtrace reports. */
static __always_inline int report(const struct inflight *in, long ret)
{
	if (in->op != TW_KIND_BIND && ret != -EADDRINUSE && ret != -EADDRNOTAVAIL)
		return 0;
	if ((cfg.aggregate & TW_AGG_ONLY) && ret >= 0)
		return 0; /* serve counts failures only */

	/*
	 * MPTCP sockets count: Go (1.24+) listens with MPTCP by default, and the
	 * bind of an MPTCP socket is the bind of its first TCP subflow, with the
	 * same conflicts and the same socket options.
	 */
	struct sock *sk = sock_of_fd(in->fd);
	if (!sk)
		return 0;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	if (proto != IPPROTO_TCP && proto != IPPROTO_MPTCP)
		return 0;
	stat_inc(TW_STAT_SYS_SEEN);

	__u16 family = in->family ? in->family : BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 local = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 port = in->port;

	if (in->op == TW_KIND_LISTEN || (in->op == TW_KIND_BIND && port == 0))
		port = local; /* the bound or autobound port */
	__u32 netns = sock_netns(sk);
	if (!family_match(family) || !port_match(port, local) || (cfg.netns && netns != cfg.netns)) {
		stat_inc(TW_STAT_SYS_FILTERED);
		return 0;
	}

	struct tw_sys_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(TW_STAT_SYS_LOST);
		return 0;
	}
	fill_head(&e->h, in->op, bpf_ktime_get_ns(), true);
	e->h.family = family;
	e->h.netns = netns;
	e->h.flags = TW_F_SOCK_KNOWN;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_reuse))
		e->h.flags |= TW_F_REUSEADDR;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_reuseport))
		e->h.flags |= TW_F_REUSEPORT;
	__builtin_memcpy(e->addr, in->addr, sizeof(e->addr));
	e->ret = ret;
	e->fd = in->fd;
	e->port = port;
	e->_pad0 = 0;
	e->uid = (__u32)bpf_get_current_uid_gid();
	submit(e, 0); /* rare: always check the fill level */
	stat_inc(TW_STAT_SYS_EMITTED);
	return 0;
}

static __always_inline int finish(__u8 op, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inflight *pin = bpf_map_lookup_elem(&inflight, &tid);

	if (!pin || pin->op != op)
		return 0;
	struct inflight in = *pin;
	bpf_map_delete_elem(&inflight, &tid);
	return report(&in, ret);
}

SEC("tracepoint/syscalls/sys_enter_bind")
int sys_enter_bind(struct trace_event_raw_sys_enter *ctx)
{
	return remember(TW_KIND_BIND, (int)ctx->args[0], (const void *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_bind")
int sys_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	return finish(TW_KIND_BIND, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_listen")
int sys_enter_listen(struct trace_event_raw_sys_enter *ctx)
{
	return remember(TW_KIND_LISTEN, (int)ctx->args[0], NULL);
}

SEC("tracepoint/syscalls/sys_exit_listen")
int sys_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	return finish(TW_KIND_LISTEN, ctx->ret);
}

/*
 * The raw tracepoints' view of a syscall: its number and arguments are in
 * the task's registers, whose layout is the architecture's. CO-RE picks the
 * flavour of struct pt_regs the running kernel has.
 */
struct pt_regs___x86 {
	unsigned long di, si, orig_ax;
} __attribute__((preserve_access_index));

struct pt_regs___arm64 {
	__u64 regs[31];
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

struct thread_info___x86 {
	__u32 status;
} __attribute__((preserve_access_index));

#define TS_COMPAT 0x0002  /* x86: a 32-bit syscall (in_ia32_syscall) */
#define TIF_32BIT 22      /* arm64: an AArch32 task (is_compat_task) */

static __always_inline long syscall_nr(struct pt_regs *regs)
{
	if (bpf_core_field_exists(struct pt_regs___x86, orig_ax))
		return ((struct pt_regs___x86 *)regs)->orig_ax;
	if (bpf_core_field_exists(struct pt_regs___arm64, syscallno))
		return ((struct pt_regs___arm64 *)regs)->syscallno;
	return -1;
}

static __always_inline unsigned long syscall_arg(struct pt_regs *regs, int n)
{
	if (bpf_core_field_exists(struct pt_regs___x86, di))
		return n == 0 ? ((struct pt_regs___x86 *)regs)->di : ((struct pt_regs___x86 *)regs)->si;
	if (bpf_core_field_exists(struct pt_regs___arm64, regs))
		return ((struct pt_regs___arm64 *)regs)->regs[n & 1];
	return 0;
}

/*
 * 32-bit syscalls number bind, connect and listen differently, and the
 * syscall tracepoints skip them: so do these.
 */
static __always_inline bool compat_syscall(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (bpf_core_field_exists(struct thread_info___x86, status))
		return ((struct thread_info___x86 *)&task->thread_info)->status & TS_COMPAT;
	return task->thread_info.flags & (1UL << TIF_32BIT);
}

/*
 * A syscall's first argument at its exit: on arm64 x0 holds the return
 * value by then, and the argument survives in orig_x0.
 */
static __always_inline unsigned long exit_arg0(struct pt_regs *regs)
{
	if (bpf_core_field_exists(struct pt_regs___x86, di))
		return BPF_CORE_READ((struct pt_regs___x86 *)regs, di);
	if (bpf_core_field_exists(struct pt_regs___arm64, orig_x0))
		return BPF_CORE_READ((struct pt_regs___arm64 *)regs, orig_x0);
	return -1;
}

static __always_inline unsigned long exit_arg1(struct pt_regs *regs)
{
	if (bpf_core_field_exists(struct pt_regs___x86, si))
		return BPF_CORE_READ((struct pt_regs___x86 *)regs, si);
	if (bpf_core_field_exists(struct pt_regs___arm64, regs))
		return BPF_CORE_READ((struct pt_regs___arm64 *)regs, regs[1]);
	return 0;
}

/*
 * connect() with cfg.connect_regs: only its failures are events, so the
 * exit decides alone, and only a failure reads the fd and the address from
 * the registers the task entered the kernel with (still in user memory:
 * connect() does not write it). A success, every connect() but the
 * failures, costs a comparison; the entry program and its map update per
 * call are gone.
 */
static __always_inline int connect_at_exit(struct pt_regs *regs, long ret)
{
	struct inflight in = {};

	if (ret != -EADDRINUSE && ret != -EADDRNOTAVAIL)
		return 0;
	if (!take_call(&in, bpf_get_current_pid_tgid(), TW_KIND_CONNECT, (int)exit_arg0(regs),
		       (const void *)exit_arg1(regs)))
		return 0;
	return report(&in, ret);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int sys_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	if (cfg.connect_regs)
		return 0; /* not attached then */
	return remember(TW_KIND_CONNECT, (int)ctx->args[0], (const void *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int sys_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	if (cfg.connect_regs)
		return connect_at_exit((struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()), ctx->ret);
	return finish(TW_KIND_CONNECT, ctx->ret);
}

static __always_inline __u8 syscall_kind(long nr)
{
	if (nr == cfg.nr_bind)
		return TW_KIND_BIND;
	if (nr == cfg.nr_connect)
		return TW_KIND_CONNECT;
	if (nr == cfg.nr_listen)
		return TW_KIND_LISTEN;
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(raw_sys_enter, struct pt_regs *regs, long nr)
{
	__u8 op = syscall_kind(nr);

	if (!op || compat_syscall() || (op == TW_KIND_CONNECT && cfg.connect_regs))
		return 0;
	return remember(op, (int)syscall_arg(regs, 0),
			op == TW_KIND_LISTEN ? NULL : (const void *)syscall_arg(regs, 1));
}

SEC("tp_btf/sys_exit")
int BPF_PROG(raw_sys_exit, struct pt_regs *regs, long ret)
{
	__u8 op = syscall_kind(syscall_nr(regs));

	if (!op)
		return 0;
	if (op == TW_KIND_CONNECT && cfg.connect_regs)
		return compat_syscall() ? 0 : connect_at_exit(regs, ret);
	return finish(op, ret);
}
