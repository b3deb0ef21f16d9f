"""SORT, UID SORT, THREAD and UID THREAD (RFC 5256) against the real server,
with a protocol client and with imaplib's sort()/thread()."""

import pytest

from conftest import ok


def msg(subject, frm, to, cc=None, date=None, msgid=None, refs=None, size=None):
    hdr = "From: %s\r\nTo: %s\r\nSubject: %s\r\n" % (frm, to, subject)
    if cc:
        hdr += "Cc: %s\r\n" % cc
    if date:
        hdr += "Date: %s\r\n" % date
    if msgid:
        hdr += "Message-ID: %s\r\n" % msgid
    if refs:
        hdr += "References: %s\r\n" % refs
    data = (hdr + "\r\nbody\r\n").encode()
    if size:
        pad = size - len(data)
        assert pad > 0
        data += b"x" * (pad - 2) + b"\r\n"
        assert len(data) == size
    return data


# (message, INTERNALDATE)
MESSAGES = [
    (msg("beta", "zed@x.org", "bob@x.org", cc="carol@x.org",
         date="Mon, 05 Jan 2026 10:00:00 +0000", msgid="<1@t>", size=400),
     "03-Jan-2024 00:00:00 +0000"),
    (msg("Re: alpha", "Amy <amy@x.org>", "zed@x.org",
         date="Mon, 05 Jan 2026 09:00:00 +0000", msgid="<2@t>", size=5000),
     "01-Jan-2024 00:00:00 +0000"),
    (msg("[list] Alpha (fwd)", '"Bob B" <bob@x.org>', "amy@x.org", cc="dave@x.org",
         date="Mon, 5 Jan 2026 12:00:00 +0100 (CET)", msgid="<3@t>", size=3000),
     "02-Jan-2024 00:00:00 +0000"),
    # No Date header: the sent date is the INTERNALDATE.
    (msg("Re: beta", "carol@x.org", "Amy <amy@x.org>", msgid="<4@t>", refs="<1@t>",
         size=2000),
     "05-Jan-2026 08:00:00 +0000"),
    (msg("=?UTF-8?Q?Gamma?=", "AMY@x.org", "bob@x.org", cc="amy@x.org",
         date="Tue, 06 Jan 2026 10:00:00 +0000", msgid="<5@t>", size=1000),
     "04-Jan-2024 00:00:00 +0000"),
]

SORTS = [
    ("(SUBJECT)", [2, 3, 1, 4, 5]),
    ("(REVERSE SUBJECT)", [5, 1, 4, 2, 3]),
    ("(DATE)", [4, 2, 1, 3, 5]),
    ("(REVERSE DATE)", [5, 3, 1, 2, 4]),
    ("(ARRIVAL)", [2, 3, 1, 5, 4]),
    ("(SIZE)", [1, 5, 4, 3, 2]),
    ("(REVERSE SIZE)", [2, 3, 4, 5, 1]),
    ("(FROM)", [2, 5, 3, 4, 1]),
    ("(TO)", [3, 4, 1, 5, 2]),
    ("(CC)", [2, 4, 5, 1, 3]),
    ("(SUBJECT REVERSE DATE)", [3, 2, 1, 4, 5]),
    ("(subject date)", [2, 3, 4, 1, 5]),
    ("(FROM SUBJECT SIZE)", [2, 5, 3, 4, 1]),
]


@pytest.fixture
def box(server):
    r = server.raw("demo")
    # A first message expunged at once, so UIDs differ from sequence numbers.
    r.cmd_lit(["APPEND INBOX ", msg("gone", "a@b", "c@d"), ""])
    for data, idate in MESSAGES:
        u, done = r.cmd_lit(['APPEND INBOX "%s" ' % idate, data, ""])
        assert done.name == "OK", done.line
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 1 +FLAGS (\\Deleted)")
    r.cmd_ok("EXPUNGE")
    return r


def one(untagged, name):
    got = [x for x in untagged if x.name == name]
    assert len(got) == 1, [x.line for x in untagged]
    return got[0].data


def test_capability(server):
    r = server.raw("demo")
    u, _ = r.cmd_ok("CAPABILITY")
    caps = [c.upper() for c in one(u, "CAPABILITY")]
    for c in ("SORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"):
        assert c in caps


@pytest.mark.parametrize("crit,want", SORTS)
def test_sort(box, crit, want):
    u, _ = box.cmd_ok("SORT %s UTF-8 ALL" % crit)
    assert one(u, "SORT") == want
    u, done = box.cmd_ok("UID SORT %s US-ASCII ALL" % crit)
    assert one(u, "SORT") == [n + 1 for n in want]
    assert done.text.upper().startswith("UID SORT")


def test_sort_with_criteria(box):
    u, _ = box.cmd_ok("SORT (SUBJECT) UTF-8 FROM amy")
    assert one(u, "SORT") == [2, 5]
    u, _ = box.cmd_ok("SORT (REVERSE ARRIVAL) UTF-8 OR LARGER 2500 UID 5")
    assert one(u, "SORT") == [4, 3, 2]
    u, _ = box.cmd_ok("SORT (SIZE) UTF-8 SUBJECT nothing-matches")
    assert one(u, "SORT") == []
    u, _ = box.cmd_ok('SORT (DATE) ISO-8859-1 2:4')
    assert one(u, "SORT") == [4, 2, 3]


def test_thread_references(box):
    u, _ = box.cmd_ok("THREAD REFERENCES UTF-8 ALL")
    # 4 replies to 1 by References; 2 and 3 share the base subject
    # "alpha", both are replies/forwards, so a dummy holds them.
    assert one(u, "THREAD") == [[[2], [3]], [1, 4], [5]]
    u, _ = box.cmd_ok("UID THREAD REFERENCES UTF-8 ALL")
    assert one(u, "THREAD") == [[[3], [4]], [2, 5], [6]]
    u, _ = box.cmd_ok("THREAD REFERENCES UTF-8 NOT SUBJECT alpha")
    assert one(u, "THREAD") == [[1, 4], [5]]


def test_thread_orderedsubject(box):
    u, _ = box.cmd_ok("THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert one(u, "THREAD") == [[4, 1], [2, 3], [5]]
    u, _ = box.cmd_ok("THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing")
    assert one(u, "THREAD") == []


def test_errors(server, box):
    for line in ("SORT (BOGUS) UTF-8 ALL", "SORT () UTF-8 ALL", "SORT (REVERSE) UTF-8 ALL",
                 "SORT SUBJECT UTF-8 ALL", "SORT (SUBJECT) UTF-8", "SORT (SUBJECT)",
                 "SORT (SUBJECT) UTF-8 BOGUS", "THREAD FOO UTF-8 ALL", "THREAD REFERENCES",
                 "UID THREAD", "SORT (REVERSE REVERSE DATE) UTF-8 ALL"):
        u, done = box.cmd(line)
        assert done.name == "BAD", (line, done.line)
    u, done = box.cmd("SORT (SUBJECT) KOI8-R ALL")
    assert done.name == "NO" and done.code == "BADCHARSET", done.line
    r = server.raw("demo")
    u, done = r.cmd("SORT (SUBJECT) UTF-8 ALL")
    assert done.name == "BAD"      # no mailbox selected


def test_empty_mailbox(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE Empty")
    r.cmd_ok("SELECT Empty")
    u, _ = r.cmd_ok("SORT (SUBJECT) UTF-8 ALL")
    assert one(u, "SORT") == []
    u, _ = r.cmd_ok("THREAD REFERENCES UTF-8 ALL")
    assert one(u, "THREAD") == []


def test_imaplib(server, box):
    c = server.imap("demo")
    ok(c.select("INBOX"))
    typ, data = c.sort("(REVERSE DATE)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"5 3 1 2 4"], data
    typ, data = c.uid("SORT", "(SUBJECT)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"3 4 2 5 6"], data
    typ, data = c.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"((2)(3))(1 4)(5)"], data


def test_many_messages_thread_chain(server):
    """A reply chain of 300 messages threads into one line, in order."""
    r = server.raw("demo")
    n = 300
    for i in range(n):
        refs = " ".join("<%d@c>" % k for k in range(max(0, i - 5), i)) or None
        data = msg("Re: chain" if i else "chain", "a@b", "c@d",
                   date="Mon, 05 Jan 2026 10:%02d:%02d +0000" % (i // 60, i % 60),
                   msgid="<%d@c>" % i, refs=refs)
        r.cmd_lit(["APPEND INBOX ", data, ""], plus=False)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("THREAD REFERENCES UTF-8 ALL")
    assert one(u, "THREAD") == [list(range(1, n + 1))]
    u, _ = r.cmd_ok("SORT (REVERSE DATE) UTF-8 ALL")
    assert one(u, "SORT") == list(range(n, 0, -1))
