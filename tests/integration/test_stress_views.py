"""Ten clients on one mailbox for a while: append, flag, expunge, fetch.

Each client keeps its own model of the mailbox from nothing but what the
server told it (EXISTS, EXPUNGE, FETCH) and checks every response against
it: no EXPUNGE or FETCH of a sequence number it does not know, a UID never
changes under a sequence number, EXISTS never goes down, \\Recent is seen
by one session only, and at the end its flags equal the server's.
STRESS_SECONDS sets the duration (default 60)."""
import os
import random
import threading
import time

from conftest import make_message

SECONDS = float(os.environ.get("STRESS_SECONDS", "60"))
CLIENTS = 10
FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Label1"]


class Model:
    def __init__(self, name, raw):
        self.name = name
        self.r = raw
        self.seq = []          # seq-1 -> uid or None (not yet known)
        self.flags = {}        # uid -> set of flags
        self.recent = set()    # uids this session saw with \Recent
        self.errors = []
        self.ops = 0

    def err(self, msg):
        self.errors.append("%s: %s" % (self.name, msg))

    def absorb(self, untagged):
        for u in untagged:
            if u.kind != "untagged":
                continue
            if u.name == "EXISTS":
                if u.num < len(self.seq):
                    self.err("EXISTS %d below known %d" % (u.num, len(self.seq)))
                else:
                    self.seq.extend([None] * (u.num - len(self.seq)))
            elif u.name == "EXPUNGE":
                if not 1 <= u.num <= len(self.seq):
                    self.err("EXPUNGE %d of %d" % (u.num, len(self.seq)))
                else:
                    uid = self.seq.pop(u.num - 1)
                    self.flags.pop(uid, None)
            elif u.name == "FETCH":
                if not 1 <= u.num <= len(self.seq):
                    self.err("FETCH %d of %d" % (u.num, len(self.seq)))
                    continue
                d = u.data
                uid = d.get("UID")
                known = self.seq[u.num - 1]
                if uid is not None:
                    if known is not None and known != uid:
                        self.err("seq %d was uid %s, now %s" % (u.num, known, uid))
                    self.seq[u.num - 1] = uid
                    known = uid
                if "FLAGS" in d and known is not None:
                    fl = set(d["FLAGS"])
                    if "\\Recent" in fl:
                        self.recent.add(known)
                    self.flags[known] = {f for f in fl if f != "\\Recent"}

    def cmd(self, line):
        u, t = self.r.cmd(line)
        self.absorb(u)
        self.ops += 1
        return u, t

    def resync(self):
        u, t = self.r.cmd("UID FETCH 1:* (UID FLAGS)")
        self.ops += 1
        if t.name != "OK":
            self.err("UID FETCH -> %s" % t.line)
        # "*" is resolved when the FETCH starts; messages appended while it
        # runs may be announced by an EXISTS after its last FETCH line (RFC
        # 3501 7.4.1 allows EXISTS at any time). Only those may be unknown.
        # EXPUNGEs reported there too (before the EXISTS) renumber the
        # messages the FETCH covered: count them down, or a new message
        # would look like a covered one left out.
        last = max((i for i, x in enumerate(u) if x.kind == "untagged" and x.name == "FETCH"), default=-1)
        self.absorb(u[:last + 1])
        covered = len(self.seq)
        for x in u[last + 1:]:
            if x.kind == "untagged" and x.name == "EXPUNGE" and x.num <= covered:
                covered -= 1
        self.absorb(u[last + 1:])
        unknown = [i + 1 for i, v in enumerate(self.seq) if v is None]
        if unknown and min(unknown) <= covered:
            self.err("unknown uid after UID FETCH 1:*: %d of %d unknown, last %r"
                     % (len(unknown), len(self.seq), self.seq[-5:]))

    def step(self, rnd):
        op = rnd.random()
        n = len(self.seq)
        if op < 0.2 or n < 3:
            msg = make_message("stress %s %d" % (self.name, self.ops), size=rnd.choice([600, 2000, 20000]))
            u, t = self.r.cmd_lit(["APPEND INBOX ", msg, ""])
            self.absorb(u)
            if t.name != "OK":
                self.err("APPEND -> %s" % t.line)
        elif op < 0.45:
            s = rnd.randint(1, n)
            f = rnd.choice(FLAGS)
            sign = rnd.choice("+-")
            u, t = self.cmd("STORE %d %sFLAGS (%s)" % (s, sign, f))
            if t.name != "OK":
                self.err("STORE -> %s" % t.line)
        elif op < 0.55:
            s = rnd.randint(1, n)
            self.cmd("STORE %d +FLAGS.SILENT (\\Deleted)" % s)
            u, t = self.cmd("EXPUNGE")
            if t.name != "OK":
                self.err("EXPUNGE -> %s" % t.line)
        elif op < 0.75:
            lo = rnd.randint(1, n)
            hi = rnd.randint(lo, n)
            u, t = self.cmd("FETCH %d:%d (UID FLAGS RFC822.SIZE)" % (lo, hi))
            if t.name not in ("OK", "NO"):
                self.err("FETCH -> %s" % t.line)
        elif op < 0.85:
            u, t = self.cmd("SEARCH ALL")
            res = [x for x in u if x.kind == "untagged" and x.name == "SEARCH"]
            if len(res) != 1:
                self.err("SEARCH gave %d SEARCH responses" % len(res))
            elif any(not 1 <= s <= len(self.seq) for s in res[0].data):
                self.err("SEARCH result outside 1..%d: %r" % (len(self.seq), res[0].data))
        elif op < 0.95:
            self.cmd("NOOP")
        else:
            self.resync()


def test_ten_clients_one_mailbox(server):
    models = []
    for i in range(CLIENTS):
        r = server.raw("demo")
        m = Model("c%d" % i, r)
        u, t = m.cmd("SELECT INBOX")
        m.absorb(u)
        m.resync()
        models.append(m)
    stop = time.monotonic() + SECONDS

    def run(m, seed):
        rnd = random.Random(seed)
        try:
            while time.monotonic() < stop and len(m.errors) < 20:
                m.step(rnd)
        except Exception as e:  # a protocol failure is an error, not a hang
            m.err("exception: %r\n%s" % (e, m.r.dump()))

    threads = [threading.Thread(target=run, args=(m, 1000 + i)) for i, m in enumerate(models)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    # Quiesce: everyone hears everything, then flags must equal the server's.
    for m in models:
        m.cmd("NOOP")
    truth = None
    for m in models:
        u, t = m.r.cmd("FETCH 1:* (UID FLAGS)") if m.seq else m.r.cmd("NOOP")
        m.absorb(u)
        now = {}
        for x in u:
            if x.kind == "untagged" and x.name == "FETCH":
                now[x.data["UID"]] = {f for f in x.data["FLAGS"] if f != "\\Recent"}
        if truth is None:
            truth = now
        if now != truth:
            m.err("sessions disagree on the mailbox after NOOP")
        for uid, fl in now.items():
            if m.flags.get(uid) is not None and m.flags[uid] != fl:
                m.err("uid %d: told %r, server has %r" % (uid, m.flags[uid], fl))
        if [x for x in m.seq] != sorted(now):
            m.err("sequence map (%d) != server (%d): %r vs %r"
                  % (len(m.seq), len(now), m.seq[-5:], sorted(now)[-5:]))
    seen = {}
    errors = []
    for m in models:
        for uid in m.recent:
            if uid in seen:
                errors.append("uid %d was \\Recent in %s and %s" % (uid, seen[uid], m.name))
            seen[uid] = m.name
        errors.extend(m.errors)
    total = sum(m.ops for m in models)
    assert total > CLIENTS * 10, "too little work done: %d commands" % total
    assert not errors, "%d errors in %d commands:\n%s" % (len(errors), total, "\n".join(errors[:30]))
