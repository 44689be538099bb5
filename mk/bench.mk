# Benchmark suite (issue 3).  Included by the top Makefile.
#   make bench          build everything, install missing peers (as root),
#                       run the whole suite (~10 min on 2 cores), print the table
#   make bench-quick    a 1-2 minute subset, for a quick look while developing
#   make bench-fastpath callgrind instructions per malloc+free pair
#   make bench-traces   re-record bench/traces/*.trace.xz
#   make bench-phases   the learner on a phase-changing load (bench/phases): the
#                       convergence table, docs/learner-phases.svg, and 3 rounds
#                       of LEARN=0 / LEARN=1 (~10 min; scripts/learner_phases.sh)
# Suite knobs pass through the environment or the command line:
#   make bench RUNTIME=2 REPEAT=5 THREADS=1,4 ALLOCATORS=hakmem,mimalloc
BENCH_TOOLS := $(BUILD)/bench/trace_rec.so
# Only knobs the user set (command line or environment) are passed on: other
# mk files define variables of the same names (THREADS ?= 16 for stress).
bench_knob   = $(if $(filter command line environment%,$(origin $1)),$1=$($1))
BENCH_ENV    = BUILD=$(BUILD) BENCH_HAKMEM_SO=$(abspath $(LIB_SO)) \
               $(foreach v,THREADS ALLOCATORS WORKLOADS,$(call bench_knob,$(v)))
BENCH_RUNTIME = $(or $(call bench_knob,RUNTIME),RUNTIME=$1)
BENCH_REPEAT  = $(or $(call bench_knob,REPEAT),REPEAT=$1)
BENCH_QUICK_WL := larson_tiny,larson_mid,tiny,mid,large,mlarge,prodcons_tiny,burst,replay_python

.PHONY: bench bench-quick bench-fastpath bench-traces bench-tools bench-deps bench-phases
bench-tools: $(BENCH_TOOLS)

$(BUILD)/bench/trace_rec.so: bench/tools/trace_rec.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g $(WARN) -fPIC -shared -pthread $< -o $@

bench-deps:
	@bash bench/tools/install_peers.sh

bench: all bench-tools bench-deps
	$(BENCH_ENV) $(call BENCH_RUNTIME,1) $(call BENCH_REPEAT,3) bash scripts/run_bench_suite.sh

bench-quick: lib benches bench-deps
	$(BENCH_ENV) $(call BENCH_RUNTIME,0.5) $(call BENCH_REPEAT,1) \
	  $(or $(call bench_knob,WORKLOADS),WORKLOADS=$(BENCH_QUICK_WL)) \
	  OUT=bench/results/quick bash scripts/run_bench_suite.sh

bench-fastpath: lib benches
	$(BENCH_ENV) bash scripts/callgrind_fastpath.sh

bench-traces: bench-tools benches
	bash bench/tools/record_traces.sh $(BUILD)

bench-phases: lib benches
	BUILD=$(BUILD) bash scripts/learner_phases.sh
