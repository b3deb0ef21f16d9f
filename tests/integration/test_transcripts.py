"""Protocol transcripts: files of client lines and expected server lines.

Each tests/transcripts/*.txt runs against a fresh server. Lines:
  C: text        send text + CRLF
  C: text {@}    send text with a literal made of the D: lines that
                 follow (CRLF after each), waiting for the "+" first (a
                 tagged refusal instead of "+" means the literal is not sent)
  D: text        a line of that literal
  S: pattern     the next server line must match
  S? pattern     the next server line may match (then it is consumed)
  S~ pattern     any number of server lines matching (in any order)
  # ...          a comment
A pattern is literal text in which "*" matches any run of characters
(a leading "* " is the untagged-response marker).
"""
import glob
import os
import re
import socket
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = sorted(glob.glob(os.path.join(HERE, "..", "transcripts", "*.txt")))


def pattern(p):
    # A leading "* " is the untagged marker itself, not a wildcard.
    head = ""
    if p.startswith("* "):
        head, p = re.escape("* "), p[2:]
    return re.compile("^" + head + ".*".join(re.escape(x) for x in p.split("*")) + "$", re.S)


class Lines:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.peeked = None

    def next(self):
        if self.peeked is not None:
            line, self.peeked = self.peeked, None
            return line
        deadline = time.monotonic() + 10
        while b"\r\n" not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("no line from the server in 10 s; have %r" % self.buf) from None
            if not d:
                raise AssertionError("server closed the connection; have %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def push_back(self, line):
        self.peeked = line


def parse(path):
    steps = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        i += 1
        if not ln.strip() or ln.startswith("#"):
            continue
        kind, _, text = ln.partition(" ")
        if kind == "C:" and text.endswith("{@}"):
            data = []
            while i < len(lines) and lines[i].startswith("D:"):
                data.append(lines[i][3:] if len(lines[i]) > 2 else "")
                i += 1
            steps.append(("L", text[:-3], "".join(d + "\r\n" for d in data).encode()))
        elif kind in ("C:", "S:", "S?", "S~"):
            steps.append((kind, text, None))
        else:
            raise ValueError("%s:%d: bad line %r" % (path, i, ln))
    return steps


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f)[:-4] for f in FILES])
def test_transcript(server, path):
    s = socket.create_connection((server.host, server.port), timeout=10)
    lines = Lines(s)
    seen = []
    try:
        for kind, text, data in parse(path):
            if kind == "C:":
                s.sendall(text.encode() + b"\r\n")
                seen.append("C: " + text)
            elif kind == "L":
                s.sendall(text.encode() + b"{%d}\r\n" % len(data))
                seen.append("C: %s{%d}" % (text, len(data)))
                got = lines.next()
                if got.startswith("+"):
                    seen.append("S: " + got)
                    s.sendall(data + b"\r\n")
                else:
                    # Refused before the literal (e.g. TRYCREATE): the
                    # client must not send it; the next S: checks the line.
                    lines.push_back(got)
            elif kind == "S:":
                got = lines.next()
                seen.append("S: " + got)
                assert pattern(text).match(got), "expected %r\n     got %r" % (text, got)
            elif kind == "S?":
                got = lines.next()
                if pattern(text).match(got):
                    seen.append("S: " + got)
                else:
                    lines.push_back(got)
            elif kind == "S~":
                while True:
                    got = lines.next()
                    if not pattern(text).match(got):
                        lines.push_back(got)
                        break
                    seen.append("S: " + got)
    except AssertionError as e:
        raise AssertionError("%s\ntranscript so far:\n%s" % (e, "\n".join(seen[-30:]))) from None
    finally:
        s.close()
