# Mid Pool (issue 4), included by the top Makefile.
#   make stress-pool THREADS=16 DURATION=60   the seed's lock-free stress at length
# (THREADS and DURATION default to 16 and 60, from mk/reliability.mk; the
# short run, 4 threads for 5 s, is part of `make test`.)
.PHONY: stress-pool
stress-pool: lib $(BUILD)/tests/pool/test_pool_lockfree_stress
	THREADS=$(THREADS) DURATION=$(DURATION) $(BUILD)/tests/pool/test_pool_lockfree_stress
