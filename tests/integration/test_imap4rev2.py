"""IMAP4rev2 (RFC 9051) after ENABLE IMAP4rev2, response by response, and
an IMAP4rev1 session beside it that must see what it always saw. FETCH
BINARY (RFC 3516, which RFC 9051 requires) is checked byte for byte against
Python's own base64 / quoted-printable encoders."""
import base64
import os
import quopri

import pytest

from conftest import make_message, fetches

pytestmark = pytest.mark.picoimapd_only


def append(r, box, msg, flags=None):
    head = "APPEND %s " % box + ("(%s) " % flags if flags else "")
    _, done = r.cmd_lit([head, msg, ""])
    assert done.name == "OK", done.line
    return done


def rev2(server, user="demo"):
    r = server.raw(user)
    u, _ = r.cmd_ok("ENABLE IMAP4rev2")
    assert [x.raw for x in u] == [b"* ENABLED IMAP4rev2\r\n"]
    r.utf8_names = True
    return r


def lines(untagged):
    return [x.raw.decode("latin-1") for x in untagged]


def test_capability_lists_rev2_and_binary(server):
    r = server.raw("demo")
    u, _ = r.cmd_ok("CAPABILITY")
    caps = {c.upper() for c in u[0].data}
    assert {"IMAP4REV1", "IMAP4REV2", "BINARY", "ENABLE", "UIDPLUS", "NAMESPACE",
            "ESEARCH", "LIST-EXTENDED", "STATUS=SIZE"} <= caps


def test_select_examine_exact(server):
    plain = server.raw("demo")
    for i in range(3):
        append(plain, "INBOX", make_message("m%d" % i), "\\Seen" if i == 0 else None)
    plain.cmd_ok("CREATE Work")
    plain.cmd_ok("CREATE Work/Sub")
    plain.cmd_ok("LOGOUT")
    r = rev2(server)
    u, done = r.cmd_ok("SELECT INBOX")
    uv = [x.code_arg for x in u if x.code == "UIDVALIDITY"][0]
    # RFC 9051 6.3.2: FLAGS, PERMANENTFLAGS, EXISTS, LIST, UIDVALIDITY,
    # UIDNEXT; no RECENT, no [UNSEEN]; \Recent in neither flag list.
    assert lines(u) == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n",
        "* 3 EXISTS\r\n",
        '* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
        "* OK [UIDVALIDITY %d] UIDs valid\r\n" % uv,
        "* OK [UIDNEXT 4] Predicted next UID\r\n",
        "* OK [HIGHESTMODSEQ 4] Highest\r\n",      # CONDSTORE's, as for rev1
    ], lines(u)
    assert done.raw == b"%s OK [READ-WRITE] SELECT completed\r\n" % done.tag.encode()
    # These messages are recent to this session, but rev2 never says so.
    u, _ = r.cmd_ok("FETCH 1:3 (FLAGS)")
    assert lines(u) == ["* 1 FETCH (FLAGS (\\Seen))\r\n", "* 2 FETCH (FLAGS ())\r\n",
                        "* 3 FETCH (FLAGS ())\r\n"]
    # Replacing the selection: OK [CLOSED] first (RFC 9051 6.3.2, 7.1).
    u, done = r.cmd_ok("EXAMINE Work")
    assert lines(u)[0] == "* OK [CLOSED] Previous mailbox closed\r\n"
    assert '* LIST (\\HasChildren) "/" "Work"\r\n' in lines(u)
    assert not [x for x in u if x.name == "RECENT" or x.code == "UNSEEN"]
    assert done.code == "READ-ONLY"
    # A failed SELECT still closes the old one, and says so.
    u, done = r.cmd("SELECT Nope")
    assert lines(u) == ["* OK [CLOSED] Previous mailbox closed\r\n"]
    assert done.name == "NO" and done.code == "NONEXISTENT"


def test_search_keys_and_esearch(server):
    r = rev2(server)
    for i in range(4):
        append(r, "INBOX", make_message("s%d" % i))
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    # RFC 9051 6.4.4 has no RECENT, NEW or OLD keys.
    for key in ("RECENT", "NEW", "OLD", "NOT RECENT", "OR SEEN NEW"):
        _, done = r.cmd("SEARCH " + key)
        assert done.name == "BAD", (key, done.raw)
    # ESEARCH answers, with UID for UID SEARCH (RFC 9051 6.4.4, 7.3.4).
    u, done = r.cmd_ok("SEARCH UNSEEN")
    assert lines(u) == ['* ESEARCH (TAG "%s") ALL 1,3:4\r\n' % done.tag]
    u, done = r.cmd_ok("UID SEARCH SEEN")
    assert lines(u) == ['* ESEARCH (TAG "%s") UID ALL 2\r\n' % done.tag]
    u, done = r.cmd_ok("SEARCH KEYWORD nope")
    assert lines(u) == ['* ESEARCH (TAG "%s")\r\n' % done.tag]
    # UID EXPUNGE is part of IMAP4rev2.
    r.cmd_ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    u, _ = r.cmd_ok("UID EXPUNGE 1:2")
    assert lines(u) == ["* 1 EXPUNGE\r\n"]


def test_status_deleted_size_no_recent(server):
    r = rev2(server)
    msgs = [make_message("st%d" % i) for i in range(3)]
    for m in msgs:
        append(r, "INBOX", m)
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    r.cmd_ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    u, _ = r.cmd_ok("STATUS INBOX (MESSAGES DELETED SIZE UNSEEN UIDNEXT)")
    size = sum(len(m) for m in msgs)
    assert lines(u) == ['* STATUS "INBOX" (MESSAGES 3 DELETED 2 SIZE %d UNSEEN 2 UIDNEXT 4)\r\n' % size]
    _, done = r.cmd("STATUS INBOX (RECENT)")
    assert done.name == "BAD"
    _, done = r.cmd("STATUS INBOX (MESSAGES RECENT)")
    assert done.name == "BAD"
    # LIST-STATUS takes the same items.
    u, _ = r.cmd_ok('LIST "" "INBOX" RETURN (STATUS (DELETED MESSAGES))')
    assert lines(u) == ['* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
                        '* STATUS "INBOX" (MESSAGES 3 DELETED 2)\r\n']
    _, done = r.cmd('LIST "" "INBOX" RETURN (STATUS (RECENT))')
    assert done.name == "BAD"


def test_utf8_names_both_ways(server):
    r = rev2(server)
    plain = server.raw("demo")
    name = "Entwürfe"
    # A quoted string may carry UTF-8 in IMAP4rev2 (RFC 9051 4.3).
    u, _ = r.cmd_ok(b'CREATE "' + name.encode() + b'"')
    r.cmd_ok('CREATE "R&D"')
    u, _ = r.cmd_ok('LIST "" "*"')
    names = {x.data[2] for x in u if x.name == "LIST"}
    assert {name, "R&D", "INBOX"} <= names, names
    # A UTF-8 name goes out as a literal (8-bit), never as modified UTF-7.
    assert any(x.raw == b'* LIST (\\HasNoChildren) "/" {9}\r\n' + name.encode() + b"\r\n" for x in u), lines(u)
    # The store and an IMAP4rev1 session keep modified UTF-7.
    u, _ = plain.cmd_ok('LIST "" "*"')
    pnames = {x.data[2] for x in u if x.name == "LIST"}
    assert {"Entw&APw-rfe", "R&-D"} <= pnames and name not in pnames, pnames
    # Names from the rev1 side arrive as UTF-8, and the UTF-8 name selects.
    plain.cmd_ok('CREATE "&ZeVnLIqe-"')
    u, _ = r.cmd_ok('LIST "" "%"')
    assert "日本語" in {x.data[2] for x in u if x.name == "LIST"}
    u, _ = r.cmd_ok(b'SELECT "' + name.encode() + b'"')
    lst = [x for x in u if x.name == "LIST"]
    assert len(lst) == 1 and lst[0].data[2] == name
    u, _ = r.cmd_ok(b'STATUS "' + "日本語".encode() + b'" (MESSAGES)')
    assert u[0].data == ("日本語", {"MESSAGES": 0})
    # "&" is just a character now: "&APw-" does not mean "ü".
    _, done = r.cmd('SELECT "Entw&APw-rfe"')
    assert done.name == "NO" and done.code == "NONEXISTENT"
    # Not UTF-8: refused.
    _, done = r.cmd(b'CREATE "bad\xff"')
    assert done.name in ("NO", "BAD")


def test_list_lsub_namespace_and_codes(server):
    r = rev2(server)
    u, _ = r.cmd_ok('LIST "" ""')
    assert lines(u) == ['* LIST (\\Noselect) "/" ""\r\n']
    r.cmd_ok("CREATE a/b")
    r.cmd_ok("SUBSCRIBE a/b")
    r.cmd_ok("SUBSCRIBE gone")
    u, _ = r.cmd_ok('LIST "" "a*" RETURN (SUBSCRIBED)')
    assert lines(u) == ['* LIST (\\NonExistent \\HasChildren) "/" "a"\r\n',
                        '* LIST (\\Subscribed \\HasNoChildren) "/" "a/b"\r\n']
    u, _ = r.cmd_ok('LIST (SUBSCRIBED) "" "*"')
    assert '* LIST (\\NonExistent \\Subscribed \\HasNoChildren) "/" "gone"\r\n' in lines(u)
    # LSUB is deprecated but still answers (RFC 9051 6.3.9).
    u, _ = r.cmd_ok('LSUB "" "*"')
    assert {x.data[2] for x in u if x.name == "LSUB"} >= {"a/b", "gone"}
    u, _ = r.cmd_ok("NAMESPACE")
    assert lines(u) == ['* NAMESPACE (("" "/")) NIL NIL\r\n']
    # RFC 5530 codes RFC 9051 uses.
    for cmd, code in (("CREATE a/b", "ALREADYEXISTS"), ("DELETE nope", "NONEXISTENT"),
                      ("RENAME nope other", "NONEXISTENT"), ("RENAME a/b INBOX", "ALREADYEXISTS"),
                      ("SELECT nope", "NONEXISTENT")):
        _, done = r.cmd(cmd)
        assert done.name == "NO" and done.code == code, (cmd, done.raw)


def test_rev1_session_unchanged(server):
    r = server.raw("demo")
    for i in range(2):
        append(r, "INBOX", make_message("old%d" % i))
    u, _ = r.cmd_ok("STATUS INBOX (RECENT MESSAGES)")
    assert lines(u) == ['* STATUS "INBOX" (RECENT 2 MESSAGES 2)\r\n']
    u, _ = r.cmd_ok("SELECT INBOX")
    names = [x.name for x in u]
    assert "RECENT" in names and "LIST" not in names
    assert [x for x in u if x.code == "UNSEEN"][0].code_arg == 1
    u, _ = r.cmd_ok("FETCH 1 FLAGS")
    assert fetches(u)[1]["FLAGS"] == ["\\Recent"]
    u, _ = r.cmd_ok("SEARCH RECENT")
    assert lines(u) == ["* SEARCH 1 2\r\n"]
    u, _ = r.cmd_ok("SELECT INBOX")      # no CONDSTORE: no [CLOSED] either
    assert not [x for x in u if x.code == "CLOSED"]


def binary_message():
    """A multipart message: 1 text/plain 7bit, 2 base64 with NULs, 3
    quoted-printable, 4 x-uuencode (undecodable), 5 a message/rfc822 whose
    body is base64."""
    blob = bytes(range(256)) * 3 + b"\x00end"
    b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    # RFC 2045 6.7: trailing whitespace goes, "=" CRLF (even with padding
    # before the CRLF) is a soft break, a broken escape stays as it is.
    qp = (b"Gr=C3=BC=C3=9Fe =3D 100%  \r\nsoft=\r\nbreak pad= \t\r\nded =3d\tx\r\n"
          b"bad =ZZ =4\r\n" + quopri.encodestring(b"y" * 100).replace(b"\n", b"\r\n") + b"end\r\n")
    # A part's body ends before the CRLF of the next boundary (RFC 2046 5.1.1).
    text = b"Gr\xc3\xbc\xc3\x9fe = 100%\r\nsoftbreak padded =\tx\r\nbad =ZZ =4\r\n" + b"y" * 100 + b"end"
    inner_body = b"inner \x01 data"
    inner = (b"Subject: inner\r\nContent-Type: application/octet-stream\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(inner_body) + b"\r\n")
    msg = (b"From: a@example.org\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
           b"--XX\r\nContent-Type: text/plain\r\n\r\nplain part\r\n"
           b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: BASE64\r\n\r\n"
           + b64 +
           b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           + qp +
           b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
           b"begin 644 x\r\n#86)C\r\n`\r\nend\r\n"
           b"--XX\r\nContent-Type: message/rfc822\r\n\r\n" + inner +
           b"--XX--\r\n")
    return msg, blob, text, inner, inner_body


def test_fetch_binary_sections(server):
    r = rev2(server)
    msg, blob, text, inner, inner_body = binary_message()
    append(r, "INBOX", msg)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2] BINARY.SIZE[3] BINARY.PEEK[3] BINARY.PEEK[1])")
    f = fetches(u)[1]
    assert f["BINARY.SIZE[2]"] == len(blob) and f["BINARY[2]"] == blob
    assert f["BINARY.SIZE[3]"] == len(text) and f["BINARY[3]"] == text
    assert f["BINARY[1]"] == b"plain part"
    # NULs need a literal8; text without them goes as a plain literal.
    raw = b"".join(x.raw for x in u)
    assert b"BINARY[2] ~{%d}\r\n" % len(blob) in raw and b"BINARY[3] {%d}\r\n" % len(text) in raw
    # PEEK and SIZE left \Seen alone; BINARY[] sets it.
    u, _ = r.cmd_ok("FETCH 1 FLAGS")
    assert fetches(u)[1]["FLAGS"] == []
    u, _ = r.cmd_ok("FETCH 1 (BINARY[2]<700.100> BINARY[3]<3.5>)")
    f = fetches(u)[1]
    assert f["BINARY[2]<700>"] == blob[700:800] and f["BINARY[3]<3>"] == text[3:8]
    assert "\\Seen" in f["FLAGS"]
    # The rfc822 part: raw, its encoding is its own body's business;
    # 5.1 is that inner body, decoded.
    u, _ = r.cmd_ok("FETCH 1 (BINARY.PEEK[5] BINARY.PEEK[5.1] BINARY.SIZE[5.1] BINARY.PEEK[9])")
    f = fetches(u)[1]
    assert f["BINARY[5]"] == inner[:-2] and f["BINARY[5.1]"] == inner_body
    assert f["BINARY.SIZE[5.1]"] == len(inner_body) and f["BINARY[9]"] is None
    # A multipart whole message is served as it is.
    u, _ = r.cmd_ok("FETCH 1 (BINARY.PEEK[])")
    assert fetches(u)[1]["BINARY[]"] == msg
    # x-uuencode: NO [UNKNOWN-CTE], and no FETCH response for it.
    u, done = r.cmd("FETCH 1 (FLAGS BINARY.PEEK[4])")
    assert done.name == "NO" and done.code == "UNKNOWN-CTE" and not fetches(u)
    _, done = r.cmd("FETCH 1 BINARY.SIZE[4]")
    assert done.code == "UNKNOWN-CTE"
    # No HEADER / TEXT / MIME in a binary section.
    for bad in ("BINARY[1.MIME]", "BINARY[HEADER]", "BINARY.SIZE[1]<0.5>", "BINARY[1.]"):
        _, done = r.cmd("FETCH 1 " + bad)
        assert done.name == "BAD", bad


def test_binary_single_part_and_large(server):
    r = server.raw("demo")      # BINARY is offered to rev1 sessions too
    big = os.urandom(300 * 1024)
    hdr = (b"From: a@example.org\r\nSubject: big\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\nX-After: kept\r\n\r\n")
    msg = hdr + base64.encodebytes(big).replace(b"\n", b"\r\n")
    append(r, "INBOX", msg)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.SIZE[])")
    f = fetches(u)[1]
    assert f["BINARY[1]"] == big and f["BINARY.SIZE[1]"] == len(big)
    # BINARY[] decodes the body and says so in the header.
    want = (b"From: a@example.org\r\nSubject: big\r\nContent-Type: application/octet-stream\r\n"
            b"X-After: kept\r\nContent-Transfer-Encoding: binary\r\n\r\n") + big
    assert f["BINARY.SIZE[]"] == len(want)
    u, _ = r.cmd_ok("FETCH 1 (BINARY.PEEK[] BINARY.PEEK[]<100.200>)")
    f = fetches(u)[1]
    assert f["BINARY[]"] == want and f["BINARY[]<100>"] == want[100:300]


def test_append_literal8(server):
    r = rev2(server)
    body = b"bytes \x00\x01\x02 with NUL\r\n"
    msg = (b"From: a@example.org\r\nSubject: l8\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + body)
    t = r.tag()
    r.send(t + " APPEND INBOX ~{%d}\r\n" % len(msg))
    assert r.read_response().kind == "cont"
    r.send(msg + b"\r\n")
    _, done = r.read_until_tagged(t)
    assert done.name == "OK" and done.code == "APPENDUID"
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
    f = fetches(u)[1]
    assert f["BINARY[1]"] == body and f["BINARY.SIZE[1]"] == len(body)
    assert b"BINARY[1] ~{%d}\r\n" % len(body) in b"".join(x.raw for x in u)
