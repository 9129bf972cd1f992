package tracer

// The BPF objects are generated from bpf/ and committed, so that a build needs
// only Go. `make generate` rebuilds them; CI fails when they drift.
//
//go:generate go tool bpf2go -target bpfel -type tw_state_event -type tw_kind -type tw_flag -type tw_stat -type tw_limit -type tw_slot -type tw_aggregate sockstate ../bpf/sockstate.c -- -O2 -g -Wall -Werror -I../headers -I../bpf
//go:generate go tool bpf2go -target bpfel -no-global-types -type tw_sys_event syscalls ../bpf/syscalls.c -- -O2 -g -Wall -Werror -I../headers -I../bpf
//go:generate go tool bpf2go -target bpfel -type tw_sock_reuse sockiter ../bpf/sockiter.c -- -O2 -g -Wall -Werror -I../headers -I../bpf
