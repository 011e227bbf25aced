# t/harness.mk: deps, test, asan, run, stop and bench (included by the top
# Makefile, which owns build and asan-build).  See t/README.md.
#
#   make test [JOBS=2] [NO_DEPS=1] [TESTS="t/040-orders.t ..."]
#   make asan
#   make run  [PORT=8080] [RUN_DIR=./run] [PG_PORT=PORT+1000]
#   make apidocs [APIDOCS_DIR=build/apidocs]
#   make stop [PORT=...] [RUN_DIR=...]
#   make bench [BENCH_SECONDS=10]
#   make bench-order [BENCH_SECONDS=10] [BENCH_ORDER_ARGS=--sweep]

JOBS          ?= 2
TESTS         ?= t/
PROVE_FLAGS   ?=
PORT          ?= 8080
RUN_DIR       ?= $(CURDIR)/run
PG_PORT       ?=
BENCH_SECONDS ?= 10
APIDOCS_DIR   ?= $(CURDIR)/build/apidocs

# one package a line, shared with .ci/run
APT_PACKAGES := $(shell cat $(CURDIR)/t/apt-packages 2>/dev/null)
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Raise the open files limit for the suite (idle/concurrency tests hold
# thousands of sockets) as far as the hard limit allows.
RAISE_NOFILE := ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn) 2>/dev/null || true

.PHONY: deps test asan run stop bench bench-search bench-order apidocs

deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing" $$missing; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	        --no-install-recommends $$missing; \
	else echo "deps: all installed"; fi

test:
	$(if $(NO_DEPS),,$(MAKE) deps)
	$(MAKE) build
	$(RAISE_NOFILE); prove -r -j$(JOBS) $(PROVE_FLAGS) $(TESTS)

# The module under AddressSanitizer + UBSan: the runtimes are preloaded into
# nginx only (the harness passes COMMERCE_NGINX_PRELOAD as LD_PRELOAD to the
# nginx process), not into perl or psql.  No leak check: nginx exits
# without freeing its pools.
asan:
	$(if $(NO_DEPS),,$(MAKE) deps)
	$(MAKE) asan-build
	$(RAISE_NOFILE); \
	COMMERCE_MODULE=$(CURDIR)/build-asan/objs/ngx_http_commerce_module.so \
	COMMERCE_NGINX_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	prove -r -j$(JOBS) $(PROVE_FLAGS) $(TESTS)

# The API reference page's renderer (Swagger UI from npm, pinned and
# checked in t/apidocs-vendor), vendored into a build directory; `make run`
# serves it at /docs/ and goes on without it when npm cannot be reached.
apidocs:
	t/apidocs-vendor $(APIDOCS_DIR)

run:
	$(if $(NO_DEPS),,$(MAKE) deps)
	$(MAKE) build
	$(MAKE) apidocs || echo "run: the API reference page is unavailable (Swagger UI could not be vendored); the API runs without it"
	PORT=$(PORT) RUN_DIR=$(RUN_DIR) PG_PORT=$(PG_PORT) APIDOCS_DIR=$(APIDOCS_DIR) t/run-stack start

stop:
	PORT=$(PORT) RUN_DIR=$(RUN_DIR) PG_PORT=$(PG_PORT) t/run-stack stop

bench:
	$(if $(NO_DEPS),,$(MAKE) deps)
	$(MAKE) build
	$(RAISE_NOFILE); BENCH_SECONDS=$(BENCH_SECONDS) t/bench/run

# search at 1M products (README "Search"): generated in SQL, ~2 min
bench-search:
	$(if $(NO_DEPS),,$(MAKE) deps)
	$(MAKE) build
	t/bench/search

# the order transaction's rows alone (t/bench/order-results.md), or with
# BENCH_ORDER_ARGS=--sweep its pool size x pipeline depth sweep
bench-order:
	$(if $(NO_DEPS),,$(MAKE) deps)
	$(MAKE) build
	$(RAISE_NOFILE); BENCH_SECONDS=$(BENCH_SECONDS) t/bench/order $(BENCH_ORDER_ARGS)
