"""SELECT, EXAMINE, APPEND, FETCH, STORE, COPY, EXPUNGE, CLOSE, CHECK and
the UID forms, checked response by response against RFC 3501."""

import datetime
import re
import time

import pytest

from conftest import make_message, select_info, fetches, flagset

SYSTEM = {"\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\SEEN", "\\DRAFT"}


def append(r, box, msg, flags=None, date=None):
    head = "APPEND %s " % box
    if flags is not None:
        head += "(%s) " % flags
    if date is not None:
        head += '"%s" ' % date
    _, done = r.cmd_lit([head, msg, ""])
    assert done.name == "OK", done.line
    return done


def parse_date_time(s):
    return datetime.datetime.strptime(s.strip(), "%d-%b-%Y %H:%M:%S %z")


def setup_box(server, n=3, user="demo", box="INBOX", sizes=None):
    r = server.raw(user)
    if box != "INBOX":
        r.cmd_ok("CREATE %s" % box)
    msgs = []
    for i in range(n):
        m = make_message("msg %d" % (i + 1), size=(sizes[i] if sizes else None))
        append(r, box, m)
        msgs.append(m)
    return r, msgs


# ---------------------------------------------------------------- SELECT

def test_select_responses(server):
    r, msgs = setup_box(server, 3)
    u, done = r.cmd_ok("SELECT INBOX")
    assert done.code == "READ-WRITE", "tagged OK of SELECT needs [READ-WRITE]: " + done.line
    info = select_info(u)
    assert flagset(info["flags"]) >= SYSTEM, info
    assert info["exists"] == 3
    assert info["recent"] == 3, "the first session to select new mail sees it \\Recent"
    codes = info["codes"]
    assert codes["UIDVALIDITY"] > 0
    assert codes["UIDNEXT"] > 0
    assert "PERMANENTFLAGS" in codes
    perm = {f.upper() for f in codes["PERMANENTFLAGS"]}
    assert SYSTEM <= perm, perm
    assert codes.get("UNSEEN") == 1, "RFC 3501: OK [UNSEEN n] with the first unseen message"
    u, _ = r.cmd_ok("FETCH 1:* UID")
    uids = [fetches(u)[i]["UID"] for i in (1, 2, 3)]
    assert codes["UIDNEXT"] > max(uids)
    # Every required untagged response came before the tagged OK, once each.
    names = [x.name for x in u]
    r2 = server.raw("demo")
    u2, _ = r2.cmd_ok("SELECT INBOX")
    info2 = select_info(u2)
    assert info2["recent"] == 0, "\\Recent is reported to one session only"
    assert info2["codes"]["UIDVALIDITY"] == codes["UIDVALIDITY"]
    kinds = [x.name for x in u2]
    for need in ("FLAGS", "EXISTS", "RECENT"):
        assert kinds.count(need) == 1, "%s: %r" % (need, kinds)
    assert names


def test_select_unseen_code_points_at_first_unseen(server):
    r, msgs = setup_box(server, 4)
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 1:2 +FLAGS (\\Seen)")
    r.cmd_ok("STORE 4 +FLAGS (\\Seen)")
    u, _ = r.cmd_ok("SELECT INBOX")
    assert select_info(u)["codes"].get("UNSEEN") == 3
    r.cmd_ok("STORE 3 +FLAGS (\\Seen)")
    u, _ = r.cmd_ok("SELECT INBOX")
    assert "UNSEEN" not in select_info(u)["codes"], "no unseen message, no [UNSEEN n]"


def test_examine_is_read_only(server):
    r, msgs = setup_box(server, 2)
    u, done = r.cmd_ok("EXAMINE INBOX")
    assert done.code == "READ-ONLY", "tagged OK of EXAMINE needs [READ-ONLY]: " + done.line
    info = select_info(u)
    assert info["exists"] == 2
    assert "UIDVALIDITY" in info["codes"] and "UIDNEXT" in info["codes"]
    u, _ = r.cmd_ok("FETCH 1 BODY[]")
    f = fetches(u)[1]
    assert f["BODY[]"] == msgs[0]
    assert "\\SEEN" not in flagset(f.get("FLAGS", [])), "EXAMINE: BODY[] must not set \\Seen"
    # A read-only mailbox may refuse (NO) or ignore (OK) changes; either
    # way nothing changes (checked below from another session).
    for cmd in ("STORE 1 +FLAGS (\\Deleted)", "EXPUNGE"):
        u, done = r.cmd(cmd)
        assert done.name in ("NO", "BAD", "OK"), "%s in EXAMINE -> %s" % (cmd, done.line)
        assert not [x for x in u if x.name == "EXPUNGE"]
    r.cmd_ok("CLOSE")
    r2 = server.raw("demo")
    r2.cmd_ok("SELECT INBOX")
    u, _ = r2.cmd_ok("FETCH 1:2 FLAGS")
    for v in fetches(u).values():
        assert not (flagset(v["FLAGS"]) & {"\\SEEN", "\\DELETED"}), v


def test_select_missing_and_noselect(server):
    r = server.raw("demo")
    _, done = r.cmd("SELECT Nope")
    assert done.name == "NO"
    r.cmd_ok("CREATE par/child")
    u, _ = r.cmd_ok('LIST "" par')
    if u and "\\NOSELECT" in [f.upper() for f in u[0].data[0]]:
        _, done = r.cmd("SELECT par")
        assert done.name == "NO"


def test_select_inbox_any_case(server):
    r, msgs = setup_box(server, 1)
    for name in ("inbox", "InBox", '"INBOX"'):
        u, _ = r.cmd_ok("SELECT %s" % name)
        assert select_info(u)["exists"] == 1


# ---------------------------------------------------------------- APPEND

def test_append_flags_and_date_time(server):
    r = server.raw("demo")
    m = make_message("dated")
    done = append(r, "INBOX", m, flags="\\Seen \\Flagged", date="05-Mar-2024 10:11:12 +0200")
    append(r, "INBOX", make_message("single digit day"), date=" 7-Jul-2023 23:59:59 -0500")
    t0 = datetime.datetime.now(datetime.timezone.utc)
    append(r, "INBOX", make_message("undated"))
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:3 (FLAGS INTERNALDATE RFC822.SIZE)")
    f = fetches(u)
    assert flagset(f[1]["FLAGS"]) == {"\\SEEN", "\\FLAGGED"}
    assert flagset(f[3]["FLAGS"]) == set()
    assert f[1]["RFC822.SIZE"] == len(m)
    want = parse_date_time("05-Mar-2024 10:11:12 +0200")
    got = parse_date_time(f[1]["INTERNALDATE"])
    assert got == want, "INTERNALDATE %s, appended with 05-Mar-2024 10:11:12 +0200" % f[1]["INTERNALDATE"]
    assert parse_date_time(f[2]["INTERNALDATE"]) == parse_date_time("07-Jul-2023 23:59:59 -0500")
    now = parse_date_time(f[3]["INTERNALDATE"])
    assert abs((now - t0).total_seconds()) < 120, "INTERNALDATE of an undated APPEND is now"
    assert done.name == "OK"


def test_append_keywords(server):
    r = server.raw("demo")
    u, _ = r.cmd_ok("SELECT INBOX")
    perm = [f.upper() for f in select_info(u)["codes"].get("PERMANENTFLAGS", [])]
    if "\\*" not in perm:
        pytest.skip("server does not allow keywords (no \\* in PERMANENTFLAGS)")
    append(r, "INBOX", make_message("kw"), flags="$Forwarded Custom1 \\Answered")
    u, _ = r.cmd_ok("NOOP")
    u, _ = r.cmd_ok("FETCH 1 FLAGS")
    assert flagset(fetches(u)[1]["FLAGS"]) == {"$FORWARDED", "CUSTOM1", "\\ANSWERED"}
    r.cmd_ok("STORE 1 -FLAGS (Custom1)")
    u, _ = r.cmd_ok("FETCH 1 FLAGS")
    assert flagset(fetches(u)[1]["FLAGS"]) == {"$FORWARDED", "\\ANSWERED"}


def test_append_to_missing_mailbox_trycreate(server):
    r = server.raw("demo")
    _, done = r.cmd_lit(["APPEND Missing ", make_message("x"), ""])
    assert done.name == "NO" and done.code == "TRYCREATE", done.line


def test_append_tricky_bodies_round_trip(server):
    """mboxrd quoting must be invisible: From_ lines, >From lines, 8-bit
    bytes, a final line without CRLF, long lines, dots."""
    bodies = [
        b"From me to you\r\nFrom: not a header\r\n>From quoted\r\n>>From twice\r\n"
        b"  From indented\r\nFrom\r\n",
        b"caf\xc3\xa9 \xff\xfe 8-bit\r\n\r\n\r\n.\r\n..\r\n",
        b"x" * 20000 + b"\r\n",
        b"From the start\r\nno final newline",
        b"\r\n",
    ]
    r = server.raw("demo")
    msgs = [make_message("tricky %d" % i, body=b) for i, b in enumerate(bodies)]
    msgs.append(b"From someone@example.org Mon Jan  5 10:00:00 2026\r\nSubject: starts like mbox\r\n\r\nbody\r\n")
    for m in msgs:
        append(r, "INBOX", m)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])")
    f = fetches(u)
    assert len(f) == len(msgs)
    for i, m in enumerate(msgs, 1):
        assert f[i]["BODY[]"] == m, "message %d changed in the store: %r" % (i, f[i]["BODY[]"][-80:])
        assert f[i]["RFC822.SIZE"] == len(m)
    server.restart()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:* BODY.PEEK[]")
    f = fetches(u)
    for i, m in enumerate(msgs, 1):
        assert f[i]["BODY[]"] == m, "message %d changed across a restart" % i


def test_append_literal_plus(server):
    r = server.raw("demo")
    m = make_message("literal plus")
    t = r.tag()
    r.send(b"%s APPEND INBOX (\\Draft) {%d+}\r\n" % (t.encode(), len(m)) + m + b"\r\n")
    _, done = r.read_until_tagged(t)
    assert done.name == "OK", done.line
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (FLAGS BODY.PEEK[])")
    assert fetches(u)[1]["BODY[]"] == m
    assert flagset(fetches(u)[1]["FLAGS"]) == {"\\DRAFT"}


def test_append_to_selected_mailbox_reports_exists(server):
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    _, done = r.cmd_lit(["APPEND INBOX ", make_message("while selected"), ""])
    assert done.name == "OK"
    u, _ = r.cmd_ok("NOOP")
    # The EXISTS may come with the APPEND or with the NOOP; it must come.
    u2, _ = r.cmd_ok("FETCH 1 UID")
    assert 1 in fetches(u2)


# ---------------------------------------------------------------- FETCH

def test_fetch_items(server):
    m = make_message("fetch me", body="line one\r\nline two\r\n")
    r = server.raw("demo")
    append(r, "INBOX", m, date="01-Feb-2025 08:00:00 +0000")
    r.cmd_ok("SELECT INBOX")
    head, _, text = m.partition(b"\r\n\r\n")
    head += b"\r\n\r\n"
    u, _ = r.cmd_ok("FETCH 1 (FLAGS UID INTERNALDATE RFC822.SIZE)")
    f = fetches(u)[1]
    assert set(f) == {"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE"}
    assert f["RFC822.SIZE"] == len(m)
    assert parse_date_time(f["INTERNALDATE"]) == parse_date_time("01-Feb-2025 08:00:00 +0000")
    u, _ = r.cmd_ok("FETCH 1 RFC822.HEADER")
    f = fetches(u)[1]
    assert f["RFC822.HEADER"] == head
    assert "FLAGS" not in f or "\\SEEN" not in flagset(f["FLAGS"]), "RFC822.HEADER sets no \\Seen"
    u, _ = r.cmd_ok("FETCH 1 BODY.PEEK[]")
    f = fetches(u)[1]
    assert f["BODY[]"] == m
    u, _ = r.cmd_ok("FETCH 1 FLAGS")
    assert "\\SEEN" not in flagset(fetches(u)[1]["FLAGS"]), "BODY.PEEK[] set \\Seen"
    u, _ = r.cmd_ok("FETCH 1 RFC822.TEXT")
    f = fetches(u)[1]
    assert f["RFC822.TEXT"] == text
    assert "\\SEEN" in flagset(f.get("FLAGS", [])), \
        "RFC822.TEXT sets \\Seen and the FETCH response reports the new FLAGS"


def test_fetch_body_sets_seen_and_reports_flags(server):
    r, msgs = setup_box(server, 2)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 BODY[]")
    f = fetches(u)[1]
    assert f["BODY[]"] == msgs[0]
    assert "\\SEEN" in flagset(f.get("FLAGS", [])), \
        "BODY[] sets \\Seen; the FLAGS change should come in the FETCH response"
    u, _ = r.cmd_ok("FETCH 2 RFC822")
    f = fetches(u)[2]
    assert f["RFC822"] == msgs[1]
    assert "\\SEEN" in flagset(f.get("FLAGS", []))
    u, _ = r.cmd_ok("FETCH 1:2 FLAGS")
    assert all("\\SEEN" in flagset(v["FLAGS"]) for v in fetches(u).values())
    # A second BODY[] on an already seen message: no harm, data again.
    u, _ = r.cmd_ok("FETCH 1 BODY[]")
    assert fetches(u)[1]["BODY[]"] == msgs[0]


def test_fetch_ranges_and_star(server):
    r, msgs = setup_box(server, 5)
    r.cmd_ok("SELECT INBOX")
    for seqset, want in (("1:*", [1, 2, 3, 4, 5]), ("*", [5]), ("2,4", [2, 4]),
                         ("4:2", [2, 3, 4]), ("*:4", [4, 5]), ("1,1,1", [1]),
                         ("1:2,4:*", [1, 2, 4, 5]), ("3:3", [3])):
        u, _ = r.cmd_ok("FETCH %s UID" % seqset)
        assert sorted(fetches(u)) == want, (seqset, sorted(fetches(u)))


def test_uid_fetch(server):
    r, msgs = setup_box(server, 4)
    u, _ = r.cmd_ok("SELECT INBOX")
    uidnext = select_info(u)["codes"]["UIDNEXT"]
    u, _ = r.cmd_ok("FETCH 1:* UID")
    uids = [fetches(u)[i]["UID"] for i in (1, 2, 3, 4)]
    u, _ = r.cmd_ok("UID FETCH %d FLAGS" % uids[2])
    f = fetches(u)
    assert list(f) == [3] and f[3]["UID"] == uids[2], "UID FETCH must include UID in its responses"
    u, _ = r.cmd_ok("UID FETCH %d:* (UID BODY.PEEK[])" % uids[1])
    f = fetches(u)
    assert sorted(f) == [2, 3, 4]
    assert [f[i]["BODY[]"] for i in (2, 3, 4)] == msgs[1:]
    u, _ = r.cmd_ok("UID FETCH %d:* UID" % (uidnext + 100))
    assert list(fetches(u)) == [4], "n:* always includes the last message (RFC 3501 6.4.8)"
    u, _ = r.cmd_ok("UID FETCH %d UID" % (uidnext + 100))
    assert fetches(u) == {}, "a UID that does not exist is ignored"
    u, _ = r.cmd_ok("UID FETCH 1:%d FLAGS" % (uidnext + 1000))
    assert sorted(fetches(u)) == [1, 2, 3, 4]


# ---------------------------------------------------------------- STORE

def test_store_variants(server):
    r, msgs = setup_box(server, 3)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("STORE 1 FLAGS (\\Flagged \\Draft)")
    f = fetches(u)
    assert flagset(f[1]["FLAGS"]) == {"\\FLAGGED", "\\DRAFT"}
    u, _ = r.cmd_ok("STORE 1 +FLAGS (\\Seen)")
    assert flagset(fetches(u)[1]["FLAGS"]) == {"\\FLAGGED", "\\DRAFT", "\\SEEN"}
    u, _ = r.cmd_ok("STORE 1 -FLAGS (\\Draft \\Answered)")
    assert flagset(fetches(u)[1]["FLAGS"]) == {"\\FLAGGED", "\\SEEN"}
    u, _ = r.cmd_ok("STORE 1 FLAGS ()")
    assert flagset(fetches(u)[1]["FLAGS"]) == set()
    u, _ = r.cmd_ok("STORE 2:3 +FLAGS \\Answered")  # flag without parentheses
    assert sorted(fetches(u)) == [2, 3]
    u, _ = r.cmd_ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert not [x for x in u if x.name == "FETCH"], ".SILENT must not send FETCH: %r" % (
        [x.line for x in u])
    u, _ = r.cmd_ok("STORE 2 -FLAGS.SILENT (\\Deleted)")
    assert not [x for x in u if x.name == "FETCH"]
    u, _ = r.cmd_ok("STORE 3 FLAGS.SILENT (\\Seen)")
    assert not [x for x in u if x.name == "FETCH"]
    u, _ = r.cmd_ok("FETCH 1:3 FLAGS")
    f = fetches(u)
    assert flagset(f[1]["FLAGS"]) == {"\\DELETED"}
    assert flagset(f[2]["FLAGS"]) == {"\\ANSWERED"}
    assert flagset(f[3]["FLAGS"]) == {"\\SEEN"}


def test_uid_store(server):
    r, msgs = setup_box(server, 3)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:3 UID")
    uids = [fetches(u)[i]["UID"] for i in (1, 2, 3)]
    u, _ = r.cmd_ok("UID STORE %d +FLAGS (\\Flagged)" % uids[1])
    f = fetches(u)
    assert list(f) == [2]
    assert f[2]["UID"] == uids[1], "UID STORE responses carry the UID"
    assert flagset(f[2]["FLAGS"]) == {"\\FLAGGED"}
    u, _ = r.cmd_ok("UID STORE %d:%d FLAGS.SILENT (\\Seen)" % (uids[0], uids[2]))
    assert not [x for x in u if x.name == "FETCH"]
    u, _ = r.cmd_ok("FETCH 1:3 FLAGS")
    assert all(flagset(v["FLAGS"]) == {"\\SEEN"} for v in fetches(u).values())


def test_store_recent_is_refused_or_ignored(server):
    r, msgs = setup_box(server, 1)
    r.cmd_ok("SELECT INBOX")
    _, done = r.cmd("STORE 1 +FLAGS (\\Recent)")
    assert done.name in ("BAD", "NO", "OK")
    _, done = r.cmd("STORE 1 -FLAGS (\\Recent)")
    u, _ = r.cmd_ok("FETCH 1 FLAGS")
    assert "\\RECENT" in {f.upper() for f in fetches(u)[1]["FLAGS"]}, "\\Recent cannot be changed"


# ---------------------------------------------------------------- EXPUNGE / CLOSE

def apply_expunges(uids, untagged):
    uids = list(uids)
    for x in untagged:
        if x.name == "EXPUNGE":
            assert 1 <= x.num <= len(uids), "EXPUNGE %d of %d" % (x.num, len(uids))
            del uids[x.num - 1]
    return uids


def test_expunge_responses(server):
    r, msgs = setup_box(server, 6)
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:* UID")
    uids = [fetches(u)[i]["UID"] for i in range(1, 7)]
    r.cmd_ok("STORE 2,4,5 +FLAGS (\\Deleted)")
    u, _ = r.cmd_ok("EXPUNGE")
    assert len([x for x in u if x.name == "EXPUNGE"]) == 3, [x.line for x in u]
    left = apply_expunges(uids, u)
    assert left == [uids[0], uids[2], uids[5]]
    u, _ = r.cmd_ok("FETCH 1:* (UID BODY.PEEK[])")
    f = fetches(u)
    assert [f[i]["UID"] for i in (1, 2, 3)] == left
    assert [f[i]["BODY[]"] for i in (1, 2, 3)] == [msgs[0], msgs[2], msgs[5]]
    u, _ = r.cmd_ok("EXPUNGE")
    assert not [x for x in u if x.name == "EXPUNGE"]
    r2 = server.raw("demo")
    u, _ = r2.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 3


def test_expunge_seen_by_other_session(server):
    """Mailbox views are shared: a second session learns of new messages,
    flag changes and expunges at its next NOOP."""
    a, msgs = setup_box(server, 3)
    a.cmd_ok("SELECT INBOX")
    b = server.raw("demo")
    b.cmd_ok("SELECT INBOX")
    append(a, "INBOX", make_message("fourth"))
    u, _ = b.cmd_ok("NOOP")
    assert [x.num for x in u if x.name == "EXISTS"] == [4], [x.line for x in u]
    a.cmd_ok("STORE 1 +FLAGS (\\Flagged)")
    u, _ = b.cmd_ok("NOOP")
    f = fetches(u)
    assert 1 in f and "\\FLAGGED" in flagset(f[1]["FLAGS"]), \
        "flag change by another session not reported: %r" % [x.line for x in u]
    a.cmd_ok("STORE 2 +FLAGS (\\Deleted)")
    a.cmd_ok("EXPUNGE")
    u, _ = b.cmd_ok("NOOP")
    assert [x.num for x in u if x.name == "EXPUNGE"] == [2], [x.line for x in u]
    u, _ = b.cmd_ok("FETCH 1:* UID")
    assert sorted(fetches(u)) == [1, 2, 3]


def test_close_expunges_silently(server):
    r, msgs = setup_box(server, 3)
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 2 +FLAGS (\\Deleted)")
    u, done = r.cmd_ok("CLOSE")
    assert not [x for x in u if x.name == "EXPUNGE"], "CLOSE sends no EXPUNGE"
    _, done = r.cmd("FETCH 1 FLAGS")
    assert done.name == "BAD", "CLOSE returns to authenticated state"
    u, _ = r.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 2
    u, _ = r.cmd_ok("FETCH 1:2 BODY.PEEK[]")
    assert [fetches(u)[i]["BODY[]"] for i in (1, 2)] == [msgs[0], msgs[2]]


def test_close_after_examine_does_not_expunge(server):
    r, msgs = setup_box(server, 2)
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 1 +FLAGS (\\Deleted)")
    r.cmd_ok("EXAMINE INBOX")
    r.cmd_ok("CLOSE")
    u, _ = r.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 2


def test_check(server):
    r, msgs = setup_box(server, 1)
    r.cmd_ok("SELECT INBOX")
    u, done = r.cmd_ok("CHECK")
    assert done.name == "OK"


# ---------------------------------------------------------------- COPY

def test_copy(server):
    r, msgs = setup_box(server, 3)
    r.cmd_ok("CREATE Dest")
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 1 +FLAGS (\\Flagged)")
    r.cmd_ok("STORE 3 +FLAGS (\\Seen \\Answered)")
    u, _ = r.cmd_ok("FETCH 1:3 INTERNALDATE")
    dates = [fetches(u)[i]["INTERNALDATE"] for i in (1, 2, 3)]
    r.cmd_ok("COPY 1,3 Dest")
    u, _ = r.cmd_ok("STATUS Dest (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 2
    u, _ = r.cmd_ok("SELECT Dest")
    assert select_info(u)["recent"] == 2, "copied messages are \\Recent in the destination"
    u, _ = r.cmd_ok("FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[])")
    f = fetches(u)
    assert [f[1]["BODY[]"], f[2]["BODY[]"]] == [msgs[0], msgs[2]]
    assert flagset(f[1]["FLAGS"]) == {"\\FLAGGED"}
    assert flagset(f[2]["FLAGS"]) == {"\\SEEN", "\\ANSWERED"}
    assert [f[1]["INTERNALDATE"], f[2]["INTERNALDATE"]] == [dates[0], dates[2]]
    # Source untouched.
    u, _ = r.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 3


def test_copy_to_missing_mailbox_trycreate(server):
    r, msgs = setup_box(server, 1)
    r.cmd_ok("SELECT INBOX")
    _, done = r.cmd("COPY 1 Missing")
    assert done.name == "NO" and done.code == "TRYCREATE", done.line


def test_copy_to_same_mailbox(server):
    r, msgs = setup_box(server, 2)
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("COPY 1:2 INBOX")
    u, _ = r.cmd_ok("NOOP")
    u, _ = r.cmd_ok("FETCH 1:* (UID BODY.PEEK[])")
    f = fetches(u)
    assert len(f) == 4
    assert [f[i]["BODY[]"] for i in (1, 2, 3, 4)] == msgs + msgs
    uids = [f[i]["UID"] for i in (1, 2, 3, 4)]
    assert uids == sorted(set(uids))


def test_uid_copy(server):
    r, msgs = setup_box(server, 3)
    r.cmd_ok("CREATE Dest")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:3 UID")
    uids = [fetches(u)[i]["UID"] for i in (1, 2, 3)]
    r.cmd_ok("UID COPY %d,%d Dest" % (uids[1], uids[1] + 1000))
    r.cmd_ok("SELECT Dest")
    u, _ = r.cmd_ok("FETCH 1:* BODY.PEEK[]")
    assert [v["BODY[]"] for v in fetches(u).values()] == [msgs[1]]
    _, done = r.cmd("UID COPY 1:* Nowhere")
    assert done.name == "NO" and done.code == "TRYCREATE"


# ---------------------------------------------------------------- big ones

def test_big_message_streams(server):
    """A 20 MB APPEND and FETCH (the store streams; the server must not
    choke), with another client served meanwhile."""
    big = make_message("twenty megabytes", size=20 * 1024 * 1024)
    r = server.raw("demo")
    t0 = time.monotonic()
    append(r, "INBOX", big)
    other = server.raw("alice")
    other.cmd_ok("NOOP")
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 (RFC822.SIZE BODY.PEEK[])", timeout=120)
    f = fetches(u)[1]
    assert f["RFC822.SIZE"] == len(big) and f["BODY[]"] == big
    assert time.monotonic() - t0 < 120


@pytest.mark.picoimapd_only
def test_fifty_megabyte_attachment(server):
    """Issue 2: after login the literal limit takes real attachments
    (at least 50 MB)."""
    big = make_message("fifty megabytes", size=50 * 1024 * 1024)
    r = server.raw("demo")
    append(r, "INBOX", big)
    u, _ = r.cmd_ok("STATUS INBOX (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 1
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 RFC822.SIZE")
    assert fetches(u)[1]["RFC822.SIZE"] == len(big)
