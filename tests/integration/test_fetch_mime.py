"""Issue 4: FETCH of MIME structure, sections and partials against the
corpus in tests/corpus (expected strings in NAME.expected, part
boundaries cross-checked with Python's email package)."""

import os

import imapsyntax
from conftest import REPO, ok

CORPUS = os.path.join(REPO, "tests", "corpus")


def load(name):
    with open(os.path.join(CORPUS, name + ".eml"), "rb") as f:
        msg = f.read()
    exp = {}
    sections = {}
    with open(os.path.join(CORPUS, name + ".expected"), "rb") as f:
        data = f.read()
    # A value may hold a literal with CRLF in it: lines not starting with
    # a key continue the previous one.
    entries = []
    for line in data.split(b"\n"):
        if line.split(b" ", 1)[0] in (b"BODYSTRUCTURE", b"BODY", b"ENVELOPE", b"SECTION"):
            entries.append(line)
        elif entries:
            entries[-1] += b"\n" + line
    for e in entries:
        if e.startswith(b"SECTION "):
            _, spec, off, ln = e.split(b" ")
            sections[spec.decode()] = (int(off), int(ln))
        else:
            k, v = e.split(b" ", 1)
            exp[k.decode()] = v
    return msg, exp, sections


def wire(msg):
    """The store hands messages out with CRLF line ends."""
    return msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_bodystructure_envelope_sections(server):
    c = server.imap("demo")
    r = server.raw("demo")
    name = "nested-mixed-crlf"
    msg, exp, sections = load(name)
    ok(c.append("INBOX", None, None, msg), "APPEND")
    r.cmd_ok("SELECT INBOX")
    for item in ("BODYSTRUCTURE", "BODY", "ENVELOPE"):
        u, done = r.cmd_ok("FETCH 1 " + item)
        got = [x.data for x in u if x.name == "FETCH"][0][item]
        p = imapsyntax.Parser(exp[item])
        want = p.envelope() if item == "ENVELOPE" else p.sexp()
        assert got == want, item
    for spec, (off, ln) in sections.items():
        u, done = r.cmd_ok("FETCH 1 BODY.PEEK[%s]" % spec)
        got = [x.data for x in u if x.name == "FETCH"][0]
        key = "BODY[%s]" % spec
        assert got[key] == msg[off:off + ln], key
        # partial from the middle of every section
        if ln > 4:
            u, done = r.cmd_ok("FETCH 1 BODY.PEEK[%s]<2.%d>" % (spec, ln - 3))
            got = [x.data for x in u if x.name == "FETCH"][0]
            assert got[key + "<2>"] == msg[off + 2:off + ln - 1], key


def test_every_corpus_message(server):
    c = server.imap("demo")
    names = sorted(n[:-4] for n in os.listdir(CORPUS) if n.endswith(".eml"))
    for n in names:
        msg, _, _ = load(n)
        ok(c.append("INBOX", None, None, wire(msg)), "APPEND " + n)
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    for i, n in enumerate(names, 1):
        msg, exp, sections = load(n)
        w = wire(msg)
        u, _ = r.cmd_ok("FETCH %d (BODYSTRUCTURE ENVELOPE RFC822.SIZE BODY.PEEK[])" % i)
        got = [x.data for x in u if x.name == "FETCH"][0]
        assert got["RFC822.SIZE"] == len(w)
        assert got["BODY[]"] == w
        if w == msg:  # offsets in the expectations are for this form
            for spec, (off, ln) in sections.items():
                u, _ = r.cmd_ok("FETCH %d BODY.PEEK[%s]" % (i, spec))
                got = [x.data for x in u if x.name == "FETCH"][0]
                assert got["BODY[%s]" % spec] == msg[off:off + ln], (n, spec)


def test_header_fields_and_seen(server):
    c = server.imap("demo")
    msg, _, _ = load("nested-mixed-crlf")
    ok(c.append("INBOX", None, None, msg), "APPEND")
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT message-id)] BODY.PEEK[1.2.HEADER.FIELDS.NOT (From)])")
    got = [x.data for x in u if x.name == "FETCH"][0]
    assert got["BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)]"] == (
        b"Subject: =?UTF-8?B?SGVsbG8gV8O2cmxk?= test\r\n"
        b"Message-ID: <5678.21-Nov-1997@example.com>\r\n\r\n")
    assert got["BODY[1.2.HEADER.FIELDS.NOT (FROM)]"] == b"Subject: inner\r\nContent-Type: text/html\r\n\r\n"
    u, _ = r.cmd_ok("FETCH 1 FLAGS")
    assert "\\Seen" not in [x.data for x in u if x.name == "FETCH"][0]["FLAGS"]
    u, _ = r.cmd_ok("FETCH 1 BODY[1.1]")
    got = [x.data for x in u if x.name == "FETCH"][0]
    assert got["BODY[1.1]"] == b"Hello =C3=A9t=C3=A9"
    assert "\\Seen" in got["FLAGS"]
    u, _ = r.cmd_ok("FETCH 1 BODY.PEEK[7]")
    assert [x.data for x in u if x.name == "FETCH"][0]["BODY[7]"] is None


def test_macros_and_big_partial(server):
    c = server.imap("demo")
    big = b"".join(b"%08d abcdefghijklmnopqrstuvwxyz0123456789\r\n" % i for i in range(200000))
    msg = (b"From: a@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
           b"Content-Type: text/plain\r\n\r\nhello\r\n--zz\r\n"
           b"Content-Type: application/octet-stream\r\n\r\n" + big + b"\r\n--zz--\r\n")
    ok(c.append("INBOX", None, None, msg), "APPEND")
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    for macro, keys in (("ALL", {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}),
                        ("FAST", {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}),
                        ("FULL", {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"})):
        u, _ = r.cmd_ok("FETCH 1 " + macro)
        assert set([x.data for x in u if x.name == "FETCH"][0]) == keys
    mid = len(big) // 2
    u, _ = r.cmd_ok("FETCH 1 BODY.PEEK[2]<%d.1000>" % mid)
    assert [x.data for x in u if x.name == "FETCH"][0]["BODY[2]<%d>" % mid] == big[mid:mid + 1000]
    u, _ = r.cmd_ok("FETCH 1 BODY.PEEK[2]<%d.1000>" % (len(big) + 5))
    assert [x.data for x in u if x.name == "FETCH"][0]["BODY[2]<%d>" % (len(big) + 5)] == b""
    u, _ = r.cmd_ok("FETCH 1 BODYSTRUCTURE")
    bs = [x.data for x in u if x.name == "FETCH"][0]["BODYSTRUCTURE"]
    assert bs[1][6] == len(big)
