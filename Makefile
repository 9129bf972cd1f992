# twtrace — see README.md.
#
#   make build      bin/twtrace (needs only Go: the BPF objects are committed)
#   make run        build, then run the live view (root)
#   make test       unit tests; as root also the end-to-end tests that load the programs
#   make bench      the overhead benchmark (root; see docs/performance.md)
#   make generate   rebuild the BPF objects from bpf/ and headers/ (clang, libbpf-dev)
#   make headers    regenerate headers/vmlinux.h from this kernel's BTF (bpftool)

GO       ?= go
CLANG    ?= clang-14
BPFTOOL  ?= bpftool
ARGS     ?=
TESTARGS ?=

.PHONY: all build run test test-unit generate check-generate headers bench soak fmt vet clean

all: build

build:
	$(GO) build -trimpath -o bin/twtrace ./cmd/twtrace

run: build
	./bin/twtrace $(ARGS)

# Privileged tests skip without root unless TWTRACE_REQUIRE_BPF=1, which turns
# every such skip into a failure (CI sets it).
test:
	$(GO) vet ./...
	$(GO) test -count=1 $(TESTARGS) ./...

test-unit:
	TWTRACE_REQUIRE_BPF= $(GO) test -count=1 -short ./...

generate:
	BPF2GO_CC=$(CLANG) BPF2GO_STRIP=llvm-strip-14 $(GO) generate ./tracer/... ./internal/kcount/...

# Fails when the committed BPF objects differ from what the sources generate.
check-generate: generate
	git diff --exit-code -- '*_bpfel.go' '*_bpfel.o' || \
	  { echo "generated BPF objects are stale: run 'make generate' and commit"; exit 1; }

headers:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > headers/vmlinux.h

# The overhead benchmark (root, an otherwise idle machine): the load generator
# alone and under each tracer, side by side, then the Go micro-benchmarks.
# BENCHARGS passes flags to twbench (e.g. BENCHARGS="--rounds 3").
BENCHARGS ?=
# It drives the developer build of twtrace (-tags twtracedev), the product
# plus the flags that report what a run delivered.
bench:
	$(GO) build -trimpath -tags twtracedev -o bin/twtrace-dev ./cmd/twtrace
	$(GO) build -trimpath -o bin/twchurn ./internal/cmd/twchurn
	$(GO) build -trimpath -o bin/twbench ./internal/cmd/twbench
	./bin/twbench $(BENCHARGS)
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./tracer/... ./tui/...

# Minutes of churn against a small ring with the live view's model and a
# recorder attached (root): memory, goroutines and fds flat, loss exact.
# SOAK_DURATION sets the length (default 3m). Not part of make test.
soak:
	TWTRACE_REQUIRE_BPF=1 $(GO) test -tags soak -count=1 -timeout 30m -v ./internal/soak/

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
