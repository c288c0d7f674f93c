# The project's jobs. `make run` is the main one: the whole stack in the
# foreground. `make test` is what CI runs (through .ci/run).

CARGO ?= cargo

.PHONY: run run-tls build test lint fmt bench bench-quick clean soak fuzz web web-check web-test

## run: build (release) and start the proxy on 127.0.0.1:8700 in front of three nodes
run: web
	$(CARGO) build --release --bins
	./scripts/run-stack.sh target/release

## run-tls: as run, but the proxy serves https on 127.0.0.1:8700 with a fresh
## self-signed certificate (target/dev/cert.pem; curl --cacert target/dev/cert.pem)
run-tls: web
	$(CARGO) build --release --bins
	TLS=1 ./scripts/run-stack.sh target/release

build:
	$(CARGO) build --workspace --bins

## test: unit tests of every crate, then the end-to-end suite against the real binaries
test: integration/js/node_modules web web-check web-test
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

## web: the customer widget and agent console bundle (web/dist), which the
## session-node embeds when it is built; esbuild and the libraries are pinned
## in web/package-lock.json
web: web/node_modules
	cd web && node build.mjs

## web-check: build again without writing and fail if any byte differs (the
## bundle is reproducible)
web-check: web/node_modules
	cd web && node build.mjs --check

## web-test: unit tests of the web code (masking rules, message splitting)
web-test: web/node_modules
	cd web && node --test test/unit/

web/node_modules: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# The official CometD JavaScript client for the end-to-end suite (versions
# pinned in integration/js/package-lock.json).
integration/js/node_modules: integration/js/package.json integration/js/package-lock.json
	cd integration/js && npm ci --no-audit --no-fund
	touch $@

SOAK_DURATION ?= 2m

## soak: the chaos soak (SOAK_DURATION, default 2m): mixed traffic through the
## proxy while nodes are killed, drained, removed and re-added and the proxy
## restarts; fails on any misroute, lost session, unexplained 5xx or
## connection error, or panic (target/debug/soak --help for its flags)
soak: build
	$(CARGO) build --workspace --bins
	target/debug/soak --duration $(SOAK_DURATION)

FUZZ_CASES ?= 20000

## fuzz: the http1 property tests (head parsers, chunked scanner, reference
## decoder) with FUZZ_CASES cases each (default 20000: a few minutes with the
## release build); `make test` runs the same tests with 256 cases
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test -p http1 --release

## lint: formatting and clippy, warnings denied
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

PYTHON ?= python3

## bench: the full benchmark (about 9 minutes): sticky-proxy against nginx and
## HAProxy, interleaved rounds; writes bench/RESULTS.md and bench/results.json
bench:
	$(CARGO) build --release --bins
	$(PYTHON) bench/run.py

## bench-quick: a short benchmark (about 3 minutes) to try the harness;
## writes bench/out/quick/RESULTS.md and results.json, not bench/RESULTS.md
bench-quick:
	$(CARGO) build --release --bins
	$(PYTHON) bench/run.py --quick
