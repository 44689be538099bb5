# hakmem build.  `make` builds the library, tests and benchmarks;
# `make test` builds and runs every test; `make bench` runs the benchmark suite.
#
# Build switches, each settable on the command line (make VAR=value):
#   CC=gcc|clang        compiler (both are supported)
#   BUILD=build         output folder
#   DEBUG=1             -O0 -g and internal consistency asserts (HAK_DEBUG)
#   SAN=address|thread|undefined
#                       sanitizer build; default BUILD becomes build-$(SAN)
#   CENTRAL_MUTEX=1     central freelists under a mutex instead of lock-free
#                       CAS (the A/B baseline for the seed's phase 6.26)
#   CHECKS=0            drop the fast paths' misuse checks (only to measure
#                       their cost; see src/fastpath.h)
#   FAULT_INJECT=1      compile the OS-mapping fault-injection hook
#                       (HAKMEM_FAULT_MMAP_NTH); always on in DEBUG/SAN builds
#   VALGRIND=0          leave out valgrind's client requests even where
#                       <valgrind/memcheck.h> exists (without them,
#                       HAKMEM_VALGRIND=1 warns and is ignored; src/valgrind.c)
#   HARDENED=1          hardened mode on by default (-DHAK_HARDENED=1):
#                       HAKMEM_SECURE defaults to 1 (HAKMEM_SECURE=0 still
#                       turns it off); see docs/DESIGN.md "Misuse".  Use a
#                       BUILD of its own; its tests pass with HAKMEM_SECURE=0
#                       (several check default-mode internals)
CC      ?= gcc
SAN     ?=
ifneq ($(SAN),)
BUILD   ?= build-$(SAN)
else
BUILD   ?= build
endif
PREFIX  ?= /usr/local

# OPT: the library's optimisation; DEFS: the switches' defines, which the
# tests get too (they include src/ headers, whose structs the switches shape)
OPT      := -O2
DEFS     :=
ifeq ($(DEBUG),1)
OPT      := -O0 -g
DEFS     += -DHAK_DEBUG=1 -DHAK_FAULT_INJECT=1
endif
SANFLAGS :=
ifneq ($(SAN),)
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -g -DHAK_FAULT_INJECT=1
OPT      := -O1
endif
ifeq ($(CENTRAL_MUTEX),1)
DEFS     += -DHAK_CENTRAL_MUTEX=1
endif
ifeq ($(CHECKS),0)
DEFS     += -DHAK_NO_CHECKS=1
endif
ifeq ($(FAULT_INJECT),1)
DEFS     += -DHAK_FAULT_INJECT=1
endif
ifeq ($(VALGRIND),0)
DEFS     += -DHAK_NO_VALGRIND=1
endif
ifeq ($(HARDENED),1)
DEFS     += -DHAK_HARDENED=1
endif

WARN     := -Wall -Wextra -Wno-unused-parameter
CFLAGS_LIB := -std=gnu11 $(OPT) $(DEFS) $(WARN) -fPIC -fvisibility=hidden -Iinclude -Isrc \
              -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
              -ftls-model=initial-exec -pthread $(SANFLAGS) $(EXTRA_CFLAGS)
CFLAGS_T := -std=gnu11 -O2 -g $(DEFS) $(WARN) -Iinclude -Isrc -pthread $(SANFLAGS) $(EXTRA_CFLAGS)

LIB_SRCS := $(sort $(wildcard src/*.c))
LIB_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
LIB_SO   := $(BUILD)/libhakmem.so
LIB_A    := $(BUILD)/libhakmem.a

.PHONY: all lib clean install test test-main tests benches
all: lib tests benches

lib: $(LIB_SO) $(LIB_A)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) include/hakmem.h | $(BUILD)/obj
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(BUILD)/obj:
	mkdir -p $@

$(LIB_SO): $(LIB_OBJS) src/hakmem.map
	$(CC) -shared -o $@ $(LIB_OBJS) -Wl,--version-script=src/hakmem.map -Wl,-z,now -Wl,-z,nodelete -pthread $(SANFLAGS)

$(LIB_A): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $(LIB_OBJS)

# ---- tests: one folder per behaviour, tests/<behaviour>/*.c, each a binary
# linked with libhakmem.a, run by tests/run_tests.sh.
TEST_SRCS := $(sort $(wildcard tests/*/*.c))
TEST_SRCS := $(filter-out tests/fuzz/%,$(TEST_SRCS))
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
tests: $(TEST_BINS)

$(BUILD)/tests/%: tests/%.c $(LIB_A) $(wildcard tests/common/*.h tests/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_T) -Itests/common $< -o $@ $(LIB_A) -lm -ldl

# `make test`: every test, main suite then reliability suite (scripts/test_all.sh).
# `make test-main` runs only the main suite.
test: all
	bash scripts/test_all.sh $(BUILD)

test-main: all
	bash tests/run_tests.sh $(BUILD)

# ---- benchmarks (bench/*.c): plain binaries; the allocator is chosen by LD_PRELOAD
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
benches: $(BENCH_BINS)
$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g $(WARN) -Ibench -pthread $< -o $@ -lm -ldl

-include $(wildcard mk/*.mk)

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/hakmem.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' hakmem.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/hakmem.pc

clean:
	rm -rf build build-*
