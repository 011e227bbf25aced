# Fuzzing the pure C parsers with libFuzzer, included by the top Makefile
# and run from the repository root.
#
#   make fuzz                   60 seconds from t/fuzz/corpus
#   make fuzz FUZZ_SECONDS=600  longer
#   make fuzz-seeds             rewrite the signed tokens of the corpus
#
# The run works on t/fuzz/bin/corpus, a copy of the seeds that keeps what
# earlier runs found; crashes are written to t/fuzz/bin/crash-*.
# FUZZ_JOBS=N runs N processes in parallel (logs in t/fuzz/bin/fuzz-*.log).

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_BIN     := t/fuzz/bin
FUZZ_FLAGS   := -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all \
                -std=c99 -Wall -Wextra -Werror -Isrc/lib -It/fuzz
# the whole of src/lib/, the list the module and the unit tests use too
FUZZ_SRCS    := $(sort $(wildcard src/lib/*.c))
FUZZ_DEPS    := $(FUZZ_SRCS) $(wildcard src/lib/*.h) t/fuzz/fuzz_key.h \
                t/fuzz/fuzz.mk

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-clean

fuzz-build: $(FUZZ_BIN)/fuzz_parsers

$(FUZZ_BIN)/fuzz_parsers: t/fuzz/fuzz_parsers.c $(FUZZ_DEPS)
	@mkdir -p $(FUZZ_BIN)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRCS) -lyajl -lcrypto

# Run inside $(FUZZ_BIN): with FUZZ_JOBS > 1 libFuzzer writes its
# fuzz-N.log files to the current directory.
fuzz: fuzz-build
	@mkdir -p $(FUZZ_BIN)/corpus
	cp t/fuzz/corpus/* $(FUZZ_BIN)/corpus/
	cd $(FUZZ_BIN) && ./fuzz_parsers -max_total_time=$(FUZZ_SECONDS) \
	    $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) \
	    -workers=$(FUZZ_JOBS)) \
	    -dict=$(CURDIR)/t/fuzz/parsers.dict -max_len=4096 \
	    -print_final_stats=1 -artifact_prefix=./ corpus

# A plain program (no sanitizers) that signs the seed tokens.
$(FUZZ_BIN)/mkseeds: t/fuzz/mkseeds.c $(FUZZ_DEPS)
	@mkdir -p $(FUZZ_BIN)
	$(CC) -std=c99 -Wall -Wextra -Werror -Isrc/lib -It/fuzz -o $@ $< \
	    $(FUZZ_SRCS) -lyajl -lcrypto

fuzz-seeds: $(FUZZ_BIN)/mkseeds
	$(FUZZ_BIN)/mkseeds t/fuzz/corpus

fuzz-clean:
	rm -rf $(FUZZ_BIN)
