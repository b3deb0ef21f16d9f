"""Issue 3, "Durability": changes made by several clients in one loop turn
share one sync (group commit), and a tagged OK still comes only after it.

The server logs each group at debug level ("group commit: N mailboxes
synced for K commands"); the tests count those lines. What a power cut does
to the store is proven by tests/unit/test_store_crash.c; here the point is
the protocol side: replies held until the sync, nothing lost or doubled,
pipelined commands after a held reply still run in order."""

import re
import time

from conftest import make_message

GROUP = re.compile(r"group commit: (\d+) mailbox(?:es)? synced for (\d+) commands?")
N = 16


def groups(server):
    return [(int(a), int(b)) for a, b in GROUP.findall(server.log_text(tail=10 ** 9))]


def connect_all(server, n, box="INBOX"):
    rs = []
    for _ in range(n):
        r = server.raw("demo")
        r.cmd_ok("SELECT " + box)
        rs.append(r)
    return rs


def burst(rs, lines):
    """Send one command on every connection before reading any reply, so
    the server finds them all readable in the same poll turn."""
    tags = []
    for r, line in zip(rs, lines):
        t = r.tag()
        tags.append(t)
        r.send("%s %s\r\n" % (t, line))
    out = []
    for r, t in zip(rs, tags):
        u, tagged = r.read_until_tagged(t)
        out.append((u, tagged))
    return out


def test_one_sync_for_many_stores(server):
    c = server.imap("demo")
    for i in range(N):
        c.append("INBOX", None, None, make_message("group %d" % i))
    rs = connect_all(server, N)
    before = len(groups(server))
    shared = 0
    for rnd in range(6):
        # each client changes its own message: every STORE is a change
        op = "+FLAGS" if rnd % 2 == 0 else "-FLAGS"
        res = burst(rs, ["STORE %d %s (\\Flagged \\Answered)" % (1 + i, op) for i in range(N)])
        for u, tagged in res:
            assert tagged.name == "OK", tagged.line
        # the log line is written just after the replies go out
        deadline = time.monotonic() + 5
        g = groups(server)[before:]
        while sum(k for _, k in g) < N and time.monotonic() < deadline:
            time.sleep(0.02)
            g = groups(server)[before:]
        before += len(g)
        assert g, "no group commit logged for the STOREs"
        assert sum(k for _, k in g) == N, "every STORE waited for a sync: %r" % g
        shared += sum(k for _, k in g if k > 1)
    # One mailbox, sixteen commands arriving together: at least some of
    # them must have shared a sync (on an idle machine nearly all do).
    assert shared > 0, "no two STOREs ever shared a sync"
    # The flags are really there for everyone, after a restart too.
    server.restart()
    c = server.imap("demo")
    c.select("INBOX")
    res = burst(connect_all(server, N), ["STORE %d +FLAGS (\\Flagged)" % (1 + i) for i in range(N)])
    assert all(t.name == "OK" for _, t in res)
    server.restart()
    c = server.imap("demo")
    c.select("INBOX")
    got = c.fetch_dict("1:*", "(FLAGS)")
    assert len(got) == N
    for i in range(1, N + 1):
        fl = got[i]["FLAGS"]
        assert "\\Flagged" in fl and "\\Answered" not in fl, (i, fl)


def test_appends_from_many_clients_all_acknowledged_and_kept(server):
    rs = connect_all(server, N)
    msgs = [make_message("burst append %d" % i, size=500 + 97 * i) for i in range(N)]
    tags = []
    for r, m in zip(rs, msgs):
        t = r.tag()
        tags.append(t)
        r.send(b"%s APPEND INBOX {%d+}\r\n" % (t.encode(), len(m)) + m + b"\r\n")
    uids = []
    for r, t in zip(rs, tags):
        u, tagged = r.read_until_tagged(t)
        assert tagged.name == "OK", tagged.line
        m = re.search(r"APPENDUID \d+ (\d+)", tagged.line)
        assert m, tagged.line
        uids.append(int(m.group(1)))
    assert len(set(uids)) == N, "UIDs must be unique: %r" % uids
    server.restart()
    c = server.imap("demo")
    c.select("INBOX")
    got = c.fetch_dict("1:*", "(UID BODY.PEEK[])")
    bodies = {v["UID"]: v["BODY[]"] for v in got.values()}
    assert sorted(bodies) == sorted(uids)
    for u, m in zip(uids, msgs):
        assert bodies[u] == m


def test_pipelined_commands_after_a_held_reply_run_in_order(server):
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    m = make_message("pipelined")
    # APPEND, STORE and FETCH in one packet: the STORE and FETCH must not
    # run (or answer) before the APPEND's tagged OK.
    r.send(b"p1 APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n"
           b"p2 STORE 1 +FLAGS (\\Seen)\r\np3 FETCH 1 (FLAGS)\r\np4 NOOP\r\n")
    order = []
    for t in ("p1", "p2", "p3", "p4"):
        u, tagged = r.read_until_tagged(t)
        assert tagged.name == "OK", tagged.line
        order.append(tagged.tag)
        if t == "p3":
            fl = [x for x in u if x.kind == "untagged" and x.name == "FETCH"]
            assert fl and "\\Seen" in fl[-1].data["FLAGS"], u
    assert order == ["p1", "p2", "p3", "p4"]


def test_other_sessions_hear_of_a_change_no_earlier_than_its_owner(server):
    """An idling session on the same mailbox is told of the new message in
    the same flush as the APPEND's OK, never before the sync."""
    idler = server.raw("demo")
    idler.cmd_ok("SELECT INBOX")
    t = idler.tag()
    idler.send("%s IDLE\r\n" % t)
    cont = idler.read_response()
    assert cont.kind == "cont"
    w = server.raw("demo")
    before = len(groups(server))
    u, tagged = w.cmd_lit(["APPEND INBOX ", make_message("to the idler"), ""], plus=True)
    assert tagged.name == "OK"
    ex = idler.read_response(timeout=5)
    assert ex.kind == "untagged" and ex.name == "EXISTS", ex
    deadline = time.monotonic() + 5
    g = groups(server)[before:]
    while not g and time.monotonic() < deadline:
        time.sleep(0.02)
        g = groups(server)[before:]
    assert g and g[0][1] >= 1, g
    idler.send("DONE\r\n")
    idler.read_until_tagged(t)


def test_commits_in_flight_keep_order_and_everything(server):
    """With io_uring the syncs of a commit are in flight while the loop
    serves other sessions; a session whose mailbox's commit is in flight
    waits before its next command. Pipelined changes from two sessions on
    one mailbox and one on another all answer OK in order, an IDLE watcher
    hears of the new message, and after a restart everything is there."""
    log = server.log_text(tail=10 ** 9)
    if "commits: syncs in flight" not in log:
        assert "commits: the loop waits" in log, "the server says how it commits"
    c = server.imap("demo")
    c.create("Other")
    for i in range(4):
        c.append("INBOX", None, None, make_message("in flight %d" % i))
        c.append("Other", None, None, make_message("other %d" % i))
    c.logout()
    watcher = server.raw("demo")
    watcher.cmd_ok("SELECT INBOX")
    watcher.send("w1 IDLE\r\n")
    assert watcher.read_response().kind == "cont"
    a, b, o = server.raw("demo"), server.raw("demo"), server.raw("demo")
    a.cmd_ok("SELECT INBOX")
    b.cmd_ok("SELECT INBOX")
    o.cmd_ok("SELECT Other")
    m = make_message("appended while others stored")
    lines_a = [b"a0 APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n"]
    lines_b, lines_o = [], []
    for k in range(1, 11):
        lines_a.append(b"a%d STORE %d %sFLAGS (\\Flagged)\r\n" % (k, 1 + k % 4, b"+" if k % 2 else b"-"))
        lines_b.append(b"b%d STORE %d +FLAGS (\\Seen)\r\nb%dx FETCH 1:* (FLAGS)\r\n" % (k, 1 + k % 4, k))
        lines_o.append(b"o%d STORE %d +FLAGS (\\Answered)\r\no%dx NOOP\r\n" % (k, 1 + k % 4, k))
    a.send(b"".join(lines_a))
    b.send(b"".join(lines_b))
    o.send(b"".join(lines_o))
    for r, tags in ((a, ["a%d" % k for k in range(11)]),
                    (b, [t for k in range(1, 11) for t in ("b%d" % k, "b%dx" % k)]),
                    (o, [t for k in range(1, 11) for t in ("o%d" % k, "o%dx" % k)])):
        for t in tags:
            u, tagged = r.read_until_tagged(t)
            assert tagged.name == "OK", tagged.line
            assert tagged.tag == t
    while True:
        x = watcher.read_response()
        if x.kind == "untagged" and x.name == "EXISTS" and x.num == 5:
            break
    watcher.send("DONE\r\n")
    watcher.read_until_tagged("w1")
    server.restart()
    c = server.imap("demo")
    c.select("INBOX")
    got = c.fetch_dict("1:*", "(FLAGS)")
    assert len(got) == 5
    for i in range(1, 5):
        assert "\\Seen" in got[i]["FLAGS"], (i, got[i])
    # the last STORE of each message: k = 10 (msg 3, -), 9 (msg 2, +),
    # 8 (msg 1, -), 7 (msg 4, +)
    assert "\\Flagged" not in got[3]["FLAGS"] and "\\Flagged" in got[2]["FLAGS"]
    assert "\\Flagged" not in got[1]["FLAGS"] and "\\Flagged" in got[4]["FLAGS"]
    c.select("Other")
    got = c.fetch_dict("1:*", "(FLAGS)")
    assert all("\\Answered" in v["FLAGS"] for v in got.values()) and len(got) == 4
