"""Issue 8: an automatic compaction of a busy mailbox copies it a slice per
loop turn (CONFIG_COMPACT_SLICE_KB) while the server keeps serving, and
commits in the turn it finishes. Here the real server compacts a 3 MB INBOX
that two sessions have open; one of them appends and both fetch while the
job runs. Afterwards every message is there byte for byte under its UID,
the expunged ones are gone from the file, and a restart agrees. The power
cuts and failing calls in the middle of such a job are in
tests/unit/test_store_crash.c (steps 22-28)."""

import os
import re
import time

from conftest import make_message

BIG = 100 * 1024
N = 30
DONE = re.compile(r"compaction committed after (\d+) loop turns? of slices")


def mbox_path(server):
    return os.path.join(server.store, "demo", "INBOX")


def fetch_all(r):
    """{uid: body} of every message, through a raw session."""
    u, _ = r.cmd_ok("UID FETCH 1:* (UID BODY.PEEK[])")
    return {x.data["UID"]: x.data["BODY[]"] for x in u if x.name == "FETCH"}


def test_compaction_in_slices_keeps_serving(server):
    c = server.imap("demo")
    sent = {}
    for i in range(N):
        msg = make_message("big %d" % i, size=BIG)
        typ, data = c.append("INBOX", None, None, msg)
        assert typ == "OK"
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        sent[uid] = msg
    a = server.raw("demo")
    a.cmd_ok("SELECT INBOX")
    b = server.raw("demo")
    b.cmd_ok("SELECT INBOX")
    ino0 = os.stat(mbox_path(server)).st_ino
    size0 = os.path.getsize(mbox_path(server))
    assert size0 > N * BIG * 0.9   # LF on disk, CRLF on the wire

    # half of it expunged: 1.5 MB, past compact_ratio 0.3 and 1 MiB
    gone = sorted(sent)[:N // 2]
    a.cmd_ok("UID STORE %d:%d +FLAGS.SILENT (\\Deleted)" % (gone[0], gone[-1]))
    a.cmd_ok("EXPUNGE")
    # b is told of the expunges: every session knows, the purge starts the job
    u, _ = b.cmd_ok("NOOP")
    assert sum(1 for x in u if x.name == "EXPUNGE") == len(gone)
    for uid in gone:
        del sent[uid]
    # while it copies: an append from one session, fetches from the other
    extra = make_message("during the compaction", size=5000)
    _, tagged = a.cmd_lit(["APPEND INBOX ", extra, ""])
    assert tagged.name == "OK", tagged.line
    new_uid = int(re.search(r"APPENDUID \d+ (\d+)", tagged.line).group(1))
    sent[new_uid] = extra
    assert fetch_all(b) == sent

    deadline = time.time() + 20
    while os.stat(mbox_path(server)).st_ino == ino0 and time.time() < deadline:
        a.cmd_ok("NOOP")
        time.sleep(0.05)
    assert os.stat(mbox_path(server)).st_ino != ino0, "no compaction"
    time.sleep(0.2)
    turns = [int(x) for x in DONE.findall(server.log_text(tail=10 ** 9))]
    assert turns, "no compaction logged"
    # 1.5 MB live at 256 KiB a turn: several turns, not one
    assert turns[-1] >= 3, turns

    raw = open(mbox_path(server), "rb").read()
    assert len(raw) < size0 * 0.7
    for i in range(N // 2):
        assert b"Subject: big %d\n" % i not in raw
    for i in range(N // 2, N):
        assert b"Subject: big %d\n" % i in raw
    assert b"Subject: during the compaction\n" in raw
    assert fetch_all(a) == sent
    assert fetch_all(b) == sent
    a.close()
    b.close()
    c.logout()

    server.restart()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    assert fetch_all(r) == sent
    r.close()


def test_compaction_goes_on_after_logout(server):
    """Issue 8, session churn: the LOGOUT that closes the mailbox in the
    middle of a job (here the EXPUNGE's purge starts it and LOGOUT comes
    pipelined right behind, in the same loop turn) used to finish the
    compaction inside that turn -- copying the rest of the mailbox and
    syncing it while every client waited. Now the job goes on in slices on
    the kept index after the close: the log says it committed after several
    loop turns of slices, a new session meanwhile sees every message, and
    the file, the answers and a restart agree afterwards. The power cuts
    in such a job are steps 30-33 of tests/unit/test_store_crash.c."""
    c = server.imap("demo")
    sent = {}
    for i in range(N):
        msg = make_message("churn %d" % i, size=BIG)
        typ, data = c.append("INBOX", None, None, msg)
        assert typ == "OK"
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        sent[uid] = msg
    c.logout()
    ino0 = os.stat(mbox_path(server)).st_ino
    size0 = os.path.getsize(mbox_path(server))
    log0 = len(server.log_text(tail=10 ** 9))

    a = server.raw("demo")
    a.cmd_ok("SELECT INBOX")
    gone = sorted(sent)[:N // 2]
    a.cmd_ok("UID STORE %d:%d +FLAGS.SILENT (\\Deleted)" % (gone[0], gone[-1]))
    a.send("x1 EXPUNGE\r\nx2 LOGOUT\r\n")
    u, done = a.read_until_tagged("x1")
    assert done.name == "OK"
    assert sum(1 for x in u if x.name == "EXPUNGE") == len(gone)
    u, done = a.read_until_tagged("x2")
    assert done.name == "OK" and any(x.name == "BYE" for x in u)
    a.close()
    for uid in gone:
        del sent[uid]

    # a new session while the job may still be copying: every message
    b = server.raw("demo")
    b.cmd_ok("SELECT INBOX")
    assert fetch_all(b) == sent
    b.cmd_ok("LOGOUT")
    b.close()

    deadline = time.time() + 20
    while os.stat(mbox_path(server)).st_ino == ino0 and time.time() < deadline:
        time.sleep(0.05)
    assert os.stat(mbox_path(server)).st_ino != ino0, "no compaction"
    time.sleep(0.2)
    turns = [int(x) for x in DONE.findall(server.log_text(tail=10 ** 9)[log0:])]
    assert turns, "no compaction logged"
    # 1.5 MB live at 256 KiB a turn, after the close: several turns; a
    # compaction finished inside the closing turn logs 0
    assert turns[0] >= 3, turns

    raw = open(mbox_path(server), "rb").read()
    assert len(raw) < size0 * 0.7
    for i in range(N // 2):
        assert b"Subject: churn %d\n" % i not in raw
    for i in range(N // 2, N):
        assert b"Subject: churn %d\n" % i in raw
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    assert fetch_all(r) == sent
    r.close()
    server.restart()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    assert fetch_all(r) == sent
    r.close()
