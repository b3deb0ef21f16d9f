"""The integration subset run against picoimapd on a board booted under
QEMU (tests/boards/run.sh starts it). The server is reached through QEMU's
user-network port forwards on loopback:

    PICOIMAPD_REMOTE=127.0.0.1:PORT  PICOIMAPD_REMOTE_TLS=127.0.0.1:TLSPORT

Skips when PICOIMAPD_REMOTE is unset. Each test uses mailboxes of its own,
so the tests need no fresh store.
"""

import imaplib
import os
import shutil
import ssl
import subprocess
import threading

import pytest

REMOTE = os.environ.get("PICOIMAPD_REMOTE")
REMOTE_TLS = os.environ.get("PICOIMAPD_REMOTE_TLS")
TIMEOUT = 120  # emulated CPUs are slow

pytestmark = pytest.mark.skipif(not REMOTE, reason="PICOIMAPD_REMOTE not set (tests/boards/run.sh sets it)")


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def message(size, tag):
    head = ("From: board@example.org\r\nSubject: %s\r\n\r\n" % tag).encode()
    body = os.urandom(size // 2 + 64).hex().encode()
    return head + b"\r\n".join(body[i:i + 76] for i in range(0, size - len(head), 78)) + b"\r\n"


def login(tls=False, user="demo", password="demo"):
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = imaplib.IMAP4_SSL(*hostport(REMOTE_TLS), ssl_context=ctx, timeout=TIMEOUT)
    else:
        c = imaplib.IMAP4(*hostport(REMOTE), timeout=TIMEOUT)
    assert c.login(user, password)[0] == "OK"
    return c


def test_greeting_and_login():
    c = login()
    typ, caps = c.capability()
    assert typ == "OK" and b"IMAP4rev1" in caps[0]
    c.logout()


def test_bad_password_is_refused():
    c = imaplib.IMAP4(*hostport(REMOTE), timeout=TIMEOUT)
    with pytest.raises(imaplib.IMAP4.error):
        c.login("demo", "wrong")
    c.shutdown()


def test_append_fetch_flags_expunge_and_users_isolated():
    c = login()
    box = "session%d" % os.getpid()
    assert c.create(box)[0] == "OK"
    msgs = [message(n, "m%d" % i) for i, n in enumerate((300, 40000, 5 * 1024 * 1024))]
    for m in msgs:
        assert c.append(box, None, None, m)[0] == "OK"
    typ, data = c.select(box)
    assert typ == "OK" and int(data[0]) == 3
    typ, data = c.fetch("1:3", "(BODY.PEEK[])")
    got = [d[1] for d in data if isinstance(d, tuple)]
    assert got == msgs
    assert c.store("1", "+FLAGS", "(\\Seen)")[0] == "OK"
    assert c.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    typ, data = c.fetch("1:*", "(FLAGS RFC822.SIZE)")
    assert len(data) == 2 and b"\\Seen" in data[0]
    typ, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [b"1", b"3"]
    c.logout()
    a = login(user="alice", password="alicepw")
    typ, data = a.list()
    assert not any(box.encode() in d for d in data)
    a.logout()


def test_ten_clients_at_once():
    """Ten sessions working at the same time. They connect one after the
    other: a burst of SYNs through QEMU's user network to a TCG guest loses
    some (slirp and the emulated NIC drop them; the guest retransmits after
    1, 2, 4... s), which would test the emulator, not picoimapd."""
    n = 10
    errors = []
    conns = [login() for _ in range(n)]
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    def client(i):
        try:
            c = conns[i]
            barrier.wait()
            box = "conc%d-%d" % (os.getpid(), i)
            assert c.create(box)[0] == "OK"
            m = message(3000 + i * 101, "c%d" % i)
            assert c.append(box, None, None, m)[0] == "OK"
            c.select(box)
            typ, data = c.fetch("1", "(BODY.PEEK[])")
            assert data[0][1] == m
            c.logout()
        except Exception as e:
            errors.append("%d: %r" % (i, e))

    ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT * 2)
    assert not errors, errors


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl")
def test_curl_list_append_fetch(tmp_path):
    h, p = hostport(REMOTE)
    base = "imap://%s:%d/" % (h, p)
    cu = ["curl", "-sS", "--max-time", str(TIMEOUT), "-u", "demo:demo"]
    box = "curl%d" % os.getpid()
    assert subprocess.run(cu + ["-X", "CREATE " + box, base]).returncode == 0
    r = subprocess.run(cu + [base], capture_output=True)
    assert r.returncode == 0 and box.encode() in r.stdout
    msg = b"Subject: curl on a board\r\n\r\nhello\r\n"
    f = tmp_path / "m.eml"
    f.write_bytes(msg)
    r = subprocess.run(cu + ["-T", str(f), base + box])
    assert r.returncode == 0
    r = subprocess.run(cu + [base + box + ";UID=1"], capture_output=True)
    assert r.returncode == 0 and r.stdout == msg


@pytest.mark.skipif(not REMOTE_TLS, reason="no IMAPS port")
def test_tls_login_and_transfer():
    c = login(tls=True)
    box = "tls%d" % os.getpid()
    assert c.create(box)[0] == "OK"
    m = message(1024 * 1024, "tls")
    assert c.append(box, None, None, m)[0] == "OK"
    c.select(box)
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == m
    c.logout()
