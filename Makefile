# dicomshield: build, test and benchmark.
GO       ?= go
PKGS     := ./...
BIN      := bin/dicomshield

.PHONY: all build test fmt-check vet lint unit fuzz bench bench-net bench-ingest bench-find bench-scan bench-start clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dicomshield

# The whole test suite: formatting, vet, staticcheck, unit and interop tests
# (real DCMTK peers; .ci/run installs them) with the race detector.
test: fmt-check vet lint unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	cd bench && $(GO) vet ./...

# staticcheck 2026.2.2 (module v0.8.2), pinned: `go run` fetches this version through the module
# proxy without adding it to go.mod (about 15 s the first time).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(STATICCHECK) $(PKGS)
	cd bench && $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 $(PKGS)

# Run each fuzz target for FUZZTIME (default 30s). New crashers land in
# testdata/fuzz and must be committed as regression inputs.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Side-by-side benchmarks against other implementations (separate module so
# the product does not depend on them).
bench:
	cd bench && $(GO) test -run XXX -bench . -benchmem -count 5 ./... | tee ../bench-results.txt

# DICOM transfer side by side with DCMTK: storescu/storescp against our
# store client and a file-writing SCP on our server (prints a table).
bench-net:
	bench/scripts/net.sh -tls -od /dev/shm -o bench-net-results.md

# storescu ingest into dicomshield serve (TLS and plain), Orthanc and
# storescp on the same files, and peak memory on a 1 GB instance.
bench-ingest:
	bench/scripts/ingest.sh

# Study-level C-FIND by Patient ID at 1,000,000 indexed instances (the
# setup loads them first, about a minute).
bench-find:
	$(GO) test -run XXX -bench FindStudyByPatientID -benchtime 20000x ./internal/store/sqlite/

# dicomshield scan against nmap's dicom-ping on the same 500 loopback
# listeners, directly and behind relays adding 50 ms of round-trip time.
# The fast row lifts the politeness limits (--rate 0: no connection rate
# limit, --concurrency 512: all 500 at once), as nmap's NSE runs up to 1000
# scripts at once with no rate limit; the defaults row is the polite scan.
SCANBENCH_ARGS ?= -n 500 -runs 3 -defaults -discovery -scan-args "--rate 0 --concurrency 512"
bench-scan:
	cd bench && $(GO) run ./cmd/scanbench $(SCANBENCH_ARGS) -o ../bench-scan-results.md
	cd bench && $(GO) run ./cmd/scanbench $(SCANBENCH_ARGS) -rtt 50ms -o ../bench-scan-results.md

# Restart of dicomshield serve on an archive of 1,000,000 instances (index
# rows and blob files), from exec to the first C-ECHO, the build before
# 0e785aa against the working tree, alternating. Generating the archive
# takes about 4 minutes and 5 GB (and 1.07M inodes) under $TMPDIR, removed
# at the end; -work DIR -keep (or -data DIR) keeps it for another run.
STARTBENCH_ARGS ?= -n 1000000 -runs 5
bench-start:
	cd bench && $(GO) run ./cmd/startbench $(STARTBENCH_ARGS) -o ../bench-start-results.md

clean:
	rm -rf bin bench-results.txt bench-net-results.md bench-scan-results.md bench-start-results.md
