"""mbsync (isync): two-way sync of a local Maildir with three folders.

New mail, flag changes and deletions made on either side arrive on the
other; a further sync with nothing changed sends no APPEND, STORE,
EXPUNGE or message fetch (checked in mbsync's protocol trace, -Dn) and
leaves every file alone."""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients"))
import clientlib as cl  # noqa: E402

pytestmark = pytest.mark.skipif(not cl.have("mbsync"), reason="mbsync (isync) not installed")

FOLDERS = {"INBOX": "INBOX", "Work": "Work", "Lists": "Lists"}


def rc(server, home):
    path = os.path.join(home, "mbsyncrc")
    with open(path, "w") as f:
        f.write("""IMAPAccount pico
Host {h}
Port {p}
User demo
Pass demo
SSLType None
AuthMechs LOGIN
Timeout 30

IMAPStore far
Account pico

MaildirStore near
Path {m}/
Inbox {m}/INBOX
SubFolders Verbatim

Channel pico
Far :far:
Near :near:
Patterns INBOX Work Lists
Create Both
Expunge Both
SyncState *
""".format(h=server.host, p=server.port, m=os.path.join(home, "Maildir")))
    return path


def sync(conf):
    p = cl.run(["mbsync", "-c", conf, "-Dn", "pico"], timeout=120)
    return p.stdout + p.stderr


# Client lines in the -Dn trace look like ">>> 7 UID STORE ...".
WRITES = re.compile(r"^>>> \d+ (UID STORE|STORE|APPEND|EXPUNGE|UID EXPUNGE|UID FETCH \S+ \(?[^)]*BODY)",
                    re.M)


def snapshot(root):
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def test_mbsync_round_trip(server, tmp_path):
    home = str(tmp_path)
    md = os.path.join(home, "Maildir")
    os.makedirs(md)
    c = server.imap("demo")
    cl_ok = lambda r: r[0] == "OK"  # noqa: E731
    assert cl_ok(c.create("Work")) and cl_ok(c.create("Lists"))
    for f in FOLDERS:
        for k in range(2):
            cl.server_append(server, f, cl.message("%s-%d" % (f.lower(), k)))
    conf = rc(server, home)

    # 1. First sync: everything arrives locally.
    sync(conf)
    local = cl.maildir_state(md, FOLDERS)
    assert {f: set(b) for f, b in local.items()} == {
        f: {"%s-%d" % (f.lower(), k) for k in range(2)} for f in FOLDERS}, local

    # 2. Changes on the server side.
    cl.server_append(server, "INBOX", cl.message("inbox-srv-new"))
    cl.server_do(server, "Work", lambda i: i.store(cl.seq_of(i, "work-0"), "+FLAGS", "\\Seen \\Flagged"))

    def srv_delete(i):
        i.store(cl.seq_of(i, "lists-0"), "+FLAGS", "\\Deleted")
        i.expunge()
    cl.server_do(server, "Lists", srv_delete)

    # ... and on the local side.
    cl.maildir_deliver(md, "Work", cl.message("work-local-new"))
    cl.maildir_set_flags(cl.maildir_file(md, "INBOX", "inbox-0"), "RS")
    os.unlink(cl.maildir_file(md, "Lists", "lists-1"))

    # 3. Second sync: both sides agree.
    sync(conf)
    srv = cl.server_state(server, folders=list(FOLDERS))
    local = cl.maildir_state(md, FOLDERS)
    want_ids = {
        "INBOX": {"inbox-0", "inbox-1", "inbox-srv-new"},
        "Work": {"work-0", "work-1", "work-local-new"},
        "Lists": set(),
    }
    assert {f: set(b) for f, b in srv.items()} == want_ids, srv
    assert {f: set(b) for f, b in local.items()} == want_ids, local
    assert {"\\Seen", "\\Answered"} <= srv["INBOX"]["inbox-0"], srv
    assert {"S", "F"} <= local["Work"]["work-0"], local
    for f in FOLDERS:
        for mid, flags in srv[f].items():
            assert cl.flags_as_letters(flags) == local[f][mid], (f, mid, flags, local[f][mid])

    # 4. A sync with nothing changed transfers nothing.
    before = snapshot(md)
    trace = sync(conf)
    writes = WRITES.findall(trace)
    assert not writes, "idle sync sent %s\n%s" % (writes, trace[-4000:])
    assert snapshot(md) - {p for p in snapshot(md) if ".mbsyncstate" in p} == \
        before - {p for p in before if ".mbsyncstate" in p}
    assert cl.server_state(server, folders=list(FOLDERS)) == srv
