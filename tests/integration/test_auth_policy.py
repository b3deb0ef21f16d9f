"""Authentication policy (issue 6): plaintext refused without TLS,
AUTHENTICATE LOGIN and SCRAM-SHA-256 (with SASL-IR), {SCRAM-SHA-256}
passwd entries and `picoimapd passwd`, per-address lock-out, privilege
drop.

"Not loopback" is simulated with `plaintext_loopback = no`: the server
then treats 127.0.0.1 like any LAN address. That needs no root, no
network namespace and no second interface, and exercises the same code
path (plaintext_ok() sees a peer that is not allowed plaintext).
"""

import base64
import hashlib
import hmac
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, Raw, free_port, ok

pytestmark = pytest.mark.picoimapd_only

HOST = "127.0.0.1"
NO_PLAIN = ["plaintext_loopback = no", "allow_plaintext = no"]


def b64(b):
    return base64.b64encode(b).decode()


def caps_of(line):
    up = line.upper()
    i = up.find("CAPABILITY ")
    j = up.find("]", i)
    return set(up[i + 11:j if j > 0 else None].split())


# ---------------------------------------------------------------- policy

def test_plaintext_refused_off_loopback(server_factory):
    s = server_factory(extra_conf=NO_PLAIN)
    r = s.raw()
    caps = caps_of(r.greeting.line)
    assert "LOGINDISABLED" in caps
    assert not [c for c in caps if c.startswith("AUTH=")], caps
    u, done = r.cmd("CAPABILITY")
    assert "LOGINDISABLED" in caps_of(u[0].line)
    u, done = r.cmd("LOGIN demo demo")
    assert done.name == "NO" and "[PRIVACYREQUIRED]" in done.line, done.line
    for mech in ("PLAIN " + b64(b"\0demo\0demo"), "LOGIN", "SCRAM-SHA-256"):
        u, done = r.cmd("AUTHENTICATE " + mech)
        assert done.name == "NO" and "[PRIVACYREQUIRED]" in done.line, done.line
    # Nothing counted as a failed login: the password was never checked.
    assert "login failed" not in s.log_text()


def test_loopback_allowed_by_default(server_factory):
    s = server_factory(extra_conf=["allow_plaintext = no"])
    r = s.raw()
    caps = caps_of(r.greeting.line)
    assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps
    r.login("demo")


def test_allow_plaintext_yes(server_factory):
    s = server_factory(extra_conf=["plaintext_loopback = no", "allow_plaintext = yes"])
    r = s.raw()
    assert "LOGINDISABLED" not in caps_of(r.greeting.line)
    r.login("demo")


# ---------------------------------------------------------------- SASL

def auth_login(r, user, password, ir=False):
    t = r.tag()
    if ir:
        r.send("%s AUTHENTICATE LOGIN %s\r\n" % (t, b64(user.encode())))
    else:
        r.send("%s AUTHENTICATE LOGIN\r\n" % t)
        c = r.read_response()
        assert c.kind == "cont" and base64.b64decode(c.line[2:].strip()) == b"Username:", c.line
        r.send(b64(user.encode()) + "\r\n")
    c = r.read_response()
    assert c.kind == "cont" and base64.b64decode(c.line[2:].strip()) == b"Password:", c.line
    r.send(b64(password.encode()) + "\r\n")
    return r.read_until_tagged(t, timeout=10)


def test_authenticate_login(server_factory):
    s = server_factory()
    r = s.raw()
    assert "AUTH=LOGIN" in caps_of(r.greeting.line)
    u, done = auth_login(r, "demo", "demo")
    assert done.name == "OK", done.line
    r2 = s.raw()
    u, done = auth_login(r2, "alice", "alicepw", ir=True)
    assert done.name == "OK", done.line
    r3 = s.raw()
    u, done = auth_login(r3, "bob", "wrong")
    assert done.name == "NO" and "AUTHENTICATIONFAILED" in done.line


class Scram:
    """Client side of SCRAM-SHA-256 (RFC 5802/7677)."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.cnonce = b64(os.urandom(18))
        self.bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.cnonce)

    def first(self):
        return ("n,," + self.bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(a.split("=", 1) for a in sf.split(","))
        assert attrs["r"].startswith(self.cnonce)
        salt, it = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, it)
        ckey = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(ckey).digest()
        without = "c=%s,r=%s" % (b64(b"n,,"), attrs["r"])
        self.auth_msg = ("%s,%s,%s" % (self.bare, sf, without)).encode()
        sig = hmac.new(stored, self.auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(ckey, sig))
        self.server_sig = hmac.new(hmac.new(salted, b"Server Key", "sha256").digest(),
                                   self.auth_msg, "sha256").digest()
        return ("%s,p=%s" % (without, b64(proof))).encode(), salt, it


def auth_scram(r, user, password, ir=True):
    sc = Scram(user, password)
    t = r.tag()
    if ir:
        r.send("%s AUTHENTICATE SCRAM-SHA-256 %s\r\n" % (t, b64(sc.first())))
    else:
        r.send("%s AUTHENTICATE SCRAM-SHA-256\r\n" % t)
        c = r.read_response()
        assert c.kind == "cont", c.line
        r.send(b64(sc.first()) + "\r\n")
    c = r.read_response()
    assert c.kind == "cont", c.line
    final, salt, it = sc.final(base64.b64decode(c.line[2:].strip()))
    r.send(b64(final) + "\r\n")
    c = r.read_response(timeout=10)
    if c.kind == "tagged":
        return c, None
    assert c.kind == "cont", c.line
    v = base64.b64decode(c.line[2:].strip()).decode()
    assert v == "v=" + b64(sc.server_sig), "server signature wrong: " + v
    r.send("\r\n")
    u, done = r.read_until_tagged(t, timeout=10)
    return done, (salt, it)


def picoimapd_passwd(password, user=None, scheme=None):
    argv = [BINARY, "passwd"] + (["-s", scheme] if scheme else []) + ([user] if user else [])
    p = subprocess.run(argv, input=(password + "\n").encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().strip()


def test_scram_sha256(server_factory):
    scram_line = picoimapd_passwd("carolpw", "carol")
    assert scram_line.startswith("carol:{SCRAM-SHA-256}4096,"), scram_line
    s = server_factory(extra_passwd=[scram_line])
    r = s.raw()
    assert "AUTH=SCRAM-SHA-256" in caps_of(r.greeting.line)
    # Stored SCRAM keys; with and without SASL-IR.
    done, (salt1, it) = auth_scram(r, "carol", "carolpw")
    assert done.name == "OK", done.line
    assert it == 4096
    done, _ = auth_scram(s.raw(), "carol", "carolpw", ir=False)
    assert done.name == "OK", done.line
    # A {PLAIN} entry works too (keys derived per attempt).
    done, _ = auth_scram(s.raw(), "demo", "demo")
    assert done.name == "OK", done.line
    # Wrong password: no server signature, NO.
    done, _ = auth_scram(s.raw(), "carol", "nope")
    assert done.name == "NO" and "AUTHENTICATIONFAILED" in done.line
    # A {SHA512-CRYPT} user cannot do SCRAM (no keys can be made), but
    # gets the same answer as a wrong password.
    done, _ = auth_scram(s.raw(), "bob", "bobpw")
    assert done.name == "NO"
    # An unknown user gets a stable salt, like a real one.
    r1, r2 = s.raw(), s.raw()
    salts = []
    for rr in (r1, r2):
        sc = Scram("nosuchuser", "x")
        t = rr.tag()
        rr.send("%s AUTHENTICATE SCRAM-SHA-256 %s\r\n" % (t, b64(sc.first())))
        c = rr.read_response()
        attrs = dict(a.split("=", 1) for a in base64.b64decode(c.line[2:].strip()).decode().split(","))
        salts.append(attrs["s"])
        rr.send("*\r\n")
        u, done = rr.read_until_tagged(t)
        assert done.name == "BAD"
    assert salts[0] == salts[1]


def test_scram_malformed(server_factory):
    s = server_factory()
    r = s.raw()
    for msg in (b"p=tls-unique,,n=demo,r=abc", b"n,,m=x,n=demo,r=abc", b"n,a=bob,n=demo,r=abc",
                b"n,,n=demo", b"garbage", b""):
        t = r.tag()
        r.send("%s AUTHENTICATE SCRAM-SHA-256 %s\r\n" % (t, b64(msg) if msg else "="))
        u, done = r.read_until_tagged(t)
        assert done.name == "BAD", (msg, done.line)
    t = r.tag()
    r.send("%s AUTHENTICATE SCRAM-SHA-256 not-base64!\r\n" % t)
    u, done = r.read_until_tagged(t)
    assert done.name in ("BAD",), done.line
    s.assert_serving()


def test_passwd_command_sha512_and_login(server_factory):
    line = picoimapd_passwd("davepw", "dave", scheme="SHA512-CRYPT")
    assert line.startswith("dave:{SHA512-CRYPT}$6$"), line
    scram = picoimapd_passwd("erinpw", "erin")
    s = server_factory(extra_passwd=[line, scram])
    s.raw().login("dave", "davepw")
    s.raw().login("erin", "erinpw")     # LOGIN against a {SCRAM-SHA-256} entry
    r = s.raw()
    u, done = r.cmd("LOGIN erin wrong")
    assert done.name == "NO"


def test_dovecot_scram_entry_accepted(server_factory):
    """An entry in the exact form `doveadm pw -s SCRAM-SHA-256` writes."""
    salt = b"0123456789abcdef"
    salted = hashlib.pbkdf2_hmac("sha256", b"frankpw", salt, 4096)
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    entry = "frank:{SCRAM-SHA-256}4096,%s,%s,%s" % (
        b64(salt), b64(hashlib.sha256(ckey).digest()),
        b64(hmac.new(salted, b"Server Key", "sha256").digest()))
    s = server_factory(extra_passwd=[entry])
    s.raw().login("frank", "frankpw")
    done, _ = auth_scram(s.raw(), "frank", "frankpw")
    assert done.name == "OK"


# ---------------------------------------------------------------- brute force

def raw_from(s, source):
    """A Raw client whose connection comes from source (127.0.0.x)."""
    so = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    so.bind((source, 0))
    so.settimeout(30)
    so.connect((s.host, s.port))
    r = Raw.__new__(Raw)
    r.sock, r.buf, r.ntag, r.transcript, r.eof = so, b"", 0, [], False
    r.utf8_names = False
    r.greeting = r.read_response(greeting=True)
    s.raws.append(r)
    return r


def test_lockout_after_ten_failures(server_factory):
    s = server_factory()
    fails = 0
    locked_reply = None
    while fails < 10:
        r = s.raw()
        for _ in range(3):   # CONFIG_MAX_LOGIN_FAILS per connection
            u, done = r.cmd("LOGIN demo wrong%d" % fails, timeout=10)
            fails += 1
            assert done.name == "NO"
            if fails == 10:
                locked_reply = done
                break
        r.close()
    assert "AUTHENTICATIONFAILED" in locked_reply.line
    assert "locked out" in s.log_text() and "127.0.0.1" in s.log_text()
    # The right password from the locked address: refused.
    r = s.raw()
    u, done = r.cmd("LOGIN demo demo", timeout=10)
    assert done.name == "NO" and "UNAVAILABLE" in done.line, done.line
    # Another address logs in at once.
    t0 = time.monotonic()
    r2 = raw_from(s, "127.0.0.2")
    r2.login("demo")
    assert time.monotonic() - t0 < 0.5
    done, _ = auth_scram(raw_from(s, "127.0.0.3"), "demo", "demo")
    assert done.name == "OK"


# ---------------------------------------------------------------- privileges

def test_refuses_root_without_user(server_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    s = server_factory(start=False)
    with open(s.conf) as f:
        text = f.read().replace("allow_root = yes\n", "")
    with open(s.conf, "w") as f:
        f.write(text)
    p = subprocess.run([BINARY, "-c", s.conf], cwd=s.dir, capture_output=True, timeout=20)
    assert p.returncode != 0
    assert b"refusing to run as root" in p.stdout + p.stderr


@pytest.mark.parametrize("chroot", [False, True])
def test_drops_to_user(server_factory, chroot, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if chroot:
        # LeakSanitizer reads /proc at exit, which a chroot does not have.
        monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0:halt_on_error=1")
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="picoimapd-priv-")
    try:
        os.chmod(d, 0o755)
        mail = os.path.join(d, "mail")
        os.mkdir(mail)
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        pw = os.path.join(d, "passwd")
        with open(pw, "w") as f:
            f.write("demo:{PLAIN}demo\n")
        os.chmod(pw, 0o644)
        extra = ["user = nobody", "allow_root = no", "store = " + mail, "passwd = " + pw]
        if chroot:
            extra.append("chroot = " + d)
        s = server_factory(start=False, extra_conf=extra)
        s.start()
        if chroot:
            assert os.readlink("/proc/%d/root" % s.proc.pid) == d
        with open("/proc/%d/status" % s.proc.pid) as f:
            uids = [l for l in f if l.startswith(("Uid:", "Gid:", "Groups:"))]
        assert uids[0].split()[1:] == [str(nobody.pw_uid)] * 4, uids
        assert uids[1].split()[1:] == [str(nobody.pw_gid)] * 4, uids
        r = s.raw("demo", "demo")
        r.cmd_ok("CREATE owned")
        st = os.stat(os.path.join(mail, "demo"))
        assert st.st_uid == nobody.pw_uid
        s.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
