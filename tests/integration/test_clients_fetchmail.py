"""fetchmail pulls from an account on a second picoimapd and hands each
message to `picoimapd deliver` (its mda) for the local server's user.

Checked: the messages arrive, once, byte-for-byte bodies, in the local
user's INBOX (seen by a live IMAP session); the remote copies are gone
(fetchmail's default "no keep"); a second run finds no mail and
delivers nothing. Skipped while `picoimapd deliver` is not built."""

import os
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients"))
import clientlib as cl  # noqa: E402
import conftest  # noqa: E402

pytestmark = pytest.mark.skipif(not cl.have("fetchmail"), reason="fetchmail not installed")


def deliver_available():
    try:
        p = subprocess.run([conftest.BINARY, "deliver"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return "deliver" in (p.stdout + p.stderr) and "-u USER" in (p.stdout + p.stderr)


def test_fetchmail_to_deliver(server_factory, tmp_path):
    if not deliver_available():
        pytest.skip("`picoimapd deliver` is not available in this build yet")
    remote = server_factory(subdir="remote")
    local = server_factory(subdir="local")
    for k in range(3):
        cl.server_append(remote, "INBOX", cl.message("fm-%d" % k, body="body %d\r\n" % k), user="alice")
    # A session on the local server that should see them arrive.
    watcher = local.imap("demo")
    assert watcher.select("INBOX")[0] == "OK"

    home = str(tmp_path / "fmhome")
    os.makedirs(home)
    rc = os.path.join(home, "fetchmailrc")
    with open(rc, "w") as f:
        f.write("""set no bouncemail
set no syslog
poll {h} service {p} protocol IMAP auth password
    user "alice" there with password "alicepw" is "demo" here
    mda "{bin} deliver -u demo -c {conf}"
    no keep
    fetchall
    sslproto ''
""".format(h=remote.host, p=remote.port, bin=conftest.BINARY, conf=local.conf))
    os.chmod(rc, stat.S_IRUSR | stat.S_IWUSR)
    env = dict(os.environ, HOME=home)
    argv = ["fetchmail", "-f", rc, "--nodetach", "-v", "--pidfile", os.path.join(home, "pid"),
            "--idfile", os.path.join(home, "ids")]
    p = cl.run(argv, env=env, check=False, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, "fetchmail exited %d:\n%s" % (p.returncode, out[-5000:])

    st = cl.server_state(local, folders=["INBOX"])["INBOX"]
    assert set(st) == {"fm-0", "fm-1", "fm-2"}, (st, out[-3000:])
    typ, data = watcher.noop()
    assert typ == "OK"
    typ, data = watcher.fetch("1:*", "(BODY.PEEK[TEXT])")
    bodies = sorted(x[1] for x in data if isinstance(x, tuple))
    assert bodies == [b"body 0\r\n", b"body 1\r\n", b"body 2\r\n"], bodies
    assert cl.server_state(remote, user="alice", folders=["INBOX"])["INBOX"] == {}

    # Nothing left: exit status 1 ("no mail") and nothing delivered twice.
    p = cl.run(argv, env=env, check=False, timeout=120)
    assert p.returncode == 1, "second fetchmail run exited %d:\n%s" % (p.returncode, p.stdout + p.stderr)
    assert set(cl.server_state(local, folders=["INBOX"])["INBOX"]) == {"fm-0", "fm-1", "fm-2"}
