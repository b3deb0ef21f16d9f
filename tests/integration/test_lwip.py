"""picoimapd on lwIP (port/lwip, board lwip-tap), end to end.

The lwIP build (build-lwip/picoimapd-lwip, `make lwip`) runs in a network
namespace this test creates, attached to a TAP device there; Python's
imaplib and curl run inside the same namespace (`ip netns exec`). Nothing
leaves the namespace. Needs root and /dev/net/tun; skips otherwise.

$PICOIMAPD_LWIP names the binary; unset, the test runs `make lwip` first
(with SAN=1 inherited from `make test-asan`, that is the ASan+UBSan build
in build-lwip-asan/, and the server log must stay free of reports).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RUN = os.path.join(REPO, "board", "lwip-tap", "run.sh")
CLIENT = os.path.join(REPO, "tests", "boards", "lwip_client.py")
HOST = "10.213.7.2"          # lwIP's address inside the namespace
PY = "/usr/bin/python3"
BIG = 10 * 1024 * 1024
# Runs its own lwIP build, never a reference server.
pytestmark = pytest.mark.picoimapd_only

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: AddressSanitizer")


def _why_not():
    if os.geteuid() != 0:
        return "needs root (network namespace and TAP device)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if not shutil.which("ip"):
        return "no ip(8) (iproute2)"
    r = subprocess.run(["ip", "netns", "add", "pimap-probe-%d" % os.getpid()],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "cannot create a network namespace: " + r.stderr.strip()
    subprocess.run(["ip", "netns", "del", "pimap-probe-%d" % os.getpid()])
    return None


_built = []


def _binary():
    b = os.environ.get("PICOIMAPD_LWIP")
    if b:
        return b
    if _built:
        return _built[0]
    r = subprocess.run(["make", "--no-print-directory", "-C", REPO, "lwip"],
                       capture_output=True, text=True)
    assert r.returncode == 0, "make lwip failed:\n" + r.stdout[-3000:] + r.stderr[-3000:]
    built = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("built ")]
    assert built, r.stdout
    _built.append(os.path.join(REPO, built[-1]))
    return _built[0]


class LwipServer:
    def __init__(self, ns, workdir, binary):
        self.ns, self.dir, self.bin = ns, str(workdir), binary

    def up(self):
        r = subprocess.run(["sh", RUN, "up", "-n", self.ns, "-d", self.dir, "-b", self.bin],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(os.path.join(self.dir, "server.pid")) as f:
            self.pid = int(f.read())

    def down(self):
        subprocess.run(["sh", RUN, "down", "-n", self.ns, "-d", self.dir],
                       cwd=REPO, capture_output=True, text=True, timeout=60)

    def log(self):
        with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
            return f.read()[-6000:]

    def has_tls(self):
        with open(os.path.join(self.dir, "picoimapd.conf")) as f:
            return "listen_tls" in f.read()

    def netns(self, args, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("timeout", 300)
        return subprocess.run(["ip", "netns", "exec", self.ns] + args, **kw)

    def client(self, *args, timeout=300):
        r = self.netns([PY, CLIENT] + [str(a) for a in args], text=True, timeout=timeout)
        try:
            res = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = {"ok": False, "stdout": r.stdout, "stderr": r.stderr}
        assert r.returncode == 0 and res.get("ok"), \
            "%s: %s\nserver log:\n%s" % (args, res, self.log())
        return res

    def curl(self, *args):
        r = self.netns(["curl", "-sS", "--max-time", "60", "-u", "demo:demo"] + list(args))
        return r


@pytest.fixture(scope="module")
def lwip(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    srv = LwipServer("pimap-t%d" % os.getpid(), tmp_path_factory.mktemp("lwip"), _binary())
    srv.up()
    yield srv
    srv.down()
    log = srv.log()
    for marker in SANITIZER_MARKERS:
        assert marker not in log, log


def test_login(lwip):
    res = lwip.client("login", HOST)
    assert "IMAP4rev1" in res["caps"]
    assert any('"INBOX"' in b for b in res["boxes"])


def test_twenty_clients_at_once(lwip):
    lwip.client("many", HOST, 20)


def test_10mb_append_and_fetch_byte_for_byte(lwip):
    res = lwip.client("big", HOST, BIG)
    assert res["got"] == res["sent"] >= BIG


def test_client_that_does_not_read_stalls_nobody(lwip):
    res = lwip.client("stall", HOST, BIG)
    assert res["others_s"] < 20, res


def test_curl_list_append_fetch(lwip):
    if not shutil.which("curl"):
        pytest.skip("no curl")
    r = lwip.curl("-X", "CREATE curlbox", "imap://%s/" % HOST)
    assert r.returncode == 0, r.stderr
    r = lwip.curl("imap://%s/" % HOST)
    assert r.returncode == 0 and b'"curlbox"' in r.stdout, r.stdout + r.stderr
    msg = b"From: curl@example.org\r\nSubject: via lwIP\r\n\r\nhello over lwIP\r\n"
    path = os.path.join(lwip.dir, "curl.eml")
    with open(path, "wb") as f:
        f.write(msg)
    r = lwip.curl("-T", path, "imap://%s/curlbox" % HOST)
    assert r.returncode == 0, r.stderr
    r = lwip.curl("imap://%s/curlbox;UID=1" % HOST)
    assert r.returncode == 0 and r.stdout == msg, r.stdout + r.stderr


def test_tls_imaplib_and_curl(lwip):
    if not lwip.has_tls():
        pytest.skip("this build has no TLS (CONFIG_TLS=0 or no openssl)")
    lwip.client("login", HOST, 1)
    lwip.client("many", HOST, 20, 1)
    lwip.client("big", HOST, BIG, 1)
    r = lwip.curl("-k", "imaps://%s/" % HOST)
    assert r.returncode == 0 and b'"INBOX"' in r.stdout, r.stdout + r.stderr


def test_server_survives_and_logs_no_lwip_assertion(lwip):
    os.kill(lwip.pid, 0)
    assert "lwIP assertion" not in lwip.log()
    lwip.client("login", HOST)


def test_sigterm_sends_bye_and_exits(tmp_path):
    """At SIGTERM the core queues BYE for every client and exits; the port
    keeps lwIP running until those bytes are acknowledged."""
    why = _why_not()
    if why:
        pytest.skip(why)
    srv = LwipServer("pimap-s%d" % os.getpid(), tmp_path, _binary())
    srv.up()
    try:
        p = subprocess.Popen(["ip", "netns", "exec", srv.ns, PY, CLIENT, "idle_bye", HOST],
                             stdout=subprocess.PIPE, text=True)
        assert json.loads(p.stdout.readline())["ready"]
        time.sleep(0.2)
        os.kill(srv.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        res = json.loads(out.strip().splitlines()[-1])
        assert res["ok"], res
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(srv.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("server still running 10 s after SIGTERM\n" + srv.log())
        log = srv.log()
        assert "shutting down" in log
        for marker in SANITIZER_MARKERS:
            assert marker not in log, log
    finally:
        srv.down()
