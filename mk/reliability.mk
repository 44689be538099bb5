# Reliability suite (issue 6), included by the top Makefile.
#
#   make test-asan        ASan build (build-asan) + the reliability tests in it
#   make test-tsan        TSan build (build-thread) + the reliability tests in it
#   make test-ubsan       UBSan build (build-undefined) + the WHOLE test suite in it
#   make test-valgrind    every test binary of the normal build under memcheck, 0 errors;
#                         a few again with HAKMEM_VALGRIND=1, and tests/valgrind
#   make stress THREADS=16 DURATION=60     the long multi-thread stress
#   make fuzz FUZZ_SECONDS=120             libFuzzer (clang, -fsanitize=fuzzer,address)
#   make test-real        real programs under LD_PRELOAD=build/libhakmem.so
#   make test-reliability the short forms of all of the above (called by `make test`)
#
# How the sanitizers meet our malloc:
#  - ASan and TSan intercept malloc/free themselves, and a static malloc in the
#    executable would bypass their bookkeeping.  Their builds therefore use
#    -DHAK_NO_OVERRIDE=1: the library defines only the hak_* API, the sanitizer
#    keeps malloc, and the reliability tests (stress, faults, lifecycle,
#    security) call hak_* through tests/stress/rel_alloc.h.  The allocator's
#    own code is fully instrumented.  Other folders' tests call malloc, which in
#    these builds is the sanitizer's, so they are not run there.
#  - UBSan does not touch malloc: its build keeps the override and runs the
#    whole suite, with -fno-sanitize-recover so that any report fails a test.
#  - valgrind by default replaces malloc in libc AND in the main executable
#    (its "user intercepts"), so a test binary linked with libhakmem.a would
#    run on valgrind's malloc, not hakmem's.  test-valgrind therefore passes
#    --soname-synonyms=somalloc=nouserintercepts: the binaries run on hakmem
#    and memcheck checks hakmem's own memory accesses (uninitialised reads,
#    accesses outside its mappings).  Without client requests memcheck cannot
#    see hakmem's blocks; with HAKMEM_VALGRIND=1 (src/valgrind.c) it can, and
#    tests/valgrind/vg_check checks the leak, use-after-free and double-free
#    reports of a plain program under LD_PRELOAD=libhakmem.so, and that a
#    clean one gets none.  The tests in VG_OPTION_TESTS run once more with the
#    option: threads, fork, churn and misuse must give 0 errors there too
#    (tests that count frees, reuse or the TLS heap, or that set RLIMIT_AS,
#    are left out: the option delays reuse and needs more of valgrind).
# All sanitizer builds have -DHAK_FAULT_INJECT=1 (the top Makefile adds it),
# so tests/faults runs its injected-failure parts there.

REL_DIRS     := stress faults lifecycle security pool tiny
REL_SRCS     := $(foreach d,$(REL_DIRS),$(wildcard tests/$(d)/*.c))
rel_bins      = $(patsubst tests/%.c,$(1)/tests/%,$(REL_SRCS))
REL_FILTER   := ^(stress|faults|lifecycle|security)/

# Runs the reliability binaries of build dir $$1 (tests/run_tests.sh would
# count other folders' binaries, which are not built here, as failures even
# when TEST_FILTER excludes them).  Same output format as the runner.
rel_run = pass=0; fail=0; failed=""; for src in $(REL_SRCS); do \
  n=$${src\#tests/}; n=$${n%.c}; exe=$$1/tests/$$n; log=$$(mktemp); t0=$$SECONDS; \
  if BUILD=$$1 timeout $${TEST_TIMEOUT:-300} $$exe >$$log 2>&1; then pass=$$((pass+1)); echo "PASS $$n ($$((SECONDS-t0))s)"; \
  else rc=$$?; fail=$$((fail+1)); failed="$$failed $$n"; echo "FAIL $$n (rc=$$rc, $$((SECONDS-t0))s)"; tail -n 30 $$log | sed "s/^/    | /"; fi; \
  grep -hE "^(stress|faults|fork1000|threads10k|ctor_dtor|dlopen|misuse): " $$log | grep -E "ok|mode|injected|surfaced" | sed "s/^/    /"; rm -f $$log; done; \
  [ -n "$$failed" ] && echo "failed:$$failed"; echo "$$1: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

THREADS      ?= 16
DURATION     ?= 60
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
VG_TIMEOUT   ?= 600

# apt-get install if a command is missing (root only; else just say so).
# A fresh Debian machine has no package lists: apt-get update comes first.
define rel_need
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "reliability: installing $(2)"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else echo "reliability: $(1) missing and not root: install $(2)"; fi; }
endef

.PHONY: test-asan test-tsan test-ubsan test-valgrind stress fuzz test-real test-reliability

test-asan:
	$(MAKE) --no-print-directory SAN=address BUILD=build-asan EXTRA_CFLAGS="-DHAK_NO_OVERRIDE=1" lib $(call rel_bins,build-asan)
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1:allocator_may_return_null=1 \
	STRESS_THREADS=4 STRESS_DURATION=$${STRESS_DURATION:-10} LIFECYCLE_FORKS=$${LIFECYCLE_FORKS:-300} \
	bash -c '$(rel_run)' rel build-asan

test-tsan:
	$(MAKE) --no-print-directory SAN=thread BUILD=build-thread EXTRA_CFLAGS="-DHAK_NO_OVERRIDE=1" lib $(call rel_bins,build-thread)
	TSAN_OPTIONS=halt_on_error=1:die_after_fork=0:report_signal_unsafe=0:second_deadlock_stack=1 \
	STRESS_THREADS=4 STRESS_DURATION=$${STRESS_DURATION:-10} LIFECYCLE_FORKS=$${LIFECYCLE_FORKS:-200} \
	LIFECYCLE_THREADS=$${LIFECYCLE_THREADS:-3000} FAULTS_REPS=4 FAULTS_ENV_MAX=12 \
	bash -c '$(rel_run)' rel build-thread

test-ubsan:
	$(MAKE) --no-print-directory SAN=undefined BUILD=build-undefined \
	  EXTRA_CFLAGS="-fno-sanitize-recover=undefined" lib tests
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 STRESS_DURATION=$${STRESS_DURATION:-10} \
	bash tests/run_tests.sh build-undefined

# HAKMEM_VALGRIND's checks run a plain program (not linked with hakmem) under
# LD_PRELOAD, as a user's program would run.
VG_PROG := $(BUILD)/tests/valgrind/prog/vg_prog
tests: $(VG_PROG)
$(VG_PROG): tests/valgrind/prog/vg_prog.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O0 -g $(WARN) -pthread $< -o $@ -ldl
VG_OPTION_TESTS := threads/remote_burst stress/stress fork/fork lifecycle/fork1000 lifecycle/threads10k \
                   lifecycle/ctor_dtor churn/churn api/align misuse/misuse

# Every test binary of the normal build under memcheck; run.sh folders (shell
# drivers of other programs) and MANUAL folders are skipped.  The
# reliability tests get short parameters (memcheck serialises threads).
# --fair-sched=yes: valgrind's default lock lets busy threads starve the main
# one (tests/lifecycle/dlopen took 2 s or 280 s by luck without it).
# Then VG_OPTION_TESTS with HAKMEM_VALGRIND=1, then tests/valgrind/vg_check.
test-valgrind: lib tests $(VG_PROG)
	$(call rel_need,valgrind,valgrind)
	@pass=0; fail=0; failed=""; \
	vg_one() { name=$$1; shift; \
	  if [ -n "$${TEST_FILTER:-}" ] && ! echo "$$name" | grep -Eq "$$TEST_FILTER"; then return; fi; \
	  log=$$(mktemp); t0=$$(date +%s); \
	  if env BUILD=$(BUILD) STRESS_THREADS=4 STRESS_DURATION=3 LIFECYCLE_FORKS=30 LIFECYCLE_THREADS=1000 \
	     FAULTS_NO_RLIMIT=1 timeout $(VG_TIMEOUT) "$$@" >$$log 2>&1; then \
	    pass=$$((pass+1)); echo "PASS valgrind $$name ($$(($$(date +%s)-t0))s)"; \
	  else rc=$$?; fail=$$((fail+1)); failed="$$failed $$name"; \
	    echo "FAIL valgrind $$name (rc=$$rc, $$(($$(date +%s)-t0))s)"; tail -n 40 $$log | sed 's/^/    | /'; fi; \
	  grep -h "^\[valgrind\]" $$log | sed 's/^/    /'; rm -f $$log; }; \
	VG="valgrind -q --fair-sched=yes --soname-synonyms=somalloc=nouserintercepts --error-exitcode=99 \
	    --child-silent-after-fork=yes --trace-children=no --leak-check=no"; \
	for dir in tests/*/; do \
	  b=$$(basename $$dir); \
	  [ -e $$dir/MANUAL ] && continue; [ -f $$dir/run.sh ] && continue; \
	  for src in $$dir*.c; do \
	    [ -e "$$src" ] || continue; n=$$(basename $$src .c); \
	    vg_one "$$b/$$n" $$VG $(BUILD)/tests/$$b/$$n; \
	  done; \
	done; \
	for t in $(VG_OPTION_TESTS); do \
	  vg_one "$$t+HAKMEM_VALGRIND" env HAKMEM_VALGRIND=1 $$VG $(BUILD)/tests/$$t; \
	done; \
	vg_one valgrind/vg_check $(BUILD)/tests/valgrind/vg_check; \
	[ -n "$$failed" ] && echo "failed:$$failed"; \
	echo "valgrind: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

stress: lib $(BUILD)/tests/stress/stress
	STRESS_THREADS=$(THREADS) STRESS_DURATION=$(DURATION) $(BUILD)/tests/stress/stress

# libFuzzer: the library is rebuilt by clang with ASan and coverage, without
# the malloc override (ASan and libFuzzer keep theirs); the harness calls hak_*.
fuzz:
	$(call rel_need,clang,clang libclang-rt-14-dev)
	@ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-rt-14-dev >/dev/null; }
	$(MAKE) --no-print-directory CC=clang SAN=address BUILD=$(FUZZ_BUILD) \
	  EXTRA_CFLAGS="-DHAK_NO_OVERRIDE=1 -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/libhakmem.a
	clang -std=gnu11 -O1 -g -fsanitize=fuzzer,address -DHAK_NO_OVERRIDE=1 -Iinclude \
	  tests/fuzz/fuzz_alloc.c $(FUZZ_BUILD)/libhakmem.a -o $(FUZZ_BUILD)/fuzz_alloc -pthread -lm -ldl
	mkdir -p $(FUZZ_BUILD)/corpus
	ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 $(FUZZ_BUILD)/fuzz_alloc \
	  -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=6144 -timeout=60 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus tests/fuzz/corpus >$(FUZZ_BUILD)/fuzz.log 2>&1; \
	  rc=$$?; grep -E "^(#[0-9]+ +(INITED|DONE)|Done|stat::number_of_executed_units|==|SUMMARY|fuzz_alloc invariant)" $(FUZZ_BUILD)/fuzz.log; \
	  [ $$rc -eq 0 ] || tail -n 60 $(FUZZ_BUILD)/fuzz.log; \
	  echo "fuzz: libFuzzer exit $$rc (log: $(FUZZ_BUILD)/fuzz.log)"; exit $$rc

test-real: lib
	BUILD=$(BUILD) bash scripts/test_real.sh

# The short form of everything, for `make test`: each part runs even if an
# earlier one failed; the closing line counts the parts.
test-reliability:
	@pass=0; fail=0; failed=""; t00=$$(date +%s); \
	for t in test-asan test-tsan test-ubsan test-valgrind "stress THREADS=16 DURATION=20" "fuzz FUZZ_SECONDS=60" test-real; do \
	  t0=$$(date +%s); echo "=== reliability: make $$t"; \
	  if $(MAKE) --no-print-directory $$t; then pass=$$((pass+1)); echo "=== reliability: PASS $$t ($$(($$(date +%s)-t0))s)"; \
	  else fail=$$((fail+1)); failed="$$failed [$$t]"; echo "=== reliability: FAIL $$t ($$(($$(date +%s)-t0))s)"; fi; \
	done; \
	[ -n "$$failed" ] && echo "reliability failed:$$failed"; \
	echo "reliability total $$(($$(date +%s)-t00))s"; \
	echo "reliability: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]
