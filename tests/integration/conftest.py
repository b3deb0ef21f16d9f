"""Fixtures for integration tests: the real picoimapd binary on a free
loopback port, with a fresh store and users file per test.

    def test_x(server):
        c = server.imap("demo")           # imaplib client, logged in
        r = server.raw()                  # raw protocol client, greeting read
        untagged, done = r.cmd("NOOP")    # send "<tag> NOOP", read to tagged
        server.restart()                  # SIGTERM, exit 0, start again

The binary comes from $PICOIMAPD (the Makefile sets it; build/picoimapd
when unset). Every byte any client receives is checked against RFC 3501's
formal syntax (imapsyntax.py). On teardown the server gets SIGTERM and
must exit 0 without a sanitizer report in its log.
"""

import imaplib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import imapsyntax  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BINARY = os.environ.get("PICOIMAPD") or os.path.join(REPO, "build", "picoimapd")

# Under ASan every step is a few times slower; keep waits generous.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
IO_TIMEOUT = float(os.environ.get("PICOIMAPD_IO_TIMEOUT", "30"))

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: AddressSanitizer")

USERS = {"demo": "demo", "alice": "alicepw", "bob": "bobpw"}
_bob_hash = None


def sha512_crypt(password, salt="picoimapdsalt"):
    out = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, password],
                         check=True, capture_output=True, text=True)
    h = out.stdout.strip()
    assert h.startswith("$6$"), h
    return h


def passwd_lines():
    global _bob_hash
    if _bob_hash is None:
        _bob_hash = sha512_crypt(USERS["bob"])
    return ["demo:{PLAIN}demo",
            "alice:{PLAIN}alicepw",
            "bob:{SHA512-CRYPT}" + _bob_hash]


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- clients

class ConnectionClosed(Exception):
    def __init__(self, msg, responses):
        super().__init__(msg)
        self.responses = responses


class Raw:
    """A protocol-level client. Every response read is parsed strictly;
    syntax errors raise imapsyntax.ImapSyntaxError at once."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, greeting=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.ntag = 0
        self.transcript = []         # (direction, bytes) for failure messages
        self.greeting = None
        self.eof = False
        self.utf8_names = False      # set after ENABLE IMAP4rev2 / UTF8=ACCEPT
        if greeting:
            self.greeting = self.read_response(greeting=True)

    # -- sending --
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(("C", data[:300]))
        self.sock.sendall(data)

    def tag(self):
        self.ntag += 1
        return "t%d" % self.ntag

    # -- receiving --
    def _fill(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(1 << 20)
        finally:
            if timeout is not None:
                self.sock.settimeout(IO_TIMEOUT)
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_response(self, greeting=False, timeout=None):
        """Read one whole response (literals included), parse and return it.
        Raises ConnectionClosed on EOF, socket.timeout on timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else IO_TIMEOUT)
        while True:
            n = imapsyntax.response_length(self.buf)
            if n is not None:
                data, self.buf = self.buf[:n], self.buf[n:]
                self.transcript.append(("S", data[:300]))
                try:
                    return imapsyntax.Parser(data, utf8_names=getattr(self, "utf8_names", False)).response(greeting=greeting)
                except imapsyntax.ImapSyntaxError as e:
                    raise imapsyntax.ImapSyntaxError(
                        "%s\ntranscript:\n%s" % (e, self.dump())) from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete response; have %r\n%s"
                                     % (self.buf[:200], self.dump()))
            if self.eof or not self._fill(timeout=left):
                raise ConnectionClosed("server closed the connection "
                                       "(partial: %r)\n%s" % (self.buf[:200], self.dump()), [])

    def read_until_tagged(self, tag, timeout=None):
        """Responses up to and including the one tagged `tag`.
        Returns (untagged_and_continuations, tagged)."""
        got = []
        while True:
            try:
                r = self.read_response(timeout=timeout)
            except ConnectionClosed as e:
                e.responses = got
                raise
            if r.kind == "tagged":
                assert r.tag == tag, "tagged response for %s while waiting for %s\n%s" % (
                    r.tag, tag, self.dump())
                return got, r
            got.append(r)

    def cmd(self, line, timeout=None):
        """Send '<tag> line' and read through its tagged response."""
        t = self.tag()
        self.send("%s %s\r\n" % (t, line) if isinstance(line, str)
                  else t.encode() + b" " + line + b"\r\n")
        return self.read_until_tagged(t, timeout=timeout)

    def cmd_ok(self, line, timeout=None):
        u, done = self.cmd(line, timeout=timeout)
        assert done.name == "OK", "%s -> %s\n%s" % (line, done.line, self.dump())
        return u, done

    def cmd_lit(self, parts, timeout=None, plus=False):
        """Send a command with literals: parts alternates str (command text)
        and bytes (literal data), e.g. ["APPEND INBOX ", b"msg", ""].
        Synchronizing literals wait for the '+' continuation (plus=False);
        LITERAL+ ones ({n+}) do not. Returns (untagged, tagged); if the
        server answers a literal announcement with a tagged response instead
        of '+', that response is returned at once."""
        t = self.tag()
        pending = t + " "
        for i, p in enumerate(parts):
            if isinstance(p, str):
                pending += p
                continue
            self.send(pending.encode("latin-1") + b"{%d%s}\r\n" % (len(p), b"+" if plus else b""))
            pending = ""
            if not plus:
                r = self.read_response(timeout=timeout)
                if r.kind == "tagged":
                    assert r.tag == t, r.line
                    return [], r
                assert r.kind == "cont", "expected '+' for a literal, got %s" % r.line
            self.send(p)
        self.send(pending.encode("latin-1") + b"\r\n")
        return self.read_until_tagged(t, timeout=timeout)

    def login(self, user, password=None):
        if password is None:
            password = USERS[user]
        return self.cmd_ok("LOGIN %s %s" % (quote(user), quote(password)))

    def expect_closed(self, timeout=10.0):
        """Read until EOF (responses before it are returned, parsed)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.read_response(timeout=max(0.01, deadline - time.monotonic())))
            except ConnectionClosed:
                return got
            except (ConnectionResetError, BrokenPipeError):
                return got
            except socket.timeout:
                raise AssertionError("connection still open after %.0f s\n%s"
                                     % (timeout, self.dump()))

    def dump(self):
        out = []
        for d, b in self.transcript[-40:]:
            out.append("%s: %r" % (d, b))
        return "\n".join(out)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class CheckedIMAP4(imaplib.IMAP4):
    """imaplib client that keeps every byte the server sends, so the whole
    conversation can be checked against the RFC 3501 grammar."""

    def __init__(self, host, port, timeout=IO_TIMEOUT):
        self.received = bytearray()
        super().__init__(host, port, timeout=timeout)

    def read(self, size):
        d = super().read(size)
        self.received += d
        return d

    def readline(self):
        d = super().readline()
        self.received += d
        return d

    def responses_since(self, mark):
        """Parsed responses received since len(self.received) was mark."""
        p = imapsyntax.Parser(bytes(self.received[mark:]))
        out = []
        while not p.at_end():
            out.append(p.response())
        return out

    def fetch_dict(self, msgset, items, uid=False):
        """FETCH (or UID FETCH) through imaplib; returns {seq: {ATT: value}}
        parsed strictly from the wire."""
        mark = len(self.received)
        if uid:
            typ, data = self.uid("FETCH", msgset, items)
        else:
            typ, data = self.fetch(msgset, items)
        assert typ == "OK", "FETCH %s %s: %s %r" % (msgset, items, typ, data)
        return fetches(self.responses_since(mark))

    def check_syntax(self):
        data = bytes(self.received)
        # A conversation cut short (server shut down) may end mid-response.
        end, pos = 0, 0
        while True:
            n = imapsyntax.response_length(data[pos:])
            if n is None:
                break
            pos += n
            end = pos
        return imapsyntax.parse_stream(data[:end])


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ok(typ_data, what=""):
    """Assert an imaplib (typ, data) result is OK and return data."""
    typ, data = typ_data
    assert typ == "OK", "%s: %s %r" % (what, typ, data)
    return data


# ---------------------------------------------------------------- server

class Server:
    def __init__(self, workdir, extra_passwd=(), extra_conf=(), passwd=None):
        self.dir = str(workdir)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.store = os.path.join(self.dir, "mail")
        self.conf = os.path.join(self.dir, "picoimapd.conf")
        self.passwd = os.path.join(self.dir, "passwd")
        self.proc = None
        self.starts = 0
        self.retries = 0
        self.logs = []
        self.clients = []
        self.raws = []
        with open(self.passwd, "w") as f:
            lines = list(passwd) if passwd is not None else passwd_lines()
            f.write("\n".join(lines + list(extra_passwd)) + "\n")
        with open(self.conf, "w") as f:
            f.write("# written by tests/integration/conftest.py\n"
                    "listen = %s:%d\n"
                    "store = mail\n"
                    "passwd = passwd\n"
                    "log = stderr\n"
                    "log_level = debug\n"
                    "allow_plaintext = yes\n"
                    # Tests expect a new user to have only INBOX; the
                    # special-use folders are tested with this turned on.
                    "special_folders = no\n" % (self.host, self.port))
            if os.geteuid() == 0:   # CI runs as root; the server refuses that unless told
                f.write("allow_root = yes\n")
            for line in extra_conf:
                f.write(line + "\n")

    # -- life cycle --
    def start(self):
        assert self.proc is None
        if not os.access(BINARY, os.X_OK):
            pytest.fail("no server binary at %s (set PICOIMAPD or run make)" % BINARY)
        log = os.path.join(self.dir, "stderr.%d.log" % self.starts)
        self.logs.append(log)
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        with open(log, "wb") as errf:
            self.proc = subprocess.Popen([BINARY, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=errf, stderr=subprocess.STDOUT,
                                         cwd=self.dir, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                text = self.log_text()
                if "in use" in text and self.starts == 1 and self.retries < 3:
                    self.retries += 1
                    if self._move_port():
                        # Another test grabbed our "free" port first: take
                        # a new one (first start only; restart keeps it).
                        self.logs.pop()
                        self.starts = 0
                        return self.start()
                pytest.fail("picoimapd exited with %s at start-up:\n%s" % (rc, text))
            try:
                # Ready means our server greets: a bare connect could reach
                # another process that holds the port we thought free.
                s = socket.create_connection((self.host, self.port), timeout=1)
                try:
                    s.settimeout(2)
                    greeting = s.recv(4096)
                finally:
                    s.close()
                if greeting.startswith(b"* ") and self.proc.poll() is None:
                    return self
                time.sleep(0.05)
                if time.monotonic() > deadline:
                    pytest.fail("no greeting from %s:%d (got %r):\n%s"
                                % (self.host, self.port, greeting[:100], self.log_text()))
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("picoimapd did not accept on %s:%d within %.0f s:\n%s"
                                % (self.host, self.port, START_TIMEOUT, self.log_text()))
                time.sleep(0.05)

    def _move_port(self):
        try:
            with open(self.conf) as f:
                text = f.read()
        except OSError:
            return False
        old = "listen = %s:%d" % (self.host, self.port)
        if old not in text:
            return False
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(text.replace(old, "listen = %s:%d" % (self.host, self.port)))
        return True

    def stop(self, check=True):
        """SIGTERM and wait. With check: exit status 0, no sanitizer report."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            if check:
                pytest.fail("picoimapd did not exit within %.0f s of SIGTERM:\n%s"
                            % (STOP_TIMEOUT, self.log_text()))
            return None
        self.proc = None
        if check:
            self.check_log()
            assert rc == 0, "picoimapd exited with status %s after SIGTERM:\n%s" % (
                rc, self.log_text())
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, tail=12000):
        out = []
        for path in self.logs:
            try:
                with open(path, "rb") as f:
                    out.append("---- %s ----\n" % os.path.basename(path)
                               + f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        text = "\n".join(out)
        return text if len(text) <= tail else "[...]\n" + text[-tail:]

    def check_log(self):
        text = self.log_text(tail=10 ** 9)
        for m in SANITIZER_MARKERS:
            assert m not in text, "sanitizer report in picoimapd's log:\n" + self.log_text()

    # -- clients --
    def imap(self, user=None, password=None):
        c = CheckedIMAP4(self.host, self.port)
        self.clients.append(c)
        if user is not None:
            ok(c.login(user, password if password is not None else USERS[user]), "LOGIN")
        return c

    def raw(self, user=None, password=None, greeting=True, timeout=IO_TIMEOUT):
        r = Raw(self.host, self.port, timeout=timeout, greeting=greeting)
        self.raws.append(r)
        if user is not None:
            r.login(user, password)
        return r

    def assert_serving(self, user="demo"):
        """A fresh client can log in and get answers: the server lives."""
        assert self.alive(), "picoimapd died:\n" + self.log_text()
        r = self.raw(user)
        r.cmd_ok("NOOP")
        r.cmd_ok("LIST \"\" INBOX")
        u, done = r.cmd("LOGOUT")
        assert any(x.name == "BYE" for x in u), "LOGOUT without * BYE"
        assert done.name == "OK"
        r.close()

    def finish(self):
        errors = []
        for c in self.clients:
            try:
                c.check_syntax()
            except imapsyntax.ImapSyntaxError as e:
                errors.append("imaplib client got a malformed response: %s" % e)
        for c in self.clients:
            try:
                c.shutdown()
            except Exception:
                pass
        for r in self.raws:
            r.close()
        self.stop(check=True)
        assert not errors, "\n".join(errors)


class DovecotServer(Server):
    """Reference mode (PICOIMAPD_REFERENCE=dovecot): the same tests against
    Dovecot's imapd, to tell a test bug from a server bug. Not part of
    `make test`. Needs root and the dovecot-imapd package."""

    def __init__(self, workdir, **kw):
        import tempfile
        super().__init__(workdir, **kw)
        # Dovecot's mail processes run as nobody, who cannot enter pytest's
        # private tmp folders: keep its files in a world-readable one.
        self.refdir = tempfile.mkdtemp(prefix="picoimapd-ref-")
        os.chmod(self.refdir, 0o755)
        self.store = os.path.join(self.refdir, "mail")
        os.mkdir(self.store)
        os.chown(self.store, 65534, 65534)
        pw = os.path.join(self.refdir, "passwd")
        with open(self.passwd) as src, open(pw, "w") as dst:
            dst.write(src.read())
        self.conf = os.path.join(self.refdir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""base_dir = {d}/run
state_dir = {d}/state
log_path = /dev/stderr
info_log_path = /dev/stderr
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 1s
first_valid_uid = 100
mail_uid = 65534
mail_gid = 65534
passdb {{
  driver = passwd-file
  args = {pw}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={m}/%u
}}
mail_location = maildir:{m}/%u/Maildir:LAYOUT=fs
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
  process_min_avail = 1
}}
service anvil {{
  chroot =
}}
""".format(d=self.refdir, pw=pw, m=self.store, port=self.port))

    def start(self):
        global BINARY
        saved = BINARY
        BINARY = "/usr/sbin/dovecot"
        real_popen = subprocess.Popen

        def popen(argv, **kw):
            return real_popen(["/usr/sbin/dovecot", "-F", "-c", self.conf], **kw)
        subprocess.Popen = popen
        try:
            return super().start()
        finally:
            subprocess.Popen = real_popen
            BINARY = saved

    def stop(self, check=True):
        super().stop(check=False)  # Dovecot exits nonzero on SIGTERM


REFERENCE = os.environ.get("PICOIMAPD_REFERENCE", "")


@pytest.fixture
def server_factory(tmp_path):
    """Make (and start) servers with custom users or config lines."""
    made = []

    def make(start=True, subdir=None, **kw):
        d = tmp_path / (subdir or ("srv%d" % len(made)))
        d.mkdir()
        s = (DovecotServer if REFERENCE == "dovecot" else Server)(d, **kw)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    failures = []
    for s in made:
        try:
            s.finish()
        except BaseException as e:  # collect every server's verdict
            failures.append(str(e))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def server(server_factory):
    return server_factory()


# ---------------------------------------------------------------- messages

def make_message(subject, body=None, size=None, frm="sender@example.org",
                 to="demo@example.org", extra_headers=()):
    """An RFC 5322 message with CRLF line ends. With size, the body is
    padded with printable lines to make the whole message exactly size
    bytes (if size allows)."""
    hdr = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n"
           "Date: Mon, 05 Jan 2026 10:00:00 +0000\r\n"
           "Message-ID: <%s@test.picoimapd>\r\n" % (frm, to, subject,
                                                    re.sub(r"[^A-Za-z0-9]", ".", subject)))
    for h in extra_headers:
        hdr += h + "\r\n"
    hdr += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    head = hdr.encode()
    if body is None:
        body = ("This is %s.\r\n" % subject).encode()
    elif isinstance(body, str):
        body = body.encode()
    if size is not None:
        need = size - len(head) - len(body)
        assert need >= 0, "message header already larger than size"
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_=+!%$#@0123\r\n"
        k = need // len(line)
        rest = need - k * len(line)
        if rest == 1 and k > 0:
            k, rest = k - 1, rest + len(line)
        pad = line * k
        if rest >= 2:
            pad += b"x" * (rest - 2) + b"\r\n"
        elif rest == 1:
            pad += b"x"
        body = body + pad
        assert len(head) + len(body) == size
    return head + body


def pytest_configure(config):
    config.addinivalue_line("markers", "picoimapd_only: checks picoimapd's own limits "
                            "or files; skipped when PICOIMAPD_REFERENCE is set")


def pytest_collection_modifyitems(config, items):
    if not REFERENCE:
        return
    skip = pytest.mark.skip(reason="picoimapd-specific; reference server is " + REFERENCE)
    for item in items:
        if "picoimapd_only" in item.keywords:
            item.add_marker(skip)


def select_info(untagged):
    """Collect SELECT/EXAMINE untagged data into a dict."""
    info = {"codes": {}}
    for r in untagged:
        if r.name == "FLAGS":
            info["flags"] = r.data
        elif r.name in ("EXISTS", "RECENT"):
            info[r.name.lower()] = r.num
        elif r.name == "OK" and r.code:
            info["codes"][r.code] = r.code_arg
    return info


def fetches(untagged):
    """{seq: merged msg-att dict} from untagged FETCH responses."""
    out = {}
    for r in untagged:
        if r.kind == "untagged" and r.name == "FETCH":
            out.setdefault(r.num, {}).update(r.data)
    return out


def search_result(untagged):
    res = [r for r in untagged if r.name == "SEARCH"]
    assert len(res) == 1, "expected exactly one * SEARCH, got %r" % untagged
    return sorted(res[0].data)


def flagset(flags):
    """Flags compared case-insensitively, \\Recent left out."""
    return {f.upper() for f in flags if f.upper() != "\\RECENT"}
