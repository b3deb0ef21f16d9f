"""The store is endian-neutral: a store written by picoimapd on big-endian
MIPS (run under qemu-user) opens on x86-64 with the same UIDVALIDITY, UIDs,
flags and bytes, and back again.

    PICOIMAPD_BE="qemu-mips-static build-qemu-mips/picoimapd"
    PICOIMAPD_LE=build-endian-host/picoimapd

tests/boards/endian.sh sets both; skips when they are unset.
"""

import imaplib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from dovecot import free_port  # noqa: E402  (tests/lib: one copy)

BE = os.environ.get("PICOIMAPD_BE")
LE = os.environ.get("PICOIMAPD_LE")
pytestmark = pytest.mark.skipif(not (BE and LE), reason="PICOIMAPD_BE/PICOIMAPD_LE not set (tests/boards/endian.sh)")


class Server:
    def __init__(self, cmd, root):
        self.cmd, self.root = shlex.split(cmd), root

    def __enter__(self):
        self.port = free_port()
        conf = os.path.join(self.root, "picoimapd.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\nstore = mail\npasswd = passwd\nlog = stderr\n"
                    "allow_root = yes\n" % self.port)
        self.log = open(os.path.join(self.root, "server.log"), "ab")
        self.p = subprocess.Popen(self.cmd + ["-c", conf], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.p.poll() is None, open(os.path.join(self.root, "server.log")).read()
                time.sleep(0.1)
        pytest.fail("server did not start: %s" % self.cmd)

    def imap(self):
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=60)
        assert c.login("demo", "demo")[0] == "OK"
        return c

    def __exit__(self, *a):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(60)
        self.log.close()
        assert rc == 0, "server exit status %d" % rc


def state(c, box):
    typ, data = c.select(box)
    assert typ == "OK"
    uidvalidity = c.response("UIDVALIDITY")[1][0]
    typ, data = c.fetch("1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    msgs = []
    for d in data:
        if isinstance(d, tuple):
            meta = d[0].decode()
            uid = int(meta.split("UID ")[1].split()[0])
            flags = sorted(meta.split("FLAGS (")[1].split(")")[0].split())
            msgs.append((uid, flags, d[1]))
    return uidvalidity, msgs


def msg(i):
    return ("From: endian@example.org\r\nSubject: m%d\r\n\r\n" % i).encode() + os.urandom(3000 + i).hex().encode() + b"\r\n"


def test_store_crosses_endianness(tmp_path):
    root = str(tmp_path)
    with open(os.path.join(root, "passwd"), "w") as f:
        f.write("demo:{PLAIN}demo\n")
    os.mkdir(os.path.join(root, "mail"))
    with Server(BE, root) as s:            # big-endian writes
        c = s.imap()
        assert c.create("box")[0] == "OK"
        for i in range(4):
            assert c.append("box", None, None, msg(i))[0] == "OK"
        c.select("box")
        c.store("1", "+FLAGS", "(\\Seen \\Flagged)")
        c.store("2", "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.store("3", "+FLAGS", "($Label1)")
        be_state = state(c, "box")
        c.logout()
    assert [m[0] for m in be_state[1]] == [1, 3, 4]
    with Server(LE, root) as s:            # little-endian reads, then writes
        c = s.imap()
        assert state(c, "box") == be_state
        assert c.append("box", None, None, msg(9))[0] == "OK"
        c.select("box")
        c.store("1", "-FLAGS", "(\\Flagged)")
        le_state = state(c, "box")
        c.logout()
    assert [m[0] for m in le_state[1]] == [1, 3, 4, 5]
    with Server(BE, root) as s:            # and big-endian reads that back
        c = s.imap()
        assert state(c, "box") == le_state
        c.logout()
