"""offlineimap3: the same round trip as mbsync, through its UIDPLUS path.

With UIDPLUS offlineimap learns the UID of a message it uploads from
APPENDUID; without it, it writes an X-OfflineIMAP header into the
message to find it again. So the server copy must carry no such header.
A sync with nothing changed sends no APPEND, STORE, EXPUNGE or body fetch
(checked in its imap debug output)."""

import imaplib
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients"))
import clientlib as cl  # noqa: E402

pytestmark = pytest.mark.skipif(not cl.have("offlineimap"), reason="offlineimap3 not installed")

FOLDERS = {"INBOX": "INBOX", "Work": "Work", "Lists": "Lists"}


def rc(server, home):
    path = os.path.join(home, "offlineimaprc")
    with open(path, "w") as f:
        f.write("""[general]
accounts = pico
metadata = {h}/meta
ui = basic

[Account pico]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {h}/Mail

[Repository remote]
type = IMAP
remotehost = {host}
remoteport = {port}
remoteuser = demo
remotepass = demo
ssl = no
starttls = no
expunge = yes
maxconnections = 1
folderfilter = lambda f: f in ['INBOX', 'Work', 'Lists']
""".format(h=home, host=server.host, port=server.port))
    return path


def sync(conf):
    p = cl.run(["offlineimap", "-c", conf, "-o", "-d", "imap"], timeout=180)
    out = p.stdout + p.stderr
    assert "ERROR" not in out, out[-6000:]
    return out


# Commands as imaplib2 logs them: "... > b'ABCD5 UID STORE ..."
WRITES = re.compile(r"> b?'?[A-Z]+\d+ (UID STORE|STORE|APPEND|EXPUNGE|UID EXPUNGE|"
                    r"UID FETCH [^ ]+ \(BODY)")


def test_offlineimap_round_trip(server, tmp_path):
    home = str(tmp_path)
    md = os.path.join(home, "Mail")
    c = server.imap("demo")
    assert c.create("Work")[0] == "OK" and c.create("Lists")[0] == "OK"
    for f in FOLDERS:
        for k in range(2):
            cl.server_append(server, f, cl.message("%s-%d" % (f.lower(), k)))
    conf = rc(server, home)

    sync(conf)
    local = cl.maildir_state(md, FOLDERS)
    assert {f: set(b) for f, b in local.items()} == {
        f: {"%s-%d" % (f.lower(), k) for k in range(2)} for f in FOLDERS}, local

    # Changes on both sides.
    cl.server_append(server, "INBOX", cl.message("inbox-srv-new"))
    cl.server_do(server, "Work", lambda i: i.store(cl.seq_of(i, "work-0"), "+FLAGS", "\\Seen \\Flagged"))

    def srv_delete(i):
        i.store(cl.seq_of(i, "lists-0"), "+FLAGS", "\\Deleted")
        i.expunge()
    cl.server_do(server, "Lists", srv_delete)
    cl.maildir_deliver(md, "Work", cl.message("work-local-new"))
    cl.maildir_set_flags(cl.maildir_file(md, "INBOX", "inbox-0"), "RS")
    os.unlink(cl.maildir_file(md, "Lists", "lists-1"))

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

    # The UIDPLUS path: the uploaded message is byte-for-byte unmarked.
    i = imaplib.IMAP4(server.host, server.port)
    i.login("demo", "demo")
    i.select("Work", readonly=True)
    typ, data = i.fetch(cl.server_do(server, "Work", lambda x: cl.seq_of(x, "work-local-new")),
                        "(BODY.PEEK[HEADER])")
    assert typ == "OK"
    assert b"X-OfflineIMAP" not in data[0][1], data[0][1]
    i.logout()

    # Nothing changed: nothing transferred.
    trace = sync(conf)
    writes = WRITES.findall(trace)
    assert not writes, "idle sync sent %s\n%s" % (writes, trace[-4000:])
    assert cl.server_state(server, folders=list(FOLDERS)) == srv
    assert cl.maildir_state(md, FOLDERS) == local
