"""The store stays plain mboxrd that other tools read: after picoimapd
wrote, expunged and compacted, Dovecot's mbox driver (read from a copy of
the files) and mutt on the mbox file see the same messages with the same
flags, and Python's mailbox module parses every message."""
import imaplib
import mailbox
import os
import re
import shutil
import sys
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, free_port, make_message

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import dovecot  # noqa: E402

SUBJECTS = {
    "INBOX": [("one", "(\\Seen)"), ("two", "(\\Seen \\Flagged)"), ("three", "()"), ("four", "(\\Deleted)"),
              ("From line", "()")],
    "Archive2": [("five", "(\\Answered)"), ("six", "(\\Draft)")],
}


def picoimapd_view(imap, box):
    """{subject: flags} of a mailbox, through any IMAP server."""
    typ, _ = imap.select(box, readonly=True)
    assert typ == "OK"
    flags = {}
    typ, data = imap.fetch("1:*", "(FLAGS)")
    assert typ == "OK"
    for item in data:
        m = re.match(rb"(\d+) \(.*FLAGS \(([^)]*)\)", item if isinstance(item, bytes) else item[0])
        flags[int(m.group(1))] = set(f for f in m.group(2).decode().split() if f != "\\Recent")
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    out = {}
    for item in data:
        if isinstance(item, tuple):
            seq = int(item[0].split()[0])
            subj = item[1].decode().split(":", 1)[1].strip()
            out[subj] = flags[seq]
    return out


def populate(server):
    m = server.imap("demo")
    m.create("Archive2")
    for box, msgs in SUBJECTS.items():
        for subj, flags in msgs:
            body = "From here on the body has a From line.\r\n>From quoted\r\n" if subj == "From line" else None
            typ, _ = m.append(box, flags, None, make_message(subj, body=body))
            assert typ == "OK"
    m.select("INBOX")
    # A flag change after delivery lives only in the state log until the
    # compaction writes it into the mbox headers.
    m.store("1,3", "+FLAGS", "(\\Answered)")
    m.expunge()   # "four" goes
    want = {box: picoimapd_view(m, box) for box in SUBJECTS}
    m.logout()
    assert "four" not in want["INBOX"] and want["INBOX"]["three"] == {"\\Answered"}
    return want


@pytest.fixture
def compacted_store(server):
    want = populate(server)
    server.stop()
    r = subprocess.run([BINARY, "check", "-u", "demo", "--compact", "-c", server.conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    userdir = os.path.join(server.store, "demo")
    with open(os.path.join(userdir, "INBOX"), "rb") as f:
        raw = f.read()
    assert b"Subject: four" not in raw, "compaction left the expunged message"
    assert b">From here" in raw and b"\n>>From quoted" in raw, "mboxrd quoting"
    return want, userdir


def test_python_mailbox_reads_the_mbox(compacted_store):
    want, userdir = compacted_store
    for box in SUBJECTS:
        mb = mailbox.mbox(os.path.join(userdir, box), create=False)
        got = {}
        for msg in mb:
            flags = set()
            f = msg.get_flags()   # from Status / X-Status
            for ch, name in (("R", "\\Seen"), ("F", "\\Flagged"), ("A", "\\Answered"),
                             ("D", "\\Deleted"), ("T", "\\Draft")):
                if ch in f:
                    flags.add(name)
            got[msg["Subject"]] = flags
        assert got == want[box], box


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/sbin/dovecot"),
                    reason="needs root and dovecot-imapd")
def test_dovecot_mbox_driver_sees_the_same(compacted_store):
    want, userdir = compacted_store
    ref = tempfile.mkdtemp(prefix="picoimapd-dovecot-")
    try:
        os.chmod(ref, 0o755)
        mail = os.path.join(ref, "mail")
        shutil.copytree(userdir, mail, ignore=shutil.ignore_patterns(".*"))
        dovecot.chown_nobody(ref)
        port = free_port()
        pw = os.path.join(ref, "passwd")
        with open(pw, "w") as f:
            f.write("demo:{PLAIN}demo\n")
        conf = dovecot.write_conf(ref, port, pw, "mbox:{m}:INBOX={m}/INBOX:INDEX={d}/index".format(m=mail, d=ref),
                                  log="/dev/stderr")
        proc = dovecot.start(conf, port)
        try:
            d = imaplib.IMAP4("127.0.0.1", port)
            d.login("demo", "demo")
            got = {box: picoimapd_view(d, box) for box in SUBJECTS}
            d.logout()
        finally:
            log = dovecot.stop(proc)
        assert got == want, "Dovecot sees %r\nwe have %r\ndovecot log:\n%s" % (got, want, log[-3000:])
    finally:
        shutil.rmtree(ref, ignore_errors=True)


@pytest.mark.skipif(not shutil.which("mutt") or not shutil.which("tmux"), reason="needs mutt and tmux")
def test_mutt_reads_the_mbox(compacted_store, tmp_path):
    want, userdir = compacted_store
    rc = tmp_path / "muttrc"
    rc.write_text('set folder="%s"\nset spoolfile=""\nset index_format="%%Z~%%s~"\n'
                  'set mbox_type=mbox\nset read_only=yes\nset check_new=no\n' % tmp_path)
    sock = "picoimapd-mutt-%d" % os.getpid()
    env = dict(os.environ, HOME=str(tmp_path), TERM="xterm", MAIL="")
    path = os.path.join(userdir, "INBOX")
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "m", "-x", "160", "-y", "40",
                    "mutt -n -F %s -R -f %s" % (rc, path)], check=True, env=env)
    try:
        screen = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "-L", sock, "capture-pane", "-p", "-t", "m"],
                                    capture_output=True, text=True).stdout
            if all("~%s~" % s in screen for s in want["INBOX"]):
                break
            time.sleep(0.2)
        for subj, flags in want["INBOX"].items():
            line = next((ln for ln in screen.splitlines() if "~%s~" % subj in ln), None)
            assert line, "mutt does not show %r:\n%s" % (subj, screen)
            status = line.split("~")[0]
            assert ("!" in status) == ("\\Flagged" in flags), (subj, line)
            assert ("N" in status) == ("\\Seen" not in flags), (subj, line)
            if "\\Seen" in flags:   # mutt shows N before r
                assert ("r" in status) == ("\\Answered" in flags), (subj, line)
        assert "~four~" not in screen
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
