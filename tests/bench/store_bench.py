#!/usr/bin/python3
"""Per-operation store cost: picoimapd against Dovecot's mbox and maildir
backends, side by side on loopback in one run (issue 3).

For each operation we record the time (client side, command sent to tagged
line read) and what the server wrote, three ways:
  - vfs:  picoimapd's own file-ops counters (posix_cnt in storage/vfs_posix.c,
          read from /proc/PID/mem at its symbol address): bytes passed to
          pwrite, i.e. what the store asked to write;
  - file: wchar from /proc/PID/io, i.e. bytes handed to write()/pwrite(),
          minus the bytes the client received when the server's socket
          writes count there (write() on a socket does, send() does not;
          Meter finds out with a few CAPABILITYs). For Dovecot: the imap
          process that serves the session (found by its socket's inode);
  - disk: write_bytes from /proc/PID/io: page-cache pages the process
          dirtied (4 KiB each), what will reach the disk (journal aside).

Operations (all three servers, interleaved so they see the same load):
  append   APPEND of a 4,096-byte message to INBOX          (STORE_APPEND_N)
  flag     UID STORE +FLAGS (\\Flagged) of one message       (STORE_FLAG_N)
  expunge  STORE +FLAGS.SILENT (\\Deleted) + EXPUNGE of one random message
           in a 10,000-message mailbox        (STORE_EXP_BOX, STORE_EXP_N)
  compact  one-at-a-time expunges of random messages in a mailbox of
           4 KiB messages (STORE_CMP_BOX) until picoimapd compacts; Dovecot
           does the same expunges; bytes per expunge, amortized
  select   SELECT of a 100,000-message mailbox right after a restart of the
           server, then UID FETCH 1:* (FLAGS)  (STORE_BIG_N, STORE_SEL_REPS)

Medians over the repeats. Needs root for Dovecot (without it, or without
/usr/sbin/dovecot, picoimapd runs alone). `make bench-store`; the table is
written to tests/bench/results/store-summary.md (STORE_OUT=path elsewhere,
STORE_OUT= to skip) and printed. STORE_DV_FSYNC=always makes Dovecot sync
flag changes and expunges as picoimapd does (its default is `optimized`).
"""
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
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import dovecot  # noqa: E402

PICO = os.environ.get("PICOIMAPD", os.path.join(ROOT, "build", "picoimapd"))
APPEND_N = int(os.environ.get("STORE_APPEND_N", "200"))
FLAG_N = int(os.environ.get("STORE_FLAG_N", "200"))
EXP_BOX = int(os.environ.get("STORE_EXP_BOX", "10000"))
EXP_N = int(os.environ.get("STORE_EXP_N", "50"))
CMP_BOX = int(os.environ.get("STORE_CMP_BOX", "1000"))
BIG_N = int(os.environ.get("STORE_BIG_N", "100000"))
SEL_REPS = int(os.environ.get("STORE_SEL_REPS", "5"))
OUT = os.environ.get("STORE_OUT", os.path.join(ROOT, "tests", "bench", "results", "store-summary.md"))
DV_FSYNC = os.environ.get("STORE_DV_FSYNC", "")
MSG_SIZE = 4096
USER = "bench"
BOXES = ("exp", "cmp", "big")
# Which operations run (comma-separated: append, flag, expunge, compact,
# select); default all. The report leaves out rows of those not run.
OPS = set(filter(None, os.environ.get("STORE_BENCH_OPS", "append,flag,expunge,compact,select").split(",")))


# ---------------------------------------------------------------- corpus

def message(i, size, crlf):
    """A deterministic message of exactly `size` bytes in wire form (CRLF),
    or the same message with LF line ends for disk (`crlf` false)."""
    head = ("From: Sender %d <sender@example.org>\r\nTo: bench@example.org\r\n"
            "Subject: message %d\r\nDate: Mon, 05 Jan 2026 10:00:00 +0000\r\n"
            "Message-ID: <%d.%d@bench>\r\n\r\n" % (i, i, i, size)).encode()
    body = bytearray()
    n = 0
    while True:
        ln = b"line %06d of message %d: lorem ipsum dolor sit amet\r\n" % (n, i)
        if len(head) + len(body) + len(ln) + 3 > size:
            break
        body += ln
        n += 1
    # one last line of filler makes the size exact (at least "x\r\n")
    body += b"x" * (size - len(head) - len(body) - 2) + b"\r\n"
    msg = head + bytes(body)
    assert len(msg) == size, (len(msg), size)
    return msg if crlf else msg.replace(b"\r\n", b"\n")


def write_sources(work):
    """One mbox per mailbox (the same bytes go to every server); returns
    {mailbox: path}. Messages of 1 KiB for the expunge box, 4 KiB for the
    compaction box, about 200 bytes for the 100,000 one."""
    spec = {"exp": (EXP_BOX, 1024), "cmp": (CMP_BOX, MSG_SIZE), "big": (BIG_N, 0)}
    paths = {}
    for name, (n, size) in spec.items():
        p = os.path.join(work, "src-%s.mbox" % name)
        with open(p, "wb") as f:
            for i in range(1, n + 1):
                f.write(b"From sender@example.org Mon Jan  5 10:00:00 2026\n")
                if size:
                    f.write(message(i, size, False))
                else:
                    f.write(b"From: Sender %d <sender@example.org>\nTo: bench@example.org\n"
                            b"Subject: message %d\nDate: Mon, 05 Jan 2026 10:00:00 +0000\n"
                            b"Message-ID: <%d@bench>\n\nBody of message %d.\n" % (i, i, i, i))
                f.write(b"\n")
        paths[name] = p
    return paths


def mbox_to_maildir(src, folder, now):
    """Each message of `src` becomes one file in folder/cur (Maildir)."""
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(folder, d), exist_ok=True)
    with open(src, "rb") as f:
        data = f.read()
    msgs = data.split(b"\nFrom sender@example.org Mon Jan  5 10:00:00 2026\n")
    msgs[0] = msgs[0].split(b"\n", 1)[1]
    cur = os.path.join(folder, "cur")
    for i, m in enumerate(msgs):
        if m.endswith(b"\n\n"):
            m = m[:-1]
        with open(os.path.join(cur, "%d.M%dP1.bench:2," % (now, i)), "wb") as f:
            f.write(m)


# ---------------------------------------------------------------- client

class Conn:
    """A raw IMAP client that only looks for its tagged line (no per-line
    parsing, so a 100,000-line FETCH costs it almost nothing) and counts
    the bytes it receives."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.got = 0
        self.n = 0
        self.literal_plus = False
        while b"\r\n" not in self.buf:
            self._recv()
        del self.buf[:self.buf.find(b"\r\n") + 2]

    def _recv(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise RuntimeError("server closed the connection")
        self.got += len(d)
        self.buf += d

    def read_tagged(self, tag):
        """Everything up to the tagged line, and that line. The buffer is a
        bytearray (appends are amortized O(1)) and only the new bytes are
        searched, so a 4 MB answer costs a few ms of client time."""
        key = b"\r\n" + tag + b" "
        pos = 0
        while True:
            if self.buf.startswith(tag + b" "):
                i = 0
            else:
                j = self.buf.find(key, pos)
                i = j + 2 if j != -1 else -1
            if i != -1:
                e = self.buf.find(b"\r\n", i)
                if e != -1:
                    body, line = bytes(self.buf[:i]), bytes(self.buf[i:e])
                    del self.buf[:e + 2]
                    return body, line
            else:
                pos = max(0, len(self.buf) - len(key))
            self._recv()

    def cmd(self, text, literal=None, ok=True):
        """Sends one command (with one literal if given); returns
        (untagged bytes, tagged line)."""
        self.n += 1
        tag = b"c%d" % self.n
        line = tag + b" " + (text.encode() if isinstance(text, str) else text)
        if literal is None:
            self.s.sendall(line + b"\r\n")
        elif self.literal_plus:
            self.s.sendall(line + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        else:
            self.s.sendall(line + b" {%d}\r\n" % len(literal))
            while b"\r\n" not in self.buf:
                self._recv()
            e = self.buf.find(b"\r\n")
            cont = bytes(self.buf[:e])
            del self.buf[:e + 2]
            if not cont.startswith(b"+"):
                raise RuntimeError("%s: no continuation: %r" % (text, cont))
            self.s.sendall(literal + b"\r\n")
        body, tagged = self.read_tagged(tag)
        if ok and not tagged.startswith(tag + b" OK"):
            raise RuntimeError("%s -> %r" % (text, tagged))
        return body, tagged

    def login(self):
        body, _ = self.cmd("LOGIN %s %s" % (USER, USER))
        caps, _ = self.cmd("CAPABILITY")
        self.literal_plus = b" LITERAL+" in caps or b" LITERAL-" in caps

    def close(self):
        try:
            self.cmd("LOGOUT", ok=False)
        except (OSError, RuntimeError):
            pass
        self.s.close()


# ---------------------------------------------------------------- counters

def proc_io(pid):
    """(wchar, write_bytes) of one process."""
    w = wb = 0
    with open("/proc/%d/io" % pid) as f:
        for ln in f:
            k, v = ln.split(":")
            if k == "wchar":
                w = int(v)
            elif k == "write_bytes":
                wb = int(v)
    return w, wb


def symbol_offset(binary, name):
    try:
        out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for ln in out.splitlines():
        p = ln.split()
        if len(p) == 3 and p[2] == name:
            return int(p[0], 16)
    return None


class PicoVfs:
    """picoimapd's st_vfs_counters (writes, bytes_written, syncs, reads,
    bytes_read; see storage/vfs.h), read from the live process."""

    def __init__(self, pid, binary, off):
        self.pid = pid
        real = os.path.realpath(binary)
        base = None
        with open("/proc/%d/maps" % pid) as f:
            for ln in f:
                p = ln.split()
                if len(p) >= 6 and p[5] == real and int(p[2], 16) == 0:
                    base = int(p[0].split("-")[0], 16)
                    break
        if base is None:
            raise RuntimeError("picoimapd not found in its own maps")
        self.addr = base + off

    def read(self):
        with open("/proc/%d/mem" % self.pid, "rb") as f:
            f.seek(self.addr)
            b = f.read(40)
        v = [int.from_bytes(b[i:i + 8], sys.byteorder) for i in range(0, 40, 8)]
        return {"writes": v[0], "bytes": v[1], "syncs": v[2]}


def socket_owner(conn, pgid):
    """PID of the process in process group pgid that holds the server end
    of conn (Dovecot's imap process once login handed the socket over)."""
    lport = conn.s.getsockname()[1]
    rport = conn.s.getpeername()[1]
    want = "0100007F:%04X 0100007F:%04X" % (rport, lport)
    inode = None
    with open("/proc/net/tcp") as f:
        for ln in f:
            p = ln.split()
            if len(p) > 9 and "%s %s" % (p[1], p[2]) == want:
                inode = p[9]
    if inode is None:
        raise RuntimeError("server socket not found")
    link = "socket:[%s]" % inode
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
            if b"imap-login" in cmd:
                continue
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == link:
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError("no process holds %s" % link)


# ---------------------------------------------------------------- servers

class Pico:
    name = "picoimapd"

    def __init__(self, work, src):
        self.work = os.path.join(work, "pico")
        os.makedirs(self.work)
        self.port = dovecot.free_port()
        self.conf = os.path.join(self.work, "pico.conf")
        with open(os.path.join(self.work, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s\n" % (USER, USER))
        with open(self.conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\nstore = mail\npasswd = passwd\nlog_level = warn\n"
                    "allow_plaintext = yes\nspecial_folders = no\nallow_root = yes\n"
                    "compact_ratio = 0.3\n" % self.port)
        # `picoimapd import` commits (two fdatasyncs) per message: minutes
        # for 100,000 on a busy disk. It runs while the Dovecot stores are
        # made; start() waits for it.
        self.imports = []

        def run_imports():
            for box in BOXES:
                r = subprocess.run([PICO, "import", "-u", USER, "-m", box, "-c", self.conf, src[box]],
                                   stdout=subprocess.DEVNULL)
                self.imports.append(r.returncode)
        self.importer = threading.Thread(target=run_imports)
        self.importer.start()
        self.mbox_dir = os.path.join(self.work, "mail", USER)
        self.off = symbol_offset(PICO, "posix_cnt")
        self.proc = None

    def start(self):
        if self.importer:
            self.importer.join()
            self.importer = None
            if self.imports != [0] * len(BOXES):
                raise RuntimeError("picoimapd import failed: %s" % self.imports)
        # stderr to a file, so a sanitizer build's reports survive (stop()).
        with open(os.path.join(self.work, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen([PICO, "-c", self.conf], stdout=subprocess.DEVNULL, stderr=err)
        dovecot.wait_port(self.port, self.proc)
        self.vfs = PicoVfs(self.proc.pid, PICO, self.off) if self.off is not None else None

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            self.proc = None
            with open(os.path.join(self.work, "stderr.log"), "rb") as f:
                text = f.read().decode(errors="replace")
            if "Sanitizer" in text or "runtime error" in text:
                raise RuntimeError("picoimapd reported:\n" + text[-4000:])

    def pid(self, conn):
        return self.proc.pid

    def box_inode(self, box):
        return os.stat(os.path.join(self.mbox_dir, box)).st_ino


class Dove:
    def __init__(self, work, src, kind):
        self.kind = kind
        self.name = "dovecot-" + kind
        self.work = os.path.join(work, "dv-" + kind)
        os.makedirs(self.work)
        os.chmod(work, 0o755)
        os.chmod(self.work, 0o755)
        self.port = dovecot.free_port()
        mail = os.path.join(self.work, "mail")
        os.makedirs(mail)
        index = os.path.join(self.work, "index")
        os.makedirs(index)
        if kind == "mbox":
            open(os.path.join(mail, "INBOX"), "wb").close()
            for box in BOXES:
                shutil.copy(src[box], os.path.join(mail, box))
            loc = "mbox:{m}:INBOX={m}/INBOX:INDEX={i}".format(m=mail, i=index)
        else:
            now = int(time.time())
            for d in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(mail, d))
            for box in BOXES:
                mbox_to_maildir(src[box], os.path.join(mail, "." + box), now)
            loc = "maildir:{m}:INDEX={i}".format(m=mail, i=index)
        dovecot.chown_nobody(mail)
        dovecot.chown_nobody(index)
        pw = os.path.join(self.work, "passwd")
        with open(pw, "w") as f:
            f.write("%s:{PLAIN}%s\n" % (USER, USER))
        self.conf = dovecot.write_conf(self.work, self.port, pw, loc)
        if DV_FSYNC:
            with open(self.conf, "a") as f:
                f.write("mail_fsync = %s\n" % DV_FSYNC)
        self.proc = None
        self.vfs = None

    def start(self):
        self.proc = dovecot.start(self.conf, self.port)

    def settle(self):
        """Has Dovecot write the big mailbox's dovecot.index. Which session
        first writes it (rather than only its transaction log) varies from
        run to run, and a SELECT without it reads the whole log: 2.5 ms
        instead of 0.3 (maildir, 100,000 messages). A mailbox in use for a
        while has one, so measure that, Dovecot's best case."""
        subprocess.run(["doveadm", "-c", self.conf, "force-resync", "-u", USER, "big"], check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        if self.proc:
            dovecot.stop(self.proc)
            self.proc = None

    def pid(self, conn):
        return socket_owner(conn, self.proc.pid)


# ---------------------------------------------------------------- measuring

class Meter:
    """Counters of one session's server process around one operation."""

    def __init__(self, srv, conn):
        self.srv, self.conn = srv, conn
        self.pid = srv.pid(conn)
        # Whether the server's socket writes show in wchar: write() on a
        # socket counts (Dovecot), send() does not (picoimapd). CAPABILITY
        # touches no file, so its wchar is socket bytes or nothing.
        a = self.snap()
        for _ in range(5):
            conn.cmd("CAPABILITY")
        b = self.snap()
        self.sock_in_wchar = (b[0] - a[0]) >= (b[2] - a[2])

    def snap(self):
        w, wb = proc_io(self.pid)
        v = self.srv.vfs.read() if self.srv.vfs else None
        return (w, wb, self.conn.got, v)

    def delta(self, a, b):
        d = {"file": (b[0] - a[0]) - ((b[2] - a[2]) if self.sock_in_wchar else 0), "disk": b[1] - a[1]}
        if a[3] is not None:
            d["vfs"] = b[3]["bytes"] - a[3]["bytes"]
            d["syncs"] = b[3]["syncs"] - a[3]["syncs"]
        return d


def timed(conn, meter, text, literal=None):
    a = meter.snap()
    t = time.perf_counter()
    conn.cmd(text, literal)
    dt = time.perf_counter() - t
    d = meter.delta(a, meter.snap())
    d["s"] = dt
    return d


def session(srv, box=None):
    """A logged-in connection (with `box` selected) and its meter; the
    SELECT's untagged answer is kept in c.selected."""
    c = Conn(srv.port)
    c.login()
    c.selected = c.cmd("SELECT " + box)[0] if box else b""
    return c, Meter(srv, c)


def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else None


def op_append(srv):
    c, m = session(srv)
    rows = []
    for i in range(APPEND_N):
        rows.append(timed(c, m, "APPEND INBOX (\\Seen)", message(100000 + i, MSG_SIZE, True)))
    body, _ = c.cmd("SELECT INBOX")
    sizes = c.cmd("FETCH 1:* (RFC822.SIZE)")[0]
    if (int(re.search(rb"(\d+) EXISTS", body).group(1)) != APPEND_N
            or sizes.count(b"RFC822.SIZE %d)" % MSG_SIZE) != APPEND_N):
        raise RuntimeError("%s: the appended messages are not all there" % srv.name)
    c.close()
    return rows


def op_flag(srv):
    c, m = session(srv, "INBOX")
    body, _ = c.cmd("UID SEARCH ALL")
    uids = [int(x) for x in body.split(b"SEARCH", 1)[1].split()]
    rows = []
    for uid in uids[:FLAG_N]:
        rows.append(timed(c, m, "UID STORE %d +FLAGS (\\Flagged)" % uid))
    found = c.cmd("UID SEARCH FLAGGED")[0].split(b"SEARCH", 1)[1].split()
    if sorted(int(x) for x in found) != sorted(uids[:FLAG_N]):
        raise RuntimeError("%s: the flag changes did not all stick" % srv.name)
    c.close()
    return rows


def op_expunge(srv, box, n, seed, watch=None):
    """n single-message expunges at random positions (same sequence on
    every server); a message is STOREd \\Deleted then EXPUNGEd, and the
    pair is one operation. `watch` (picoimapd) notes the op at which the
    mbox file was replaced, i.e. compacted, and stops there."""
    c, m = session(srv, box)
    count = int(re.search(rb"(\d+) EXISTS", c.selected).group(1))
    rnd = random.Random(seed)
    rows = []
    ino = watch(box) if watch else None
    for i in range(n):
        seq = rnd.randint(1, count)
        a = m.snap()
        t = time.perf_counter()
        c.cmd("STORE %d +FLAGS.SILENT (\\Deleted)" % seq)
        c.cmd("EXPUNGE")
        dt = time.perf_counter() - t
        # The inode first: a compaction writes everything before its
        # rename, so the counters read after it include all of its bytes.
        now = watch(box) if watch else None
        d = m.delta(a, m.snap())
        d["s"] = dt
        count -= 1
        if watch:
            d["compacted"] = now != ino
            ino = now
        rows.append(d)
        if d.get("compacted"):
            break   # what we came for: the expunges that paid for one
    left = int(re.search(rb"(\d+) EXISTS", c.cmd("SELECT " + box)[0]).group(1))
    if left != count:
        raise RuntimeError("%s: %d messages left in %s, want %d" % (srv.name, left, box, count))
    c.close()
    return rows


def op_select(srv):
    """SELECT of the big mailbox right after a restart, then the FLAGS of
    every message."""
    rows = []
    for _ in range(SEL_REPS):
        srv.stop()
        srv.start()
        c, m = session(srv)
        a = m.snap()
        t = time.perf_counter()
        body, _ = c.cmd("SELECT big")
        sel = time.perf_counter() - t
        b = m.snap()
        exists = int(re.search(rb"(\d+) EXISTS", body).group(1))
        t = time.perf_counter()
        body, _ = c.cmd("UID FETCH 1:* (FLAGS)")
        fl = time.perf_counter() - t
        e = m.snap()
        lines = body.count(b" FETCH (")
        if exists != BIG_N or lines != BIG_N:
            raise RuntimeError("%s: EXISTS %d, %d FETCH lines, want %d" % (srv.name, exists, lines, BIG_N))
        d = m.delta(a, b)
        # A second session while the first still has it selected: picoimapd
        # shares the index already in memory; Dovecot forks another imap.
        c2 = Conn(srv.port)
        c2.login()
        t = time.perf_counter()
        c2.cmd("SELECT big")
        again = time.perf_counter() - t
        c2.close()
        c.close()
        # Every session gone (picoimapd frees an index at the last close),
        # then a new one: the usual case of a client that reconnects.
        c3 = Conn(srv.port)
        c3.login()
        t = time.perf_counter()
        c3.cmd("SELECT big")
        later = time.perf_counter() - t
        c3.close()
        rows.append({"s": sel, "fetch_s": fl, "again_s": again, "later_s": later, "disk": d["disk"],
                     "file": d["file"], "fetch_bytes": e[2] - b[2]})
    return rows


def prime(srv):
    """Every mailbox opened once (Dovecot builds its indexes, picoimapd
    checks the import), so the measured operations find steady state."""
    c, _ = session(srv)
    for box in BOXES + ("INBOX",):
        c.cmd("SELECT " + box)
        c.cmd("UID FETCH 1:* (FLAGS)")
    c.close()


# ---------------------------------------------------------------- report

def fmt_b(v):
    return "-" if v is None else "%d" % round(v)


def fmt_ms(v):
    return "-" if v is None else ("%.3f" % (v * 1000) if v < 0.01 else "%.1f" % (v * 1000))


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2f" % (a / b)


def main():
    if not os.path.exists(PICO):
        raise SystemExit("no picoimapd at %s (make, or PICOIMAPD=...)" % PICO)
    with_dv = os.geteuid() == 0 and os.path.exists("/usr/sbin/dovecot")
    if not with_dv:
        print("store_bench: not root or no Dovecot: picoimapd alone", file=sys.stderr)
    work = tempfile.mkdtemp(prefix="store-bench-", dir=os.environ.get("STORE_WORK", "/var/tmp"))
    servers = []
    t0 = time.monotonic()
    try:
        src = write_sources(work)
        steps = ["sources %.1f s" % (time.monotonic() - t0)]
        servers.append(Pico(work, src))
        if with_dv:
            servers.append(Dove(work, src, "mbox"))
            servers.append(Dove(work, src, "maildir"))
        steps.append("stores %.1f s" % (time.monotonic() - t0))
        for s in servers:
            t = time.monotonic()
            s.start()
            t1 = time.monotonic()
            prime(s)
            if hasattr(s, "settle"):
                s.settle()
            steps.append("%s: start %.1f s, first open %.1f s" % (s.name, t1 - t, time.monotonic() - t1))
        print("store_bench: set up in %.1f s (%s)" % (time.monotonic() - t0, "; ".join(steps)), file=sys.stderr)
        res = {s.name: {} for s in servers}
        for s in servers:
            if "append" in OPS:
                res[s.name]["append"] = op_append(s)
            if "flag" in OPS:
                res[s.name]["flag"] = op_flag(s)
            if "expunge" in OPS:
                res[s.name]["expunge"] = op_expunge(s, "exp", EXP_N, 3)
            print("store_bench: %s: append, flag, expunge done at %.1f s"
                  % (s.name, time.monotonic() - t0), file=sys.stderr)
        # Compaction: picoimapd first, to learn how many expunges pay for one.
        pico = servers[0]
        if "compact" in OPS:
            rows = op_expunge(pico, "cmp", CMP_BOX, 5, watch=pico.box_inode)
            hit = [i for i, r in enumerate(rows) if r["compacted"]]
            k = hit[0] + 1 if hit else len(rows)
            res[pico.name]["compact"] = rows[:k]
            res[pico.name]["compact_k"] = k if hit else None
            for s in servers[1:]:
                res[s.name]["compact"] = op_expunge(s, "cmp", k, 5)
            print("store_bench: compaction after %s expunges, done at %.1f s"
                  % (k if hit else "no", time.monotonic() - t0), file=sys.stderr)
        for s in servers:
            if "select" in OPS:
                res[s.name]["select"] = op_select(s)
        print("store_bench: select done at %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    finally:
        failed = False
        for s in servers:
            try:
                s.stop()
            except Exception as e:   # keep stopping the others
                print("store_bench: stopping %s: %s" % (s.name, e), file=sys.stderr)
                failed = True
        if not os.environ.get("STORE_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    report(servers, res, time.monotonic() - t0)
    sys.exit(1 if failed else 0)


def report(servers, res, secs):
    names = [s.name for s in servers]
    pico = names[0]
    dv = names[1:]
    out = []
    out.append("# Store benchmark: bytes written and time per operation")
    out.append("")
    out.append("`make bench-store` (tests/bench/store_bench.py), %s UTC, %.0f s, load average %s; "
               "picoimapd `%s`; Dovecot %s (`mail_fsync = %s`). Medians; bytes: **vfs** = "
               "picoimapd's own pwrite byte counter, **file** = bytes the server process passed to "
               "write()/pwrite() for files (/proc wchar minus socket bytes), **disk** = /proc "
               "write_bytes (4 KiB page-cache pages dirtied). Ratios are picoimapd / that Dovecot."
               % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), secs,
                  open("/proc/loadavg").read().split()[0], os.path.relpath(PICO, ROOT),
                  dovecot_version() if dv else "not run", DV_FSYNC or "optimized"))
    out.append("")
    hdr = "| operation | measure | " + " | ".join(names) + "".join(" | pico/%s" % n.split("-")[1] for n in dv) + " |"
    out.append(hdr)
    out.append("|---" * (2 + len(names) + len(dv)) + "|")

    def row(op, label, key, conv, fn=med, srcop=None):
        vals = [fn(res[n][srcop or op], key) if (srcop or op) in res[n] else None for n in names]
        cells = [conv(v) for v in vals]
        rats = [ratio(vals[0], v) for v in vals[1:]]
        out.append("| %s | %s | %s |" % (op, label, " | ".join(cells + rats)))
        return vals

    a = "append (4,096 B)"
    row(a, "time ms", "s", fmt_ms, srcop="append")
    app_vfs = row(a, "vfs B", "vfs", fmt_b, srcop="append")
    app_file = row(a, "file B", "file", fmt_b, srcop="append")
    row(a, "disk B", "disk", fmt_b, srcop="append")
    row(a, "fsyncs (vfs)", "syncs", fmt_b, srcop="append")
    f = "STORE +FLAGS, 1 msg"
    row(f, "time ms", "s", fmt_ms, srcop="flag")
    flag_vfs = row(f, "vfs B", "vfs", fmt_b, srcop="flag")
    row(f, "file B", "file", fmt_b, srcop="flag")
    row(f, "disk B", "disk", fmt_b, srcop="flag")
    row(f, "fsyncs (vfs)", "syncs", fmt_b, srcop="flag")
    e = "expunge 1 of %d" % EXP_BOX
    row(e, "time ms", "s", fmt_ms, srcop="expunge")
    row(e, "vfs B", "vfs", fmt_b, srcop="expunge")
    row(e, "file B", "file", fmt_b, srcop="expunge")
    row(e, "disk B", "disk", fmt_b, srcop="expunge")
    row(e, "fsyncs (vfs)", "syncs", fmt_b, srcop="expunge")
    k = res[pico].get("compact_k")
    c = "expunge, amortized (%s of %d x 4 KiB)" % (k or "no compaction in %d" % len(res[pico].get("compact", ())), CMP_BOX)

    def mean(rows, key):
        vals = [r[key] for r in rows if key in r]
        return sum(vals) / len(vals) if vals else None

    def total(rows, key):
        vals = [r[key] for r in rows if key in r]
        return sum(vals) if vals else None

    row(c, "time ms, mean", "s", fmt_ms, mean, "compact")
    row(c, "vfs B, mean", "vfs", fmt_b, mean, "compact")
    row(c, "file B, mean", "file", fmt_b, mean, "compact")
    row(c, "disk B, mean", "disk", fmt_b, mean, "compact")
    if k:
        last = res[pico]["compact"][-1]
        plain = statistics.median([r["vfs"] for r in res[pico]["compact"][:-1]]) if k > 1 else 0
        out.append("| %s | compaction alone: vfs B / ms | %d / %.1f | %s |" % (
            c, last["vfs"] - plain, last["s"] * 1000, " | ".join("" for _ in range(len(names) - 1 + len(dv)))))
        out.append("| %s | compaction vfs B per expunge | %d | %s |" % (
            c, round((last["vfs"] - plain) / k), " | ".join("" for _ in range(len(names) - 1 + len(dv)))))
    s = "SELECT %d after restart" % BIG_N
    sel = row(s, "time ms", "s", fmt_ms, srcop="select")
    row(s, "disk B", "disk", fmt_b, srcop="select")
    row("SELECT %d, 2nd session" % BIG_N, "time ms", "again_s", fmt_ms, srcop="select")
    row("SELECT %d, after all sessions left" % BIG_N, "time ms", "later_s", fmt_ms, srcop="select")
    u = "UID FETCH 1:* (FLAGS), %d" % BIG_N
    fet = row(u, "time ms", "fetch_s", fmt_ms, srcop="select")
    row(u, "bytes sent", "fetch_bytes", fmt_b, srcop="select")
    out.append("")
    out.append("Repeats: append %d, flag %d, expunge %d, select %d (each after a restart). "
               "Targets (issue 3):" % (APPEND_N, FLAG_N, EXP_N, SEL_REPS))
    out.append("")

    def verdict(ok):
        return "**holds**" if ok else "**misses**"

    if "flag" in OPS:
        out.append("- a flag change writes at most 64 bytes: %s (%s B, vfs)" % (verdict(flag_vfs[0] is not None and flag_vfs[0] <= 64), fmt_b(flag_vfs[0])))
    lim = MSG_SIZE + 256
    if "append" in OPS:
        out.append("- an APPEND writes at most the message + 256 bytes (%d): %s (%s B vfs, %s B file)" % (
        lim, verdict(app_vfs[0] is not None and app_vfs[0] <= lim and app_file[0] <= lim),
        fmt_b(app_vfs[0]), fmt_b(app_file[0])))
    if dv and "select" in OPS:
        fs = min(v for v in sel[1:] if v is not None)
        ff = min(v for v in fet[1:] if v is not None)
        out.append("- SELECT of %d after restart at least as fast as Dovecot's faster backend: %s (%s vs %s ms)"
                   % (BIG_N, verdict(sel[0] <= fs), fmt_ms(sel[0]), fmt_ms(fs)))
        out.append("- UID FETCH 1:* (FLAGS) of %d at least as fast: %s (%s vs %s ms)"
                   % (BIG_N, verdict(fet[0] <= ff), fmt_ms(fet[0]), fmt_ms(ff)))
    text = "\n".join(out) + "\n"
    print(text)
    if OUT:
        with open(OUT, "w") as fo:
            fo.write(text)


def dovecot_version():
    try:
        return subprocess.run(["/usr/sbin/dovecot", "--version"], capture_output=True,
                              text=True).stdout.split()[0]
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    main()
