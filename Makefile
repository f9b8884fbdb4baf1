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
# -fno-trapping-math: we never read FP exception flags; it lets floorf and friends vectorise. Results are unchanged.
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fno-trapping-math $(OPT) -fopenmp -Iinclude -I$(BLASINC) $(CAIRO_CFLAGS) $(XCFLAGS)
LDLIBS  += -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas $(CAIRO_LIBS) -fopenmp -lm
LDFLAGS += $(XLDFLAGS)

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path 'src/cli/*'))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
HDRS     := $(wildcard include/iclab/*.h) $(wildcard src/*/*.h) tests/icl_test.h

.PHONY: all test asan test-asan demo clean bench fuzz
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
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" XLDFLAGS="-fsanitize=address,undefined" ICLAB_SLOW=0 test

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

# libFuzzer target for the GGUF parser (needs clang and libclang-rt-14-dev); see fuzz/README.md.
FUZZ_TIME ?= 60
fuzz:
	@mkdir -p build-fuzz fuzz/corpus-run
	clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Iinclude fuzz/fuzz_gguf.c src/io/icl_gguf.c src/io/icl_quant.c src/core/icl_err.c src/core/icl_file.c -lm -o build-fuzz/fuzz_gguf
	cp -n tests/fixtures/gguf_*.gguf fuzz/corpus-run/ 2>/dev/null || true
	build-fuzz/fuzz_gguf -max_total_time=$(FUZZ_TIME) -print_final_stats=1 fuzz/corpus-run

clean:
	rm -rf build build-asan build-fuzz
