"""Issue 2, "What must show": bad input gets a clean BAD, NO or BYE and the
server keeps serving the others."""

import socket
import time

import pytest

from conftest import ConnectionClosed, make_message, select_info, fetches


def bad_or_bye(r, responses, done):
    """The server answered with a tagged BAD/NO or an untagged BYE."""
    if done is not None and done.name in ("BAD", "NO"):
        return True
    return any(x.name == "BYE" for x in responses)


def test_unknown_command_is_bad(server):
    r = server.raw()
    _, done = r.cmd("FROBNICATE now")
    assert done.name == "BAD"
    r.login("demo")
    _, done = r.cmd("FROBNICATE")
    assert done.name == "BAD"
    _, done = r.cmd("XYZZY 1 2 3")
    assert done.name == "BAD"
    r.cmd_ok("NOOP")          # the same connection still works
    server.assert_serving()


@pytest.mark.parametrize("line", [b" NOOP", b"* NOOP", b"+ NOOP", b"a(b NOOP", b"{5} NOOP"],
                         ids=["leading-space", "star", "plus", "paren", "brace"])
def test_missing_or_invalid_tag_is_untagged_bad(server, line):
    r = server.raw()
    r.send(line + b"\r\n")
    resp = r.read_response()
    assert resp.kind == "untagged" and resp.name in ("BAD", "BYE"), \
        "a line without a valid tag must get * BAD, got %s" % resp.line
    if resp.name == "BAD":
        r.cmd_ok("NOOP")
    server.assert_serving()


def test_tag_without_command_is_bad(server):
    r = server.raw()
    r.send(b"abc\r\n")
    resp = r.read_response()
    assert resp.name == "BAD", resp.line
    assert resp.kind == "untagged" or resp.tag == "abc"
    r.cmd_ok("NOOP")


def test_empty_line_is_harmless(server):
    r = server.raw()
    r.send(b"\r\n")
    u, done = r.cmd("NOOP")
    assert done.name == "OK"
    assert all(x.name == "BAD" and x.kind == "untagged" for x in u)


def test_huge_literal_before_login_is_refused_unread(server):
    r = server.raw()
    t0 = time.monotonic()
    r.send(b"a1 LOGIN {104857600}\r\n")
    resp = r.read_response(timeout=10)
    assert resp.kind != "cont", "the server invited a 100 MB literal before login"
    assert (resp.kind == "tagged" and resp.name == "BAD") or resp.name == "BYE", resp.line
    assert time.monotonic() - t0 < 5
    if resp.name == "BYE":
        r.expect_closed()
    else:
        # The literal was refused, so the next bytes are a new command.
        r.cmd_ok("NOOP")
    server.assert_serving()


@pytest.mark.picoimapd_only
def test_huge_nonsync_literal_before_login_closes(server):
    """With LITERAL+ the client sends without waiting; a server that will
    not take 100 MB must say BYE/BAD and close rather than read it all."""
    r = server.raw()
    r.send(b"a1 LOGIN {104857600+}\r\n")
    try:
        for _ in range(64):
            r.sock.sendall(b"x" * 16384)       # 1 MiB, then stop
    except OSError:
        pass
    got = r.expect_closed(timeout=10)
    assert got and (got[0].name == "BYE" or (got[0].kind == "tagged" and got[0].name == "BAD")), \
        [x.line for x in got]
    server.assert_serving()


@pytest.mark.picoimapd_only
def test_literal_over_preauth_limit_refused(server):
    """Kconfig PREAUTH_LITERAL_MAX is 1 KiB: a 2 KiB password literal is
    refused before login, without a continuation."""
    r = server.raw()
    r.send(b"a1 LOGIN demo {2048}\r\n")
    resp = r.read_response(timeout=10)
    assert resp.kind != "cont"
    assert resp.name in ("BAD", "BYE", "NO"), resp.line
    server.assert_serving()


@pytest.mark.picoimapd_only
def test_huge_append_after_login_refused_without_continuation(server):
    """LITERAL_MAX is 64 MiB: a 4 GB APPEND is refused before any byte is sent."""
    r = server.raw("demo")
    r.send(b"a1 APPEND INBOX {4000000000}\r\n")
    resp = r.read_response(timeout=10)
    assert resp.kind != "cont", "the server invited a 4 GB literal"
    assert resp.name in ("NO", "BAD", "BYE"), resp.line
    if resp.name != "BYE":
        r.cmd_ok("NOOP")
        u, _ = r.cmd_ok("SELECT INBOX")
        assert select_info(u)["exists"] == 0
    server.assert_serving()


@pytest.mark.parametrize("login", [False, True], ids=["before-login", "after-login"])
def test_one_megabyte_line(server, login):
    r = server.raw("demo" if login else None)
    t = r.tag()
    try:
        r.send(t.encode() + (b" SELECT " if login else b" LOGIN demo ") + b"x" * (1 << 20) + b"\r\n")
    except OSError:
        pass   # the server may close while we are still sending
    try:
        resp = r.read_response(timeout=20)
        assert resp.name in ("BAD", "NO", "BYE"), resp.line
        if resp.name != "BYE":
            r.cmd_ok("NOOP")
        else:
            r.expect_closed()
    except (ConnectionClosed, ConnectionResetError):
        pytest.fail("connection closed without a BAD or BYE")
    server.assert_serving()


@pytest.mark.picoimapd_only
def test_line_just_under_and_over_preauth_limit(server):
    """8 KiB before login: an 8000-byte LOGIN line is parsed (NO: wrong
    password), a 9000-byte one is refused."""
    r = server.raw()
    _, done = r.cmd("LOGIN demo " + "p" * 7950)
    assert done.name == "NO", done.line
    r = server.raw()
    t = r.tag()
    r.send("%s LOGIN demo %s\r\n" % (t, "p" * 9000))
    resp = r.read_response()
    assert resp.name in ("BAD", "BYE"), resp.line
    server.assert_serving()


@pytest.mark.parametrize("cmd", [
    "FETCH 1 (FLAGS UID",
    "FETCH 1 FLAGS)",
    "FETCH 1 ((FLAGS)",
    "FETCH 1 (FLAGS))",
    "STORE 1 +FLAGS (\\Seen",
    "SEARCH (SEEN",
    "SEARCH SEEN)",
    "SEARCH ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((ALL",
])
def test_unbalanced_parentheses_are_bad(server, cmd):
    r = server.raw("demo")
    m = make_message("paren")
    u, done = r.cmd_lit(["APPEND INBOX ", m, ""])
    assert done.name == "OK"
    r.cmd_ok("SELECT INBOX")
    u, done = r.cmd(cmd)
    assert done.name == "BAD", "%s -> %s" % (cmd, done.line)
    assert not [x for x in u if x.name == "FETCH" and "\\SEEN" in str(x.data).upper()]
    r.cmd_ok("NOOP")
    server.assert_serving()


def test_deeply_nested_parentheses_do_not_crash(server):
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    for n in (1000, 100000):
        t = r.tag()
        try:
            r.send(t + " SEARCH " + "(" * n + "ALL" + ")" * n + "\r\n")
            resp = r.read_response(timeout=20)
        except (ConnectionClosed, OSError):
            break
        assert resp.name in ("BAD", "BYE", "OK", "SEARCH"), resp.line
        if resp.name == "BYE":
            break
        if resp.kind != "tagged":
            r.read_until_tagged(t)
    server.assert_serving()


@pytest.mark.parametrize("cmd", ["FETCH 1:4294967295 FLAGS", "FETCH 1:* FLAGS",
                                 "FETCH * FLAGS", "STORE 1:4294967295 +FLAGS (\\Seen)",
                                 "COPY 1:4294967295 INBOX", "SEARCH 1:4294967295",
                                 "UID FETCH 1:4294967295 FLAGS", "UID SEARCH UID 1:4294967295",
                                 "UID STORE 1:* +FLAGS (\\Seen)"])
def test_sequence_sets_on_empty_mailbox(server, cmd):
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    u, done = r.cmd(cmd)
    assert done.name in ("OK", "NO", "BAD"), done.line
    assert not [x for x in u if x.name in ("FETCH", "EXPUNGE", "EXISTS")], [x.line for x in u]
    for x in u:
        if x.name == "SEARCH":
            assert x.data == []
    r.cmd_ok("NOOP")
    server.assert_serving()


@pytest.mark.parametrize("seqset", ["0", "1:0", "4294967296", "1:4294967296", "99999999999999999999",
                                    ",1", "1::2", "a", "-1", "1:*:2", "*:*:*"])
def test_invalid_sequence_sets_are_bad(server, seqset):
    r = server.raw("demo")
    m = make_message("seq")
    _, done = r.cmd_lit(["APPEND INBOX ", m, ""])
    assert done.name == "OK"
    r.cmd_ok("SELECT INBOX")
    u, done = r.cmd("FETCH %s FLAGS" % seqset)
    assert done.name == "BAD", "FETCH %s FLAGS -> %s" % (seqset, done.line)
    r.cmd_ok("NOOP")


def test_sequence_number_beyond_exists(server):
    """RFC 3501: a message sequence number greater than the number of
    messages should get a tagged BAD (and must not return data)."""
    r = server.raw("demo")
    _, done = r.cmd_lit(["APPEND INBOX ", make_message("only"), ""])
    assert done.name == "OK"
    r.cmd_ok("SELECT INBOX")
    u, done = r.cmd("FETCH 2 FLAGS")
    assert done.name in ("BAD", "NO", "OK"), done.line
    assert not [x for x in u if x.name == "FETCH"]
    u, done = r.cmd("FETCH 1:5 UID")
    assert done.name in ("OK", "BAD", "NO")
    if done.name == "OK":
        assert sorted(fetches(u)) == [1]


@pytest.mark.parametrize("name", [
    b"{4}\r\n\xff\xfe\xfd\xfc",            # not UTF-8 at all, as a literal
    b"\"caf\xc3\xa9\"",                    # raw 8-bit (UTF-8) in a quoted string
    b"{5}\r\ncaf\xc3\xa9",                 # raw UTF-8 in a literal: not modified UTF-7
    b"&Jjo",                               # unterminated modified-base64
    b"&AGE-",                              # encodes "a": must be plain ASCII
    b"&-&-&",                              # trailing '&'
    b"&ZeVnLIqe-&ZeVnLIqe-",               # two adjacent encoded runs (must be one)
    b"&2AA-",                              # unpaired surrogate U+D800
    b"&AAA-",                              # encodes NUL
    b"\"\"",                               # empty name
    b"\"a//b\"",                           # empty hierarchy component
    b"\"/abs\"",                           # leading delimiter
    b"\"..\"",
    b"\"x/../../etc\"",
    b"\"tab\there\"",                       # a control character
])
def test_create_rejects_bad_names(server, name):
    r = server.raw("demo")
    t = r.tag()
    data = t.encode() + b" CREATE " + name + b"\r\n"
    if b"{" in name:
        head, lit = data.split(b"\r\n", 1)
        r.send(head + b"\r\n")
        resp = r.read_response()
        if resp.kind == "cont":
            r.send(lit)
            _, done = r.read_until_tagged(t)
        else:
            done = resp
    else:
        r.send(data)
        _, done = r.read_until_tagged(t)
    assert done.name in ("NO", "BAD"), "CREATE %r -> %s" % (name, done.line)
    u, _ = r.cmd_ok('LIST "" *')
    listed = [x.data[2] for x in u if x.name == "LIST"]
    assert listed == ["INBOX"], "bad name created something: %r" % listed
    r.cmd_ok("NOOP")
    server.assert_serving()


def test_nul_byte_in_command(server):
    r = server.raw()
    r.send(b"a1 LOGIN demo\x00x demo\r\n")
    resp = r.read_response()
    assert resp.name in ("BAD", "BYE", "NO"), resp.line
    assert not (resp.kind == "tagged" and resp.name == "OK")
    server.assert_serving()


def test_random_garbage_does_not_kill_server(server):
    import random
    rnd = random.Random(1234)
    for i in range(20):
        r = server.raw("demo" if i % 2 else None)
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 4000)))
        try:
            r.send(blob + b"\r\n")
            r.sock.settimeout(0.3)
            while r.sock.recv(65536):
                pass
        except (socket.timeout, OSError):
            pass
        r.close()
    server.assert_serving()


def test_commands_in_wrong_state(server):
    # One connection per command: a server may close a connection that
    # keeps sending invalid commands.
    for cmd in ("SELECT INBOX", "LIST \"\" *", "FETCH 1 FLAGS", "EXPUNGE", "CLOSE",
                "CREATE x", "APPEND INBOX {1+}\r\nx", "STATUS INBOX (MESSAGES)"):
        r = server.raw()
        _, done = r.cmd(cmd)
        assert done.name in ("BAD", "NO"), "%s before login -> %s" % (cmd, done.line)
        r.cmd_ok("NOOP")
        r.close()
    for cmd in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE", "CHECK",
                "SEARCH ALL", "COPY 1 INBOX", "UID FETCH 1 FLAGS", "LOGIN demo demo",
                "AUTHENTICATE PLAIN"):
        r = server.raw("demo")
        _, done = r.cmd(cmd)
        assert done.name in ("BAD", "NO"), "%s in authenticated state -> %s" % (cmd, done.line)
        r.cmd_ok("NOOP")
        r.close()


def test_bad_arguments(server):
    for cmd in ("SELECT", "SELECT a b",
                "CREATE", "FETCH", "FETCH 1", "FETCH 1 NOSUCHATT", "FETCH 1 BODY[",
                "FETCH 1 BODY[]<", "STORE 1 FLAGS", "STORE 1 BOGUS (\\Seen)",
                "SEARCH", "SEARCH NOSUCHKEY", "SEARCH LARGER", "SEARCH LARGER x",
                "SEARCH BEFORE 2024-01-01", "SEARCH OR SEEN",
                "STATUS INBOX", "STATUS INBOX (BOGUS)", "STATUS INBOX ()",
                "UID", "UID EXPUNGE-NOT", "UID NOOP", "COPY 1", "LIST", "LIST \"\"",
                "RENAME a", "APPEND INBOX (\\Seen", ["APPEND INBOX \"bad date\" ", b"x", ""],
                ["APPEND INBOX (\\Bogus) ", b"x", ""], ["APPEND INBOX () ", b"x", " extra"],
                "LOGIN a b"):
        r = server.raw("demo")
        r.cmd_ok("SELECT INBOX")
        _, done = r.cmd_lit(cmd) if isinstance(cmd, list) else r.cmd(cmd)
        assert done.name in ("BAD", "NO"), "%r -> %s" % (cmd, done.line)
        r.cmd_ok("NOOP")
        r.close()
    r = server.raw("demo")
    u, _ = r.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 0, "a bad APPEND added a message"


@pytest.mark.picoimapd_only
def test_rejected_command_literal_plus_data_is_not_executed(server):
    """A command rejected before its LITERAL+ literal arrives: the literal's
    bytes are data, never commands (else a message body could smuggle in
    commands)."""
    r = server.raw("demo")
    smuggled = b"s1 CREATE Smuggled\r\n"
    r.send(b"a1 APPEND INBOX \"bad date\" {%d+}\r\n" % len(smuggled) + smuggled + b"\r\n")
    u, done = r.read_until_tagged("a1")
    assert done.name in ("BAD", "NO"), done.line
    r.cmd_ok("NOOP")
    u, _ = r.cmd_ok('LIST "" *')
    assert [x.data[2] for x in u if x.name == "LIST"] == ["INBOX"], \
        "the literal's content ran as a command"
