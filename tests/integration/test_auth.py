"""Greeting, CAPABILITY, LOGIN, AUTHENTICATE PLAIN, LOGOUT, users from a
Dovecot passwd-file ({PLAIN} and {SHA512-CRYPT})."""

import base64
import threading
import time

import pytest

from conftest import USERS, ConnectionClosed, quote, sha512_crypt, passwd_lines


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def test_greeting_and_capability(server):
    r = server.raw()
    g = r.greeting
    assert g.kind == "greeting" and g.name == "OK", g.line
    u, done = r.cmd_ok("CAPABILITY")
    caps = [x for x in u if x.name == "CAPABILITY"]
    assert len(caps) == 1, "CAPABILITY needs exactly one untagged CAPABILITY"
    capset = {c.upper() for c in caps[0].data}
    assert "IMAP4REV1" in capset
    assert "AUTH=PLAIN" in capset
    assert "LITERAL+" in capset
    assert "LOGINDISABLED" not in capset, "allow_plaintext = yes, yet LOGINDISABLED"
    if g.code == "CAPABILITY":
        assert {c.upper() for c in g.code_arg} == capset, \
            "greeting's [CAPABILITY] differs from the CAPABILITY response"


@pytest.mark.picoimapd_only
def test_greeting_text(server):
    g = server.raw().greeting
    assert g.line.startswith("* OK [CAPABILITY IMAP4rev1 ") and g.line.endswith("picoimapd ready")
    assert "LITERAL+" in g.code_arg


@pytest.mark.parametrize("user", ["demo", "alice", "bob"])
def test_login_each_user(server, user):
    r = server.raw()
    _, done = r.cmd("LOGIN %s %s" % (user, quote(USERS[user])))
    assert done.name == "OK", done.line
    r.cmd_ok("SELECT INBOX")


def test_login_literal_and_quoted_forms(server):
    r = server.raw()
    _, done = r.cmd_lit(["LOGIN ", b"alice", " ", b"alicepw", ""])
    assert done.name == "OK", done.line
    r = server.raw()
    t = r.tag()
    r.send(t + " LOGIN {5+}\r\nalice {7+}\r\nalicepw\r\n")
    _, done = r.read_until_tagged(t)
    assert done.name == "OK", "LITERAL+ LOGIN: " + done.line
    r = server.raw()
    _, done = r.cmd('login "alice" alicepw')
    assert done.name == "OK", "lower-case command name: " + done.line


def test_login_password_with_specials(server_factory):
    pw = 'p "w\\d x'
    s = server_factory(extra_passwd=["carol:{PLAIN}" + pw])
    r = s.raw()
    _, done = r.cmd("LOGIN carol " + quote(pw))
    assert done.name == "OK", done.line
    r = s.raw()
    _, done = r.cmd_lit(["LOGIN carol ", pw.encode(), ""])
    assert done.name == "OK", done.line


def test_passwd_file_extra_fields_and_comments(server_factory):
    """Dovecot's format: user:{SCHEME}pass:uid:gid:gecos:home:shell:extra;
    blank lines and # comments are allowed."""
    lines = passwd_lines() + ["", "# a comment",
                              "carol:{PLAIN}carolpw:1000:1000::/home/carol::",
                              "dave:{SHA512-CRYPT}%s:::" % sha512_crypt("davepw", "davesalt")]
    s = server_factory(passwd=lines)
    for user, pw in (("carol", "carolpw"), ("dave", "davepw"), ("demo", "demo")):
        r = s.raw()
        _, done = r.cmd("LOGIN %s %s" % (user, pw))
        assert done.name == "OK", "%s: %s" % (user, done.line)


@pytest.mark.parametrize("user,pw", [("demo", "wrong"), ("bob", "bobpw2"), ("bob", "bobp"),
                                     ("nosuchuser", "x"), ("demo", ""),
                                     ("bob", sha512_crypt("bobpw")),
                                     ("../demo", "demo"), ("demo\\", "demo")])
def test_login_refused(server, user, pw):
    r = server.raw()
    _, done = r.cmd("LOGIN %s %s" % (quote(user), quote(pw)))
    assert done.name == "NO", "LOGIN %r %r -> %s" % (user, pw, done.line)
    _, done = r.cmd("SELECT INBOX")
    assert done.name in ("BAD", "NO"), "not logged in, yet SELECT worked"


@pytest.mark.picoimapd_only
def test_failed_login_delay_does_not_block_others(server):
    """The delay after a failed login runs on that connection only."""
    bad = server.raw()
    t = bad.tag()
    bad.send("%s LOGIN demo wrong\r\n" % t)
    t0 = time.monotonic()
    good = server.raw("alice")
    for _ in range(5):
        good.cmd_ok("NOOP")
    assert time.monotonic() - t0 < 0.9, "another client waited for a failed login's delay"
    _, done = bad.read_until_tagged(t)
    assert done.name == "NO"


@pytest.mark.picoimapd_only
def test_too_many_login_failures_close_connection(server):
    """MAX_LOGIN_FAILS (3): the connection is closed after the third; the
    right password on the same connection does not help."""
    r = server.raw()
    for i in range(3):
        try:
            _, done = r.cmd("LOGIN demo wrong%d" % i)
        except ConnectionClosed:
            assert i == 2, "closed after only %d failures" % (i + 1)
            break
        assert done.name == "NO"
    try:
        u, done = r.cmd("LOGIN demo demo")
        assert done.name != "OK", "logged in after three failures"
    except (ConnectionClosed, OSError):
        pass
    server.assert_serving()


def test_authenticate_plain_with_continuation(server):
    r = server.raw()
    t = r.tag()
    r.send("%s AUTHENTICATE PLAIN\r\n" % t)
    cont = r.read_response()
    assert cont.kind == "cont", cont.line
    r.send(b64("\0alice\0alicepw") + "\r\n")
    u, done = r.read_until_tagged(t)
    assert done.name == "OK", done.line
    r.cmd_ok("SELECT INBOX")


def test_authenticate_plain_sha512_user_and_authzid(server):
    r = server.raw()
    _, done = auth_plain(r, "bob\0bob\0bobpw")
    assert done.name == "OK", "authzid equal to authcid: " + done.line
    r = server.raw()
    _, done = auth_plain(r, "alice\0bob\0bobpw")
    assert done.name == "NO", "bob must not act as alice: " + done.line


def auth_plain(r, creds, initial=False):
    t = r.tag()
    if initial:
        r.send("%s AUTHENTICATE PLAIN %s\r\n" % (t, b64(creds)))
        return r.read_until_tagged(t)
    r.send("%s AUTHENTICATE PLAIN\r\n" % t)
    cont = r.read_response()
    if cont.kind == "tagged":
        return [], cont
    assert cont.kind == "cont", cont.line
    r.send(b64(creds) + "\r\n")
    return r.read_until_tagged(t)


@pytest.mark.parametrize("creds", ["\0alice\0wrong", "\0nosuch\0x", "\0alice", "alice",
                                   "\0\0", "\0alice\0alicepw\0extra"])
def test_authenticate_plain_refused(server, creds):
    r = server.raw()
    _, done = auth_plain(r, creds)
    assert done.name in ("NO", "BAD"), "%r -> %s" % (creds, done.line)
    _, done = r.cmd("SELECT INBOX")
    assert done.name in ("BAD", "NO")


def test_authenticate_plain_sasl_ir(server):
    """SASL-IR style (initial response on the command line). If the server
    advertises SASL-IR it must work; if not, it must be refused cleanly."""
    r = server.raw()
    u, _ = r.cmd_ok("CAPABILITY")
    caps = {c.upper() for c in u[0].data}
    _, done = auth_plain(r, "\0demo\0demo", initial=True)
    if "SASL-IR" in caps:
        assert done.name == "OK", done.line
        r.cmd_ok("SELECT INBOX")
    else:
        assert done.name in ("BAD", "NO"), "initial response without SASL-IR: " + done.line
        r.cmd_ok("NOOP")
        _, done = auth_plain(r, "\0demo\0demo")
        assert done.name == "OK", done.line


def test_authenticate_cancel_and_garbage(server):
    r = server.raw()
    t = r.tag()
    r.send("%s AUTHENTICATE PLAIN\r\n" % t)
    assert r.read_response().kind == "cont"
    r.send("*\r\n")
    _, done = r.read_until_tagged(t)
    assert done.name == "BAD", "RFC 3501 6.2.2: a cancelled exchange gets BAD: " + done.line
    t = r.tag()
    r.send("%s AUTHENTICATE PLAIN\r\n" % t)
    assert r.read_response().kind == "cont"
    r.send("!!!not base64!!!\r\n")
    _, done = r.read_until_tagged(t)
    assert done.name in ("BAD", "NO"), done.line
    _, done = r.cmd("AUTHENTICATE NOSUCHMECH")
    assert done.name in ("BAD", "NO"), done.line
    server.assert_serving()


def test_logout(server):
    for user in (None, "demo"):
        r = server.raw(user)
        if user:
            r.cmd_ok("SELECT INBOX")
        u, done = r.cmd("LOGOUT")
        assert [x.name for x in u] == ["BYE"], "LOGOUT must send exactly * BYE first"
        assert done.name == "OK"
        r.expect_closed(timeout=5)


def test_logins_in_parallel_are_independent(server):
    """Eight clients, three users, logging in at once: each sees only its
    own INBOX."""
    errors = []

    def run(user, i):
        try:
            r = server.raw(user)
            r.cmd_ok("CREATE own-%s-%d" % (user, i))
            u, _ = r.cmd_ok('LIST "" "own-*"')
            names = sorted(x.data[2] for x in u if x.name == "LIST")
            assert all(n.startswith("own-%s-" % user) for n in names), (user, names)
        except BaseException as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=run, args=(("demo", "alice", "bob")[i % 3], i)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
