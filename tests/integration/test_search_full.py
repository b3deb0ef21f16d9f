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


def test_text_decoding_long_parts(server):
    """BODY and TEXT find a word in long decoded parts wherever the server's
    read slices and decode blocks fall: the word at many offsets of a
    ~40 KB part (base64 UTF-8, quoted-printable with a soft line break inside
    the word, quoted-printable Latin-1), in mixed case, after long runs of
    ASCII and of 8-bit letters; a part holding only pieces of it is not
    found."""
    import random
    rnd = random.Random(4)
    offsets = [0, 5, 1021, 1024, 4093, 8190, 16379, 16384, 16390, 32767, 40000]
    word = "ZanzIBARite"
    c = server.imap("demo")
    want = {"b64": [], "qp": [], "latin1": []}
    uid = 0
    for kind in ("b64", "qp", "latin1"):
        for off in offsets + [None]:
            letters = "ABCDEFGHIJ abcdefghij \u00c4\u00d6\u00dc\u00e9 "
            filler = "".join(rnd.choice(letters) for _ in range(40010))
            if off is None:
                text = filler[:20000] + "zanzibar ite zanzibari" + filler[20000:]
            else:
                text = filler[:off] + word + filler[off:]
            text += " M\u00c4RZ\u00dcBER\r\n"
            if kind == "b64":
                raw = text.encode("utf-8")
                body = base64.encodebytes(raw).decode().replace("\n", "\r\n")
                hdr = ("Content-Transfer-Encoding: base64",)
                cs = b"utf-8"
            else:
                raw = text.encode("utf-8" if kind == "qp" else "latin-1")
                enc = "".join(chr(b) if 32 < b < 127 and b != 61 else "=%02X" % b for b in raw)
                if off is not None and kind == "qp":
                    # A soft line break inside the word.
                    at = enc.index(word) + 4
                    enc = enc[:at] + "=\r\n" + enc[at:]
                lines, k = [], 0
                while k < len(enc):
                    n = 70
                    while enc[k + n - 2:k + n].find("=") >= 0 and k + n < len(enc):
                        n -= 1          # never cut an =XX escape
                    lines.append(enc[k:k + n])
                    k += n
                body = "=\r\n".join(lines) + "\r\n"
                hdr = ("Content-Transfer-Encoding: quoted-printable",)
                cs = b"utf-8" if kind == "qp" else b"iso-8859-1"
            assert "zanzibarite" not in body.lower().replace("=\r\n", "") or kind != "b64"
            m = make_message("long %s %s" % (kind, off), body=body, extra_headers=hdr).replace(
                b"charset=us-ascii", b"charset=" + cs)
            ok(c.append("INBOX", None, None, m), "APPEND")
            uid += 1
            if off is not None:
                want[kind].append(uid)
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    every = sorted(want["b64"] + want["qp"] + want["latin1"])
    assert len(every) == 3 * len(offsets)
    assert s(r, "SEARCH BODY zanzibarite") == every
    assert s(r, "SEARCH TEXT ZANZIBARITE") == every
    assert s(r, 'SEARCH BODY "zanzibar ite"') == [len(offsets) + 1, 2 * len(offsets) + 2, 3 * len(offsets) + 3]
    # Upper-case 8-bit letters after 40 KB of text, folded in every encoding.
    assert s(r, 'SEARCH CHARSET UTF-8 BODY "m\u00e4rz\u00fcber"') == list(range(1, uid + 1))


def test_text_long_header(server):
    """TEXT matches "Name: value" in a root header longer than the server's
    read slices, in a folded field at its end, and an RFC 2047 word there;
    the same words in the body of another message match BODY but a header
    name alone does not match BODY."""
    c = server.imap("demo")
    fields = tuple("X-Filler-%04d: %s" % (i, "abcdefghij" * 6) for i in range(600))
    m1 = make_message("long header", body="plain body\r\n", extra_headers=fields + (
        "X-Last: first part\r\n ZANZIBARITE =?utf-8?q?M=C3=84RZ?= end",))
    m2 = make_message("in body", body="x-last: first part zanzibarite m\u00e4rz\r\n").replace(
        b"charset=us-ascii", b"charset=utf-8")
    for m in (m1, m2):
        ok(c.append("INBOX", None, None, m), "APPEND")
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    assert s(r, 'SEARCH TEXT "x-last: first part zanzibarite"') == [1, 2]
    assert s(r, 'SEARCH TEXT "x-filler-0599: abcdefghij"') == [1]
    assert s(r, 'SEARCH CHARSET UTF-8 TEXT "zanzibarite m\u00e4rz end"') == [1]
    assert s(r, "SEARCH TEXT zanzibarite") == [1, 2]
    assert s(r, "SEARCH BODY zanzibarite") == [2]
    assert s(r, 'SEARCH BODY "x-filler"') == []
    assert s(r, 'SEARCH HEADER X-Last "first part zanzibarite"') == [1]
