"""mutt, driven through tmux: open INBOX, read a message, flag it, save
(move) it to another folder, sync; then the server state is checked:
the message left INBOX and sits in the new folder with \\Seen and
\\Flagged, and the other message is untouched."""

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients"))
import clientlib as cl  # noqa: E402

pytestmark = pytest.mark.skipif(not (cl.have("mutt") and cl.have("tmux")),
                                reason="mutt or tmux not installed")


class Tmux:
    def __init__(self, name, argv, env):
        self.name = name
        self.sock = "picoimapd-test-%d" % os.getpid()
        subprocess.run(["tmux", "-L", self.sock, "new-session", "-d", "-s", name, "-x", "160",
                        "-y", "40", " ".join(argv)], check=True, env=env)

    def screen(self):
        return subprocess.run(["tmux", "-L", self.sock, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def keys(self, *keys):
        subprocess.run(["tmux", "-L", self.sock, "send-keys", "-t", self.name] + list(keys), check=True)

    def wait(self, text, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.1)
        raise AssertionError("mutt screen never showed %r:\n%s" % (text, self.screen()))

    def alive(self):
        return subprocess.run(["tmux", "-L", self.sock, "has-session", "-t", self.name],
                              capture_output=True).returncode == 0

    def kill(self):
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)


def test_mutt_read_flag_move(server, tmp_path):
    cl.server_append(server, "INBOX", cl.message("mutt-a", subject="first for mutt"))
    cl.server_append(server, "INBOX", cl.message("mutt-b", subject="second for mutt"))
    home = str(tmp_path)
    rc = os.path.join(home, "muttrc")
    with open(rc, "w") as f:
        f.write("""set folder="imap://demo@{h}:{p}/"
set spoolfile="+INBOX"
set imap_user=demo
set imap_pass=demo
set ssl_starttls=no
set ssl_force_tls=no
set confirmappend=no
set confirmcreate=no
set move=no
set delete=yes
set mark_old=no
set wait_key=no
set pager_stop=yes
set header_cache=""
set message_cachedir=""
set record=""
set sort=date
""".format(h=server.host, p=server.port))
    env = dict(os.environ, HOME=home, TERM="xterm", MAIL="", LANG="C.UTF-8")
    t = Tmux("mutt", ["mutt", "-n", "-F", rc], env)
    try:
        t.wait("second for mutt")
        # Limit the index to the one message, open it, back to the index.
        t.keys("l")
        t.wait("Limit to messages matching")
        t.keys("~i mutt-a@test", "Enter")
        t.wait("first for mutt")
        t.keys("Enter")
        t.wait("hello")
        t.keys("i")
        t.wait("first for mutt")
        t.keys("F")                     # flag
        time.sleep(0.3)
        t.keys("s")                     # save (copy + mark deleted)
        t.wait("Save to mailbox")
        t.keys("C-u", "=Saved", "Enter")
        time.sleep(0.5)
        t.keys("$")                     # sync: flags, deletion, expunge
        time.sleep(1.0)
        t.keys("q")
        deadline = time.monotonic() + 15
        while t.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not t.alive(), "mutt did not quit:\n" + t.screen()
    finally:
        screen = t.screen() if t.alive() else ""
        t.kill()
    st = cl.server_state(server, folders=["INBOX", "Saved"])
    assert set(st["INBOX"]) == {"mutt-b"}, (st, screen)
    assert set(st["Saved"]) == {"mutt-a"}, (st, screen)
    assert {"\\Seen", "\\Flagged"} <= st["Saved"]["mutt-a"], st
    assert "\\Seen" not in st["INBOX"]["mutt-b"], st
