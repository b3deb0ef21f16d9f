"""Another program rewrites a selected mailbox's mbox file in place (same
inode: an editor, formail, mutt syncing the folder) to a larger and to the
same size. The store notices, re-indexes from the mbox headers keeping
each UID whose X-UID still names the same message, and the selected
session is told: EXPUNGE for what changed or went, EXISTS for the new."""

import os
import re

import pytest

from conftest import fetches, make_message, select_info

pytestmark = pytest.mark.picoimapd_only


def from_lines(data):
    return [m.start() for m in re.finditer(rb"(?m)^From ", data)]


def rewrite(path, data):
    ino = os.stat(path).st_ino
    with open(path, "r+b") as f:       # in place: no new file, no truncation
        f.write(data)
    assert os.stat(path).st_ino == ino


def test_rewrite_in_place_under_a_session(server):
    r = server.raw("demo")
    msgs = [make_message("rewrite %d" % i, body="body %d\r\n" % i * (i + 1)) for i in (1, 2, 3)]
    for m in msgs:
        r.cmd_lit(["APPEND INBOX ", m, ""])
    u, _ = r.cmd_ok("SELECT INBOX")
    uidvalidity = select_info(u)["codes"]["UIDVALIDITY"]
    r.cmd_ok("UID STORE 3 +FLAGS (\\Flagged)")
    path = os.path.join(server.store, "demo", "INBOX")

    # 1. a header line added to message 2: the file grows, messages move
    data = open(path, "rb").read()
    starts = from_lines(data)
    assert len(starts) == 3
    at = data.index(b"Subject: rewrite 2\n", starts[1]) + len(b"Subject: rewrite 2\n")
    grown = data[:at] + b"X-Edited: yes\n" + data[at:]
    rewrite(path, grown)
    u, _ = r.cmd_ok("NOOP")
    assert [x.num for x in u if x.name == "EXPUNGE"] == [2]
    assert [x.num for x in u if x.name == "EXISTS"] == [3]
    u, _ = r.cmd_ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[])")
    got = {f["UID"]: f for f in fetches(u).values()}
    assert sorted(got) == [1, 3, 4]
    assert got[1]["BODY[]"] == msgs[0]
    assert got[3]["BODY[]"] == msgs[2]        # moved, same UID and flags
    assert "\\Flagged" in got[3]["FLAGS"]
    assert got[4]["BODY[]"] == msgs[1].replace(b"Subject: rewrite 2\r\n",
                                               b"Subject: rewrite 2\r\nX-Edited: yes\r\n")
    assert os.path.getsize(path) == len(grown)  # nothing cut off

    # 2. the same size: message 1 out, an outside message of its length in
    data = open(path, "rb").read()
    starts = from_lines(data)
    first = starts[1]
    head = b"From someone@example.org Mon Jan  1 10:00:00 2024\nSubject: same size\n\n"
    outside = head + b"y" * (first - len(head) - 2) + b"\n\n"
    same = data[first:] + outside
    assert len(same) == len(data)
    rewrite(path, same)
    u, _ = r.cmd_ok("NOOP")
    # UID 4 (seq 3: renumbered again, its X-UID header is stale) and UID 1
    assert [x.num for x in u if x.name == "EXPUNGE"] == [3, 1]
    u, _ = r.cmd_ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    got = {f["UID"]: f for f in fetches(u).values()}
    assert sorted(got) == [3, 5, 6]
    assert b"rewrite 3" in got[3]["BODY[HEADER.FIELDS (SUBJECT)]"]
    assert "\\Flagged" in got[3]["FLAGS"]
    assert b"same size" in got[6]["BODY[HEADER.FIELDS (SUBJECT)]"]

    # a new session, and one after a restart, see the same mailbox
    server.restart()
    r2 = server.raw("demo")
    u, _ = r2.cmd_ok("SELECT INBOX")
    info = select_info(u)
    assert info["exists"] == 3
    assert info["codes"]["UIDVALIDITY"] == uidvalidity
    u, _ = r2.cmd_ok("UID FETCH 1:* (UID FLAGS)")
    got = {f["UID"]: f for f in fetches(u).values()}
    assert sorted(got) == [3, 5, 6]
    assert "\\Flagged" in got[3]["FLAGS"]
