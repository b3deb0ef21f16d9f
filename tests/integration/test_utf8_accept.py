"""UTF8=ACCEPT (RFC 6855): after ENABLE, names travel as UTF-8 while the
store (and clients that did not enable it) keep modified UTF-7; APPEND takes
the UTF8 (~{n}...) form."""
import socket


def test_utf8_accept_names_and_append(server):
    plain = server.raw("demo")
    c = socket.create_connection((server.host, server.port), timeout=10)
    f = c.makefile("rb")
    assert f.readline().startswith(b"* OK")

    def cmd(tag, line):
        c.sendall(tag + b" " + line + b"\r\n")
        out = []
        while True:
            ln = f.readline()
            assert ln, "closed"
            out.append(ln)
            if ln.startswith(tag + b" "):
                return out

    assert cmd(b"a", b"LOGIN demo demo")[-1].startswith(b"a OK")
    r = cmd(b"b", b"ENABLE UTF8=ACCEPT")
    assert b"* ENABLED UTF8=ACCEPT\r\n" in r and r[-1].startswith(b"b OK")
    name = "Entwürfe".encode()
    assert cmd(b"c", b'CREATE "' + name + b'"')[-1].startswith(b"c OK")
    r = cmd(b"d", b'LIST "" "Entw*"')
    assert any(name in ln for ln in r), r
    # The store and a client without UTF8=ACCEPT see modified UTF-7.
    u, t = plain.cmd_ok('LIST "" "Entw*"')
    assert any(x.name == "LIST" and x.data and "Entw&APw-rfe" in str(x.raw) for x in u), u
    # APPEND with the UTF8 (~{n}) form and 8-bit header text.
    msg = "Subject: Grüße\r\nFrom: jörg@example.org\r\n\r\nHallo\r\n".encode()
    c.sendall(b'e APPEND "' + name + b'" UTF8 (~{%d}\r\n' % len(msg))
    assert f.readline().startswith(b"+")
    c.sendall(msg + b")\r\n")
    ln = f.readline()
    assert ln.startswith(b"e OK"), ln
    r = cmd(b"f", b'SELECT "' + name + b'"')
    assert b"* 1 EXISTS\r\n" in r
    c.sendall(b"g FETCH 1 BODY.PEEK[]\r\n")
    data = b""
    while b"\r\ng OK" not in data:
        data += c.recv(65536)
    assert msg in data
    # Not valid UTF-8: refused.
    assert cmd(b"h", b'CREATE "bad\xff"')[-1].startswith((b"h NO", b"h BAD"))
    c.close()
