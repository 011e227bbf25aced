# Unit tests of the pure C parts (src/lib/), included by the top Makefile
# and run from the repository root.  Each test is a plain C program that
# prints TAP; `make unit` builds and runs them all, t/005-unit.t does the
# same under prove.
#
#   make unit         gcc, -Werror
#   make unit-asan    the same under AddressSanitizer and UBSan
#   make unit UNIT_CC=clang

UNIT_CC      ?= gcc
UNIT_BIN     ?= t/unit/bin
UNIT_OPT     ?= -O2 -g
UNIT_WARN    := -std=c99 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
                -Wstrict-prototypes -Wmissing-prototypes
# -pthread: test_cm_pwhash hashes from several threads at once
UNIT_LIBS    := -lyajl -lcrypto -pthread
# every src/lib/cm_X.c has its t/unit/test_cm_X.c (t/008-layers.t checks)
UNIT_LIB     := $(sort $(wildcard src/lib/*.c))
UNIT_TESTS   := $(patsubst src/lib/%.c,test_%,$(UNIT_LIB))
UNIT_SRCS    := $(UNIT_LIB) t/unit/tap.c
UNIT_DEPS    := $(UNIT_SRCS) $(wildcard src/lib/*.h) t/unit/tap.h t/unit/unit.mk

UNIT_ASAN    := -O1 -g -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=all

.PHONY: unit unit-build unit-asan unit-asan-build unit-clean

unit-build: $(UNIT_TESTS:%=$(UNIT_BIN)/%)

$(UNIT_BIN)/%: t/unit/%.c $(UNIT_DEPS)
	@mkdir -p $(UNIT_BIN)
	$(UNIT_CC) $(UNIT_WARN) $(UNIT_OPT) -Isrc/lib -It/unit \
	    -o $@ $< $(UNIT_SRCS) $(UNIT_LIBS)

# A test fails on a nonzero exit status or on any "not ok" line.
unit: unit-build
	@fail=0; \
	for t in $(UNIT_TESTS); do \
	    out=$$($(UNIT_BIN)/$$t 2>&1); rc=$$?; \
	    if [ $$rc -eq 0 ] && ! printf '%s\n' "$$out" | grep -q '^not ok'; \
	    then \
	        echo "unit $$t: $$(printf '%s\n' "$$out" | grep -c '^ok') ok"; \
	    else \
	        printf '%s\n' "$$out" | grep -v '^ok'; \
	        echo "unit $$t: FAILED (exit $$rc)"; fail=1; \
	    fi; \
	done; \
	exit $$fail

unit-asan-build:
	$(MAKE) --no-print-directory unit-build UNIT_BIN=t/unit/bin/asan \
	    UNIT_OPT="$(UNIT_ASAN)"

unit-asan:
	$(MAKE) --no-print-directory unit UNIT_BIN=t/unit/bin/asan \
	    UNIT_OPT="$(UNIT_ASAN)"

unit-clean:
	rm -rf t/unit/bin
