# ngx_commerce: see README.md.  Two commands: `make run` and `make test`.

SHELL     := /bin/bash
NGX_SRC   ?= /usr/share/nginx/src
BUILD     ?= build
CFLAGS_EXTRA ?=
WARN      := -Wall -Wextra -Werror
MODULE    := $(BUILD)/objs/ngx_http_commerce_module.so
CONFIGURED := $(BUILD)/objs/Makefile
CONF_ARGS := $(BUILD)/configure.args

# every source, at any depth under src/ (the layered folders)
SOURCES   := config $(wildcard ngx_commerce_module.c) \
             $(shell find src -type f \( -name '*.c' -o -name '*.h' \) \
                     2>/dev/null | sort)

NGX_CC_OPT := -g -O2 -fPIC $(WARN) $(CFLAGS_EXTRA)
NGX_LD_OPT := $(LDFLAGS_EXTRA)

.PHONY: all build deps asan-build FORCE

all: build

# One build at a time per build directory: a second `make build` (another
# `make test` in the same checkout) waits, then finds everything up to date.
build:
	@mkdir -p $(BUILD)
	@flock $(BUILD)/.lock $(MAKE) --no-print-directory $(MODULE)

# Debian's nginx-dev ships configure + headers; configure with the exact
# flags /usr/sbin/nginx was built with (--with-compat) and build only modules.
#
# configure writes objs/Makefile, which is the target: it is re-run when the
# addon script `config` (the list of sources and headers) or the compiler
# flags change, and then from a clean objs/.  Otherwise nginx's objs/Makefile
# rebuilds only the objects whose source or listed headers (ngx_module_deps)
# changed, and relinks the module.

# the configure arguments and the list of source files, rewritten only when
# they differ: a flags change, or a file added to or removed from src/
# (config reads the folders), reconfigures; otherwise the timestamp stays
$(CONF_ARGS): FORCE
	@mkdir -p $(BUILD)
	@args='$(NGX_SRC) $(NGX_CC_OPT) | $(NGX_LD_OPT) | $(SOURCES)'; \
	[ -f $@ ] && [ "$$(cat $@)" = "$$args" ] || echo "$$args" > $@

$(CONFIGURED): config $(CONF_ARGS)
	rm -rf $(BUILD)/objs
	cp -r $(NGX_SRC)/. $(BUILD)/
	cd $(BUILD) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="$(NGX_CC_OPT)" \
	    --with-ld-opt="$(NGX_LD_OPT)" \
	    --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; rm -f objs/Makefile; exit 1; }

$(MODULE): $(CONFIGURED) $(SOURCES)
	$(MAKE) -C $(BUILD) -f objs/Makefile modules

asan-build:
	$(MAKE) build BUILD=build-asan \
	    CFLAGS_EXTRA="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDFLAGS_EXTRA="-fsanitize=address,undefined"

FORCE:

-include t/unit/unit.mk
-include t/fuzz/fuzz.mk
-include t/harness.mk
