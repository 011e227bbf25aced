# ngx_commerce: see README.md.  Two commands: `make run` and `make test`.

SHELL     := /bin/bash
NGX_SRC   ?= /usr/share/nginx/src
BUILD     ?= build
CFLAGS_EXTRA ?=
WARN      := -Wall -Wextra -Werror
MODULE    := $(BUILD)/objs/ngx_http_commerce_module.so
SOURCES   := config ngx_commerce_module.c $(shell find src -name '*.[ch]')

.PHONY: all build deps asan-build

all: build

# Debian's nginx-dev ships configure + headers; configure with the exact
# flags /usr/sbin/nginx was built with (--with-compat) and build only modules.
$(BUILD)/Makefile: config
	rm -rf $(BUILD) && mkdir -p $(BUILD)
	cp -r $(NGX_SRC)/. $(BUILD)/
	cd $(BUILD) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="-g -O2 -fPIC $(WARN) $(CFLAGS_EXTRA)" \
	    --with-ld-opt="$(LDFLAGS_EXTRA)" \
	    --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

$(MODULE): $(BUILD)/Makefile $(SOURCES)
	$(MAKE) -C $(BUILD) -f objs/Makefile modules

build: $(MODULE)

asan-build:
	$(MAKE) build BUILD=build-asan \
	    CFLAGS_EXTRA="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDFLAGS_EXTRA="-fsanitize=address,undefined"

-include t/unit/unit.mk
-include t/fuzz/fuzz.mk
-include t/harness.mk
