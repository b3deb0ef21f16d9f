# tests/bench/bench.mk -- benchmark targets (included at the end of the Makefile).
#   make bench          picoimapd vs Dovecot: throughput, latency, memory, footprint (~10 min)
#   make bench-quick    the same, shorter (< 2 min)
#   make loadgen        build the load generator alone (build-bench/loadgen)
# Results: tests/bench/results/<stamp>/; a full run also updates results/summary.md and bench.png.
.PHONY: bench bench-quick loadgen

bench:
	$(Q)bash tests/bench/run.sh

bench-quick:
	$(Q)BENCH_QUICK=1 bash tests/bench/run.sh

loadgen: build-bench/loadgen

build-bench/loadgen: tests/bench/loadgen.c
	$(Q)mkdir -p build-bench
	$(Q)if [ -e /usr/include/openssl/ssl.h ]; then \
		$(CC) -O2 -g -Wall -Wextra -DLG_TLS=1 -o $@ $< -lssl -lcrypto -lm; \
	else $(CC) -O2 -g -Wall -Wextra -o $@ $< -lm; fi

# QRESYNC resync of 50,000 messages and IDLE push latency, both servers
# (RESYNC_N=... for another size). Needs root for Dovecot.
.PHONY: bench-resync
bench-resync: $(BUILD)/picoimapd
	$(Q)PICOIMAPD=$(abspath $(BUILD)/picoimapd) $(PYTHON) tests/bench/resync_bench.py
