"""SELECT from a checkpointed index (issue 3): after a restart the index is
the mapped checkpoint block and SELECT counts EXISTS and RECENT without
walking every message. What a client sees must not change: EXISTS, RECENT,
[UNSEEN], UIDNEXT after flag changes, expunges, appends and restarts, for a
second session sharing the index, for EXAMINE, and for the sequence
numbers of the untagged EXPUNGE/EXISTS that follow."""

import re

from conftest import make_message, select_info, fetches


N = 150


def fill(server):
    """N messages in INBOX, then enough flag changes to make the log pass
    its checkpoint size (64 KiB: 29 bytes a flag change), so that every
    later open reads the index from a checkpoint block."""
    r = server.raw("demo")
    for i in range(N):
        r.cmd_lit(["APPEND INBOX (\\Seen) ", make_message("msg %d" % i), ""])
    r.cmd_ok("SELECT INBOX")
    for k in range(16):
        r.cmd_ok("STORE 1:%d %sFLAGS.SILENT (\\Flagged)" % (N, "+" if k % 2 == 0 else "-"))
    return r


def state(r):
    """Truth from FETCH: (flags by seq, uids by seq)."""
    f = fetches(r.cmd_ok("FETCH 1:* (UID FLAGS)")[0])
    return ({s: {x.upper() for x in d["FLAGS"]} - {"\\RECENT"} for s, d in f.items()},
            {s: d["UID"] for s, d in f.items()})


def first_unseen(flags):
    for s in sorted(flags):
        if "\\SEEN" not in flags[s]:
            return s
    return None


def sel(r, cmd="SELECT INBOX"):
    u, _ = r.cmd_ok(cmd)
    return select_info(u)


def test_select_after_restart_matches_fetch(server):
    r = fill(server)
    # holes: expunge some, clear \Seen on a few (the first unseen moves)
    r.cmd_ok("STORE 3,40,41,149 +FLAGS.SILENT (\\Deleted)")
    r.cmd_ok("EXPUNGE")
    r.cmd_ok("STORE 77 -FLAGS.SILENT (\\Seen)")
    r.cmd_ok("STORE 90 -FLAGS.SILENT (\\Seen)")
    flags, uids = state(r)
    assert len(flags) == N - 4
    server.restart()

    r = server.raw("demo")
    info = sel(r)
    assert info["exists"] == N - 4
    assert info["recent"] == 0, "all were seen by a session before the restart"
    assert int(info["codes"]["UNSEEN"]) == first_unseen(flags) == 77
    assert int(info["codes"]["UIDNEXT"]) > max(uids.values())
    f2, u2 = state(r)
    assert (f2, u2) == (flags, uids), "the index changed across the restart"

    # new mail while nobody has the mailbox: RECENT for the next SELECT
    r.cmd_ok("LOGOUT")
    other = server.raw("demo")
    for i in range(3):
        other.cmd_lit(["APPEND INBOX () ", make_message("new %d" % i), ""])
    # a second session shares the index: EXAMINE sees the 3 as recent but
    # does not claim them
    ex = server.raw("demo")
    info = sel(ex, "EXAMINE INBOX")
    assert info["exists"] == N - 1 and info["recent"] == 3
    info = sel(other)
    assert info["exists"] == N - 1 and info["recent"] == 3
    info = sel(server.raw("demo"))
    assert info["recent"] == 0, "the first SELECT claimed them"
    assert int(info["codes"]["UNSEEN"]) == 77

    # [UNSEEN] comes from a hint the store keeps: \Seen cleared below it
    # by another session, then everything seen, then across a restart
    w = server.raw("demo")
    sel(w)
    w.cmd_ok("STORE 5 -FLAGS.SILENT (\\Seen)")
    assert int(sel(server.raw("demo"))["codes"]["UNSEEN"]) == 5
    w.cmd_ok("STORE 1:* +FLAGS.SILENT (\\Seen)")
    assert "UNSEEN" not in sel(server.raw("demo"))["codes"]
    w.cmd_ok("STORE 120 -FLAGS.SILENT (\\Seen)")
    server.restart()
    r = server.raw("demo")
    assert int(sel(r)["codes"]["UNSEEN"]) == 120
    flags, _ = state(r)
    assert first_unseen(flags) == 120


def test_shared_index_then_expunge_sequence_numbers(server):
    r = fill(server)
    server.restart()
    a = server.raw("demo")
    b = server.raw("demo")
    assert sel(a)["exists"] == N
    assert sel(b)["exists"] == N
    # a expunges: b hears EXPUNGE with sequence numbers from its own view,
    # highest first, then both agree on the new numbering
    a.cmd_ok("STORE 2,5,6,%d +FLAGS.SILENT (\\Deleted)" % N)
    u, _ = a.cmd_ok("EXPUNGE")
    seqs = [x.num for x in u if x.name == "EXPUNGE"]
    assert seqs == [N, 6, 5, 2], "highest first, none renumbering another"
    u, _ = b.cmd_ok("NOOP")
    assert [x.num for x in u if x.name == "EXPUNGE"] == [N, 6, 5, 2]
    fa, ua = state(a)
    fb, ub = state(b)
    assert ua == ub and len(ua) == N - 4
    # an APPEND after the expunges: EXISTS counts without the holes
    a.cmd_lit(["APPEND INBOX () ", make_message("late"), ""])
    u, _ = b.cmd_ok("NOOP")
    assert [x.num for x in u if x.name == "EXISTS"] == [N - 3]
    server.restart()
    c = server.raw("demo")
    info = sel(c)
    assert info["exists"] == N - 3
    assert info["recent"] == 0
    assert int(info["codes"]["UNSEEN"]) == N - 3
    _, uc = state(c)
    assert [uc[s] for s in sorted(uc)][:-1] == [ua[s] for s in sorted(ua)]


def find_block(log):
    """Offset of the first entry of the log's MSGS block, its count and
    entry size (frames: type, 0, u16 length, payload, u32 CRC)."""
    i = 0
    while i + 8 <= len(log):
        typ, n = log[i], int.from_bytes(log[i + 2:i + 4], "big")
        if typ == 10:
            count = int.from_bytes(log[i + 4:i + 8], "big")
            esize = int.from_bytes(log[i + 8:i + 10], "big")
            return i + 8 + n, count, esize
        i += 8 + n
    return None


def test_damaged_block_found_after_select(server_factory, tmp_path):
    """SELECT answers from a checkpoint block before the pass over every
    entry (st_box_open_lazy); the pass runs before the session's next
    command. A block damaged on disk is then found: that session ends
    with BYE [UNAVAILABLE], and the next SELECT rebuilds the index from
    the mbox with every message and UID. (An import ends with a
    checkpoint, so nothing in the log after the block touches an entry;
    such a record would have the pass run, and fail, during the load.)"""
    import subprocess
    from conftest import BINARY
    server = server_factory(start=False)
    mbox = tmp_path / "in.mbox"
    with open(mbox, "wb") as f:
        for i in range(N):
            f.write(b"From x@example.org Mon Jan  5 10:00:00 2026\n" +
                    (b"Status: RO\n" if i % 3 else b"") +
                    b"Subject: msg %d\n\nbody %d\n\n" % (i, i))
    p = subprocess.run([BINARY, "import", "-c", server.conf, "-u", "demo", str(mbox)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    server.start()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    flags, uids = state(r)
    assert len(uids) == N
    r.cmd_ok("LOGOUT")
    server.stop()
    path = server.store + "/demo/.INBOX.state"
    with open(path, "rb") as f:
        log = bytearray(f.read())
    at, count, esize = find_block(log)
    assert count == N and esize >= 48
    log[at + 100 * esize + 1] ^= 0x10          # message 101's UID
    with open(path, "wb") as f:
        f.write(log)
    server.start()
    r = server.raw("demo")
    u, done = r.cmd("SELECT INBOX")
    assert done.name == "OK"
    assert select_info(u)["exists"] == N
    try:
        u, done = r.cmd("NOOP")
        u = list(u) + [done]
    except Exception as e:   # the BYE, then the close
        u = getattr(e, "responses", [])
    assert any(x.name == "BYE" and x.code == "UNAVAILABLE" for x in u), [x.raw for x in u]
    r = server.raw("demo")
    u = r.cmd_ok("SELECT INBOX")[0]
    info = select_info(u)
    assert info["exists"] == N and info["codes"].get("UIDVALIDITY")
    flags2, uids2 = state(r)
    assert uids2 == uids and flags2 == flags
    # and the rebuilt index serves changes as usual
    r.cmd_ok("STORE 5 +FLAGS (\\Answered)")
    r.cmd_ok("LOGOUT")
    server.restart()
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    flags3, uids3 = state(r)
    assert uids3 == uids and "\\ANSWERED" in flags3[5]
