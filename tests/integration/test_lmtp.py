"""LMTP (RFC 2033) in the daemon's poll loop, driven by smtplib.LMTP."""

import smtplib

import pytest

from conftest import free_port, make_message, ok

pytestmark = pytest.mark.picoimapd_only


def lmtp_server(server_factory, extra=()):
    port = free_port()
    srv = server_factory(extra_conf=["lmtp = 127.0.0.1:%d" % port] + list(extra))
    return srv, port


def test_lmtp_delivery(server_factory):
    srv, port = lmtp_server(server_factory)
    c = srv.imap("demo")
    ok(c.select("INBOX"))
    l = smtplib.LMTP("127.0.0.1", port)
    code, _ = l.ehlo("mta.example.org") if False else l.docmd("LHLO", "mta.example.org")
    assert code == 250
    msg = make_message("over lmtp", body="line\r\n.dotted\r\n..two dots\r\nX-UID: 5\r\n")
    msg = msg.replace(b"MIME-Version", b"X-Status: F\r\nMIME-Version")
    # two recipients: one reply each after the final dot (smtplib's
    # sendmail reads only one, so speak the protocol by hand)
    l.mail("a@example.org")
    assert l.rcpt("demo@example.org")[0] == 250
    assert l.rcpt("alice@example.org")[0] == 250
    l.putcmd("DATA")
    assert l.getreply()[0] == 354
    l.send(msg.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    assert l.getreply()[0] == 250
    assert l.getreply()[0] == 250
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)):
        l.sendmail("a@example.org", ["nobody@example.org"], msg)
    code, _ = l.docmd("RSET")
    assert code == 250
    code, _ = l.docmd("NOOP")
    assert code == 250
    l.quit()
    c.noop()
    typ, data = c.fetch("1", "(FLAGS BODY.PEEK[])")
    data = [d for d in data if isinstance(d, tuple)]
    raw = data[0][1]
    assert b"\r\n.dotted\r\n..two dots\r\nX-UID: 5\r\n" in raw  # body lines stay
    assert b"X-Status" not in raw  # stripped from the header section
    assert b"\\Flagged" not in data[0][0]
    c.logout()
    a = srv.imap("alice")
    typ, data = a.select("INBOX")
    assert int(data[0]) == 1
    a.logout()


def test_lmtp_per_recipient_quota(server_factory):
    srv, port = lmtp_server(server_factory, ["quota = 20K"])
    l = smtplib.LMTP("127.0.0.1", port)
    l.docmd("LHLO", "x")
    big = make_message("big", size=30000)
    l.mail("a@example.org")
    assert l.rcpt("demo@example.org")[0] == 250
    assert l.rcpt("alice@example.org")[0] == 250
    l.putcmd("DATA")
    code, _ = l.getreply()
    assert code == 354
    l.send(big.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    r1 = l.getreply()
    r2 = l.getreply()
    assert r1[0] == 552 and r2[0] == 552, (r1, r2)
    small = make_message("small")
    assert l.sendmail("a@example.org", ["demo@example.org"], small) == {}
    l.quit()
    c = srv.imap("demo")
    typ, data = c.select("INBOX")
    assert int(data[0]) == 1
    c.logout()


def test_lmtp_unix_socket(server_factory):
    """`lmtp = unix:PATH` (Postfix: mailbox_transport = lmtp:unix:PATH): a
    stale socket file from an earlier run is replaced, the file gets
    lmtp_mode, a delivery over it is seen over IMAP, and SIGTERM removes it."""
    import os
    import socket
    import stat
    srv = server_factory(start=False, extra_conf=["lmtp = unix:lmtp.sock", "lmtp_mode = 0600"])
    path = os.path.join(srv.dir, "lmtp.sock")
    # what a killed server leaves behind: a socket file nobody accepts on
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    srv.start()   # bind() would fail with EADDRINUSE had it not been replaced
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert "replaced the stale socket" in srv.log_text()
    l = smtplib.LMTP(path)
    code, _ = l.docmd("LHLO", "mta.example.org")
    assert code == 250
    assert l.sendmail("a@example.org", ["demo@example.org"],
                      make_message("over a unix socket")) == {}
    l.quit()
    c = srv.imap("demo")
    typ, data = c.select("INBOX")
    assert int(data[0]) == 1
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"over a unix socket" in data[0][1]
    c.logout()
    srv.stop()
    assert not os.path.exists(path)


def test_lmtp_unix_path_not_a_socket(tmp_path):
    """A config typo pointing at a file never deletes it: start-up fails."""
    import os
    import subprocess
    from conftest import BINARY
    victim = tmp_path / "important.txt"
    victim.write_text("keep me\n")
    (tmp_path / "passwd").write_text("demo:{PLAIN}demo\n")
    conf = tmp_path / "picoimapd.conf"
    conf.write_text("listen = 127.0.0.1:%d\nstore = mail\npasswd = passwd\nlog = stderr\n"
                    "lmtp = unix:%s\n%s" % (free_port(), victim,
                                           "allow_root = yes\n" if os.geteuid() == 0 else ""))
    p = subprocess.run([BINARY, "-c", str(conf)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    assert p.returncode != 0
    assert b"is not a socket" in p.stderr + p.stdout
    assert victim.read_text() == "keep me\n"
