#!/usr/bin/env python3
"""close_stall.py -- how long the other clients wait on the LOGOUT that
closes a mailbox due for compaction (issue 8, session churn).

One picoimapd (PICOIMAPD=path) with a fresh store. Per repetition a new
user gets N messages of SIZE bytes (3 MB by default); client A selects
INBOX, flags the first half \\Deleted and sends EXPUNGE and LOGOUT in one
write, so the purge (which starts a compaction job) and the last close
fall in one loop turn. Client B, logged in as another user, sends NOOPs
back to back from just before A's write until the mailbox file has been
replaced (compaction committed) and 0.2 s more; the longest NOOP round trip
is the stall that every client of the server sees. Prints each
repetition's longest and 99th-percentile NOOP and the medians.

  PICOIMAPD=build/picoimapd /usr/bin/python3 tests/bench/close_stall.py
  STALL_REPS=7 STALL_N=30 STALL_SIZE=102400 (defaults)
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import imaplib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from dovecot import free_port  # noqa: E402  (tests/lib: one copy)

BIN = os.environ.get("PICOIMAPD", "build/picoimapd")
REPS = int(os.environ.get("STALL_REPS", "7"))
N = int(os.environ.get("STALL_N", "30"))
SIZE = int(os.environ.get("STALL_SIZE", str(100 * 1024)))


def message(i):
    line = b"x" * 76 + b"\r\n"
    body = line * (SIZE // len(line))
    return b"Subject: m%d\r\nFrom: a@b\r\n\r\n" % i + body


class Raw:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.n = 0

    def cmd(self, line):
        self.n += 1
        tag = b"b%d" % self.n
        self.s.sendall(tag + b" " + line + b"\r\n")
        while True:
            r = self.f.readline()
            if not r:
                raise EOFError
            if r.startswith(tag + b" "):
                return r


def main():
    work = tempfile.mkdtemp(prefix="close_stall.")
    port = free_port()
    users = ["u%d" % i for i in range(REPS)] + ["watcher"]
    with open(os.path.join(work, "passwd"), "w") as f:
        for u in users:
            f.write("%s:{PLAIN}pw\n" % u)
    with open(os.path.join(work, "picoimapd.conf"), "w") as f:
        f.write("listen = 127.0.0.1:%d\nstore = mail\npasswd = passwd\nlog = stderr\n"
                "log_level = warn\nallow_plaintext = yes\nspecial_folders = no\n" % port)
        if os.geteuid() == 0:
            f.write("allow_root = yes\n")
    log = open(os.path.join(work, "stderr.log"), "w")
    p = subprocess.Popen([os.path.abspath(BIN), "-c", os.path.join(work, "picoimapd.conf")],
                         cwd=work, stderr=log, stdout=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    rows = []
    try:
        w = Raw(port)
        assert b"OK" in w.cmd(b"LOGIN watcher pw")
        w.cmd(b"SELECT INBOX")
        for u in users[:-1]:
            c = imaplib.IMAP4("127.0.0.1", port)
            c.login(u, "pw")
            for i in range(N):
                c.append("INBOX", None, None, message(i))
            c.logout()
            mbox = os.path.join(work, "mail", u, "INBOX")
            ino0 = os.stat(mbox).st_ino
            a = Raw(port)
            a.cmd(b"LOGIN %s pw" % u.encode())
            a.cmd(b"SELECT INBOX")
            a.cmd(b"STORE 1:%d +FLAGS.SILENT (\\Deleted)" % (N // 2))
            lat = []
            stop = threading.Event()

            def noops():
                while not stop.is_set():
                    t = time.perf_counter()
                    w.cmd(b"NOOP")
                    lat.append(time.perf_counter() - t)

            th = threading.Thread(target=noops)
            th.start()
            time.sleep(0.05)
            a.s.sendall(b"x1 EXPUNGE\r\nx2 LOGOUT\r\n")
            deadline = time.time() + 20
            while os.stat(mbox).st_ino == ino0 and time.time() < deadline:
                time.sleep(0.005)
            time.sleep(0.2)
            stop.set()
            th.join()
            a.s.close()
            lat.sort()
            done = os.stat(mbox).st_ino != ino0
            rows.append((max(lat) * 1000, lat[int(len(lat) * 0.99)] * 1000, len(lat), done))
            print("%s: longest NOOP %.2f ms, p99 %.2f ms, %d NOOPs, compacted %s"
                  % (u, rows[-1][0], rows[-1][1], rows[-1][2], done), flush=True)
    finally:
        p.terminate()
        p.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    print("median of %d: longest NOOP %.2f ms, p99 %.2f ms"
          % (len(rows), statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)))
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
