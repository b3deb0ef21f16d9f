#!/usr/bin/python3
"""MIME work on a big mailbox: picoimapd and Dovecot (mbox, maildir) side
by side on loopback, in one run, on identical content.

One mbox of real-world-shaped MIME mail is generated once (default 1 GB,
about 12,000 messages: text/plain in UTF-8 and ISO-8859-1, 8bit, base64
and quoted-printable; multipart/alternative with HTML; multipart/mixed
with base64 attachments; multipart/related; forwarded message/rfc822; RFC
2047 headers and RFC 2231 file names; plus one message whose second part is
a 50 MB base64 attachment). picoimapd imports it (`picoimapd import`),
Dovecot's mbox driver takes a copy of the file, its maildir driver one file
per message. Each server is then run twice, on two fresh copies of the
mailbox (so every "first" below is the first time it reads those messages):

- EXAMINE INBOX, the first after start (Dovecot builds its index here);
  then on the first copy SEARCH, on the second the partial fetch and then
  BODYSTRUCTURE:
- UID SEARCH TEXT <word>: the word occurs only in the decoded body text of
  a few messages (base64, a quoted-printable soft line break inside the
  word, ISO-8859-1, upper case, inside a forwarded message), never in the
  raw bytes. First run after start, then the median of repeats. Every
  server must return exactly the expected UIDs;
- FETCH 1:10000 BODYSTRUCTURE, first and median of repeats; the answers
  are compared between the servers after the normalizations RFC 3501 and
  RFC 2045 allow (quoted vs literal strings, case of type, subtype,
  encoding, parameter and disposition names, absent vs NIL trailing
  extension data), and the remaining differences are reported by kind;
- UID FETCH n BODY.PEEK[2]<25000000.65536> of the 50 MB attachment, first
  and median of repeats, compared byte for byte with the generator's copy;
- memory: picoimapd's VmHWM and peak PSS (sampled), against 4 MiB plus its
  open mailbox index (sizeof(st_msg) per message); Dovecot's peak PSS over
  all its processes and the imap process's VmHWM;
- CPU seconds each server used per phase (all its processes).

"Cold" here means the first command after the server started, with the
files in the page cache (dropping caches would disturb other jobs on the
machine). Run as root (Dovecot runs as nobody under a temporary folder).
`make bench-mime`.

Environment: MIME_BENCH_SIZE (bytes, K/M/G suffix; default 1G),
MIME_BENCH_MSGS (messages; default 12000), MIME_BENCH_BIG (wire bytes of
the big attachment part; default 50000000), MIME_BENCH_REPEAT (repeats;
default 5), MIME_BENCH_SERVERS (comma list of picoimapd, dovecot-mbox,
dovecot-maildir), MIME_BENCH_OUT (summary file; default
tests/bench/results/mime-summary.md for the default sizes, else only
results/<stamp>-mime/), MIME_BENCH_KEEP=1 (keep the work folder),
MIME_BENCH_PERF=1 (perf record -g picoimapd during the SEARCH and the
BODYSTRUCTURE repeats; reports in the stamp folder), PICOIMAPD (the binary).
"""
import base64
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
DEFAULT_SIZE = 1 << 30
DEFAULT_MSGS = 12000
DEFAULT_BIG = 50000000
WORD = "zanzibarite"
# sizeof(st_msg) on x86-64 (storage/store.h): the per-message index entry.
ST_MSG_BYTES = 48


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)", s.strip().upper())
    if not m:
        raise SystemExit("bad size %r" % s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


SIZE = parse_size(os.environ.get("MIME_BENCH_SIZE", str(DEFAULT_SIZE)))
NMSG = int(os.environ.get("MIME_BENCH_MSGS", str(DEFAULT_MSGS)))
BIG = int(os.environ.get("MIME_BENCH_BIG", str(DEFAULT_BIG)))
REPEAT = int(os.environ.get("MIME_BENCH_REPEAT", "5"))
SERVERS = os.environ.get("MIME_BENCH_SERVERS", "picoimapd,dovecot-mbox,dovecot-maildir").split(",")
DEFAULTS = SIZE == DEFAULT_SIZE and NMSG == DEFAULT_MSGS and BIG == DEFAULT_BIG
# The middle of the big part (25,000,000 in the default 50 MB).
PARTIAL_OFF, PARTIAL_LEN = min(25000000, BIG // 2), 65536


# ------------------------------------------------------------ the corpus

WORDS = ("the of and to in is that for it as with was on be at by this had not are but from or have an "
         "they which one you were her all she there would their we him been has when who will more no if "
         "out so said what up its about into than them can only other new some could time these two may "
         "then do first any my now such like our over man me even most made after also did many before "
         "must through back years where much your way well down should because each just those people "
         "meeting invoice quarterly report schedule budget project delivery contract attached review "
         "please regards thanks update shipment warehouse customer account payment reminder agenda").split()
UTF8_WORDS = ["Grüße", "naïve", "café", "Übersicht", "über", "Straße", "façade", "déjà", "Ærø", "€100",
              "Ünïcödé", "smörgåsbord", "jalapeño", "Zürich"]
LATIN1_WORDS = ["Grüße", "Straße", "café", "über", "Ärger", "naïve", "Bjørn", "señor", "Übersicht"]
NAMES = ["Alice Martin", "Bob Stone", "Jürgen Müller", "Élodie Durand", "Chen Wei", "Ola Nordmann",
         "Sören Åberg", "Maria Garcia", "Nguyen Van An", "Priya Natarajan"]
ATTACH = [("application", "pdf", "report-%d.pdf"), ("image", "jpeg", "IMG_%d.jpg"),
          ("image", "png", "screenshot %d.png"),
          ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet", "budget-%d.xlsx"),
          ("application", "zip", "logs-%d.zip"), ("application", "octet-stream", "dump-%d.bin")]


def enc_word(s):
    """An RFC 2047 encoded word when s is not ASCII."""
    b = s.encode()
    if all(c < 128 for c in b):
        return s
    if len(s) % 2:
        return "=?UTF-8?B?%s?=" % base64.b64encode(b).decode()
    return "=?utf-8?q?%s?=" % "".join(chr(c) if 48 <= c < 127 and c not in (61, 63, 95) and chr(c).isalnum()
                                      else "_" if c == 32 else "=%02X" % c for c in b)


def qp_encode(text, cs):
    """Quoted-printable, lines of at most 76 characters with soft breaks."""
    out = []
    for line in text.split("\n"):
        enc = []
        for ch in line.encode(cs):
            if ch == 61 or ch >= 127 or (ch < 32 and ch != 9):
                enc.append("=%02X" % ch)
            else:
                enc.append(chr(ch))
        cur = ""
        for e in enc:
            if len(cur) + len(e) > 75:
                out.append(cur + "=")
                cur = ""
            cur += e
        if cur.endswith(" ") or cur.endswith("\t"):
            cur = cur[:-1] + "=%02X" % ord(cur[-1])
        out.append(cur)
    return "\n".join(out)


def b64_lines(data):
    return base64.encodebytes(data).decode()


class Gen:
    """Deterministic generator of the corpus (seed 4)."""

    def __init__(self, seed=4):
        self.r = random.Random(seed)
        # Attachments are slices of one random pool: cheap to make, and
        # every attachment still has its own bytes.
        self.pool = self.r.randbytes(24 << 20)

    def words(self, n, extra=()):
        w = self.r.choices(WORDS, k=max(n, len(extra)))
        for at, x in zip(self.r.sample(range(len(w)), len(extra)), extra):
            w[at] = x
        return w

    def paragraphs(self, nbytes, extra=(), utf8=True):
        n = max(8, nbytes // 6)
        pool = list(extra)
        if utf8:
            pool += self.r.sample(UTF8_WORDS, 3)
        w = self.words(n, pool)
        lines = [" ".join(w[i:i + 11]) for i in range(0, len(w), 11)]
        paras = []
        for i in range(0, len(lines), 6):
            paras.append("\n".join(lines[i:i + 6]))
        text = "\n\n".join(paras)
        if text.startswith("from "):
            text = "Hello, " + text     # an unquoted "From " line would end the message in an mbox
        return text[0].upper() + text[1:] + "\n"

    def html(self, text):
        body = "".join("<p>%s</p>\n" % p.replace("\n", "<br>\n") for p in text.split("\n\n"))
        return ("<html><head><meta charset=\"utf-8\"><style>p{font-family:Arial,sans-serif;"
                "margin:0 0 1em}</style></head>\n<body>\n<div class=\"content\">\n%s</div>\n</body></html>\n" % body)

    def attachment(self, nbytes):
        raw = nbytes * 57 // 78     # base64 with LF-terminated 76-char lines
        if raw <= len(self.pool):
            o = self.r.randrange(len(self.pool) - raw + 1)
            data = self.pool[o:o + raw]
        else:
            data = self.r.randbytes(raw)
        return b64_lines(data)

    def header(self, i, ctype, extra=""):
        frm = self.r.choice(NAMES)
        to = self.r.choice(NAMES)
        subj = " ".join(self.words(self.r.randint(3, 8)))
        if self.r.random() < 0.25:
            subj = self.r.choice(UTF8_WORDS) + " " + subj
        subj = " ".join(enc_word(x) for x in subj.split(" "))
        day = 1 + i % 28
        h = ("From: %s <%s@example.org>\nTo: %s <%s@example.net>\n" %
             (" ".join(enc_word(x) for x in frm.split()), frm.split()[0].lower(),
              " ".join(enc_word(x) for x in to.split()), to.split()[0].lower()))
        if self.r.random() < 0.3:
            h += "Cc: team@example.net, %s <boss@example.com>\n" % enc_word(self.r.choice(NAMES).split()[0])
        h += ("Subject: %s\nDate: Mon, %02d Jan 2026 %02d:%02d:00 +0100\nMessage-ID: <mb%06d@bench.example>\n"
              "MIME-Version: 1.0\nX-Mailer: MimeBench 1.0\n%sContent-Type: %s\n" %
              (subj, day, i % 24, i % 60, i, extra, ctype))
        return h

    def text_part(self, nbytes, kind, extra=()):
        """(headers, body) of a text/plain part: kind is 8bit, qp, b64 or latin1."""
        if kind == "latin1":
            text = self.paragraphs(nbytes, list(extra) + self.r.sample(LATIN1_WORDS, 3), utf8=False)
            return ("Content-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: quoted-printable\n",
                    qp_encode(text, "latin-1"))
        text = self.paragraphs(nbytes, extra)
        if kind == "qp":
            return ("Content-Type: text/plain; charset=utf-8; format=flowed\n"
                    "Content-Transfer-Encoding: quoted-printable\n", qp_encode(text, "utf-8"))
        if kind == "b64":
            return ("Content-Type: text/plain; charset=\"UTF-8\"\nContent-Transfer-Encoding: base64\n",
                    b64_lines(text.encode()))
        return ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n", text)

    def alternative(self, nbytes, extra=(), html_extra=None):
        """multipart/alternative: (content-type value, body)."""
        text = self.paragraphs(nbytes, extra)
        htext = text if html_extra is None else text.replace(text.split()[5], html_extra, 1)
        b = "=_alt_%08x" % self.r.getrandbits(32)
        body = ("--%s\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n%s\n"
                "--%s\nContent-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n%s\n"
                "--%s--\n" % (b, qp_encode(text, "utf-8"), b, qp_encode(self.html(htext), "utf-8"), b))
        return "multipart/alternative; boundary=\"%s\"" % b, body

    def attach_headers(self, k, name_i):
        ty, sub, name = ATTACH[k]
        name = name % name_i
        if self.r.random() < 0.2:
            fn = "filename*=utf-8''R%C3%A9sum%C3%A9-" + str(name_i) + ".pdf"
        else:
            fn = "filename=\"%s\"" % name
        return ("Content-Type: %s/%s; name=\"%s\"\nContent-Transfer-Encoding: base64\n"
                "Content-Disposition: attachment; %s\n" % (ty, sub, name, fn))

    def message(self, i, budget, hit=None):
        """Message i (0-based) of about `budget` wire bytes; hit names how
        the search word is hidden in it, or None."""
        r = self.r
        kinds = ["plain"] * 30 + ["latin1"] * 10 + ["alt"] * 25 + ["b64text"] * 5 + ["mixed"] * 25 + \
                ["fwd"] * 3 + ["related"] * 2
        kind = r.choice(kinds)
        if hit:
            kind = {"b64": "b64text", "qpsplit": "plain", "latin1": "latin1", "htmlupper": "alt",
                    "fwd": "fwd", "capital": "plain"}[hit]
        textsz = min(budget, max(600, int(r.lognormvariate(7.8, 0.8))))
        extra = ["zanzibar"] if r.random() < 0.02 else []
        if kind in ("plain", "latin1", "b64text"):
            enc = {"plain": r.choice(["8bit", "qp"]), "latin1": "latin1", "b64text": "b64"}[kind]
            if hit == "qpsplit":
                enc = "qp"
            w = [WORD] if hit in ("b64", "latin1") else ["Zanzibarite"] if hit == "capital" else []
            ph, body = self.text_part(textsz, enc, extra + w)
            if hit == "qpsplit":
                # The word cut by a soft line break, so only decoding finds it.
                body = body.rstrip("\n") + "\nsee the zanzi=\nbarite sample.\n"
            return self.header(i, ph.split("\n")[0][len("Content-Type: "):],
                               "\n".join(ph.split("\n")[1:])) + "\n" + body
        if kind == "alt":
            ct, body = self.alternative(textsz // 3, extra, "ZANZIBARITE" if hit == "htmlupper" else None)
            return self.header(i, ct) + "\nThis is a multi-part message in MIME format.\n\n" + body
        if kind == "related":
            b = "=_rel_%08x" % r.getrandbits(32)
            text = self.paragraphs(textsz // 2, extra)
            html = self.html(text).replace("</div>", "<img src=\"cid:logo%d@bench\"></div>" % i)
            img = self.attachment(r.randint(3000, 40000))
            body = ("--%s\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
                    "%s\n--%s\nContent-Type: image/png; name=\"logo.png\"\nContent-Transfer-Encoding: base64\n"
                    "Content-ID: <logo%d@bench>\nContent-Disposition: inline; filename=\"logo.png\"\n\n%s\n--%s--\n"
                    % (b, qp_encode(html, "utf-8"), b, i, img, b))
            return self.header(i, "multipart/related; type=\"text/html\"; boundary=\"%s\"" % b) + "\n" + body
        if kind == "fwd":
            inner_ct, inner_body = self.alternative(textsz // 3, extra)
            if hit == "fwd":
                inner_ct = "text/plain; charset=utf-8"
                inner_body = b64_lines(self.paragraphs(textsz // 2, [WORD]).encode())
                inner_hdr = "Content-Transfer-Encoding: base64\n"
            else:
                inner_hdr = ""
            inner = ("From: %s <fwd@example.com>\nTo: someone@example.org\nSubject: Original message %d\n"
                     "Date: Sun, 04 Jan 2026 09:00:00 +0000\nMessage-ID: <orig%06d@bench.example>\nMIME-Version: 1.0\n"
                     "Content-Type: %s\n%s\n%s" % (enc_word(r.choice(NAMES).split()[0]), i, i, inner_ct, inner_hdr,
                                                   inner_body))
            b = "=_fwd_%08x" % r.getrandbits(32)
            ph, pb = self.text_part(600, "8bit")
            body = ("--%s\n%s\n%s\n--%s\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n%s\n--%s--\n"
                    % (b, ph, pb, b, inner, b))
            return self.header(i, "multipart/mixed; boundary=\"%s\"" % b) + "\n" + body
        # mixed: a text or alternative part and one to three attachments
        # that take the rest of the budget.
        b = "=_mix_%08x" % r.getrandbits(32)
        if r.random() < 0.5:
            ct, ab = self.alternative(textsz // 3, extra)
            first = "Content-Type: %s\n\n%s" % (ct, ab)
        else:
            ph, pb = self.text_part(textsz, r.choice(["8bit", "qp", "latin1"]), extra)
            first = ph + "\n" + pb
        natt = r.choice([1, 1, 1, 2, 2, 3])
        rest = max(2000, budget - len(first) - 1500)
        parts = [first]
        for k in range(natt):
            parts.append(self.attach_headers(r.randrange(len(ATTACH)), i * 10 + k) + "\n" +
                         self.attachment(max(1000, rest // natt)))
        body = "".join("--%s\n%s\n" % (b, p) for p in parts) + "--%s--\n" % b
        return self.header(i, "multipart/mixed; boundary=\"%s\"" % b) + "\n" + body

    def big(self, i, nbytes):
        """The message with a big attachment as part 2; returns (message,
        wire bytes of part 2's body)."""
        b = "=_big_%08x" % self.r.getrandbits(32)
        ph, pb = self.text_part(1500, "8bit")
        lines = nbytes // 78 + 1
        data = self.r.randbytes(lines * 57)
        att = b64_lines(data)
        body = ("--%s\n%s\n%s\n--%s\nContent-Type: application/octet-stream; name=\"disk.img\"\n"
                "Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"disk.img\"\n\n%s\n"
                "--%s--\n" % (b, ph, pb, b, att, b))
        msg = self.header(i, "multipart/mixed; boundary=\"%s\"" % b) + "\n" + body
        # RFC 2046: the line break before the boundary belongs to it.
        return msg, att.replace("\n", "\r\n").encode()


HITS = ["b64", "qpsplit", "latin1", "htmlupper", "fwd", "capital"]


def write_corpus(work):
    """Writes work/src.mbox and work/maildir/cur; returns a dict with the
    message count, the expected SEARCH UIDs, the big message's UID and its
    expected partial fetch bytes."""
    g = Gen()
    mbox = os.path.join(work, "src.mbox")
    mdir = os.path.join(work, "maildir")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(mdir, d))
    n = NMSG
    big_i = n // 2
    hit_at = {int(n * (k + 1) / (len(HITS) + 1)) + 1: h for k, h in enumerate(HITS)}
    hit_at.pop(big_i, None)
    expect = sorted(i + 1 for i in hit_at)
    written = 0
    small_n, small_bytes = 0, 0
    partial = None
    t0 = time.monotonic()
    with open(mbox, "w", encoding="utf-8", newline="\n") as f:
        for i in range(n):
            if i == big_i:
                msg, part2 = g.big(i, BIG)
                partial = part2[PARTIAL_OFF:PARTIAL_OFF + PARTIAL_LEN]
                big_part_len = len(part2)
            else:
                # A quarter of the messages (multipart/mixed) carry the
                # attachments that fill the mailbox to its size; their
                # budget follows what the others have taken so far.
                left = SIZE - written - (BIG if i < big_i else 0)
                small = small_bytes / small_n if small_n else 6000
                per = (left - (n - i) * 0.75 * small) / ((n - i) * 0.25)
                budget = max(2000, int(per * g.r.lognormvariate(0, 1.2) / 2.05))
                msg = g.message(i, min(budget, 20 << 20), hit_at.get(i))
                if "multipart/mixed; boundary=\"=_mix" not in msg:
                    small_n += 1
                    small_bytes += len(msg)
            assert "\nFrom " not in msg
            assert i in hit_at or WORD not in msg.lower(), i
            f.write("From sender@example.org Mon Jan  5 10:00:00 2026\n")
            f.write(msg)
            f.write("\n")
            data = msg.encode()
            wire = len(data) + data.count(b"\n")
            name = "%d.M%dP1.bench,S=%d,W=%d:2," % (1767600000 + i, i, len(data), wire)
            with open(os.path.join(mdir, "cur", name), "wb") as m:
                m.write(data)
            written += len(data) + 50
    return {"n": n, "expect": expect, "big_uid": big_i + 1, "partial": partial, "bytes": written,
            "big_part_len": big_part_len, "gen_s": time.monotonic() - t0,
            "mbox": mbox, "maildir": mdir, "mbox_bytes": os.path.getsize(mbox)}


# ------------------------------------------------------------ IMAP client

class Conn:
    """A raw IMAP client: responses as bytes with literals inline."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        self.line()

    def _more(self):
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        d = self.s.recv(1 << 20)
        if not d:
            raise SystemExit("server closed the connection")
        self.buf += d

    def line(self):
        while True:
            e = self.buf.find(b"\r\n", self.pos)
            if e >= 0:
                break
            self._more()
        ln = bytes(self.buf[self.pos:e])
        self.pos = e + 2
        if ln.endswith(b"}"):
            m = re.search(rb"\{(\d+)\}$", ln)
            if m:   # a literal: it and the rest of its line
                need = int(m.group(1))
                while len(self.buf) - self.pos < need:
                    self._more()
                ln += b"\r\n" + bytes(self.buf[self.pos:self.pos + need])
                self.pos += need
                ln += self.line()
        return ln

    def cmd(self, text):
        self.n += 1
        tag = b"m%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        out = []
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                if not ln.startswith(tag + b" OK"):
                    raise SystemExit("%s -> %r" % (text, ln[:300]))
                return out
            out.append(ln)

    def timed(self, text):
        t = time.monotonic()
        out = self.cmd(text)
        return time.monotonic() - t, out


# ------------------------------------------------------------ BODYSTRUCTURE comparison

def tokens(b, i=0):
    """Parses one IMAP list starting at b[i] == '(' into nested lists of
    ('s', bytes) strings, ('a', bytes) atoms; returns (list, next index)."""
    assert b[i:i + 1] == b"("
    i += 1
    out = []
    while True:
        c = b[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b")":
            return out, i + 1
        elif c == b"(":
            sub, i = tokens(b, i)
            out.append(sub)
        elif c == b"\"":
            j = i + 1
            s = bytearray()
            while b[j:j + 1] != b"\"":
                if b[j:j + 1] == b"\\":
                    j += 1
                s += b[j:j + 1]
                j += 1
            out.append(("s", bytes(s)))
            i = j + 1
        elif c == b"{":
            j = b.index(b"}", i)
            n = int(b[i + 1:j].rstrip(b"+"))
            out.append(("s", b[j + 3:j + 3 + n]))
            i = j + 3 + n
        else:
            j = i
            while b[j:j + 1] not in (b" ", b")", b"("):
                j += 1
            out.append(("a", b[i:j]))
            i = j


def bodystructures(lines):
    """{seq: parsed BODYSTRUCTURE} from FETCH responses."""
    out = {}
    for ln in lines:
        m = re.match(rb"\* (\d+) FETCH \(", ln)
        if not m:
            continue
        k = ln.find(b"BODYSTRUCTURE (")
        if k < 0:
            continue
        out[int(m.group(1))], _ = tokens(ln, k + len(b"BODYSTRUCTURE "))
    return out


NIL = ("a", b"NIL")


def lower(t):
    return ("s", t[1].lower()) if isinstance(t, tuple) and t[0] == "s" else t


def norm_params(p):
    """A parameter list: names are case-insensitive (RFC 2045 5.1)."""
    if not isinstance(p, list):
        return p
    return [lower(x) if k % 2 == 0 else x for k, x in enumerate(p)]


def norm_body(b):
    """Normalizes what the RFCs let servers spell differently."""
    if not b or not isinstance(b, list):
        return b
    if isinstance(b[0], list):      # multipart: parts..., subtype, ext
        k = 0
        while k < len(b) and isinstance(b[k], list):
            k += 1
        parts = [norm_body(x) for x in b[:k]]
        rest = list(b[k:])
        if rest:
            rest[0] = lower(rest[0])
        if len(rest) > 1:
            rest[1] = norm_params(rest[1])
        if len(rest) > 2 and isinstance(rest[2], list) and rest[2]:
            rest[2] = [lower(rest[2][0])] + [norm_params(x) for x in rest[2][1:]]
        while len(rest) > 1 and rest[-1] == NIL:
            rest.pop()      # absent trailing extension data = NIL
        return parts + rest
    b = list(b)
    b[0], b[1] = lower(b[0]), lower(b[1])
    b[2] = norm_params(b[2])
    b[5] = lower(b[5])
    ty = b[0][1] if isinstance(b[0], tuple) else b""
    sub = b[1][1] if isinstance(b[1], tuple) else b""
    base = 7
    if ty == b"message" and sub == b"rfc822" and len(b) > 9:
        b[8] = norm_body(b[8])
        base = 10
    elif ty == b"text":
        base = 8
    ext = b[base:]
    # ext: md5, disposition, language, location
    if len(ext) > 1 and isinstance(ext[1], list) and ext[1]:
        ext[1] = [lower(ext[1][0])] + [norm_params(x) for x in ext[1][1:]]
    while ext and ext[-1] == NIL:
        ext.pop()
    return b[:base] + ext


def diff_kinds(a, b, path="", out=None):
    """Where two normalized structures differ: a list of (path, a, b)."""
    if out is None:
        out = []
    if isinstance(a, list) and isinstance(b, list):
        for k in range(max(len(a), len(b))):
            x = a[k] if k < len(a) else "<absent>"
            y = b[k] if k < len(b) else "<absent>"
            diff_kinds(x, y, "%s.%d" % (path, k), out)
    elif a != b:
        out.append((path, a, b))
    return out


def show(t):
    if isinstance(t, tuple):
        return t[1].decode(errors="replace") if t[0] == "a" else '"%s"' % t[1].decode(errors="replace")
    if isinstance(t, list):
        return "(" + " ".join(show(x) for x in t) + ")"
    return str(t)


def field_name(path, tree):
    """A readable name for the element at path in a single-part body."""
    idx = [int(x) for x in path.strip(".").split(".")]
    names = ["type", "subtype", "params", "id", "description", "encoding", "octets"]
    node = tree
    for k in idx[:-1]:
        node = node[k] if isinstance(node, list) and k < len(node) else None
    last = idx[-1]
    if isinstance(node, list) and node and not isinstance(node[0], list):
        ty = node[0][1] if isinstance(node[0], tuple) else b""
        tail = ["md5", "disposition", "language", "location"]
        if ty == b"text":
            names = names + ["lines"] + tail
        elif ty == b"message":
            names = names + ["envelope", "body", "lines"] + tail
        else:
            names = names + tail
        return names[last] if last < len(names) else "ext%d" % last
    if isinstance(node, list):
        k = 0
        while k < len(node) and isinstance(node[k], list):
            k += 1
        rest = ["subtype", "params", "disposition", "language", "location"]
        return "part" if last < k else (rest[last - k] if last - k < len(rest) else "ext")
    return "?"


# ------------------------------------------------------------ memory and CPU

def proc_ids(sid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read().rsplit(")", 1)[1].split()
            if int(st[3]) == sid:
                out.append(int(p))
        except (OSError, IndexError, ValueError):
            pass
    return out


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def cpu_s(pids):
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().rsplit(")", 1)[1].split()
            t += int(st[11]) + int(st[12])
        except (OSError, IndexError):
            pass
    return t / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Peak total PSS and per-process VmHWM of a server's processes,
    sampled every 50 ms (picoimapd: one process; Dovecot: its session)."""

    def __init__(self, sid):
        super().__init__(daemon=True)
        self.sid = sid
        self.stop_ev = threading.Event()
        self.peak_pss = 0
        self.hwm = {}

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(0.05)

    def sample(self):
        pids = proc_ids(self.sid)
        self.peak_pss = max(self.peak_pss, sum(pss_kb(p) for p in pids))
        for p in pids:
            h = status_kb(p, "VmHWM")
            key = "%s[%d]" % (comm(p), p)
            self.hwm[key] = max(self.hwm.get(key, 0), h)

    def stop(self):
        self.stop_ev.set()
        self.join()
        self.sample()


# ------------------------------------------------------------ servers

class Pico:
    name = "picoimapd"

    def __init__(self, work, corpus, copy_of=None):
        """Imports the corpus, or copies the store of copy_of (a fresh
        store again: nothing in it has been read by a server)."""
        self.dir = os.path.join(work, "pico-b" if copy_of else "pico")
        os.makedirs(self.dir)
        self.port = dovecot.free_port()
        self.conf = os.path.join(self.dir, "pico.conf")
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("bench:{PLAIN}bench\n")
        with open(self.conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\nstore = mail\npasswd = passwd\nlog_level = warn\n"
                    "allow_plaintext = yes\nspecial_folders = no\nallow_root = yes\n" % self.port)
        t = time.monotonic()
        if copy_of:
            shutil.copytree(os.path.join(copy_of.dir, "mail"), os.path.join(self.dir, "mail"))
        else:
            subprocess.run([PICO, "import", "-u", "bench", "-c", self.conf, corpus["mbox"]], check=True,
                           stdout=subprocess.DEVNULL)
        self.populate_s = time.monotonic() - t

    def start(self):
        self.proc = subprocess.Popen([PICO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        dovecot.wait_port(self.port, self.proc)
        return self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


class Dove:
    def __init__(self, work, corpus, fmt, copy_of=None):
        self.name = "dovecot-" + fmt
        self.dir = os.path.join(work, self.name + ("-b" if copy_of else ""))
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = dovecot.free_port()
        t = time.monotonic()
        mail = os.path.join(self.dir, "mail")
        index = os.path.join(self.dir, "index")
        os.makedirs(index)
        if fmt == "mbox":
            os.makedirs(mail)
            shutil.copy(corpus["mbox"], os.path.join(mail, "INBOX"))
            loc = "mbox:{m}:INBOX={m}/INBOX:INDEX={i}".format(m=mail, i=index)
        else:
            shutil.copytree(corpus["maildir"], mail)
            loc = "maildir:{m}:INDEX={i}".format(m=mail, i=index)
        self.populate_s = time.monotonic() - t
        dovecot.chown_nobody(mail)
        dovecot.chown_nobody(index)
        pw = os.path.join(self.dir, "passwd")
        with open(pw, "w") as f:
            f.write("bench:{PLAIN}bench\n")
        self.conf = dovecot.write_conf(self.dir, self.port, pw, loc)

    def start(self):
        self.proc = dovecot.start(self.conf, self.port)
        return self.proc.pid

    def stop(self):
        dovecot.stop(self.proc)


def perf_start(pid, out):
    if not shutil.which("perf"):
        return None
    p = subprocess.Popen(["perf", "record", "-g", "-o", out, "-p", str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)   # perf needs a moment to attach; short commands were missed
    return p


def perf_stop(p, out, report):
    if not p:
        return
    p.send_signal(signal.SIGINT)
    p.wait(60)
    with open(report, "w") as f:
        subprocess.run(["perf", "report", "-i", out, "--no-children", "--stdio", "--percent-limit", "1",
                        "-g", "none"], stdout=f, stderr=subprocess.DEVNULL)


class Run:
    """One server process under measurement: its CPU and memory."""

    def __init__(self, srv):
        self.srv = srv
        self.sid = srv.start()
        self.samp = Sampler(self.sid)
        self.samp.start()
        self.c = Conn(srv.port)
        self.c.cmd("LOGIN bench bench")

    def cpu(self):
        return cpu_s(proc_ids(self.sid))

    def examine(self, r, corpus):
        c0 = self.cpu()
        t, out = self.c.timed("EXAMINE INBOX")
        m = [int(x.split()[1]) for x in out if x.endswith(b" EXISTS")]
        if not m or m[0] != corpus["n"]:
            raise SystemExit("%s: EXISTS %s, expected %d" % (self.srv.name, m, corpus["n"]))
        return t, self.cpu() - c0

    def close(self, r):
        try:
            self.c.cmd("LOGOUT")
        finally:
            self.samp.stop()
            if self.srv.name == "picoimapd":
                r["vmhwm_kb"] = max(r.get("vmhwm_kb", 0), status_kb(self.sid, "VmHWM"))
            self.srv.stop()
        r["peak_pss_kb"] = max(r.get("peak_pss_kb", 0), self.samp.peak_pss)
        for k, v in self.samp.hwm.items():
            r.setdefault("hwm", {})[k] = v


def measure(srv_a, srv_b, corpus, stampdir):
    """A server on two fresh copies of the mailbox, so that each "first" is
    the first time the server reads those messages: copy a gets EXAMINE and
    SEARCH TEXT, copy b EXAMINE, the partial fetch, then BODYSTRUCTURE."""
    r = {"populate_s": srv_a.populate_s, "cpu": {}}
    cpu = r["cpu"]
    run = Run(srv_a)
    try:
        r["examine_s"], cpu["examine"] = run.examine(r, corpus)
        c0 = run.cpu()
        times, answers = [], []
        perf = None
        for k in range(1 + REPEAT):
            if k == 1 and os.environ.get("MIME_BENCH_PERF") == "1" and srv_a.name == "picoimapd":
                perf = perf_start(run.sid, os.path.join(stampdir, "perf-search.data"))
            t, out = run.c.timed("UID SEARCH TEXT %s" % WORD)
            times.append(t)
            got = []
            for ln in out:
                if ln.startswith(b"* SEARCH"):
                    got += [int(x) for x in ln.split()[2:]]
            answers.append(sorted(got))
        perf_stop(perf, os.path.join(stampdir, "perf-search.data"), os.path.join(stampdir, "perf-search.txt"))
        cpu["search"] = run.cpu() - c0
        r["search_first_s"] = times[0]
        r["search_median_s"] = statistics.median(times[1:]) if REPEAT else times[0]
        r["search_uids"] = answers[0]
        r["search_stable"] = all(a == answers[0] for a in answers)
        # Which messages matched, by Message-ID (UIDs must be the corpus order).
        if answers[0]:
            out = run.c.cmd("UID FETCH %s (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])" % ",".join(map(str, answers[0])))
            r["search_ids"] = sorted(int(x) + 1 for x in re.findall(rb"<mb(\d+)@bench", b"\n".join(out)))
        else:
            r["search_ids"] = []
    finally:
        run.close(r)
    run = Run(srv_b)
    try:
        r["examine_b_s"], _ = run.examine(r, corpus)
        # Partial fetch from the middle of the big attachment.
        c0 = run.cpu()
        times, same = [], True
        for k in range(1 + 2 * REPEAT):
            t, out = run.c.timed("UID FETCH %d BODY.PEEK[2]<%d.%d>" % (corpus["big_uid"], PARTIAL_OFF, PARTIAL_LEN))
            times.append(t)
            blob = b"\n".join(out)
            m = re.search(rb"BODY\[2\]<%d> \{(\d+)\}\r\n" % PARTIAL_OFF, blob)
            data = blob[m.end():m.end() + int(m.group(1))] if m else b""
            same = same and data == corpus["partial"]
        cpu["partial"] = run.cpu() - c0
        r["partial_first_s"] = times[0]
        r["partial_median_s"] = statistics.median(times[1:])
        r["partial_exact"] = same
        # BODYSTRUCTURE
        hi = min(10000, corpus["n"])
        c0 = run.cpu()
        times = []
        perf = None
        for k in range(1 + max(1, REPEAT // 2)):
            if k == 1 and os.environ.get("MIME_BENCH_PERF") == "1" and srv_b.name == "picoimapd":
                perf = perf_start(run.sid, os.path.join(stampdir, "perf-bodystructure.data"))
            t, out = run.c.timed("FETCH 1:%d BODYSTRUCTURE" % hi)
            times.append(t)
            if k == 0:
                r["bs"] = bodystructures(out)
                r["bs_raw"] = {int(x.split()[1]): x for x in out if x.startswith(b"* ") and b" FETCH (" in x}
        perf_stop(perf, os.path.join(stampdir, "perf-bodystructure.data"),
                  os.path.join(stampdir, "perf-bodystructure.txt"))
        cpu["bodystructure"] = run.cpu() - c0
        r["bs_first_s"] = times[0]
        r["bs_median_s"] = statistics.median(times[1:])
    finally:
        run.close(r)
    return r


# ------------------------------------------------------------ report

def ms(s):
    return "%.0f ms" % (s * 1000) if s >= 0.1 else "%.1f ms" % (s * 1000)


def ratio(a, b):
    return "%.2f" % (a / b) if b else "-"


def compare_bs(res):
    """Differences between the servers' BODYSTRUCTUREs after normalizing."""
    names = [n for n in res if "bs" in res[n]]
    if len(names) < 2:
        return [], {}
    base = names[0]
    lines, kinds = [], {}
    for other in names[1:]:
        a, b = res[base]["bs"], res[other]["bs"]
        raw_same = sum(1 for k, v in res[base]["bs_raw"].items() if v == res[other]["bs_raw"].get(k))
        tok_same = sum(1 for k in a if a[k] == b.get(k))
        ndiff, examples = 0, {}
        for k in sorted(a):
            na, nb = norm_body(a[k]), norm_body(b.get(k))
            d = diff_kinds(na, nb)
            if d:
                ndiff += 1
            for path, x, y in d:
                kind = "%s: %s vs %s" % (field_name(path, na), base, other)
                kinds[kind] = kinds.get(kind, 0) + 1
                examples.setdefault(kind, "msg %d %s: %s / %s" % (k, path, show(x)[:60], show(y)[:60]))
        lines.append("- %s vs %s: %d of %d byte for byte identical, %d the same strings and lists (quoted "
                     "vs literal aside), %d differ after normalizing" % (base, other, raw_same, len(a), tok_same, ndiff))
        for kind in sorted(kinds):
            if kind.endswith(other):
                lines.append("  - %s: %d (e.g. %s)" % (kind.split(":")[0], kinds[kind], examples[kind]))
    return lines, kinds


def report(corpus, res, stamp):
    out = []
    names = list(res)
    pico = res.get("picoimapd")
    dvs = [n for n in names if n.startswith("dovecot")]
    idx_bytes = corpus["n"] * ST_MSG_BYTES
    out.append("# MIME benchmark: picoimapd vs Dovecot (`make bench-mime`)\n")
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        rev = (rev + (" with uncommitted changes" if dirty else "")) if rev else "unknown"
    except OSError:
        rev = "unknown"
    out.append("Run %s UTC, %s, load average %s; picoimapd %s, tree %s.\n" %
               (stamp, "shared 2-CPU VM" if os.cpu_count() == 2 else "%d CPUs" % os.cpu_count(),
                " ".join(open("/proc/loadavg").read().split()[:3]), os.path.relpath(PICO, ROOT), rev))
    out.append("Mailbox: %d messages, %.1f MB mbox (generated in %.0f s); the word `%s` is in the decoded "
               "body of %d of them; message %d has a %.1f MB base64 attachment as part 2. Servers run one "
               "after another, each twice on fresh copies of the mailbox (one for SEARCH, one for the partial "
               "fetch then BODYSTRUCTURE), so \"first\" is the first time that server reads those messages "
               "(files in the page cache; Dovecot builds its index during the first EXAMINE and caches fields "
               "as it goes; picoimapd keeps the part trees it parses); \"repeat\" is the median of %d more "
               "(%d for BODYSTRUCTURE, %d for the partial fetch).\n" %
               (corpus["n"], corpus["mbox_bytes"] / 1e6, corpus["gen_s"], WORD, len(corpus["expect"]),
                corpus["big_uid"], corpus["big_part_len"] / 1e6, REPEAT, max(1, REPEAT // 2), 2 * REPEAT))
    out.append("| measure | " + " | ".join(names) + " | " + " | ".join("pico/%s" % d[8:] for d in dvs) + " |")
    out.append("|---|" + "---|" * (len(names) + len(dvs)))
    rows = [("populate (import / copy)", "populate_s"), ("first EXAMINE INBOX", "examine_s"),
            ("UID SEARCH TEXT, first", "search_first_s"), ("UID SEARCH TEXT, repeat", "search_median_s"),
            ("FETCH 1:%d BODYSTRUCTURE, first" % min(10000, corpus["n"]), "bs_first_s"),
            ("FETCH BODYSTRUCTURE, repeat", "bs_median_s"),
            ("BODY.PEEK[2]<%d.%d>, first" % (PARTIAL_OFF, PARTIAL_LEN), "partial_first_s"),
            ("BODY.PEEK[2]<...>, repeat", "partial_median_s")]
    for label, key in rows:
        vals = [res[n].get(key) for n in names]
        rs = [ratio(pico[key], res[d][key]) if pico else "-" for d in dvs]
        out.append("| %s | %s | %s |" % (label, " | ".join(ms(v) if v is not None else "-" for v in vals),
                                         " | ".join(rs)))
    for ph in ("examine", "search", "bodystructure", "partial"):
        vals = [res[n]["cpu"].get(ph, 0) for n in names]
        rs = [ratio(pico["cpu"][ph], res[d]["cpu"][ph]) if pico else "-" for d in dvs]
        out.append("| server CPU, %s phase | %s | %s |" % (ph, " | ".join("%.2f s" % v for v in vals),
                                                         " | ".join(rs)))
    pss = [res[n]["peak_pss_kb"] for n in names]
    out.append("| peak PSS, all processes | %s | %s |" % (" | ".join("%.2f MiB" % (v / 1024) for v in pss),
                                                         " | ".join(ratio(pico["peak_pss_kb"], res[d]["peak_pss_kb"])
                                                                    if pico else "-" for d in dvs)))
    hw = [max(res[n]["hwm"].values() or [0]) for n in names]
    out.append("| largest VmHWM of one process | %s | %s |" % (
        " | ".join("%.2f MiB" % (v / 1024) for v in hw),
        " | ".join(ratio(hw[names.index("picoimapd")], hw[names.index(d)]) if pico else "-" for d in dvs)))
    out.append("")
    # Checks.
    out.append("Checks:\n")
    for n in names:
        r = res[n]
        ok = r["search_uids"] == corpus["expect"] and r["search_ids"] == corpus["expect"]
        out.append("- %s: SEARCH %s (%s)%s; partial fetch %s" % (
            n, "exact" if ok else "WRONG", " ".join(map(str, r["search_uids"])),
            "" if r["search_stable"] else ", NOT THE SAME ON REPEAT",
            "exact" if r["partial_exact"] else "DIFFERS from the generated bytes"))
    out.append("- expected SEARCH UIDs: %s" % " ".join(map(str, corpus["expect"])))
    if pico:
        budget = 4096 + idx_bytes / 1024
        out.append("- picoimapd memory: VmHWM %d KiB, peak PSS %d KiB; target 4 MiB + index (%d messages x %d B "
                   "= %d KiB) = %d KiB: %s" % (
                       pico.get("vmhwm_kb", 0), pico["peak_pss_kb"], corpus["n"], ST_MSG_BYTES, idx_bytes / 1024,
                       budget, "met" if pico.get("vmhwm_kb", 0) <= budget else "NOT met"))
    for d in dvs:
        top = sorted(res[d]["hwm"].items(), key=lambda kv: -kv[1])[:3]
        out.append("- %s VmHWM by process: %s" % (d, ", ".join("%s %d KiB" % kv for kv in top)))
    out.append("")
    lines, kinds = compare_bs(res)
    if lines:
        out.append("BODYSTRUCTURE answers compared (after normalizing quoted/literal strings, case of "
                   "type/subtype/encoding/parameter and disposition names, trailing NIL extension data):\n")
        out.extend(lines)
        out.append("")
    return "\n".join(out) + "\n", kinds


def main():
    if os.geteuid() != 0 and any(s.startswith("dovecot") for s in SERVERS):
        print("mime_bench: not root, Dovecot left out", file=sys.stderr)
        SERVERS[:] = [s for s in SERVERS if not s.startswith("dovecot")]
    if any(s.startswith("dovecot") for s in SERVERS) and not os.path.exists("/usr/sbin/dovecot"):
        raise SystemExit("mime_bench: install dovecot-imapd (apt-get install dovecot-imapd)")
    work = tempfile.mkdtemp(prefix="mime-bench-", dir=os.environ.get("MIME_BENCH_TMP", "/var/tmp"))
    os.chmod(work, 0o755)
    st = os.statvfs(work)
    # The corpus as mbox and maildir, and one server's two copies at a time.
    need = SIZE * 5 + BIG * 3
    if st.f_bavail * st.f_frsize < need * 1.1:
        raise SystemExit("mime_bench: %s has %.1f GB free, needs %.1f GB" %
                         (work, st.f_bavail * st.f_frsize / 1e9, need * 1.1 / 1e9))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    stampdir = os.path.join(ROOT, "tests", "bench", "results", stamp + "-mime")
    os.makedirs(stampdir, exist_ok=True)
    res = {}
    try:
        print("generating %d messages, %d MB ..." % (NMSG, SIZE >> 20), file=sys.stderr, flush=True)
        corpus = write_corpus(work)
        for name in SERVERS:
            if name == "picoimapd":
                a = Pico(work, corpus)
                b = Pico(work, corpus, copy_of=a)
            else:
                a = Dove(work, corpus, name.split("-", 1)[1])
                b = Dove(work, corpus, name.split("-", 1)[1], copy_of=a)
            print("measuring %s ..." % name, file=sys.stderr, flush=True)
            res[name] = measure(a, b, corpus, stampdir)
            if os.environ.get("MIME_BENCH_KEEP") != "1":
                # Free the disk and page cache before the next server.
                shutil.rmtree(a.dir, ignore_errors=True)
                shutil.rmtree(b.dir, ignore_errors=True)
    finally:
        if os.environ.get("MIME_BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    text, _ = report(corpus, res, time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
    print(text)
    with open(os.path.join(stampdir, "summary.md"), "w") as f:
        f.write(text)
    dest = os.environ.get("MIME_BENCH_OUT") or (
        os.path.join(ROOT, "tests", "bench", "results", "mime-summary.md") if DEFAULTS else None)
    if dest:
        with open(dest, "w") as f:
            f.write(text)
    ok = all(r["search_uids"] == corpus["expect"] and r["search_ids"] == corpus["expect"] and r["partial_exact"]
             for r in res.values())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
