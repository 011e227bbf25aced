# Unit tests of the pure C parts (src/cm_*.c), included by the top Makefile
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
UNIT_TESTS   := test_cm_json test_cm_jwt test_cm_breaker test_cm_backoff \
                test_cm_sig test_cm_pwhash test_cm_pii test_cm_ratelimit \
                test_cm_token test_cm_account test_cm_chunked
UNIT_SRCS    := src/cm_json.c src/cm_jwt.c src/cm_breaker.c src/cm_backoff.c \
                src/cm_sig.c src/cm_pwhash.c src/cm_pii.c src/cm_ratelimit.c \
                src/cm_token.c src/cm_account.c src/cm_chunked.c t/unit/tap.c
UNIT_DEPS    := $(UNIT_SRCS) src/cm_json.h src/cm_jwt.h src/cm_breaker.h \
                src/cm_backoff.h src/cm_sig.h src/cm_pwhash.h src/cm_pii.h \
                src/cm_ratelimit.h src/cm_token.h src/cm_account.h \
                src/cm_chunked.h t/unit/tap.h t/unit/unit.mk

UNIT_ASAN    := -O1 -g -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=all

.PHONY: unit unit-build unit-asan unit-asan-build unit-clean

unit-build: $(UNIT_TESTS:%=$(UNIT_BIN)/%)

$(UNIT_BIN)/%: t/unit/%.c $(UNIT_DEPS)
	@mkdir -p $(UNIT_BIN)
	$(UNIT_CC) $(UNIT_WARN) $(UNIT_OPT) -Isrc -It/unit \
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
