#!/usr/bin/python3
"""summarize.py RESDIR TOPDIR -- tables and plot from one bench run.

Reads RESDIR/{mix,mem,foot,probe}.txt written by run.sh and loadgen, prints
Markdown tables (medians over rounds, picoimapd / Dovecot ratios), writes
RESDIR/summary.md and bench.png, and copies both to TOPDIR (the tracked
summary).
"""
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

res, top = sys.argv[1], sys.argv[2]
# Only a full run (not quick, every workload, the memory runs) replaces the
# tracked summary.md and bench.png; a partial one stays in its folder.
PARTIAL = (os.environ.get("BENCH_QUICK") == "1" or bool(os.environ.get("BENCH_WORKLOADS"))
           or os.environ.get("BENCH_MEM") == "0")
NAMES = {"pico": "picoimapd", "dvmd": "Dovecot maildir", "dvmb": "Dovecot mbox"}


def kv(line):
    d = {}
    for tok in line.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            d[k] = v
    return d


def read(name):
    p = os.path.join(res, name)
    return open(p).read().splitlines() if os.path.exists(p) else []


tot = {}   # (server, wl, clients) -> list of T dicts
sysv = {}  # label -> S dict (server CPU, run-queue wait, load)
ops = {}   # (server, wl, clients, op) -> list of R dicts
for line in read("mix.txt"):
    d = kv(line)
    parts = d.get("label", "").split("/")
    if len(parts) != 4:
        continue
    s, wl, n, _r = parts
    if line.startswith("S "):
        sysv[d["label"]] = d
        continue
    if line.startswith("T "):
        tot.setdefault((s, wl, n), []).append(d)
    elif line.startswith("R "):
        ops.setdefault((s, wl, n, d["op"]), []).append(d)


def med(lst, key):
    v = [float(x[key]) for x in lst if key in x]
    return statistics.median(v) if v else None


def f(v, fmt="%.0f"):
    return "-" if v is None else fmt % v


def ratio(a, b, fmt="%.2f"):
    return "-" if a is None or not b else fmt % (a / b)


out = []
out.append("# picoimapd vs Dovecot benchmark")
out.append("")
out.append("Run %s on %s, %d CPUs, kernel %s; Dovecot %s. Command: `make bench`%s." % (
    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), platform.node(), os.cpu_count(),
    platform.release(),
    subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.split()[0]
    if shutil.which("dovecot") else "?",
    " (BENCH_QUICK=1)" if os.environ.get("BENCH_QUICK") == "1" else ""))
mixused = read("mix-used.txt")
if mixused:
    out.append("")
    out.append("Mix (weights): `%s`." % mixused[0].split(" ", 1)[1])
    if len(mixused) > 1 and mixused[1].split(" ", 1)[1:] and mixused[1].split(" ", 1)[1].strip():
        out.append("Left out for every server because one server did not answer them OK in the probe: "
                   "`%s`." % mixused[1].split(" ", 1)[1].strip())
inc = read("incidents.txt")
if inc:
    out.append("")
    out.append("**Incidents during the run** (a server was gone and was restarted):")
    out.append("")
    out += ["- " + l for l in inc]
probe = read("probe.txt")
if probe:
    out.append("")
    out.append("Probe (each command once): " + "; ".join("%s: %s" % (p.split()[0], " ".join(
        x for x in p.split()[2:] if not x.endswith("=ok")) or "all ok") for p in probe))

out.append("")
out.append("## Throughput and latency (closed loop, medians over rounds)")
out.append("")
out.append("persist = one session per client for the whole run; session = LOGOUT and a new "
           "connection + LOGIN + SELECT every 20 commands; persist-tls = persist over implicit TLS (Dovecot's "
           "imaps, maildir); persist+idleN = 10 active clients while N more sit idle. Errors are never "
           "counted as throughput.")
out.append("")
out.append("Interference from other work on the machine only ever slows a run down, so the best round of "
           "each server is also given (\"best\": highest cmd/s of the rounds, each server's own best).")
out.append("")
out.append("| workload | clients | picoimapd cmd/s | maildir cmd/s | mbox cmd/s | pico/maildir | pico/mbox "
           "| best pico/maildir | best pico/mbox "
           "| pico p99 ms | maildir p99 | mbox p99 | p99 pico/maildir | errors pico/md/mb | rounds |")
out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
plot_tp = {}
keys = sorted({(wl, n) for (_s, wl, n) in tot}, key=lambda x: (x[0] != "persist", "idle" in x[0], x[0], int(x[1])))
for wl, n in keys:
    row = {}
    for s in ("pico", "dvmd", "dvmb"):
        l = tot.get((s, wl, n), [])
        row[s] = (med(l, "cps"), med(l, "p99_us"), sum(int(x.get("err", 0)) for x in l), len(l))
    pc, pp, _, _ = row["pico"]
    mc, mp, _, _ = row["dvmd"]
    bc, bp, _, _ = row["dvmb"]
    plot_tp[(wl, n)] = (pc, mc, bc)
    best = {}
    for sv in ("pico", "dvmd", "dvmb"):
        v = [float(x["cps"]) for x in tot.get((sv, wl, n), [])]
        best[sv] = max(v) if v else None
    out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        wl, n, f(pc), f(mc), f(bc), ratio(pc, mc), ratio(pc, bc),
        ratio(best["pico"], best["dvmd"]), ratio(best["pico"], best["dvmb"]),
        f(pp and pp / 1000, "%.2f"), f(mp and mp / 1000, "%.2f"), f(bp and bp / 1000, "%.2f"),
        ratio(pp, mp), "/".join(str(row[s][2]) for s in ("pico", "dvmd", "dvmb")),
        max(row[s][3] for s in row)))

# CPU cost per command: robust against a noisy machine.
sess = [k for k in keys if k[0] == "session"]
if sess:
    out.append("")
    out.append("### Session workloads: p99 with the TCP connects counted (medians over rounds)")
    out.append("")
    out.append("In the session workload every client reconnects each 20 commands. The p99 above counts "
               "commands only; a server slow to accept (Dovecot starts processes per login) keeps its "
               "clients in connect, so fewer of them are in commands at once and its command latencies are "
               "those of a lighter load. Here the connects count as latencies too (what a client waits for "
               "in all).")
    out.append("")
    out.append("| workload | clients | pico p99 ms | maildir p99 | mbox p99 | pico p99 with connects | "
               "maildir p99 with connects | mbox p99 with connects | p99 pico/maildir with connects |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for wl, n in sess:
        p = {s: med(tot.get((s, wl, n), []), "p99_us") for s in ("pico", "dvmd", "dvmb")}
        c = {s: med(tot.get((s, wl, n), []), "p99c_us") for s in ("pico", "dvmd", "dvmb")}
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            wl, n, f(p["pico"] and p["pico"] / 1000, "%.2f"), f(p["dvmd"] and p["dvmd"] / 1000, "%.2f"),
            f(p["dvmb"] and p["dvmb"] / 1000, "%.2f"), f(c["pico"] and c["pico"] / 1000, "%.2f"),
            f(c["dvmd"] and c["dvmd"] / 1000, "%.2f"), f(c["dvmb"] and c["dvmb"] / 1000, "%.2f"),
            ratio(c["pico"], c["dvmd"])))

out.append("")
out.append("### Server CPU per command and CPU starvation (medians over rounds)")
out.append("")
out.append("CPU = user+system time of every server process over the whole run (ramp and warm-up included) "
           "divided by every command completed in it. Run-queue wait = time the server was runnable but "
           "had no CPU (other processes on the machine, the load generator). Load = 1-minute load average "
           "before the run.")
out.append("")
out.append("Written = write_bytes of the server's processes (/proc/PID/io) per command completed; "
           "Dovecot's session-workload figure misses the imap processes that exited during the run.")
out.append("")
out.append("| workload | clients | pico CPU us/cmd | maildir CPU us/cmd | mbox CPU us/cmd | pico written B/cmd | "
           "maildir written B/cmd | mbox written B/cmd | pico runq wait s | pico CPU s | load avg |")
out.append("|---|---|---|---|---|---|---|---|---|---|---|")


def percmd(s, wl, n):
    v = []
    for t in tot.get((s, wl, n), []):
        sv = sysv.get(t["label"])
        if sv and int(t.get("all_ok", 0)) > 0:
            v.append(float(sv["server_cpu_s"]) * 1e6 / int(t["all_ok"]))
    return statistics.median(v) if v else None


def wpercmd(s, wl, n):
    v = []
    for t in tot.get((s, wl, n), []):
        sv = sysv.get(t["label"])
        if sv and "write_bytes" in sv and int(t.get("all_ok", 0)) > 0:
            v.append(int(sv["write_bytes"]) / int(t["all_ok"]))
    return statistics.median(v) if v else None


def sysmed(s, wl, n, key):
    v = [float(sysv[t["label"]][key]) for t in tot.get((s, wl, n), []) if t["label"] in sysv]
    return statistics.median(v) if v else None


for wl, n in keys:
    if ("pico", wl, n) not in tot or percmd("pico", wl, n) is None:
        continue
    loads = [sysv[t["label"]]["loadavg"] for s in ("pico", "dvmd", "dvmb") for t in tot.get((s, wl, n), [])
             if t["label"] in sysv]
    out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        wl, n, f(percmd("pico", wl, n)), f(percmd("dvmd", wl, n)), f(percmd("dvmb", wl, n)),
        f(wpercmd("pico", wl, n)), f(wpercmd("dvmd", wl, n)), f(wpercmd("dvmb", wl, n)),
        f(sysmed("pico", wl, n, "runq_wait_s"), "%.1f"), f(sysmed("pico", wl, n, "server_cpu_s"), "%.1f"),
        ("%s-%s" % (min(loads, key=float), max(loads, key=float))) if loads else "-"))

# Per command, for the persistent mix.
for n in sorted({n for (_s, wl, n, _o) in ops if wl == "persist"}, key=int):
    out.append("")
    out.append("### Per command, persist, %s clients (medians over rounds; p50/p99 in ms)" % n)
    out.append("")
    out.append("| command | pico cmd/s | maildir cmd/s | mbox cmd/s | pico p50 | pico p99 | maildir p50 | "
               "maildir p99 | mbox p50 | mbox p99 | pico errors (no/bad/verify/io) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    opnames = []
    for (s, wl, nn, o) in ops:
        if wl == "persist" and nn == n and o not in opnames:
            opnames.append(o)
    order = ["connect", "login", "select", "append", "fetch_flags", "fetch_hdr", "fetch_bs", "fetch_body",
             "store", "search", "search_hdr", "store_del", "expunge", "idle", "noop", "logout"]
    for o in sorted(opnames, key=lambda x: order.index(x) if x in order else 99):
        c = {s: ops.get((s, "persist", n, o), []) for s in ("pico", "dvmd", "dvmb")}
        pe = c["pico"]
        errs = "/".join(str(sum(int(x.get(k, 0)) for x in pe)) for k in ("no", "bad", "verify", "io"))
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            o, f(med(c["pico"], "cps")), f(med(c["dvmd"], "cps")), f(med(c["dvmb"], "cps")),
            *[f((med(c[s], k) or 0) / 1000 if med(c[s], k) is not None else None, "%.2f")
              for s in ("pico", "dvmd", "dvmb") for k in ("p50_us", "p99_us")], errs))

# Memory.
mem = [kv(l) for l in read("mem.txt") if l.startswith("M ")]
out.append("")
out.append("## Memory per idle connection (logged in, INBOX selected)")
out.append("")
out.append("PSS from /proc/PID/smaps_rollup summed over every process of the server (Dovecot: master and "
           "all children), minus the same sum before the clients connected, divided by the connections.")
out.append("")
out.append("| connections | picoimapd kB/conn | Dovecot kB/conn | ratio | picoimapd PSS total MB | Dovecot PSS "
           "total MB | Dovecot processes |")
out.append("|---|---|---|---|---|---|---|")
bykey = {}
for m in mem:
    if "failed" in m:
        bykey[(m["server"], m["conns"])] = None
        continue
    per = (int(m["pss_kb"]) - int(m["base_pss_kb"])) / int(m["conns"])
    bykey[(m["server"], m["conns"])] = (per, int(m["pss_kb"]) / 1024.0, m.get("procs"))
plot_mem = []
for pair in (("pico", "dovecot"), ("pico-tls", "dovecot-tls")):
    conns = sorted({c for (s, c) in bykey if s in pair}, key=int)
    for c in conns:
        a, b = bykey.get((pair[0], c)), bykey.get((pair[1], c))
        label = c + (" TLS" if "tls" in pair[0] else "")
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            label, f(a and a[0], "%.2f") if a else ("failed" if (pair[0], c) in bykey else "-"),
            f(b and b[0], "%.1f") if b else ("failed" if (pair[1], c) in bykey else "-"),
            ("1/%.0f" % (b[0] / a[0])) if a and b and a[0] > 0 else "-",
            f(a and a[1], "%.1f") if a else "-", f(b and b[1], "%.1f") if b else "-", b[2] if b else "-"))
        if "tls" not in pair[0]:
            plot_mem.append((int(c), a[0] if a else None, b[0] if b else None))

# Footprint.
foot = {kv(l)["server"]: kv(l) for l in read("foot.txt") if l.startswith("F ")}
if foot:
    out.append("")
    out.append("## Footprint at start (no clients)")
    out.append("")
    out.append("| server | stripped binaries | other shared libraries (Debian, not counted) | PSS at start | "
               "RSS at start | processes |")
    out.append("|---|---|---|---|---|---|")
    for s in ("pico", "dovecot"):
        if s in foot:
            d = foot[s]
            libs = "-"
            if d.get("shared_libs_bytes"):
                libs = "%.0f KiB (%s)" % (int(d["shared_libs_bytes"]) / 1024.0,
                                          d.get("shared_libs", "").replace(",", ", "))
            out.append("| %s | %.0f KiB | %s | %s kB | %s kB | %s |" % (
                "picoimapd" if s == "pico" else "Dovecot (dovecot, imap, imap-login, auth, anvil, log, config, "
                "stats, libdovecot, libdovecot-storage, libdovecot-login)",
                int(d["stripped_bytes"]) / 1024.0, libs, d["pss_kb"], d["rss_kb"], d["procs"]))

# Targets.
out.append("")
out.append("## Targets (issue 8)")
out.append("")


def verdict(ok):
    return "met" if ok else "MISSED"


m = bykey.get(("pico", "1000")) or bykey.get(("pico", "100"))
d = bykey.get(("dovecot", "1000")) or bykey.get(("dovecot", "100"))
if m and d:
    out.append("- memory per idle plaintext connection <= 1/50 of Dovecot's: %s (%.2f vs %.1f kB, 1/%.0f)" % (
        verdict(m[0] * 50 <= d[0]), m[0], d[0], d[0] / m[0] if m[0] > 0 else float("inf")))
mt, dt = bykey.get(("pico-tls", "100")), bykey.get(("dovecot-tls", "100"))
if dt:
    if mt:
        out.append("- memory per TLS connection <= 1/40 of Dovecot's imaps: %s (%.2f vs %.1f kB)" % (
            verdict(mt[0] * 40 <= dt[0]), mt[0], dt[0]))
    else:
        out.append("- memory per TLS connection: picoimapd has no TLS listener in this build; Dovecot imaps "
                   "%.1f kB/conn, so the target is <= %.1f kB" % (dt[0], dt[0] / 40))
for n in ("10", "100"):
    pc, mc, bc = plot_tp.get(("persist", n), (None, None, None))
    best = max([x for x in (mc, bc) if x] or [0])
    if pc and best:
        out.append("- persist-mix throughput >= 1.0x Dovecot with %s clients: %s (%.2fx the faster backend)" % (
            n, verdict(pc >= best), pc / best))
    l = {s: med(tot.get((s, "persist", n), []), "p99_us") for s in ("pico", "dvmd", "dvmb")}
    if l["pico"] and l["dvmd"]:
        bestp = min(x for x in (l["dvmd"], l["dvmb"]) if x)
        out.append("- p99 latency no worse than Dovecot with %s clients: %s (%.2f ms vs %.2f ms)" % (
            n, verdict(l["pico"] <= bestp), l["pico"] / 1000, bestp / 1000))
for n in ("10", "100"):
    p = {s: med(tot.get((s, "session", n), []), "p99_us") for s in ("pico", "dvmd", "dvmb")}
    c = {s: med(tot.get((s, "session", n), []), "p99c_us") for s in ("pico", "dvmd", "dvmb")}
    bp = min([x for x in (p["dvmd"], p["dvmb"]) if x] or [0])
    bc = min([x for x in (c["dvmd"], c["dvmb"]) if x] or [0])
    if p["pico"] and bp:
        out.append("- session workload, %s clients, p99 no worse than Dovecot: commands only %s (%.2f vs %.2f ms); "
                   "connects counted %s" % (n, verdict(p["pico"] <= bp), p["pico"] / 1000, bp / 1000,
                                            "%s (%.2f vs %.2f ms)" % (verdict(c["pico"] <= bc), c["pico"] / 1000,
                                                                      bc / 1000) if c["pico"] and bc else "-"))
big = [k for k in tot if k[0] == "pico" and "idle" in k[1]]
for k in big:
    base = med(tot.get(("pico", "persist", "10"), []), "p99_us")
    w = med(tot[k], "p99_us")
    out.append("- 10 active clients keep their p99 while %s connections idle: p99 %.2f ms (vs %s ms without), "
               "%s cmd/s, errors %s" % (k[1].split("idle")[1], w / 1000,
                                        f(base and base / 1000, "%.2f"), f(med(tot[k], "cps")),
                                        sum(int(x.get("err", 0)) for x in tot[k])))

text = "\n".join(out) + "\n"
print(text)
open(os.path.join(res, "summary.md"), "w").write(text)

# Plot.
if shutil.which("gnuplot"):
    tp = os.path.join(res, "plot-tp.dat")
    with open(tp, "w") as fh:
        for (wl, n), (pc, mc, bc) in sorted(plot_tp.items(), key=lambda x: int(x[0][1])):
            if wl == "persist":
                fh.write("%s %s %s %s\n" % (n, pc or "NaN", mc or "NaN", bc or "NaN"))
    mm = os.path.join(res, "plot-mem.dat")
    with open(mm, "w") as fh:
        for c, a, b in sorted(plot_mem):
            fh.write("%d %s %s\n" % (c, a if a else "NaN", b if b else "NaN"))
    cp = os.path.join(res, "plot-cpu.dat")
    with open(cp, "w") as fh:
        for wl in ("persist", "session"):
            for n in ("10", "100"):
                v = [percmd(sv, wl, n) for sv in ("pico", "dvmd", "dvmb")]
                fh.write("\"%s %s\" %s\n" % (wl, n, " ".join("%.0f" % x if x else "NaN" for x in v)))
    png = os.path.join(res, "bench.png")
    gp = """set terminal pngcairo size 1650,500 font ',10' noenhanced
set output '%s'
set multiplot layout 1,3 title 'picoimapd vs Dovecot (%s)'
set logscale x
set xlabel 'clients'
set ylabel 'commands/s (persistent-session mix)'
set key top left
set grid
set yrange [0:*]
set xrange [5:200]
plot '%s' u 1:2 w lp lw 2 pt 7 t 'picoimapd', '' u 1:3 w lp lw 2 pt 5 t 'Dovecot maildir', '' u 1:4 w lp lw 2 pt 9 t 'Dovecot mbox'
set logscale y
set xrange [5:20000]
set yrange [*:*]
set xlabel 'idle connections'
set key bottom left
set ylabel 'PSS per connection, kB (log)'
plot '%s' u 1:2 w lp lw 2 pt 7 t 'picoimapd', '' u 1:3 w lp lw 2 pt 5 t 'Dovecot'
unset logscale
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xrange [*:*]
set yrange [0:*]
set xlabel 'workload, clients'
set ylabel 'server CPU per command, microseconds'
plot '%s' u 2:xtic(1) t 'picoimapd', '' u 3 t 'Dovecot maildir', '' u 4 t 'Dovecot mbox'
unset multiplot
""" % (png, time.strftime("%Y-%m-%d"), tp, mm, cp)
    try:
        subprocess.run(["gnuplot"], input=gp, text=True, check=True, capture_output=True)
        if not PARTIAL:
            shutil.copy(png, os.path.join(top, "bench.png"))
    except (subprocess.CalledProcessError, OSError) as e:
        print("plot failed: %s" % getattr(e, "stderr", e), file=sys.stderr)
# The tracked summary is the full bench's; a partial run stays in its folder.
if not PARTIAL:
    shutil.copy(os.path.join(res, "summary.md"), os.path.join(top, "summary.md"))
