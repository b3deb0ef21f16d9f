"""A Thunderbird-shaped session replayed from a transcript file
(transcripts/thunderbird.txt; its header explains the format): each
server response is matched against the expected pattern and parsed with
the RFC 3501 grammar checker."""

import os
import re
import socket
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients"))
import clientlib as cl  # noqa: E402
import imapsyntax  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 10.0
IDLE_PUSH_MAX = 1.0     # seconds from an outside delivery to the EXISTS


def load(path):
    """Steps: (lineno, kind, payload). A send step's payload is
    (prefix, literal or None, sync, continuation)."""
    steps = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        no = i + 1
        i += 1
        if not raw.strip() or raw.startswith("#"):
            continue
        m = re.match(r"^(C|S|S\?|S\*|X|Z|D):(?: (.*))?$", raw)
        assert m, "%s:%d: bad transcript line %r" % (path, no, raw)
        kind, text = m.group(1), m.group(2) or ""
        if kind == "C":
            lit = re.search(r"\{\*(\+?)\}$", text)
            if not lit:
                steps.append((no, "C", (text, None, False, None)))
                continue
            data = []
            while i < len(lines) and lines[i].startswith("D:"):
                data.append(lines[i][3:] if len(lines[i]) > 2 else "")
                i += 1
            assert i < len(lines) and lines[i].startswith("C:"), \
                "%s:%d: a literal must be followed by a C: line" % (path, no)
            cont = lines[i][3:] if len(lines[i]) > 2 else ""
            i += 1
            body = "".join(d + "\r\n" for d in data).encode()
            steps.append((no, "C", (text[:lit.start()], body, lit.group(1) != "+", cont)))
        elif kind == "D":
            raise AssertionError("%s:%d: D: outside a literal" % (path, no))
        else:
            steps.append((no, kind, text))
    return steps


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = b""
        self.pushed = None
        self.zin = self.zout = None
        self.log = []

    def send(self, data):
        self.log.append("C: %r" % data[:200])
        if self.zout:
            data = self.zout.compress(data) + self.zout.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        d = self.sock.recv(65536)
        if not d:
            raise AssertionError("server closed the connection")
        self.buf += self.zin.decompress(d) if self.zin else d

    def response(self, timeout=TIMEOUT):
        """One whole response, literals included, final CRLF stripped."""
        if self.pushed is not None:
            r, self.pushed = self.pushed, None
            return r
        deadline = time.monotonic() + timeout
        pos = 0
        while True:
            nl = self.buf.find(b"\r\n", pos)
            if nl < 0:
                self._fill(deadline)
                continue
            m = re.search(rb"\{(\d+)\+?\}$", self.buf[:nl])
            if m:
                need = nl + 2 + int(m.group(1))
                while len(self.buf) < need:
                    self._fill(deadline)
                pos = need
                continue
            r, self.buf = self.buf[:nl], self.buf[nl + 2:]
            self.log.append("S: %r" % r[:200])
            return r

    def start_compress(self):
        self.zin = zlib.decompressobj(-15)
        self.zout = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        if self.buf:
            self.buf = self.zin.decompress(self.buf)


def run_transcript(server, path):
    steps = load(path)
    c = Conn(server.host, server.port)
    first = True
    try:
        k = 0
        while k < len(steps):
            no, kind, arg = steps[k]
            k += 1
            where = "%s:%d" % (os.path.basename(path), no)
            if kind == "C":
                prefix, lit, sync, cont = arg
                if lit is None:
                    c.send(prefix.encode() + b"\r\n")
                    continue
                c.send(prefix.encode() + b"{%d%s}\r\n" % (len(lit), b"" if sync else b"+"))
                if sync:
                    r = c.response()
                    if not r.startswith(b"+"):
                        c.pushed = r          # refused: the next S: checks it
                        continue
                c.send(lit + cont.encode() + b"\r\n")
            elif kind == "X":
                what, mbox, mid = arg.split()
                assert what == "deliver", where
                cl.server_append(server, mbox, cl.message(mid))
                t0 = time.monotonic()
                # The push must come within IDLE_PUSH_MAX of the delivery.
                try:
                    c.pushed = c.response(timeout=IDLE_PUSH_MAX)
                except socket.timeout:
                    raise AssertionError("%s: nothing pushed within %.1f s of the delivery\n%s"
                                         % (where, IDLE_PUSH_MAX, "\n".join(c.log[-20:])))
                assert time.monotonic() - t0 <= IDLE_PUSH_MAX + 0.05
            elif kind == "Z":
                c.start_compress()
            else:
                pat = re.compile(arg, re.S)
                while True:
                    try:
                        r = c.response(timeout=1.0 if kind in ("S?", "S*") else TIMEOUT)
                    except socket.timeout:
                        if kind in ("S?", "S*"):
                            break
                        raise AssertionError("%s: no response, expected %r\n%s"
                                             % (where, arg, "\n".join(c.log[-20:])))
                    text = r.decode("utf-8", "replace")
                    # The grammar check (the greeting has its own rule).
                    try:
                        imapsyntax.Parser(r + b"\r\n").response(greeting=first)
                    except imapsyntax.ImapSyntaxError as e:
                        raise AssertionError("%s: malformed response %r: %s" % (where, r[:300], e))
                    first = False
                    if pat.fullmatch(text):
                        if kind == "S*":
                            continue
                        break
                    if kind in ("S?", "S*"):
                        c.pushed = r
                        break
                    raise AssertionError("%s: expected /%s/\n     got %r\n%s"
                                         % (where, arg, text[:500], "\n".join(c.log[-20:])))
    finally:
        c.sock.close()


def test_thunderbird_transcript(server_factory):
    # A new user gets the special-use folders, as in a real installation.
    server = server_factory(extra_conf=["special_folders = yes"])
    run_transcript(server, os.path.join(HERE, "transcripts", "thunderbird.txt"))
    st = cl.server_state(server, folders=["INBOX", "Trash", "Sent"])
    assert st["INBOX"] == {}
    assert set(st["Trash"]) == {"tb-1"} and "\\Seen" in st["Trash"]["tb-1"], st
    assert set(st["Sent"]) == {"tb-sent", "tb-utf8"} and "\\Seen" in st["Sent"]["tb-sent"], st
