"""Issue 3, item 9 ("an ENOSPC or EIO at any point of an APPEND gives the
client a NO and leaves the mailbox exactly as before"), end to end: the
real binary runs with tests/lib/failsync.c preloaded, which makes every
fsync/fdatasync fail with EIO while a trigger file exists. What a failing
write or sync does inside the store at every single call is swept by
tests/unit/test_store_crash.c and test_store.c; here the protocol side:
the tagged NO, the other sessions, a restart, and delivery."""

import os
import shutil
import subprocess

import pytest

from conftest import BINARY, make_message, ok

pytestmark = pytest.mark.picoimapd_only

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_SRC = os.path.join(HERE, "..", "lib", "failsync.c")


@pytest.fixture
def failing(server_factory, tmp_path, monkeypatch):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "no C compiler to build the failsync shim"
    so = str(tmp_path / "failsync.so")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", so, SHIM_SRC, "-ldl"], check=True)
    trigger = str(tmp_path / "fail-now")
    monkeypatch.setenv("LD_PRELOAD", so)
    monkeypatch.setenv("FAILSYNC_TRIGGER", trigger)
    # an ASan build wants its runtime first in the library list
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
    monkeypatch.setenv("ASAN_OPTIONS", asan + ":verify_asan_link_order=0")
    srv = server_factory()

    class Disk:
        def fail(self):
            open(trigger, "w").close()

        def heal(self):
            os.unlink(trigger)

    return srv, Disk()


def subjects(c, box="INBOX"):
    typ, data = c.select(box)
    assert typ == "OK", data
    if int(data[0]) == 0:
        return []
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = []
    for d in data:
        if isinstance(d, tuple):
            uid = int(d[0].split(b"UID ")[1].split()[0])
            out.append((uid, d[1].strip().decode()))
    return out


def test_append_whose_sync_fails_is_taken_back(failing):
    srv, disk = failing
    c = srv.imap("demo")
    watcher = srv.raw("demo")
    watcher.cmd_ok("SELECT INBOX")
    ok(c.append("INBOX", None, None, make_message("kept")))
    disk.fail()
    typ, data = c.append("INBOX", None, None, make_message("refused"))
    assert typ == "NO", data
    # a STORE whose sync fails is refused too (the change itself stays
    # pending and goes out with the next good commit); the server serves on
    ok(c.select("INBOX"))
    typ, data = c.store("1", "+FLAGS", "(\\Flagged)")
    assert typ == "NO", data
    disk.heal()
    typ, data = c.append("INBOX", None, None, make_message("after"))
    ok((typ, data))
    got = subjects(c)
    assert [s for _, s in got] == ["Subject: kept", "Subject: after"], got
    assert got[1][0] - got[0][0] >= 2, got   # the refused message's UID is not reused
    # the other session ends up with the same two messages, and the
    # sequence numbers it was told add up (EXISTS minus EXPUNGEs)
    watcher.cmd_ok("NOOP")
    untagged, tagged = watcher.cmd("UID FETCH 1:* (FLAGS)")
    assert tagged.name == "OK"
    fetched = [u for u in untagged if u.name == "FETCH"]
    assert len(fetched) == 2, [u.raw for u in untagged]
    c.logout()
    srv.restart()
    c = srv.imap("demo")
    assert subjects(c) == got
    c.logout()


def test_delivery_whose_sync_fails_is_a_tempfail_and_leaves_nothing(failing):
    srv, disk = failing
    c = srv.imap("demo")
    ok(c.append("INBOX", None, None, make_message("first")))
    disk.fail()
    p = subprocess.run([BINARY, "deliver", "-u", "demo", "-c", srv.conf],
                       input=b"Subject: bounced\n\nretry me\n", capture_output=True, timeout=60)
    disk.heal()
    assert p.returncode == 75, (p.returncode, p.stderr)   # EX_TEMPFAIL: the MTA retries
    p = subprocess.run([BINARY, "deliver", "-u", "demo", "-c", srv.conf],
                       input=b"Subject: retried\n\nretry me\n", capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ok(c.noop())
    assert [s for _, s in subjects(c)] == ["Subject: first", "Subject: retried"]
    c.logout()
    srv.restart()
    c = srv.imap("demo")
    assert [s for _, s in subjects(c)] == ["Subject: first", "Subject: retried"]
    c.logout()
