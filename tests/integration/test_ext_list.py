"""Issue 5 part A: LIST-EXTENDED, LIST-STATUS, SPECIAL-USE,
CREATE-SPECIAL-USE, MULTIAPPEND, LITERAL+/-, with raw protocol, imaplib
and curl."""

import shutil
import subprocess

import pytest

from conftest import make_message


@pytest.fixture
def server(server_factory):
    return server_factory(extra_conf=["special_folders = yes"])


def lists(u):
    return {x.data[2]: [f.upper() for f in x.data[0]] for x in u if x.name == "LIST"}


def test_new_user_gets_special_use_folders(server):
    r = server.raw("alice")
    u, _ = r.cmd_ok('LIST "" "*"')
    l = lists(u)
    for name, attr in (("Drafts", "\\DRAFTS"), ("Sent", "\\SENT"), ("Trash", "\\TRASH"),
                       ("Junk", "\\JUNK"), ("Archive", "\\ARCHIVE")):
        assert attr in l[name], (name, l)
    assert "INBOX" in l
    # Deleting one is not undone at the next login.
    r.cmd_ok("DELETE Archive")
    r2 = server.raw("alice")
    u, _ = r2.cmd_ok('LIST "" "*"')
    assert "Archive" not in lists(u)


def test_list_extended(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE a/b/c")
    r.cmd_ok("SUBSCRIBE a/b/c")
    r.cmd_ok("SUBSCRIBE gone")
    u, _ = r.cmd_ok('LIST (SUBSCRIBED) "" "*"')
    l = lists(u)
    assert "\\SUBSCRIBED" in l["a/b/c"] and "\\NONEXISTENT" in l["gone"]
    assert "a" not in l
    u, _ = r.cmd_ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    raw = [x.raw for x in u if x.name == "LIST"]
    assert any(b'"a" ("CHILDINFO" ("SUBSCRIBED"))' in x or b' a ("CHILDINFO" ("SUBSCRIBED"))' in x
               for x in raw), raw
    _, done = r.cmd('LIST (RECURSIVEMATCH) "" "*"')
    assert done.name == "BAD"
    u, _ = r.cmd_ok('LIST (SPECIAL-USE) "" "*"')
    assert set(lists(u)) == {"Drafts", "Sent", "Trash", "Junk", "Archive"}
    u, _ = r.cmd_ok('LIST "" ("INBOX" "Sent") RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)')
    l = lists(u)
    assert set(l) == {"INBOX", "Sent"} and "\\SUBSCRIBED" in l["Sent"]
    r.cmd_lit(["APPEND Sent ", make_message("x"), ""])
    u, _ = r.cmd_ok('LIST "" "S%" RETURN (STATUS (MESSAGES UIDNEXT SIZE HIGHESTMODSEQ))')
    st = {x.data[0]: x.data[1] for x in u if x.name == "STATUS"}
    assert st["Sent"]["MESSAGES"] == 1 and st["Sent"]["UIDNEXT"] == 2 and st["Sent"]["SIZE"] > 0
    # plain LIST unchanged in form
    u, _ = r.cmd_ok('LIST "" ""')
    assert u[0].data[1] == "/"


def test_create_special_use(server):
    r = server.raw("demo")
    r.cmd_ok("DELETE Junk")
    r.cmd_ok("CREATE Junk (USE (\\Junk))")
    _, done = r.cmd("CREATE Stuff (USE (\\Sent))")
    assert done.name == "NO" and done.code == "USEATTR"


def test_multiappend(server):
    r = server.raw("demo")
    m1, m2, m3 = (make_message("multi %d" % i) for i in range(3))
    u, done = r.cmd_lit(["APPEND INBOX (\\Seen) ", m1, " ", m2, ' (\\Flagged) "05-Jan-2026 10:00:00 +0000" ', m3, ""])
    assert done.name == "OK" and done.code == "APPENDUID", done.line
    assert done.code_arg[1] == "1:3"
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:3 (FLAGS BODY.PEEK[])")
    f = {x.num: x.data for x in u if x.name == "FETCH"}
    assert f[1]["BODY[]"] == m1 and f[2]["BODY[]"] == m2 and f[3]["BODY[]"] == m3
    assert "\\Seen" in f[1]["FLAGS"] and "\\Flagged" in f[3]["FLAGS"]
    # LITERAL+ as well.
    u, done = r.cmd_lit(["APPEND INBOX ", m1, " ", m2, ""], plus=True)
    assert done.name == "OK" and done.code_arg[1] == "4:5"
    # A bad second message fails the whole command: nothing is kept.
    _, done = r.cmd_lit(["APPEND INBOX ", m1, " (\\Bogus) ", m2, ""])
    assert done.name in ("BAD", "NO")
    u, _ = r.cmd_ok("STATUS INBOX (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 5


@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
def test_curl_uid_move(server):
    r = server.raw("demo")
    for i in range(2):
        r.cmd_lit(["APPEND INBOX ", make_message("curl %d" % i), ""])
    url = "imap://127.0.0.1:%d/INBOX" % server.port
    out = subprocess.run(["curl", "-s", "--user", "demo:demo", url, "-X", "UID MOVE 1 Trash"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    u, _ = r.cmd_ok("STATUS Trash (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 1
    out = subprocess.run(["curl", "-s", "--user", "demo:demo", url, "-X", "UID SEARCH RETURN (COUNT) ALL"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and b"COUNT 1" in out.stdout, out
