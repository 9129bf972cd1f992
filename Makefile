# twtrace — see README.md.
#
#   make build      bin/twtrace (needs only Go: the BPF objects are committed)
#   make run        build, then run the live view (root)
#   make test       unit tests; as root also the end-to-end tests that load the programs
#                   (installs what they need beyond Go, ss and tmux, when missing)
#   make fuzz       a short pass of every fuzz target (FUZZTIME each; CI runs it)
#   make bench      the overhead benchmark (root; see docs/performance.md)
#   make testdata   re-record testdata/incident.jsonl.zst, the sample capture (root)
#   make generate   rebuild the BPF objects from bpf/ and headers/ (clang, libbpf-dev)
#   make headers    regenerate headers/vmlinux.h from this kernel's BTF (bpftool)

GO       ?= go
CLANG    ?= clang-14
BPFTOOL  ?= bpftool
ARGS     ?=
TESTARGS ?=

.PHONY: all build run test test-deps test-unit fuzz testdata generate check-generate headers bench soak fmt vet clean

all: build

build:
	$(GO) build -trimpath -o bin/twtrace ./cmd/twtrace

run: build
	./bin/twtrace $(ARGS)

# What the tests need beyond Go: ss (iproute2), to compare the socket table
# with, and tmux, to drive the real binary on a terminal. Missing, they are
# installed with apt-get as root, or named.
TESTDEPS := ss:iproute2 tmux:tmux
test-deps:
	@missing=""; for dep in $(TESTDEPS); do \
	  command -v $${dep%%:*} >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make test-deps: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "make test-deps: the tests need$$missing; install them (Debian: apt-get install$$missing), or run make test as root"; exit 1; \
	  fi; \
	fi

# Privileged tests skip without root unless TWTRACE_REQUIRE_BPF=1, which turns
# every such skip into a failure (CI sets it).
test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 $(TESTARGS) ./...

# Every fuzz target for FUZZTIME, one package at a time (go test fuzzes one
# target per run). -fuzzminimizetime bounds the minimisation of each new
# input, which would otherwise take the pass; a target that made fewer than
# FUZZMIN executions did not really fuzz, and fails the pass. A failure is a
# failure when it wrote its input to testdata/fuzz/TARGET/ (then commit it
# once fixed: it becomes a seed); go1.26's fuzz coordinator can also fail a
# run with a bare "context deadline exceeded" just as -fuzztime ends, with no
# input (a race fixed in Go 1.27): that one is reported and not counted.
FUZZTIME ?= 20s
FUZZMIN  ?= 1000
fuzz:
	@set -e; for file in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
	  dir=$$(dirname $$file); \
	  for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
	    before=$$(ls $$dir/testdata/fuzz/$$target 2>/dev/null | wc -l); \
	    if out=$$($(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s ./$$dir 2>&1); then note=""; \
	    elif [ $$(ls $$dir/testdata/fuzz/$$target 2>/dev/null | wc -l) -eq $$before ] && \
	         echo "$$out" | grep -q '^    context deadline exceeded$$'; then note=" (the toolchain's end-of-run race, no failing input)"; \
	    else echo "$$out"; echo "FAIL ./$$dir $$target"; exit 1; fi; \
	    execs=$$(echo "$$out" | sed -n 's/.*execs: \([0-9]*\).*/\1/p' | tail -1); \
	    echo "fuzz ./$$dir $$target: $${execs:-0} execs in $(FUZZTIME)$$note"; \
	    if [ "$${execs:-0}" -lt $(FUZZMIN) ]; then echo "$$out"; echo "FAIL $$target: fewer than $(FUZZMIN) execs"; exit 1; fi; \
	  done; \
	done

test-unit:
	TWTRACE_REQUIRE_BPF= $(GO) test -count=1 -short ./...

# The sample capture: a scripted incident (a restart refused with EADDRINUSE,
# a client out of ports with EADDRNOTAVAIL) in a private network namespace,
# recorded by the real twtrace (internal/cmd/twincident says how). Then its
# html report and the picture of it in docs/ (headless chromium, when installed).
testdata: build
	$(GO) run ./internal/cmd/twincident -twtrace bin/twtrace -o testdata/incident.jsonl.zst
	./bin/twtrace report testdata/incident.jsonl.zst --format html -o docs/incident-report.html --force
	if command -v chromium >/dev/null; then \
	  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1500 \
	    --screenshot=docs/incident-report.png file://$$PWD/docs/incident-report.html; fi

generate:
	BPF2GO_CC=$(CLANG) BPF2GO_STRIP=llvm-strip-14 $(GO) generate ./tracer/... ./internal/kcount/... ./internal/kring/...

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
