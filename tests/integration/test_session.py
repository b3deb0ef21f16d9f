"""Issue 2, "What must show", first bullet: an imaplib session whose
effects survive a restart; and the demo set-up that `make run` writes."""

import os
import re
import subprocess

import pytest

from conftest import REPO, make_message, ok, flagset


def select_uidvalidity(c, box):
    n = int(ok(c.select(box), "SELECT " + box)[0])
    typ, val = c.response("UIDVALIDITY")
    assert typ == "UIDVALIDITY" and val and val[0], "SELECT sent no [UIDVALIDITY n]"
    return n, int(val[0])


def test_imaplib_session_survives_restart(server):
    c = server.imap("demo")
    ok(c.create("Test"), "CREATE")
    msgs = [make_message("first message"),
            make_message("a five megabyte message", size=5 * 1024 * 1024),
            make_message("third message")]
    for m in msgs:
        ok(c.append("Test", None, None, m), "APPEND")

    n, uidvalidity = select_uidvalidity(c, "Test")
    assert n == 3
    got = c.fetch_dict("1:3", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    assert sorted(got) == [1, 2, 3]
    uids = [got[i]["UID"] for i in (1, 2, 3)]
    assert uids == sorted(uids) and len(set(uids)) == 3, "UIDs must ascend: %r" % uids
    for i, m in enumerate(msgs, 1):
        assert got[i]["BODY[]"] == m, "message %d did not come back byte for byte" % i
        assert got[i]["RFC822.SIZE"] == len(m)
        assert "\\SEEN" not in flagset(got[i]["FLAGS"]), "BODY.PEEK[] must not set \\Seen"

    ok(c.store("3", "+FLAGS", "(\\Seen)"), "STORE +FLAGS \\Seen")
    ok(c.store("1", "+FLAGS", "(\\Deleted)"), "STORE +FLAGS \\Deleted")
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"1"], "EXPUNGE should report message 1: %r" % data
    typ, _ = c.logout()
    assert typ == "BYE"

    server.restart()

    c = server.imap("demo")
    n, uidvalidity2 = select_uidvalidity(c, "Test")
    assert n == 2, "after restart the mailbox holds %d messages, expected 2" % n
    assert uidvalidity2 == uidvalidity, "UIDVALIDITY changed across a restart"
    got = c.fetch_dict("1:2", "(UID FLAGS BODY.PEEK[])")
    assert [got[1]["UID"], got[2]["UID"]] == uids[1:]
    assert got[1]["BODY[]"] == msgs[1]
    assert got[2]["BODY[]"] == msgs[2]
    assert flagset(got[1]["FLAGS"]) == set()
    assert flagset(got[2]["FLAGS"]) == {"\\SEEN"}
    c.logout()


def test_uids_not_reused_after_expunge_and_restart(server):
    """DESIGN.md store invariant 5: no UID is ever reused."""
    c = server.imap("demo")
    for i in range(3):
        ok(c.append("INBOX", None, None, make_message("m%d" % i)))
    ok(c.select("INBOX"))
    last = c.fetch_dict("3", "(UID)")[3]["UID"]
    ok(c.store("3", "+FLAGS", "(\\Deleted)"))
    ok(c.expunge())
    c.logout()
    server.restart()
    c = server.imap("demo")
    ok(c.append("INBOX", None, None, make_message("after restart")))
    ok(c.select("INBOX"))
    typ, val = c.response("UIDNEXT")
    got = c.fetch_dict("1:*", "(UID)")
    assert len(got) == 3
    assert got[3]["UID"] > last, "UID %d reused (last expunged UID was %d)" % (got[3]["UID"], last)
    c.logout()


def test_flags_survive_restart(server):
    c = server.imap("alice")
    for i in range(4):
        ok(c.append("INBOX", None, None, make_message("f%d" % i)))
    ok(c.select("INBOX"))
    ok(c.store("1", "+FLAGS", "(\\Flagged \\Answered)"))
    ok(c.store("2", "FLAGS", "(\\Draft)"))
    ok(c.store("3", "+FLAGS", "(\\Seen \\Deleted)"))
    ok(c.store("3", "-FLAGS", "(\\Deleted)"))
    before = c.fetch_dict("1:4", "(UID FLAGS)")
    c.logout()
    server.restart()
    c = server.imap("alice")
    ok(c.select("INBOX"))
    after = c.fetch_dict("1:4", "(UID FLAGS)")
    for i in range(1, 5):
        assert after[i]["UID"] == before[i]["UID"]
        assert flagset(after[i]["FLAGS"]) == flagset(before[i]["FLAGS"]), i
    assert flagset(after[1]["FLAGS"]) == {"\\FLAGGED", "\\ANSWERED"}
    assert flagset(after[2]["FLAGS"]) == {"\\DRAFT"}
    assert flagset(after[3]["FLAGS"]) == {"\\SEEN"}
    assert flagset(after[4]["FLAGS"]) == set()
    c.logout()


@pytest.mark.picoimapd_only
def test_demo_setup_serves_demo_user(server_factory, tmp_path):
    """board/tools/demo.sh (what `make run` uses) writes a config and users
    file that the server accepts; demo/demo logs in; the store is created
    where the config says, relative to the config file."""
    work = tmp_path / "clone"
    work.mkdir()
    subprocess.run(["sh", os.path.join(REPO, "board/tools/demo.sh")], cwd=work, check=True,
                   capture_output=True)
    conf = work / "demo" / "picoimapd.conf"
    text = conf.read_text()
    assert re.search(r"^listen = 127\.0\.0\.1:1143$", text, re.M)
    assert (work / "demo" / "passwd").read_text() == "demo:{PLAIN}demo\n"
    # A second run must not overwrite local edits.
    conf.write_text(text + "# local edit\n")
    subprocess.run(["sh", os.path.join(REPO, "board/tools/demo.sh")], cwd=work, check=True,
                   capture_output=True)
    assert conf.read_text().endswith("# local edit\n")

    s = server_factory(start=False)
    conf.write_text(text.replace("127.0.0.1:1143", "127.0.0.1:%d" % s.port))
    s.conf = str(conf)
    s.store = str(work / "demo" / "mail")
    s.start()
    c = s.imap("demo", "demo")
    ok(c.append("INBOX", None, None, make_message("demo")))
    ok(c.select("INBOX"))
    c.logout()
    assert os.path.isdir(s.store), "store not created at demo/mail (relative to the config)"
