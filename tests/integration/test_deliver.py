"""picoimapd deliver: exit codes, header stripping, delivery while the
daemon runs (an IDLE/NOOP client sees it) and while it does not, and
import/export/check round trips."""

import os
import subprocess
import threading
import time

import pytest

from conftest import BINARY, make_message, ok

pytestmark = pytest.mark.picoimapd_only


def deliver(server, msg, user="demo", mailbox=None):
    argv = [BINARY, "deliver", "-u", user, "-c", server.conf]
    if mailbox:
        argv += ["-m", mailbox]
    p = subprocess.run(argv, input=msg, capture_output=True, timeout=60)
    return p.returncode, p.stderr.decode(errors="replace")


def tool(server, *args):
    p = subprocess.run([BINARY, args[0], "-c", server.conf] + list(args[1:]),
                       capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def test_deliver_exit_codes_and_stripping(server_factory):
    srv = server_factory(start=False)
    msg = (b"From someone@example.org Mon Jan  5 10:00:00 2026\n"
           b"X-UID: 999\nStatus: RO\nX-Status: AF\nX-Keywords: $Junk\n"
           b"Subject: hello\n\nFrom the body\nbye\n")
    rc, err = deliver(srv, msg)
    assert rc == 0, err
    rc, err = deliver(srv, b"Subject: x\n\nx\n", user="nosuchuser")
    assert rc == 67, err
    srv.start()
    c = srv.imap("demo")
    ok(c.select("INBOX"))
    typ, data = c.fetch("1", "(FLAGS BODY.PEEK[])")
    ok((typ, data))
    raw = data[0][1]
    assert raw == b"Subject: hello\r\n\r\nFrom the body\r\nbye\r\n", raw
    assert b"\\Seen" not in data[0][0] and b"\\Flagged" not in data[0][0]
    c.logout()


def test_deliver_unreadable_store_tempfails(server_factory, tmp_path):
    srv = server_factory(start=False)
    if os.geteuid() == 0:
        pytest.skip("root ignores permissions")
    os.makedirs(srv.store, exist_ok=True)
    os.chmod(srv.store, 0o500)
    try:
        rc, err = deliver(srv, b"Subject: x\n\nx\n")
        assert rc == 75, err
    finally:
        os.chmod(srv.store, 0o700)


def test_thousand_deliveries_seen_by_idle_and_after_restart(server):
    n = 1000
    c = server.imap("demo")
    ok(c.select("INBOX"))
    seen = {"max": 0}
    stop = threading.Event()

    def watcher():
        # NOOP polling (imaplib has no IDLE before 3.14); raw IDLE below
        while not stop.is_set():
            typ, data = c.noop()
            for line in c.untagged_responses.get("EXISTS", []):
                seen["max"] = max(seen["max"], int(line))
            c.untagged_responses.pop("EXISTS", None)
            time.sleep(0.05)

    # an IDLE client too: it must be pushed a delivery within a second
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    tag = r.tag()
    r.send(("%s IDLE\r\n" % tag).encode())
    line = r.readline() if hasattr(r, "readline") else None
    t = threading.Thread(target=watcher)
    t.start()
    t0 = time.time()
    for i in range(n):
        rc, err = deliver(server, make_message("delivery %d" % i))
        assert rc == 0, err
    took = time.time() - t0
    time.sleep(1.5)
    stop.set()
    t.join()
    assert seen["max"] == n, seen
    # the IDLE session got EXISTS pushes
    r.send(b"DONE\r\n")
    untagged, done = r.read_until_tagged(tag)
    text = b"\n".join(x if isinstance(x, bytes) else str(x).encode() for x in untagged)
    assert b"EXISTS" in text
    c.logout()
    server.restart()
    c = server.imap("demo")
    typ, data = c.select("INBOX")
    assert int(data[0]) == n
    typ, data = c.uid("FETCH", "1:*", "(UID)")
    assert len([d for d in data if d]) == n
    c.logout()
    print("1000 deliveries in %.1f s" % took)


def test_import_export_check(server_factory, tmp_path):
    srv = server_factory(start=False)
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(
        b"From a@example.org Mon Jan  5 10:00:00 2026\nStatus: RO\nX-Status: F\n"
        b"Subject: one\n\n>From quoted\nbody\n\n"
        b"From b@example.org Mon Jan  5 10:00:01 2026\nX-Keywords: work\n"
        b"Subject: two\n\nsecond\n\n")
    rc, out = tool(srv, "import", "-u", "demo", "-m", "Imported", str(mbox))
    assert rc == 0 and "imported 2" in out, out
    md = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / "1700000000.1.host:2,RS").write_bytes(b"Subject: three\n\nthird\n")
    (md / "new" / "1700000001.2.host").write_bytes(b"Subject: four\n\nfourth\n")
    rc, out = tool(srv, "import", "-u", "demo", "-m", "Imported", str(md))
    assert rc == 0 and "imported 2" in out, out
    srv.start()
    c = srv.imap("demo")
    ok(c.select("Imported"))
    typ, data = c.fetch("1:4", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
    got = [d for d in data if isinstance(d, tuple)]
    flags = [x[0] for x in got[0::2]]
    assert b"\\Seen" in flags[0] and b"\\Flagged" in flags[0]
    assert b"work" in flags[1]
    assert b"\\Seen" in flags[2] and b"\\Answered" in flags[2]
    assert b"\\Seen" not in flags[3]
    assert got[1][1] == b"From quoted\r\nbody\r\n", got[1]  # mboxrd: one ">" off
    c.logout()
    srv.stop()
    out_dir = tmp_path / "export"
    rc, out = tool(srv, "export", "-u", "demo", str(out_dir))
    assert rc == 0 and "exported 4" in out, out
    names = sorted(os.listdir(out_dir / ".Imported" / "cur"))
    assert len(names) == 4
    assert names[0].endswith(":2,FS") or any(n.endswith(":2,FS") for n in names), names
    rc, out = tool(srv, "check", "-u", "demo", "--compact")
    assert rc == 0 and "checked" in out and "0 problems" in out, out
    # a torn log tail is repaired and reported
    log = os.path.join(srv.store, "demo", ".Imported.state")
    with open(log, "ab") as f:
        f.write(b"\x03\x00\x00")
    rc, out = tool(srv, "check")
    assert rc == 0 and "repaired" in out, out
    srv.start()


def test_import_in_batches_while_daemon_reads(server_factory, tmp_path):
    """import syncs once per batch of 1,024 messages (ST_IMPORT_BATCH), not
    per message: 2,600 messages (three batches, the last one partial) from
    an mbox and 1,100 from a Maildir all arrive, in order, with unique UIDs
    and their flags, while a client of the running daemon watches."""
    srv = server_factory()
    watcher = srv.imap("demo")
    ok(watcher.create("Bulk"))
    ok(watcher.select("Bulk"))
    n_mbox, n_md = 2600, 1100
    mbox = tmp_path / "bulk.mbox"
    with open(mbox, "wb") as f:
        for i in range(n_mbox):
            status = b"Status: RO\n" if i % 3 == 0 else b""
            f.write(b"From x@example.org Mon Jan  5 10:00:00 2026\n" + status +
                    b"Subject: bulk %d\n\nbody %d\n>From here\n\n" % (i, i))
    md = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for i in range(n_md):
        (md / "cur" / ("%d.%d.host:2,F" % (1700000000 + i, i))).write_bytes(
            b"Subject: md %d\n\nmaildir %d\n" % (i, i))
    rc, out = tool(srv, "import", "-u", "demo", "-m", "Bulk", str(mbox))
    assert rc == 0 and "imported %d " % n_mbox in out, out
    rc, out = tool(srv, "import", "-u", "demo", "-m", "Bulk", str(md))
    assert rc == 0 and "imported %d " % n_md in out, out
    total = n_mbox + n_md
    typ, data = watcher.noop()
    typ, data = watcher.status("Bulk", "(MESSAGES UIDNEXT)")
    assert b"MESSAGES %d" % total in data[0] and b"UIDNEXT %d" % (total + 1) in data[0], data
    srv.restart()
    c = srv.imap("demo")
    typ, data = c.select("Bulk")
    assert int(data[0]) == total
    typ, data = c.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    got = [d for d in data if isinstance(d, tuple)]
    assert len(got) == total
    for i, (meta, hdr) in enumerate(got):
        assert b"(UID %d " % (i + 1) in meta, meta
        if i < n_mbox:
            assert hdr == b"Subject: bulk %d\r\n\r\n" % i, (i, hdr)
            assert (b"\\Seen" in meta) == (i % 3 == 0), (i, meta)
        else:
            assert hdr == b"Subject: md %d\r\n\r\n" % (i - n_mbox), (i, hdr)
            assert b"\\Flagged" in meta, meta
    c.logout()
    rc, out = tool(srv, "check", "-u", "demo")
    assert rc == 0 and "0 problems" in out, out
