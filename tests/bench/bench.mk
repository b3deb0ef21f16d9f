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

# Bytes written and time per store operation (APPEND 4 KiB, STORE +FLAGS,
# EXPUNGE in 10,000, amortized compaction, SELECT of 100,000 after a restart
# and its FLAGS), picoimapd against Dovecot's mbox and maildir (about 2-3
# min, most of it making the stores; STORE_*=... for other sizes). Needs root
# for Dovecot. Writes tests/bench/results/store-summary.md.
.PHONY: bench-store
bench-store: $(BUILD)/picoimapd
	$(Q)PICOIMAPD=$(abspath $(BUILD)/picoimapd) $(PYTHON) tests/bench/store_bench.py

# MIME work on a 1 GB mailbox of generated real-world-shaped mail (about
# 4 min, 4 GB of disk under /var/tmp): SEARCH TEXT of a word hidden in
# decoded bodies, FETCH 1:10000 BODYSTRUCTURE, a 64 KiB partial fetch from
# the middle of a 50 MB attachment, memory; picoimapd against Dovecot's
# mbox and maildir, answers compared. MIME_BENCH_SIZE=100M MIME_BENCH_MSGS=2000
# for a quick run. Needs root for Dovecot. Writes
# tests/bench/results/mime-summary.md.
.PHONY: bench-mime
bench-mime: $(BUILD)/picoimapd
	$(Q)PICOIMAPD=$(abspath $(BUILD)/picoimapd) $(PYTHON) tests/bench/mime_bench.py
