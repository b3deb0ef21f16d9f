"""Issue 5 part A: ENABLE, MOVE, ESEARCH/SEARCHRES, CONDSTORE, QRESYNC,
STATUS=SIZE, APPENDLIMIT, QUOTA, checked response by response."""

from conftest import make_message, select_info, fetches, flagset


def append(r, box, msg, flags=None):
    head = "APPEND %s " % box + ("(%s) " % flags if flags else "")
    _, done = r.cmd_lit([head, msg, ""])
    assert done.name == "OK", done.line
    return done


def fill(server, n=5, user="demo"):
    r = server.raw(user)
    for i in range(n):
        append(r, "INBOX", make_message("msg %d" % (i + 1)))
    return r


def caps(r):
    u, _ = r.cmd_ok("CAPABILITY")
    return {c.upper() for c in u[0].data}


def test_capabilities_after_login(server):
    r = server.raw()
    pre = {c.upper() for c in r.greeting.code_arg}
    assert "MOVE" not in pre and "IMAP4REV1" in pre
    r.login("demo")
    c = caps(r)
    for want in ("ENABLE", "MOVE", "MULTIAPPEND", "STATUS=SIZE", "LIST-EXTENDED", "LIST-STATUS",
                 "SPECIAL-USE", "CREATE-SPECIAL-USE", "ESEARCH", "SEARCHRES", "CONDSTORE",
                 "QRESYNC", "QUOTA", "IMAP4REV2"):
        assert want in c, want
    assert any(x.startswith("APPENDLIMIT=") for x in c)


def test_enable(server):
    r = server.raw("demo")
    u, _ = r.cmd_ok("ENABLE CONDSTORE X-UNKNOWN")
    en = [x for x in u if x.name == "ENABLED"]
    assert en and [e.upper() for e in en[0].data] == ["CONDSTORE"]
    u, _ = r.cmd_ok("ENABLE CONDSTORE")
    assert [x for x in u if x.name == "ENABLED"][0].data == []


def test_move_and_uid_move(server):
    r = fill(server, 4)
    r.cmd_ok("CREATE Dest")
    r.cmd_ok("SELECT INBOX")
    u, done = r.cmd_ok("MOVE 2 Dest")
    oks = [x for x in u if x.name == "OK" and x.code == "COPYUID"]
    assert oks and oks[0].code_arg[1] == "2" and oks[0].code_arg[2] == "1"
    assert [x.num for x in u if x.name == "EXPUNGE"] == [2]
    u, done = r.cmd_ok("UID MOVE 3:4 Dest")
    assert sorted(x.num for x in u if x.name == "EXPUNGE") == [2, 3]
    u, _ = r.cmd_ok("UID SEARCH ALL")
    assert [x for x in u if x.name == "SEARCH"][0].data == [1]
    u, _ = r.cmd_ok("STATUS Dest (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 3
    _, done = r.cmd("MOVE 1 Nope")
    assert done.name == "NO" and done.code == "TRYCREATE"
    r.cmd_ok("EXAMINE INBOX")
    _, done = r.cmd("MOVE 1 Dest")
    assert done.name == "NO"


def test_esearch_and_searchres(server):
    r = fill(server, 5)
    r.cmd_ok("SELECT INBOX")
    r.cmd_ok("STORE 2,4 +FLAGS (\\Flagged)")
    u, done = r.cmd_ok("SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
    e = [x for x in u if x.name == "ESEARCH"][0].data
    assert e["TAG"] == done.tag and e["MIN"] == 2 and e["MAX"] == 4 and e["COUNT"] == 2
    assert e["ALL"] == "2,4"
    u, done = r.cmd_ok("UID SEARCH RETURN () ALL")
    e = [x for x in u if x.name == "ESEARCH"][0].data
    assert e.get("UID") and e["ALL"] == "1:5"
    u, _ = r.cmd_ok("SEARCH RETURN (COUNT) KEYWORD nothing")
    e = [x for x in u if x.name == "ESEARCH"][0].data
    assert e["COUNT"] == 0 and "ALL" not in e and "MIN" not in e
    # SAVE alone: no ESEARCH; then "$" everywhere.
    u, _ = r.cmd_ok("SEARCH RETURN (SAVE) FLAGGED")
    assert not [x for x in u if x.name in ("ESEARCH", "SEARCH")]
    u, _ = r.cmd_ok("FETCH $ (UID)")
    assert sorted(fetches(u)) == [2, 4]
    u, _ = r.cmd_ok("UID FETCH $ (FLAGS)")
    assert sorted(v["UID"] for v in fetches(u).values()) == [2, 4]
    u, _ = r.cmd_ok("SEARCH $ SEEN")
    assert [x for x in u if x.name == "SEARCH"][0].data == []
    r.cmd_ok("STORE $ +FLAGS.SILENT (\\Seen)")
    u, _ = r.cmd_ok("SEARCH SEEN")
    assert [x for x in u if x.name == "SEARCH"][0].data == [2, 4]
    r.cmd_ok("CREATE Other")
    u, _ = r.cmd_ok("UID MOVE $ Other")
    assert len([x for x in u if x.name == "EXPUNGE"]) == 2
    u, _ = r.cmd_ok("FETCH $ (UID)")          # the moved ones are gone
    assert fetches(u) == {}
    # MIN+SAVE saves only the minimum.
    r.cmd_ok("SEARCH RETURN (MIN SAVE) ALL")
    u, _ = r.cmd_ok("UID SEARCH UID $")
    assert [x for x in u if x.name == "SEARCH"][0].data == [1]
    # A failing SAVE empties $.
    _, done = r.cmd("SEARCH RETURN (SAVE) BOGUSKEY")
    assert done.name == "BAD"
    u, _ = r.cmd_ok("FETCH $ (UID)")
    assert fetches(u) == {}


def test_condstore_basics(server):
    r = fill(server, 3)
    u, done = r.cmd_ok("SELECT INBOX (CONDSTORE)")
    hm = int(select_info(u)["codes"]["HIGHESTMODSEQ"])
    assert hm >= 1
    u, _ = r.cmd_ok("FETCH 1:* (MODSEQ)")
    ms = {k: v["MODSEQ"] for k, v in fetches(u).items()}
    assert max(ms.values()) <= hm
    u, _ = r.cmd_ok("STORE 2 +FLAGS (\\Seen)")
    f = fetches(u)[2]
    assert f["MODSEQ"] > hm and "\\SEEN" in flagset(f["FLAGS"])
    new = f["MODSEQ"]
    u, _ = r.cmd_ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hm)
    assert list(fetches(u)) == [2] and fetches(u)[2]["MODSEQ"] == new
    u, _ = r.cmd_ok("SEARCH MODSEQ %d" % new)
    s = [x for x in u if x.name == "SEARCH"][0]
    assert s.data == [2] and s.modseq == new
    u, _ = r.cmd_ok('SEARCH MODSEQ "/flags/\\\\Seen" all %d' % new)
    assert [x for x in u if x.name == "SEARCH"][0].data == [2]
    # UNCHANGEDSINCE: 2 changed after hm, 1 and 3 did not.
    u, done = r.cmd_ok("STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % hm)
    assert done.code == "MODIFIED" and done.code_arg == "2"
    assert sorted(fetches(u)) == [1, 3]
    u, _ = r.cmd_ok("UID STORE 1 (UNCHANGEDSINCE 1) -FLAGS.SILENT (\\Flagged)")
    u, _ = r.cmd_ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES SIZE APPENDLIMIT)")
    atts = u[0].data[1]
    assert atts["HIGHESTMODSEQ"] > new and atts["MESSAGES"] == 3 and atts["SIZE"] > 0
    assert atts["APPENDLIMIT"] > 0


def test_condstore_unsolicited_modseq(server):
    r = fill(server, 2)
    r.cmd_ok("ENABLE CONDSTORE")
    r.cmd_ok("SELECT INBOX")
    o = server.raw("demo")
    o.cmd_ok("SELECT INBOX")
    o.cmd_ok("STORE 1 +FLAGS (\\Answered)")
    u, _ = r.cmd_ok("NOOP")
    f = fetches(u)[1]
    assert "MODSEQ" in f and "\\ANSWERED" in flagset(f["FLAGS"])
    o.cmd_ok("CREATE B")
    u, _ = r.cmd_ok("SELECT B")
    assert [x for x in u if x.name == "OK" and x.code == "CLOSED"]


def test_qresync(server):
    r = fill(server, 6)
    u, _ = r.cmd_ok("SELECT INBOX")
    uidv = select_info(u)["codes"]["UIDVALIDITY"]
    hm = int(select_info(u)["codes"]["HIGHESTMODSEQ"])
    # Changes while "offline".
    o = server.raw("demo")
    o.cmd_ok("SELECT INBOX")
    o.cmd_ok("UID STORE 2 +FLAGS (\\Flagged)")
    o.cmd_ok("UID STORE 3,5 +FLAGS (\\Deleted)")
    o.cmd_ok("EXPUNGE")
    q = server.raw("demo")
    _, done = q.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uidv, hm))
    assert done.name == "BAD"                       # not enabled yet
    q.cmd_ok("ENABLE QRESYNC")
    u, _ = q.cmd_ok("SELECT INBOX (QRESYNC (%d %d 1:6))" % (uidv, hm))
    v = [x for x in u if x.name == "VANISHED"]
    assert len(v) == 1 and v[0].earlier and v[0].data == "3,5"
    f = fetches(u)
    assert [x["UID"] for x in f.values()] == [2] and "MODSEQ" in f[2]
    # Without known-uids the answer may be a superset but never names a live UID.
    u, _ = q.cmd_ok("SELECT INBOX (QRESYNC (%d %d))" % (uidv, hm))
    assert [x for x in u if x.name == "OK" and x.code == "CLOSED"]
    v = [x for x in u if x.name == "VANISHED"]
    assert v and set(v[0].data.split(",")) >= {"3", "5"}
    # Wrong UIDVALIDITY: no VANISHED, no FETCH.
    u, _ = q.cmd_ok("SELECT INBOX (QRESYNC (%d %d))" % (uidv + 1, hm))
    assert not [x for x in u if x.name in ("VANISHED", "FETCH")]
    # VANISHED instead of EXPUNGE once enabled.
    o.cmd_ok("UID STORE 6 +FLAGS (\\Deleted)")
    o.cmd_ok("EXPUNGE")
    u, _ = q.cmd_ok("NOOP")
    v = [x for x in u if x.name == "VANISHED"]
    assert v and not v[0].earlier and v[0].data == "6"
    assert not [x for x in u if x.name == "EXPUNGE"]
    # UID FETCH ... (CHANGEDSINCE VANISHED)
    u, _ = q.cmd_ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hm)
    v = [x for x in u if x.name == "VANISHED"]
    assert v and v[0].earlier and v[0].data == "3,5:6"
    assert sorted(x["UID"] for x in fetches(u).values()) == [2]


def test_quota(server):
    r = server.raw("demo")
    u, _ = r.cmd_ok("GETQUOTAROOT INBOX")
    assert [x for x in u if x.name == "QUOTAROOT"]
    q = [x for x in u if x.name == "QUOTA"]
    assert q and q[0].data[0] == b""
    _, done = r.cmd('SETQUOTA "" (STORAGE 10)')
    assert done.name == "NO"


def test_imap4rev2_enable(server):
    r = fill(server, 2)
    u, _ = r.cmd_ok("ENABLE IMAP4rev2")
    assert [e.upper() for e in [x for x in u if x.name == "ENABLED"][0].data] == ["IMAP4REV2"]
    u, _ = r.cmd_ok("SELECT INBOX")
    assert not [x for x in u if x.name == "RECENT"]
    u, done = r.cmd_ok("SEARCH ALL")
    e = [x for x in u if x.name == "ESEARCH"]
    assert e and e[0].data["ALL"] == "1:2" and not [x for x in u if x.name == "SEARCH"]
