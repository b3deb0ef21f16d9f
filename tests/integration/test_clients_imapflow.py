"""imapflow (npm): login, list, fetch; IDLE sees a message another client
appends within a second; a CONDSTORE/QRESYNC resync after changes made
while it was offline yields exactly the changed and vanished UIDs.

imapflow is installed into tests/clients/node_modules on first use
(`npm install imapflow`); the tests skip, saying why, only when node is
missing or the npm registry cannot be reached."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients"))
import clientlib as cl  # noqa: E402

pytestmark = pytest.mark.skipif(not cl.have("node"), reason="node is not installed")

SCRIPT = os.path.join(cl.CLIENTS, "imapflow_check.js")
_ready = None


def need_imapflow():
    global _ready
    if _ready is None:
        if os.path.isdir(os.path.join(cl.CLIENTS, "node_modules", "imapflow")):
            _ready = ""
        elif not cl.have("npm"):
            _ready = "npm is not installed"
        else:
            p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "imapflow"],
                               cwd=cl.CLIENTS, capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                out = p.stdout + p.stderr
                if any(s in out for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT",
                                          "ENETUNREACH", "network")):
                    _ready = "npm registry unreachable: " + out.strip().splitlines()[-1]
                else:
                    raise AssertionError("npm install imapflow failed:\n" + out)
            else:
                _ready = ""
    if _ready:
        pytest.skip(_ready)


def flow(server, *args):
    need_imapflow()
    p = cl.run(["node", SCRIPT, args[0], server.host, str(server.port)] + list(args[1:]),
               cwd=cl.CLIENTS, timeout=60)
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_imapflow_basic_and_idle(server):
    c = server.imap("demo")
    assert c.create("Work")[0] == "OK"
    for k in range(3):
        cl.server_append(server, "INBOX", cl.message("m%d" % k, subject="subject %d" % k))
    r = flow(server, "basic")
    assert "INBOX" in r["list"] and "Work" in r["list"], r
    assert r["subjects"] == ["subject 0", "subject 1", "subject 2"], r
    assert r["idleCount"] == 4, r
    assert r["idleMs"] < 1000, "IDLE push took %d ms" % r["idleMs"]
    assert "pushed" in cl.server_state(server, folders=["INBOX"])["INBOX"]


def has_qresync(server):
    r = server.raw("demo")
    u, _ = r.cmd_ok("CAPABILITY")
    caps = [x for x in u if x.name == "CAPABILITY"][0].data
    r.close()
    return "QRESYNC" in [c.upper() for c in caps]


def test_imapflow_qresync_resync(server):
    if not has_qresync(server):
        pytest.xfail("server does not advertise QRESYNC yet (CONDSTORE/QRESYNC in progress)")
    for k in range(6):
        cl.server_append(server, "INBOX", cl.message("q%d" % k))
    st = flow(server, "state")
    assert "QRESYNC" in st["enabled"], st
    assert st["highestModseq"], st
    uids = st["uids"]
    assert len(uids) == 6
    # Offline: flags change on two messages, two are expunged.
    changed, gone = uids[1:3], uids[3:5]

    def offline(i):
        i.uid("STORE", ",".join(map(str, changed)), "+FLAGS", "(\\Flagged)")
        i.uid("STORE", ",".join(map(str, gone)), "+FLAGS", "(\\Deleted)")
        i.expunge()
    cl.server_do(server, "INBOX", offline)
    r = flow(server, "resync", st["uidValidity"], st["highestModseq"])
    assert r["qresync"], r
    assert r["vanished"] == sorted(gone), r
    assert sorted(x["uid"] for x in r["changed"]) == sorted(changed), r
    for x in r["changed"]:
        assert "\\Flagged" in x["flags"], r


def test_imapflow_qresync_nothing_changed(server):
    """A resync from the current HIGHESTMODSEQ reports nothing: no message
    expunged before that point may come back as VANISHED (EARLIER)."""
    if not has_qresync(server):
        pytest.xfail("server does not advertise QRESYNC yet (CONDSTORE/QRESYNC in progress)")
    for k in range(6):
        cl.server_append(server, "INBOX", cl.message("q%d" % k))

    def expunge_two(i):
        i.store("4:5", "+FLAGS", "(\\Deleted)")
        i.expunge()
    cl.server_do(server, "INBOX", expunge_two)
    st2 = flow(server, "state")
    r2 = flow(server, "resync", st2["uidValidity"], st2["highestModseq"])
    assert r2["vanished"] == [] and r2["changed"] == [], r2
