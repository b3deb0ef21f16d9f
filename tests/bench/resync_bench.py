#!/usr/bin/python3
"""QRESYNC resync and IDLE push latency, picoimapd and Dovecot side by side.

A mailbox of N messages (default 50,000; RESYNC_N) is imported into both
servers. A client syncs it fully and remembers UIDVALIDITY/HIGHESTMODSEQ;
another client then changes the flags of 100 messages and expunges 100
others; the first client reconnects with SELECT (QRESYNC ...) and we
measure the time and the bytes the server sent for that resync, and check
that VANISHED names exactly the expunged UIDs and the FETCHes cover the
changed ones. Then the latency from an APPEND by one client to the EXISTS
pushed to another client in IDLE, median of 20. Run as root (Dovecot);
`make bench-resync`."""
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("RESYNC_N", "50000"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import dovecot  # noqa: E402
PICO = os.environ.get("PICOIMAPD", os.path.join(ROOT, "build", "picoimapd"))


def write_mbox(path, n):
    with open(path, "wb") as f:
        for i in range(1, n + 1):
            f.write(b"From sender@example.org Mon Jan  5 10:00:00 2026\n"
                    b"From: Sender %d <sender@example.org>\nTo: bench@example.org\n"
                    b"Subject: message %d\nDate: Mon, 05 Jan 2026 10:00:00 +0000\n"
                    b"Message-ID: <%d@bench>\n\nBody of message %d.\n\n" % (i, i, i, i))


class Conn:
    """A raw client that counts the bytes it receives."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""
        self.got = 0
        self.n = 0
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(1 << 20)
            if not d:
                raise SystemExit("server closed the connection")
            self.got += len(d)
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", ln)
        if m:   # a literal: read it and the rest of its line
            need = int(m.group(1))
            while len(self.buf) < need:
                d = self.s.recv(1 << 20)
                self.got += len(d)
                self.buf += d
            ln += b"\r\n" + self.buf[:need]
            self.buf = self.buf[need:]
            ln += self.line()
        return ln

    def cmd(self, text):
        self.n += 1
        tag = b"c%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        out = []
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                if not ln.startswith(tag + b" OK"):
                    raise SystemExit("%s -> %r" % (text, ln))
                return out
            out.append(ln)


def uid_set(text):
    out = set()
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":")
            out.update(range(int(a), int(b) + 1))
        elif part:
            out.add(int(part))
    return out


def start_pico(work, mbox):
    port = dovecot.free_port()
    conf = os.path.join(work, "pico.conf")
    with open(os.path.join(work, "passwd"), "w") as f:
        f.write("bench:{PLAIN}bench\n")
    with open(conf, "w") as f:
        f.write("listen = 127.0.0.1:%d\nstore = mail\npasswd = passwd\nlog_level = warn\n"
                "allow_plaintext = yes\nspecial_folders = no\nallow_root = yes\n" % port)
    subprocess.run([PICO, "import", "-u", "bench", "-c", conf, mbox], check=True,
                   stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([PICO, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dovecot.wait_port(port, proc)
    return proc, port


def start_dovecot(work, mbox):
    port = dovecot.free_port()
    os.chmod(work, 0o755)
    mail = os.path.join(work, "dmail")
    os.makedirs(mail)
    shutil.copy(mbox, os.path.join(mail, "INBOX"))
    pw = os.path.join(work, "dpasswd")
    with open(pw, "w") as f:
        f.write("bench:{PLAIN}bench\n")
    os.makedirs(os.path.join(work, "index"))
    os.chown(os.path.join(work, "index"), 65534, 65534)
    dovecot.chown_nobody(mail)
    conf = dovecot.write_conf(work, port, pw, "mbox:{m}:INBOX={m}/INBOX:INDEX={d}/index".format(m=mail, d=work))
    return dovecot.start(conf, port), port


def run(port):
    r = {}
    a = Conn(port)
    a.cmd("LOGIN bench bench")
    a.cmd("ENABLE QRESYNC")
    t = time.monotonic()
    out = a.cmd("SELECT INBOX")
    r["select_s"] = time.monotonic() - t
    text = b"\n".join(out)
    uidv = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", text).group(1))
    t = time.monotonic()
    out = a.cmd("UID FETCH 1:* (FLAGS)")
    r["fetch_flags_s"] = time.monotonic() - t
    assert len(out) >= N - 1, "UID FETCH 1:* FLAGS gave %d lines" % len(out)
    a.cmd("LOGOUT")
    # Offline changes by another client.
    rnd = random.Random(7)
    picks = rnd.sample(range(1, N + 1), 200)
    flagged, gone = sorted(picks[:100]), sorted(picks[100:])
    b = Conn(port)
    b.cmd("LOGIN bench bench")
    b.cmd("SELECT INBOX")
    b.cmd("UID STORE %s +FLAGS.SILENT (\\Flagged)" % ",".join(map(str, flagged)))
    b.cmd("UID STORE %s +FLAGS.SILENT (\\Deleted)" % ",".join(map(str, gone)))
    b.cmd("EXPUNGE")
    b.cmd("LOGOUT")
    # The resync.
    c = Conn(port)
    c.cmd("LOGIN bench bench")
    c.cmd("ENABLE QRESYNC")
    before = c.got
    t = time.monotonic()
    out = c.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uidv, hms))
    r["resync_s"] = time.monotonic() - t
    r["resync_bytes"] = c.got - before
    vanished = set()
    fetched = set()
    for ln in out:
        m = re.match(rb"\* VANISHED \(EARLIER\) (\S+)", ln)
        if m:
            vanished |= uid_set(m.group(1).decode())
        m = re.search(rb"FETCH \(.*UID (\d+)", ln)
        if m:
            fetched.add(int(m.group(1)))
    r["vanished_exact"] = vanished == set(gone)
    r["changed_covered"] = set(flagged) <= fetched
    r["fetches"] = len(fetched)
    c.cmd("LOGOUT")
    # IDLE push latency.
    idler = Conn(port)
    idler.cmd("LOGIN bench bench")
    idler.cmd("SELECT INBOX")
    poster = Conn(port)
    poster.cmd("LOGIN bench bench")
    lat = []
    msg = b"Subject: push\r\n\r\nhello\r\n"
    for i in range(20):
        idler.n += 1
        tag = b"i%d" % idler.n
        idler.s.sendall(tag + b" IDLE\r\n")
        assert idler.line().startswith(b"+")
        t = time.monotonic()
        poster.s.sendall(b"p%d APPEND INBOX {%d+}\r\n" % (i, len(msg)) + msg + b"\r\n")
        while True:
            ln = idler.line()
            if ln.endswith(b"EXISTS"):
                lat.append(time.monotonic() - t)
                break
        idler.s.sendall(b"DONE\r\n")
        while not idler.line().startswith(tag):
            pass
        while not poster.line().startswith(b"p%d " % i):
            pass
    r["idle_ms"] = statistics.median(lat) * 1000
    return r


def main():
    work = tempfile.mkdtemp(prefix="resync-bench-")
    mbox = os.path.join(work, "src.mbox")
    write_mbox(mbox, N)
    results = {}
    try:
        proc, port = start_pico(os.path.join(work), mbox)
        try:
            results["picoimapd"] = run(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        if os.geteuid() == 0 and os.path.exists("/usr/sbin/dovecot"):
            dproc, dport = start_dovecot(work, mbox)
            try:
                results["dovecot-mbox"] = run(dport)
            finally:
                dovecot.stop(dproc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keys = ["select_s", "fetch_flags_s", "resync_s", "resync_bytes", "vanished_exact",
            "changed_covered", "fetches", "idle_ms"]
    print("QRESYNC resync of %d messages after 100 flag changes and 100 expunges; IDLE push latency" % N)
    print("| measure | " + " | ".join(results) + " | pico/dovecot |")
    print("|---|" + "---|" * (len(results) + 1))
    for k in keys:
        vals = [results[s][k] for s in results]
        ratio = ""
        if len(vals) == 2 and isinstance(vals[0], float) or (len(vals) == 2 and isinstance(vals[0], int)
                                                               and not isinstance(vals[0], bool)):
            ratio = "%.2f" % (vals[0] / vals[1]) if vals[1] else "-"
        fmt = lambda v: ("%.3f" % v) if isinstance(v, float) else str(v)
        print("| %s | %s | %s |" % (k, " | ".join(fmt(v) for v in vals), ratio))
    ok = all(r["vanished_exact"] and r["changed_covered"] for r in results.values())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
