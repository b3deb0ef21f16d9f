"""TLS (issue 6): implicit TLS, STARTTLS, the cipher policy, handshakes as
a connection state, certificate loading and SIGHUP reload.

Certificates are made here with openssl (self-signed, SAN 127.0.0.1 and
localhost) and trusted explicitly by each client.
"""

import concurrent.futures
import imaplib
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BINARY, ConnectionClosed, Raw, free_port, make_message, ok

pytestmark = pytest.mark.picoimapd_only

HOST = "127.0.0.1"


def openssl_cert(d, name, kind="ec"):
    key, cert = os.path.join(d, name + "-key.pem"), os.path.join(d, name + "-cert.pem")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" \
        else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    return {"ec": openssl_cert(d, "ec"), "rsa": openssl_cert(d, "rsa", "rsa"),
            "ec2": openssl_cert(d, "ec2"), "dir": d}


def ctx_for(cert):
    ctx = ssl.create_default_context(cafile=cert)
    return ctx


def tls_server(server_factory, certs, kind="ec", extra=(), start=True):
    cert, key = certs[kind]
    tport = free_port()
    s = server_factory(start=False, extra_conf=["listen_tls = %s:%d" % (HOST, tport),
                                                "tls_cert = %s" % cert, "tls_key = %s" % key,
                                                *extra])
    s.tls_port = tport
    s.cert = cert
    if start:
        s.start()
        # start() waits for the plain listener; the TLS one is bound just
        # after it.
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, tport), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "no TLS listener:\n" + s.log_text()
                time.sleep(0.05)
    return s


def tls_raw(s, greeting=True, timeout=20):
    """Raw client over implicit TLS."""
    r = Raw(HOST, s.tls_port, greeting=False, timeout=timeout)
    r.sock = ctx_for(s.cert).wrap_socket(r.sock, server_hostname=HOST)
    s.raws.append(r)
    if greeting:
        r.greeting = r.read_response(greeting=True)
    return r


def caps_of(line):
    up = line.upper()
    i = up.find("CAPABILITY ")
    j = up.find("]", i)
    return set(up[i + 11:j if j > 0 else None].split())


def put_message(s, subject="tls test"):
    c = s.imap("demo")
    msg = make_message(subject)
    ok(c.append("INBOX", None, None, msg), "APPEND")
    c.logout()
    return msg


# ---------------------------------------------------------------- clients

def test_openssl_s_client_implicit(server_factory, certs):
    s = tls_server(server_factory, certs)
    msg = put_message(s)
    script = b"a LOGIN demo demo\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\nd LOGOUT\r\n"
    p = subprocess.run(["openssl", "s_client", "-quiet", "-verify_return_error",
                        "-CAfile", s.cert, "-verify_hostname", "localhost",
                        "-connect", "%s:%d" % (HOST, s.tls_port)],
                       input=script, capture_output=True, timeout=30)
    out = p.stdout
    assert b"* OK [CAPABILITY" in out, out + p.stderr
    assert b"a OK" in out and b"c OK" in out and b"d OK" in out, out
    assert msg in out


def test_openssl_s_client_starttls(server_factory, certs):
    s = tls_server(server_factory, certs, extra=["plaintext_loopback = no", "allow_plaintext = no"])
    msg = put_message_tls(s)
    script = b"a LOGIN demo demo\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\nd LOGOUT\r\n"
    p = subprocess.run(["openssl", "s_client", "-quiet", "-starttls", "imap", "-verify_return_error",
                        "-CAfile", s.cert, "-connect", "%s:%d" % (HOST, s.port)],
                       input=script, capture_output=True, timeout=30)
    out = p.stdout
    assert b"a OK" in out and b"c OK" in out, out + p.stderr
    assert msg in out


def put_message_tls(s, subject="tls test"):
    c = imaplib.IMAP4_SSL(HOST, s.tls_port, ssl_context=ctx_for(s.cert))
    ok(c.login("demo", "demo"), "LOGIN")
    msg = make_message(subject)
    ok(c.append("INBOX", None, None, msg), "APPEND")
    c.logout()
    return msg


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_python_imap4_ssl(server_factory, certs, kind):
    s = tls_server(server_factory, certs, kind=kind)
    c = imaplib.IMAP4_SSL(HOST, s.tls_port, ssl_context=ctx_for(s.cert))
    assert "STARTTLS" not in c.capabilities
    assert "LOGINDISABLED" not in c.capabilities
    ver = c.sock.version()
    name, _, bits = c.sock.cipher()
    assert ver == "TLSv1.2", ver
    assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
    ok(c.login("demo", "demo"), "LOGIN")
    msg = make_message("ssl " + kind)
    ok(c.append("INBOX", None, None, msg), "APPEND")
    ok(c.select("INBOX"), "SELECT")
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == msg
    c.logout()


def test_python_starttls(server_factory, certs):
    s = tls_server(server_factory, certs, extra=["plaintext_loopback = no", "allow_plaintext = no"])
    c = imaplib.IMAP4(HOST, s.port)
    assert "STARTTLS" in c.capabilities and "LOGINDISABLED" in c.capabilities
    assert not [x for x in c.capabilities if x.startswith("AUTH=")]
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        c.login("demo", "demo")
    ok(c.starttls(ssl_context=ctx_for(s.cert)), "STARTTLS")
    # imaplib re-reads CAPABILITY after STARTTLS: it must change.
    assert "STARTTLS" not in c.capabilities
    assert "LOGINDISABLED" not in c.capabilities
    assert "AUTH=PLAIN" in c.capabilities and "AUTH=SCRAM-SHA-256" in c.capabilities
    ok(c.login("demo", "demo"), "LOGIN")
    ok(c.select("INBOX"), "SELECT")
    c.logout()


def test_curl_imaps(server_factory, certs):
    s = tls_server(server_factory, certs)
    msg = put_message_tls(s, "curl over tls")
    p = subprocess.run(["curl", "-sS", "--cacert", s.cert, "-u", "demo:demo",
                        "imaps://%s:%d/INBOX;UID=1" % (HOST, s.tls_port)],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == msg
    # curl's --ssl-reqd upgrades imap:// with STARTTLS.
    p = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", s.cert, "-u", "demo:demo",
                        "imap://%s:%d/INBOX;UID=1" % (HOST, s.port)],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == msg


# ---------------------------------------------------------------- STARTTLS

def test_starttls_discards_pipelined_commands(server_factory, certs):
    """CVE-2011-0411: bytes sent in clear after STARTTLS must not run."""
    s = tls_server(server_factory, certs)
    r = s.raw()
    r.send("s1 STARTTLS\r\ns2 LOGIN demo demo\r\ns3 CREATE injected\r\n")
    resp = r.read_response()
    assert resp.kind == "tagged" and resp.tag == "s1" and resp.name == "OK", resp.line
    assert r.buf == b"", "server answered past STARTTLS in clear: %r" % r.buf
    r.sock = ctx_for(s.cert).wrap_socket(r.sock, server_hostname=HOST)
    # The first thing over TLS must be our own command's answer.
    u, done = r.cmd("CAPABILITY")
    assert done.name == "OK"
    caps = caps_of(u[0].line)
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    u, done = r.cmd("LIST \"\" *")
    assert done.name == "BAD", "LOGIN pipelined before TLS took effect: " + done.line
    r.login("demo")
    u, done = r.cmd_ok("LIST \"\" *")
    assert not any("injected" in x.line for x in u), [x.line for x in u]
    u, done = r.cmd("STARTTLS")
    assert done.name == "BAD"


def test_starttls_twice_and_capability(server_factory, certs):
    s = tls_server(server_factory, certs)
    r = tls_raw(s)
    assert "STARTTLS" not in caps_of(r.greeting.line)
    u, done = r.cmd("STARTTLS")
    assert done.name == "BAD"
    r.login("demo")
    u, done = r.cmd("STARTTLS")
    assert done.name == "BAD"   # not allowed after login


def test_no_starttls_without_certificate(server):
    r = server.raw()
    assert "STARTTLS" not in caps_of(r.greeting.line)
    u, done = r.cmd("STARTTLS")
    assert done.name == "BAD"


# ---------------------------------------------------------------- policy

def test_tls_policy_refuses_weak(server_factory, certs):
    s = tls_server(server_factory, certs, kind="rsa")
    addr = "%s:%d" % (HOST, s.tls_port)
    # TLS 1.3 only: refused (the server speaks 1.2 only).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(s.cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with socket.create_connection((HOST, s.tls_port), timeout=10) as so:
            ctx.wrap_socket(so, server_hostname=HOST)
    # TLS 1.1 and 1.0: refused.
    for flag in ("-tls1_1", "-tls1"):
        p = subprocess.run(["openssl", "s_client", flag, "-connect", addr, "-cipher", "ALL:@SECLEVEL=0"],
                           input=b"", capture_output=True, timeout=20)
        assert b"Cipher is (NONE)" in p.stdout or p.returncode != 0, p.stdout
    # Static RSA key exchange and CBC suites: refused.
    for cipher in ("AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "DHE-RSA-AES128-GCM-SHA256"):
        p = subprocess.run(["openssl", "s_client", "-tls1_2", "-cipher", cipher, "-connect", addr],
                           input=b"", capture_output=True, timeout=20)
        assert b"Cipher is (NONE)" in p.stdout or p.returncode != 0, (cipher, p.stdout)
    # Each AEAD suite works.
    for cipher in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                   "ECDHE-RSA-CHACHA20-POLY1305"):
        p = subprocess.run(["openssl", "s_client", "-tls1_2", "-cipher", cipher, "-connect", addr],
                           input=b"", capture_output=True, timeout=20)
        assert ("Cipher is " + cipher).encode() in p.stdout, (cipher, p.stdout)


# ---------------------------------------------------------------- concurrency

def stall_handshake(s):
    """Open a TLS connection and send half a ClientHello, then nothing."""
    so = socket.create_connection((HOST, s.tls_port), timeout=30)
    # A TLS record header announcing 512 bytes, and only 20 of them.
    so.sendall(b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + b"\x00" * 14)
    return so


def test_fifty_handshakes_while_one_stalls(server_factory, certs):
    s = tls_server(server_factory, certs, extra=["tls_handshake_timeout = 6"])
    t0 = time.monotonic()
    stalled = stall_handshake(s)

    def one(i):
        c = imaplib.IMAP4_SSL(HOST, s.tls_port, ssl_context=ctx_for(s.cert), timeout=30)
        ok(c.login("demo", "demo"), "LOGIN")
        ok(c.noop(), "NOOP")
        c.logout()
        return i

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        done = list(ex.map(one, range(50)))
    took = time.monotonic() - t0
    assert sorted(done) == list(range(50))
    assert took < 5, "handshakes waited for the stalled one (%.1f s)" % took
    # The stalled client is still there (its own timer has not run out) ...
    stalled.settimeout(0.1)
    with pytest.raises(socket.timeout):
        stalled.recv(1)
    # ... and then it is cut off alone, without a plaintext BYE.
    stalled.settimeout(15)
    data = stalled.recv(100)
    assert data == b"", data
    stalled.close()
    assert time.monotonic() - t0 < 12
    s.assert_serving()


def test_tls_large_fetch_and_pending_bytes(server_factory, certs):
    """A 3 MB message both ways through TLS: records bigger than the
    core's read slices, so decrypted bytes wait inside mbedTLS."""
    s = tls_server(server_factory, certs)
    c = imaplib.IMAP4_SSL(HOST, s.tls_port, ssl_context=ctx_for(s.cert))
    ok(c.login("demo", "demo"), "LOGIN")
    msg = make_message("big", size=3 * 1024 * 1024)
    ok(c.append("INBOX", None, None, msg), "APPEND")
    # Many small commands in one TLS record: all must be answered without
    # waiting for more input (the poll timeout is 0 while bytes are held).
    c.send(b"".join(b"n%d NOOP\r\n" % i for i in range(200)))
    for i in range(200):
        line = c.readline()
        while not line.startswith(b"n%d " % i):
            line = c.readline()
        assert b"OK" in line
    ok(c.select("INBOX"), "SELECT")
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == msg
    c.logout()


def test_close_notify_on_logout(server_factory, certs):
    s = tls_server(server_factory, certs)
    r = tls_raw(s)
    r.cmd("LOGOUT")
    # The server ends with close_notify: unwrap() completes cleanly.
    r.sock.settimeout(10)
    plain = r.sock.unwrap()
    plain.close()


# ---------------------------------------------------------------- start-up

def run_expect_fail(s):
    p = subprocess.run([BINARY, "-c", s.conf], cwd=s.dir, capture_output=True, timeout=20)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def test_missing_or_broken_cert_refuses_to_start(server_factory, certs, tmp_path):
    d = str(tmp_path)
    cert, key = certs["ec"]
    rsa_cert, rsa_key = certs["rsa"]
    broken = os.path.join(d, "broken.pem")
    with open(broken, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    empty = os.path.join(d, "empty.pem")
    open(empty, "w").close()
    cases = [
        (os.path.join(d, "missing-cert.pem"), key, "missing-cert.pem", "No such file"),
        (cert, os.path.join(d, "missing-key.pem"), "missing-key.pem", "No such file"),
        (broken, key, "broken.pem", "certificate"),
        (cert, broken, "broken.pem", "key"),
        (empty, key, "empty.pem", "empty"),
        (cert, rsa_key, os.path.basename(rsa_key), "does not match"),
        (rsa_cert, rsa_cert, os.path.basename(rsa_cert), "key"),
    ]
    for c, k, name, why in cases:
        s = server_factory(start=False, extra_conf=["listen_tls = %s:%d" % (HOST, free_port()),
                                                    "tls_cert = " + c, "tls_key = " + k])
        rc, out = run_expect_fail(s)
        assert rc != 0, out
        assert name in out and why.lower() in out.lower(), (name, why, out)


def test_sighup_reloads_certificate(server_factory, certs):
    import shutil
    d = os.path.join(certs["dir"], "reload")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copy(certs["ec"][0], cert)
    shutil.copy(certs["ec"][1], key)
    s = tls_server(server_factory, {"ec": (cert, key)})
    old = tls_raw(s)
    old.login("demo")
    der1 = old.sock.getpeercert(binary_form=True)
    shutil.copy(certs["ec2"][0], cert)
    shutil.copy(certs["ec2"][1], key)
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    s.cert = certs["ec2"][0]
    new = tls_raw(s)
    der2 = new.sock.getpeercert(binary_form=True)
    assert der1 != der2
    old.cmd_ok("NOOP")          # the old session survived the reload
    # A broken file on reload: the server keeps the working pair.
    with open(key, "w") as f:
        f.write("garbage\n")
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    again = tls_raw(s)
    assert again.sock.getpeercert(binary_form=True) == der2
    assert "keeping the old certificate" in s.log_text()


# ---------------------------------------------------------------- mbsync

@pytest.mark.parametrize("ssltype", ["IMAPS", "STARTTLS"])
def test_mbsync(server_factory, certs, tmp_path, ssltype):
    import shutil as _sh
    if not _sh.which("mbsync"):
        pytest.skip("mbsync (isync) not installed")
    s = tls_server(server_factory, certs, extra=NO_PLAIN_LOOPBACK)
    msg = put_message_tls(s, "mbsync " + ssltype)
    local = tmp_path / "local"
    local.mkdir()
    cfg = tmp_path / "mbsyncrc"
    # mbsync matches the certificate against a host name only (not an IP
    # SAN); "localhost" is in the test certificate.
    cfg.write_text("""IMAPAccount acc
Host {host}
Port {port}
User demo
Pass demo
SSLType {ssltype}
SSLVersions TLSv1.2
CertificateFile {cert}

IMAPStore remote
Account acc

MaildirStore local
Path {local}/
Inbox {local}/INBOX

Channel ch
Far :remote:
Near :local:
Patterns INBOX
Create Near
SyncState *
""".format(host="localhost", port=s.tls_port if ssltype == "IMAPS" else s.port, ssltype=ssltype,
           cert=s.cert, local=local))
    p = subprocess.run(["mbsync", "-c", str(cfg), "-a"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    got = []
    for sub in ("new", "cur"):
        dd = local / "INBOX" / sub
        if dd.exists():
            got += [f.read_bytes() for f in dd.iterdir()]
    assert len(got) == 1
    # mbsync stores LF line ends and adds its own X-TUID header.
    body = b"".join(l for l in got[0].splitlines(True) if not l.startswith(b"X-TUID:"))
    assert body == msg.replace(b"\r\n", b"\n")


NO_PLAIN_LOOPBACK = ["plaintext_loopback = no", "allow_plaintext = no"]


def test_tls_slow_reader_gets_every_byte(server_factory, certs):
    """The client stops reading while a big FETCH and more responses pile
    up: mbedTLS returns WANT_WRITE with a record half sent while the core's
    queue keeps growing; every byte must still arrive exactly once."""
    s = tls_server(server_factory, certs)
    msg = make_message("slow", size=2 * 1024 * 1024)
    c = imaplib.IMAP4_SSL(HOST, s.tls_port, ssl_context=ctx_for(s.cert))
    ok(c.login("demo", "demo"), "LOGIN")
    ok(c.append("INBOX", None, None, msg), "APPEND")
    c.logout()
    r = tls_raw(s)
    r.login("demo")
    r.cmd_ok("SELECT INBOX")
    r.send(b"f1 FETCH 1 BODY.PEEK[]\r\n" + b"".join(b"n%d NOOP\r\n" % i for i in range(50))
           + b"f2 FETCH 1 BODY.PEEK[]\r\n")
    time.sleep(1.5)
    data = b""
    r.sock.settimeout(30)
    while not data.endswith(b"f2 OK FETCH completed\r\n") and b"f2 BAD" not in data:
        chunk = r.sock.recv(1 << 20)
        assert chunk, "connection closed early"
        data += chunk
        if b"\r\nf2 " in data and data.rstrip().endswith(b"completed"):
            break
    assert data.count(msg) == 2
    assert data.count(b" OK NOOP") == 50 or data.count(b"NOOP completed") == 50
