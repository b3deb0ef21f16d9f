"""Issue 4: SEARCH, every key of RFC 3501 6.4.4, with decoded text."""

import base64

from conftest import make_message, ok, search_result


def fill(server):
    c = server.imap("demo")
    m1 = make_message("plain one", body="Caf\xe9 cr\xe8me\r\n".encode("latin-1")).replace(
        b"charset=us-ascii", b"charset=iso-8859-1")
    m2 = make_message("=?ISO-8859-1?Q?Gr=FC=DFe?= aus Berlin",
                      body=base64.b64encode("\u00dcBER stra\u00dfe\r\n".encode()).decode() + "\r\n",
                      extra_headers=("Content-Transfer-Encoding: base64",),
                      frm="Jörg <joerg@example.org>").replace(b"charset=us-ascii", b"charset=utf-8")
    m3 = make_message("quoted", body="soft=\r\nbreak =C3=A9l=C3=A8ve\r\n",
                      extra_headers=("Content-Transfer-Encoding: quoted-printable", "X-Tag: Alpha"),
                      to="Team <team@example.net>").replace(b"charset=us-ascii", b"charset=utf-8").replace(
        b"Mon, 05 Jan 2026", b"Sat, 03 Jan 2026")
    for m in (m1, m2, m3):
        ok(c.append("INBOX", None, None, m), "APPEND")
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    return r


def s(r, crit):
    u, done = r.cmd(crit.encode() if isinstance(crit, str) else crit)
    assert done.name == "OK", (crit, done.line)
    return search_result(u)


def test_text_keys(server):
    r = fill(server)
    assert s(r, 'SEARCH BODY "CRÈME"') == [1]
    assert s(r, 'SEARCH BODY "über"') == [2]
    assert s(r, 'SEARCH BODY softbreak') == [3]
    assert s(r, 'SEARCH BODY "ÉLÈVE"') == [3]
    assert s(r, 'SEARCH SUBJECT "grüße"') == [2]
    assert s(r, 'SEARCH FROM jörg') == [2]
    assert s(r, 'SEARCH TEXT "x-tag: alpha"') == [3]
    assert s(r, 'SEARCH HEADER X-Tag ""') == [3]
    assert s(r, 'SEARCH TO team') == [3]
    assert s(r, 'SEARCH CC nobody') == []
    assert s(r, 'SEARCH BCC nobody') == []
    assert s(r, 'SEARCH BODY subject') == []
    assert s(r, 'SEARCH TEXT "plain one"') == [1]


def test_charset(server):
    r = fill(server)
    u, done = r.cmd_lit(["SEARCH CHARSET ISO-8859-1 BODY ", "crème".encode("latin-1"), ""])
    assert done.name == "OK" and search_result(u) == [1]
    assert s(r, 'SEARCH CHARSET UTF-8 BODY "crème"') == [1]
    u, done = r.cmd("SEARCH CHARSET KOI8-R BODY x")
    assert done.name == "NO" and "BADCHARSET" in done.line


def test_logic_dates_flags_sets(server):
    r = fill(server)
    r.cmd_ok("STORE 2 +FLAGS (\\Flagged $Work)")
    assert s(r, "SEARCH SENTON 3-Jan-2026") == [3]
    assert s(r, "SEARCH SENTBEFORE 5-Jan-2026") == [3]
    assert s(r, "SEARCH SENTSINCE 5-Jan-2026") == [1, 2]
    assert s(r, "SEARCH OR (FLAGGED) (SUBJECT quoted)") == [2, 3]
    assert s(r, "SEARCH NOT (OR FLAGGED (NOT SUBJECT quoted))") == [3]
    assert s(r, "SEARCH KEYWORD $Work") == [2]
    assert s(r, "SEARCH UNKEYWORD $Work") == [1, 3]
    assert s(r, "SEARCH UNKEYWORD $Nope") == [1, 2, 3]
    assert s(r, "SEARCH 2:* UNFLAGGED") == [3]
    assert s(r, "SEARCH UID 1:*") == [1, 2, 3]
    assert s(r, "SEARCH LARGER 1 SMALLER 100000 ALL") == [1, 2, 3]
    assert s(r, "SEARCH ((ANSWERED) OR DRAFT DELETED)") == []
    assert s(r, "SEARCH UNANSWERED UNDELETED UNDRAFT UNSEEN") == [1, 2, 3]
    assert s(r, "SEARCH SINCE 1-Jan-2000 BEFORE 1-Jan-2100 NOT ON 1-Jan-1990") == [1, 2, 3]
    assert s(r, "SEARCH OLD") == [1, 2, 3] or s(r, "SEARCH NEW") != []
    u, done = r.cmd("SEARCH (FLAGGED")
    assert done.name == "BAD"
    u, done = r.cmd("SEARCH BOGUS")
    assert done.name == "BAD"
