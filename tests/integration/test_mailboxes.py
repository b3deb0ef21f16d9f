"""CREATE, DELETE, RENAME, LIST, LSUB, SUBSCRIBE, UNSUBSCRIBE, STATUS, and
one user's mailboxes being invisible to another."""

import os

import pytest

from conftest import make_message, select_info, fetches, flagset


def listing(r, ref, pat, cmd="LIST"):
    """{name: [flags]} from LIST/LSUB; also checks the delimiter is '/'."""
    u, _ = r.cmd_ok('%s "%s" "%s"' % (cmd, ref, pat))
    out = {}
    for x in u:
        assert x.name == cmd, x.line
        flags, delim, name = x.data
        assert delim == "/", "hierarchy delimiter %r, expected '/'" % delim
        assert name not in out, "%s listed twice" % name
        out[name] = [f.upper() for f in flags]
    return out


def append(r, box, msg, flags=""):
    _, done = r.cmd_lit(["APPEND %s %s" % (box, "(%s) " % flags if flags else ""), msg, ""])
    assert done.name == "OK", done.line
    return done


def test_create_and_list(server):
    r = server.raw("demo")
    for name in ("Work", "Work/Projects", "Work/Projects/X", "Home", "a b", "caf&AOk-"):
        r.cmd_ok('CREATE "%s"' % name)
    got = listing(r, "", "*")
    assert set(got) == {"INBOX", "Work", "Work/Projects", "Work/Projects/X", "Home", "a b",
                        "caf&AOk-"}, got
    for name, flags in got.items():
        assert "\\NOSELECT" not in flags, (name, flags)
    assert set(listing(r, "", "%")) == {"INBOX", "Work", "Home", "a b", "caf&AOk-"}
    assert set(listing(r, "", "Work/%")) == {"Work/Projects"}
    assert set(listing(r, "", "Work/*")) == {"Work/Projects", "Work/Projects/X"}
    assert set(listing(r, "Work/", "%")) == {"Work/Projects"}, "reference is prefixed to the pattern"
    assert set(listing(r, "", "W*")) == {"Work", "Work/Projects", "Work/Projects/X"}
    assert set(listing(r, "", "*s/X")) == {"Work/Projects/X"}
    assert set(listing(r, "", "%/%")) == {"Work/Projects"}
    assert set(listing(r, "", "inbox")) == {"INBOX"}, "INBOX matches case-insensitively"
    assert set(listing(r, "", "nomatch")) == set()
    assert set(listing(r, "", "work")) == set(), "names other than INBOX are case-sensitive"


def test_list_empty_pattern_gives_delimiter(server):
    r = server.raw("demo")
    u, _ = r.cmd_ok('LIST "" ""')
    assert len(u) == 1 and u[0].name == "LIST", [x.line for x in u]
    flags, delim, name = u[0].data
    assert delim == "/" and name == "" and "\\NOSELECT" in [f.upper() for f in flags], u[0].line


def test_create_inferiors_and_trailing_delimiter(server):
    r = server.raw("demo")
    r.cmd_ok('CREATE "a/b/c"')
    got = listing(r, "", "*")
    assert {"a", "a/b", "a/b/c"} <= set(got), "superiors of a/b/c must be listed: %r" % got
    r.cmd_ok('CREATE "d/"')
    assert "d" in listing(r, "", "*"), "CREATE d/ creates d (RFC 3501 6.3.3)"
    r.cmd_ok("SELECT a/b/c")


def test_create_existing_and_inbox(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE Box")
    for name in ("Box", "INBOX", "inbox", "InBoX"):
        _, done = r.cmd('CREATE "%s"' % name)
        assert done.name == "NO", "CREATE %s -> %s" % (name, done.line)


def test_delete(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE Trash")
    append(r, "Trash", make_message("to be deleted"))
    r.cmd_ok("DELETE Trash")
    assert "Trash" not in listing(r, "", "*")
    _, done = r.cmd("SELECT Trash")
    assert done.name == "NO"
    _, done = r.cmd("DELETE Trash")
    assert done.name == "NO", "DELETE of a missing mailbox"
    _, done = r.cmd("DELETE INBOX")
    assert done.name == "NO", "DELETE INBOX"
    # A new mailbox of the same name starts empty with a new UIDVALIDITY.
    r.cmd_ok("CREATE Trash")
    u, _ = r.cmd_ok("SELECT Trash")
    assert select_info(u)["exists"] == 0


def test_delete_keeps_inferiors(server):
    """RFC 3501 6.3.4: DELETE must not remove inferior names; a name with
    inferiors that is \\Noselect cannot be deleted."""
    r = server.raw("demo")
    r.cmd_ok("CREATE foo")
    r.cmd_ok("CREATE foo/bar")
    append(r, "foo/bar", make_message("child"))
    r.cmd_ok("DELETE foo")
    got = listing(r, "", "*")
    assert "foo/bar" in got
    assert "foo" not in got or "\\NOSELECT" in got["foo"], got
    _, done = r.cmd("SELECT foo")
    assert done.name == "NO"
    u, _ = r.cmd_ok("SELECT foo/bar")
    assert select_info(u)["exists"] == 1
    if "foo" in got:
        _, done = r.cmd("DELETE foo")
        assert done.name == "NO", "DELETE of a \\Noselect name with inferiors"
    r.cmd_ok("CLOSE")
    r.cmd_ok("DELETE foo/bar")


def test_delete_selected_mailbox_elsewhere(server):
    """Deleting a mailbox another session has selected must not crash
    either session."""
    a = server.raw("demo")
    a.cmd_ok("CREATE Gone")
    append(a, "Gone", make_message("x"))
    b = server.raw("demo")
    b.cmd_ok("SELECT Gone")
    _, done = a.cmd("DELETE Gone")
    assert done.name in ("OK", "NO"), done.line
    for cmd in ("NOOP", "FETCH 1:* FLAGS"):
        try:
            _, done = b.cmd(cmd)
        except Exception:
            break
        assert done.name in ("OK", "NO", "BAD")
    server.assert_serving()


def test_rename(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE Old")
    msgs = [make_message("r1"), make_message("r2")]
    for m in msgs:
        append(r, "Old", m)
    u, _ = r.cmd_ok("EXAMINE Old")
    uidv = select_info(u)["codes"]["UIDVALIDITY"]
    r.cmd_ok("CLOSE")
    r.cmd_ok("RENAME Old New")
    got = listing(r, "", "*")
    assert "New" in got and "Old" not in got
    u, _ = r.cmd_ok("SELECT New")
    assert select_info(u)["exists"] == 2
    u, _ = r.cmd_ok("FETCH 1:2 BODY.PEEK[]")
    assert [fetches(u)[i]["BODY[]"] for i in (1, 2)] == msgs
    r.cmd_ok("CLOSE")
    r.cmd_ok("CREATE Other")
    for src, dst in (("Missing", "X"), ("New", "Other"), ("New", "INBOX"), ("New", "inbox")):
        _, done = r.cmd('RENAME "%s" "%s"' % (src, dst))
        assert done.name == "NO", "RENAME %s %s -> %s" % (src, dst, done.line)
    assert uidv > 0


def test_rename_moves_inferiors(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE p")
    r.cmd_ok("CREATE p/c1")
    r.cmd_ok("CREATE p/c1/g")
    append(r, "p/c1/g", make_message("grandchild"))
    r.cmd_ok("RENAME p q")
    got = listing(r, "", "*")
    assert {"q", "q/c1", "q/c1/g"} <= set(got), got
    assert not any(n == "p" or n.startswith("p/") for n in got), got
    u, _ = r.cmd_ok("SELECT q/c1/g")
    assert select_info(u)["exists"] == 1


def test_rename_to_new_hierarchy_creates_superiors(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE leaf")
    r.cmd_ok("RENAME leaf deep/down/leaf")
    got = listing(r, "", "*")
    assert "deep/down/leaf" in got and "deep" in got, got


@pytest.mark.picoimapd_only   # Dovecot's Maildir++ layout cannot rename INBOX
def test_rename_inbox(server):
    """RFC 3501 6.3.5: RENAME INBOX moves all messages to the new name and
    leaves INBOX empty (it still exists)."""
    r = server.raw("demo")
    msgs = [make_message("inbox %d" % i) for i in range(3)]
    for m in msgs:
        append(r, "INBOX", m, flags="\\Seen")
    u, _ = r.cmd_ok("SELECT INBOX")
    uidnext = select_info(u)["codes"]["UIDNEXT"]
    r.cmd_ok("CLOSE")
    r.cmd_ok("RENAME INBOX Saved")
    got = listing(r, "", "*")
    assert {"INBOX", "Saved"} <= set(got)
    u, _ = r.cmd_ok("SELECT Saved")
    assert select_info(u)["exists"] == 3
    u, _ = r.cmd_ok("FETCH 1:3 (FLAGS BODY.PEEK[])")
    f = fetches(u)
    assert [f[i]["BODY[]"] for i in (1, 2, 3)] == msgs
    assert all("\\SEEN" in flagset(f[i]["FLAGS"]) for i in (1, 2, 3))
    u, _ = r.cmd_ok("SELECT INBOX")
    info = select_info(u)
    assert info["exists"] == 0
    # UIDs of the emptied INBOX must not be reused.
    assert "UIDNEXT" not in info["codes"] or info["codes"]["UIDNEXT"] >= uidnext or \
        info["codes"]["UIDVALIDITY"] != 0
    append(r, "INBOX", make_message("new inbox mail"))
    u, _ = r.cmd_ok("NOOP")
    r.cmd_ok("CLOSE")
    u, _ = r.cmd_ok("STATUS INBOX (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 1


def test_subscribe_and_lsub(server):
    r = server.raw("demo")
    for name in ("Work", "Work/Projects", "Work/Projects/X", "Home"):
        r.cmd_ok('CREATE "%s"' % name)
    r.cmd_ok("SUBSCRIBE Work")
    r.cmd_ok('SUBSCRIBE "Work/Projects/X"')
    r.cmd_ok("SUBSCRIBE INBOX")
    assert set(listing(r, "", "*", "LSUB")) == {"Work", "Work/Projects/X", "INBOX"}
    got = listing(r, "", "%", "LSUB")
    assert set(got) == {"Work", "INBOX"}, got
    got = listing(r, "Work/", "%", "LSUB")
    assert set(got) <= {"Work/Projects"}
    if "Work/Projects" in got:
        assert "\\NOSELECT" in got["Work/Projects"], \
            "RFC 3501 6.3.9: an unsubscribed superior is returned \\Noselect"
    r.cmd_ok("UNSUBSCRIBE Work")
    assert set(listing(r, "", "*", "LSUB")) == {"Work/Projects/X", "INBOX"}
    _, done = r.cmd("UNSUBSCRIBE Home")
    assert done.name in ("OK", "NO")
    server.restart()
    r = server.raw("demo")
    assert set(listing(r, "", "*", "LSUB")) == {"Work/Projects/X", "INBOX"}, \
        "subscriptions must survive a restart"


def test_status(server):
    r = server.raw("demo")
    r.cmd_ok("CREATE S")
    u, _ = r.cmd_ok("STATUS S (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    assert len(u) == 1 and u[0].name == "STATUS"
    name, att = u[0].data
    assert name == "S"
    assert att["MESSAGES"] == 0 and att["UNSEEN"] == 0 and att["RECENT"] == 0
    empty_next = att["UIDNEXT"]
    for i, flags in enumerate(("\\Seen", "", "\\Seen \\Flagged", "")):
        append(r, "S", make_message("s%d" % i), flags=flags)
    u, _ = r.cmd_ok("STATUS S (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    _, att2 = u[0].data
    assert set(att2) == {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"}
    assert att2["MESSAGES"] == 4
    assert att2["UNSEEN"] == 2
    assert att2["RECENT"] == 4, "messages appended and not yet seen by a SELECT are \\Recent"
    assert att2["UIDVALIDITY"] == att["UIDVALIDITY"]
    assert att2["UIDNEXT"] >= empty_next + 4
    u, _ = r.cmd_ok("SELECT S")
    info = select_info(u)
    assert info["codes"]["UIDVALIDITY"] == att2["UIDVALIDITY"]
    assert info["codes"]["UIDNEXT"] == att2["UIDNEXT"]
    u, _ = r.cmd_ok("FETCH 4 UID")
    assert fetches(u)[4]["UID"] < att2["UIDNEXT"]
    u, _ = r.cmd_ok("STATUS S (MESSAGES UNSEEN)")
    assert u[0].data[1] == {"MESSAGES": 4, "UNSEEN": 2}, "only the items asked for"
    _, done = r.cmd("STATUS Missing (MESSAGES)")
    assert done.name == "NO"


def test_users_cannot_see_each_other(server):
    alice = server.raw("alice")
    alice.cmd_ok("CREATE Secret")
    append(alice, "Secret", make_message("alice's secret"))
    append(alice, "INBOX", make_message("alice's inbox"))
    bob = server.raw("bob")
    assert set(listing(bob, "", "*")) == {"INBOX"}
    for cmd in ("SELECT Secret", "EXAMINE Secret", "STATUS Secret (MESSAGES)", "DELETE Secret",
                "RENAME Secret Mine", 'SELECT "../alice/Secret"', 'SELECT "/alice/INBOX"',
                'SELECT "~alice/INBOX"', 'SELECT "alice/INBOX"'):
        _, done = bob.cmd(cmd)
        assert done.name in ("NO", "BAD"), "bob: %s -> %s" % (cmd, done.line)
    u, _ = bob.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 0
    bob.cmd_ok("CREATE Secret")
    u, _ = bob.cmd_ok("STATUS Secret (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 0
    u, _ = alice.cmd_ok("STATUS Secret (MESSAGES)")
    assert u[0].data[1]["MESSAGES"] == 1
    u, _ = alice.cmd_ok('LSUB "" *')
    _, done = bob.cmd('CREATE "../alice/Planted"')
    assert done.name in ("NO", "BAD")
    assert "Planted" not in " ".join(listing(alice, "", "*"))


@pytest.mark.picoimapd_only
def test_names_stay_inside_the_store(server):
    """Mailbox names never become paths outside the user's folder."""
    r = server.raw("demo")
    for name in ("../../escape", "a/../../escape", "/etc/escape", "..", ".", "a/./b", "a/../b"):
        _, done = r.cmd('CREATE "%s"' % name)
        assert done.name in ("NO", "BAD"), "CREATE %s -> %s" % (name, done.line)
    parent = os.path.dirname(server.store)
    assert not os.path.exists(os.path.join(parent, "escape"))
    assert not os.path.exists("/etc/escape")
    assert set(listing(r, "", "*")) == {"INBOX"}


def test_selected_mailbox_failed_select_deselects(server):
    """RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected."""
    r = server.raw("demo")
    r.cmd_ok("SELECT INBOX")
    _, done = r.cmd("SELECT Missing")
    assert done.name == "NO"
    _, done = r.cmd("FETCH 1:* FLAGS")
    assert done.name == "BAD", "still selected after a failed SELECT: " + done.line
