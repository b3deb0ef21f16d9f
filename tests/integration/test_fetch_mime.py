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


# ---- partial FETCH through seek points (issue 4, step 1) ----

import random
import re

SEEK_EVERY = 65536   # MIME_SEEK_EVERY: a seek point per 64 KiB of disk bytes
FROM_RE = re.compile(rb"^>*From ")


def disk_form(wire):
    """The message as the store keeps it: LF line ends, mboxrd quoting."""
    out = []
    for line in wire.replace(b"\r\n", b"\n").split(b"\n"):
        out.append(b">" + line if FROM_RE.match(line) else line)
    return b"\n".join(out)


def straddle(kind):
    """A message whose disk offset 64 KiB falls where disk and wire forms
    part: `lf` on the LF of a CRLF line end, `gt2` just after the two '>'
    of a line quoted as '>>From ', `gt2mid` between them, `gt1` just after
    the '>' of '>From ', `bol` exactly at the start of a quoted line. Returns (wire, wire offset of
    the line that straddles)."""
    w = b"From: a@example.com\r\nSubject: straddle " + kind.encode() + b"\r\n\r\n"
    n = 0
    while len(disk_form(w)) < SEEK_EVERY - 400:
        w += b"From line %05d plus some filler text to make it long enough\r\n" % n
        n += 1
    left = SEEK_EVERY - len(disk_form(w))      # disk bytes up to the target
    at = len(w)
    if kind == "lf":
        w += b"y" * left + b"\r\n"               # its LF sits on the target
    elif kind == "gt2":
        w += b"z" * (left - 3) + b"\r\n" + b">From quoted\r\n"   # '>>From' on disk
        at = len(w) - len(b">From quoted\r\n")
    elif kind == "gt2mid":
        w += b"z" * (left - 2) + b"\r\n" + b">From quoted\r\n"
        at = len(w) - len(b">From quoted\r\n")
    elif kind == "gt1":
        w += b"z" * (left - 2) + b"\r\n" + b"From unquoted on the wire\r\n"
        at = len(w) - len(b"From unquoted on the wire\r\n")
    else:
        w += b"z" * (left - 1) + b"\r\n" + b"From right at the point\r\n"
        at = len(w) - len(b"From right at the point\r\n")
    for i in range(3000):
        w += (b">From again %d\r\n" if i % 3 else b"plain %d\r\n") % i
    return w, at


def big_tricky(lf):
    """Over 1 MB: a part of long lines, From and >From lines, a 300 KB
    line, in CRLF or bare-LF input."""
    body = []
    for i in range(12000):
        body.append([b"From start %d" % i, b">From quoted %d" % i, b">>From deep %d" % i,
                     b"plain %d " % i + b"q" * (i % 200), b""][i % 5])
    text = b"\r\n".join(body)
    msg = (b"From: a@example.com\r\nSubject: tricky\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
           b"Content-Type: text/plain\r\n\r\n" + text + b"\r\n--zz\r\n"
           b"Content-Type: application/octet-stream\r\n\r\n" + b"L" * 300000 +
           b"\r\nFrom after the long line\r\n" + text + b"\r\n--zz--\r\n")
    return msg.replace(b"\r\n", b"\n") if lf else msg


def check_partials(r, seq, spec, full, origins, maxlen=5000):
    """Each BODY.PEEK[spec]<o.n> equals the slice of the full section;
    sent 16 to a command."""
    key = "BODY[%s]" % spec
    origins = list(dict.fromkeys(origins))
    for i in range(0, len(origins), 16):
        chunk = origins[i:i + 16]
        lens = {o: random.randint(1, maxlen) for o in chunk}
        items = " ".join("BODY.PEEK[%s]<%d.%d>" % (spec, o, lens[o]) for o in chunk)
        u, _ = r.cmd_ok("FETCH %d (%s)" % (seq, items))
        got = [x.data for x in u if x.name == "FETCH"][0]
        for o in chunk:
            assert got["%s<%d>" % (key, o)] == full[o:o + lens[o]], (spec, o, lens[o])


def test_partial_seek_exact(server):
    random.seed(4)
    c = server.imap("demo")
    msgs = [straddle(k) for k in ("lf", "gt2", "gt2mid", "gt1", "bol")]
    bigs = [big_tricky(False), big_tricky(True)]
    for w, _ in msgs:
        ok(c.append("INBOX", None, None, w), "APPEND")
    for m in bigs:
        ok(c.append("INBOX", None, None, m), "APPEND")
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")

    def run(rounds):
        for seq, (w, at) in enumerate(msgs, 1):
            u, _ = r.cmd_ok("FETCH %d BODY.PEEK[]" % seq)
            full = [x.data for x in u if x.name == "FETCH"][0]["BODY[]"]
            assert full == w
            near = [o for o in range(at - 12, at + 12)]
            check_partials(r, seq, "", full, near + [random.randrange(len(full)) for _ in range(rounds)], 300)
            u, _ = r.cmd_ok("FETCH %d BODY.PEEK[TEXT]" % seq)
            text = [x.data for x in u if x.name == "FETCH"][0]["BODY[TEXT]"]
            hl = len(full) - len(text)
            check_partials(r, seq, "TEXT", text, [o - hl for o in near] +
                           [random.randrange(len(text)) for _ in range(rounds)], 300)
        for seq, m in enumerate(bigs, len(msgs) + 1):
            u, _ = r.cmd_ok("FETCH %d BODY.PEEK[]" % seq)
            full = [x.data for x in u if x.name == "FETCH"][0]["BODY[]"]
            assert full == m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            for part in ("1", "2"):
                u, _ = r.cmd_ok("FETCH %d BODY.PEEK[%s]" % (seq, part))
                body = [x.data for x in u if x.name == "FETCH"][0]["BODY[%s]" % part]
                # origins at and around every 64 KiB of wire offset, and random
                grid = [k * SEEK_EVERY + d for k in range(len(body) // SEEK_EVERY + 1)
                        for d in (-1, 0, 1) if 0 <= k * SEEK_EVERY + d < len(body)]
                check_partials(r, seq, part, body, grid + [random.randrange(len(body)) for _ in range(rounds)])
            check_partials(r, seq, "", full, [random.randrange(len(full)) for _ in range(rounds)])

    run(60)
    # After a restart the trees (and their seek points) come from the
    # mailbox's cache file; the answers must not change.
    assert os.path.exists(os.path.join(server.store, "demo", ".INBOX.mime"))
    server.restart()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    run(20)


def test_parsed_at_append_and_restart(server):
    """Step 3: a new message's tree is written to the mailbox's cache file
    while it is appended, before any FETCH; after a restart the answers
    come from there and equal the plain ones."""
    c = server.imap("demo")
    m = big_tricky(False)
    path = os.path.join(server.store, "demo", ".INBOX.mime")
    ok(c.append("INBOX", None, None, m), "APPEND")
    assert os.path.getsize(path) > 16 + 28 + 100
    size_after_append = os.path.getsize(path)
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[2]<700000.1000>)")
    first = [x.data for x in u if x.name == "FETCH"][0]
    # nothing new had to be stored: the tree was there
    assert os.path.getsize(path) == size_after_append
    server.restart()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[2]<700000.1000>)")
    again = [x.data for x in u if x.name == "FETCH"][0]
    assert again == first
    u, _ = r.cmd_ok("FETCH 1 BODY.PEEK[2]")
    body = [x.data for x in u if x.name == "FETCH"][0]["BODY[2]"]
    assert first["BODY[2]<700000>"] == body[700000:701000]
    # a damaged cache file costs a parse, not a wrong answer
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    server.restart()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[2]<700000.1000>)")
    assert [x.data for x in u if x.name == "FETCH"][0] == first


def _big_unparsed(server, mb):
    """A message of `mb` MB whose tree is in no cache: appended, then the
    cache file removed while the server is down."""
    c = server.imap("demo")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
    big = line * (mb * 1024 * 1024 // len(line))
    msg = (b"From: a@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
           b"Content-Type: text/plain\r\n\r\nhello\r\n--zz\r\n"
           b"Content-Type: application/octet-stream\r\n\r\n" + big + b"\r\n--zz--\r\n")
    ok(c.append("INBOX", None, None, msg), "APPEND")
    server.stop()
    os.unlink(os.path.join(server.store, "demo", ".INBOX.mime"))
    server.start()
    return big


def test_first_bodystructure_does_not_block(server):
    """Step 4: the first BODYSTRUCTURE of a big message nobody parsed yet
    is read a slice per loop turn; another client is answered meanwhile,
    each NOOP long before the BODYSTRUCTURE is done."""
    import threading
    import time
    big = _big_unparsed(server, 40)
    a = server.raw("demo")
    a.cmd_ok("SELECT INBOX")
    b = server.raw("demo")
    b.cmd_ok("SELECT INBOX")
    res = {}

    def run():
        t = time.monotonic()
        u, _ = a.cmd_ok("FETCH 1 (BODYSTRUCTURE BODY.PEEK[2]<30000000.100>)", timeout=120)
        res["t"] = time.monotonic() - t
        res["f"] = [x.data for x in u if x.name == "FETCH"][0]

    th = threading.Thread(target=run)
    th.start()
    lat = []
    while th.is_alive():
        t = time.monotonic()
        b.cmd_ok("NOOP")
        lat.append(time.monotonic() - t)
    th.join()
    assert res["f"]["BODYSTRUCTURE"][1][6] == len(big)
    assert res["f"]["BODY[2]<30000000>"] == big[30000000:30000100]
    # Without slicing one NOOP waits for the whole parse (measured: 1 NOOP
    # of 108 ms during a 108 ms BODYSTRUCTURE; with it: ~80 NOOPs, the
    # slowest 2-7 ms, of an 80-100 ms BODYSTRUCTURE).
    assert len(lat) >= 3, (res["t"], lat)
    assert max(lat) < res["t"] / 2, (res["t"], lat)


def test_expunge_during_sliced_parse(server):
    """The message is expunged by another session while its tree is being
    read: the FETCH ends cleanly (EXPUNGEISSUED or the data), the server
    goes on."""
    _big_unparsed(server, 20)
    a = server.raw("demo")
    a.cmd_ok("SELECT INBOX")
    b = server.raw("demo")
    b.cmd_ok("SELECT INBOX")
    t = a.tag()
    a.send("%s FETCH 1 BODYSTRUCTURE\r\n" % t)
    b.cmd_ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd_ok("EXPUNGE")
    u, done = a.read_until_tagged(t, timeout=120)
    assert done.name in ("OK", "NO"), done.line
    if done.name == "NO":
        assert "EXPUNGEISSUED" in done.line
    a.cmd_ok("NOOP")
    u, _ = b.cmd_ok("SELECT INBOX")
    server.assert_serving()


def test_parsed_at_delivery(server):
    """`picoimapd deliver` (another process) parses a big message as it
    stores it and writes its record; the server then answers from that
    record, and it matches what the server makes of the same message on
    its own. A small message (under MIME_APPEND_RECORD_MIN, 64 KiB) costs
    no record at delivery or APPEND: the server keeps the tree of its own
    APPEND in memory, and writes a record the first time it parses one."""
    import subprocess
    from conftest import BINARY
    small, _, _ = load("nested-mixed-lf")
    # the same structure, made big by an epilogue after the last boundary
    msg = small + b"".join(b"epilogue line %05d .................................................\n" % i
                           for i in range(1200))
    path = os.path.join(server.store, "demo", ".INBOX.mime")
    c = server.imap("demo")     # the user's folder exists from here on
    assert not os.path.exists(path)
    p = subprocess.run([BINARY, "deliver", "-u", "demo", "-c", server.conf], input=msg,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.path.getsize(path) > 16 + 28
    after = os.path.getsize(path)
    ok(c.append("INBOX", None, None, msg), "APPEND")   # parsed by the server itself
    assert os.path.getsize(path) > after
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:2 (BODYSTRUCTURE ENVELOPE)")
    got = [x.data for x in u if x.name == "FETCH"]
    assert got[0]["BODYSTRUCTURE"] == got[1]["BODYSTRUCTURE"]
    assert got[0]["ENVELOPE"] == got[1]["ENVELOPE"]
    # nothing is parsed again for these FETCHes: no record is added
    size = os.path.getsize(path)
    r.cmd_ok("FETCH 1:2 (BODYSTRUCTURE BODY.PEEK[1.2.1])")
    assert os.path.getsize(path) == size
    # small ones: no record at delivery (3) nor APPEND (4)
    p = subprocess.run([BINARY, "deliver", "-u", "demo", "-c", server.conf], input=small,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ok(c.append("INBOX", None, None, small), "APPEND")
    assert os.path.getsize(path) == size
    r.cmd_ok("NOOP")
    # 4 is in the server's memory; 3 is parsed now, and recorded
    u, _ = r.cmd_ok("FETCH 3:4 (BODYSTRUCTURE ENVELOPE)")
    got_small = [x.data for x in u if x.name == "FETCH"]
    assert got_small[0]["BODYSTRUCTURE"] == got_small[1]["BODYSTRUCTURE"]
    assert got_small[0]["ENVELOPE"] == got_small[1]["ENVELOPE"]
    assert os.path.getsize(path) > size
    size = os.path.getsize(path)
    r.cmd_ok("FETCH 3:4 (BODYSTRUCTURE)")
    assert os.path.getsize(path) == size
    # the same as parsing on first use, without any cache file
    server.stop()
    os.unlink(path)
    server.start()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:2 (BODYSTRUCTURE ENVELOPE)")
    assert [x.data for x in u if x.name == "FETCH"] == got
    u, _ = r.cmd_ok("FETCH 3:4 (BODYSTRUCTURE ENVELOPE)")
    assert [x.data for x in u if x.name == "FETCH"] == got_small


def test_import_records_every_message(server_factory, tmp_path):
    """`picoimapd import` parses each message as it writes it and keeps its
    tree, with ENVELOPE and BODYSTRUCTURE rendered, in the mailbox's cache
    file (small messages too), so the server's first FETCH parses nothing.
    The cached answers are byte for byte what a parse gives (the cache file
    removed) and what the corpus expects, and stay so when other items
    that need the tree are asked for with them."""
    import subprocess
    from conftest import BINARY
    srv = server_factory(start=False)
    names = sorted(n[:-4] for n in os.listdir(CORPUS) if n.endswith(".eml"))
    md = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for i, n in enumerate(names):
        (md / "new" / ("%d.%d.host" % (1700000000 + i, i))).write_bytes(load(n)[0])
    p = subprocess.run([BINARY, "import", "-u", "demo", "-m", "Imp", "-c", srv.conf, str(md)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    path = os.path.join(srv.store, "demo", ".Imp.mime")
    size = os.path.getsize(path)
    # a record (28-byte head, CRC, payload with both renderings) a message
    assert size > 16 + len(names) * (32 + 80)
    srv.start()
    c = srv.imap("demo")
    ok(c.select("Imp"))
    items = "(ENVELOPE BODYSTRUCTURE)"
    mixed_items = "(UID ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[1] RFC822.SIZE)"
    first = ok(c.fetch("1:*", items))
    assert len([d for d in first if d != b")"]) >= len(names)
    assert ok(c.fetch("1:*", items)) == first
    mixed = ok(c.fetch("1:*", mixed_items))
    assert os.path.getsize(path) == size    # nothing was parsed: no record added
    r = srv.raw("demo")
    r.cmd_ok("EXAMINE Imp")
    checked = 0
    for i, n in enumerate(names, 1):
        msg, exp, _ = load(n)
        if wire(msg) != msg:
            continue    # the expectations' sizes are for the file as it is
        u, _ = r.cmd_ok("FETCH %d (BODYSTRUCTURE ENVELOPE)" % i)
        got = [x.data for x in u if x.name == "FETCH"][0]
        for item in ("BODYSTRUCTURE", "ENVELOPE"):
            if item in exp:
                p = imapsyntax.Parser(exp[item])
                assert got[item] == (p.envelope() if item == "ENVELOPE" else p.sexp()), (n, item)
                checked += 1
    assert checked >= 2
    # the same bytes from a parse
    srv.stop()
    os.unlink(path)
    srv.start()
    c = srv.imap("demo")
    ok(c.select("Imp"))
    assert ok(c.fetch("1:*", items)) == first
    assert ok(c.fetch("1:*", mixed_items)) == mixed
