"""COMPRESS=DEFLATE (RFC 4978): after the OK, both directions are raw
deflate; a large FETCH and a LITERAL+ APPEND go through intact, the second
COMPRESS is refused, and the capability is no longer offered."""
import socket
import zlib

from conftest import make_message


class ZClient:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=20)
        self.plain = b""
        self.z = None
        self.buf = b""

    def _recv(self):
        d = self.s.recv(65536)
        assert d, "server closed the connection; have %r" % self.buf[-200:]
        if self.z:
            self.buf += self.z[1].decompress(d)
        else:
            self.buf += d

    def send(self, data):
        if self.z:
            self.s.sendall(self.z[0].compress(data) + self.z[0].flush(zlib.Z_SYNC_FLUSH))
        else:
            self.s.sendall(data)

    def until(self, tag):
        """Everything up to and including the line tagged `tag`."""
        key = b"\r\n" + tag + b" "
        while True:
            hay = b"\r\n" + self.buf
            i = hay.find(key)
            if i >= 0:
                j = self.buf.find(b"\r\n", i)
                if j >= 0:
                    out, self.buf = self.buf[:j + 2], self.buf[j + 2:]
                    return out
            self._recv()

    def start_deflate(self):
        self.z = (zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15))


def test_compress_deflate_round_trip(server):
    c = ZClient(server.host, server.port)
    c.send(b"a LOGIN demo demo\r\n")
    r = c.until(b"a")
    assert b"COMPRESS=DEFLATE" in r and b"a OK" in r
    c.send(b"b COMPRESS DEFLATE\r\n")
    r = c.until(b"b")
    assert b"b OK" in r
    c.start_deflate()
    c.send(b"c CAPABILITY\r\n")
    r = c.until(b"c")
    assert b"c OK" in r and b"COMPRESS=DEFLATE" not in r
    msg = make_message("compressed", size=300000)
    c.send(b"d APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b"d OK" in c.until(b"d")
    c.send(b"e SELECT INBOX\r\n")
    assert b"e OK" in c.until(b"e")
    c.send(b"f FETCH 1 BODY.PEEK[]\r\n")
    r = c.until(b"f")
    assert b"f OK" in r and (b"{%d}\r\n" % len(msg) + msg) in r
    c.send(b"g COMPRESS DEFLATE\r\n")
    assert b"g NO [COMPRESSIONACTIVE]" in c.until(b"g")
    c.send(b"h LOGOUT\r\n")
    assert b"h OK" in c.until(b"h")


def test_compress_not_before_login(server):
    r = server.raw()
    u, t = r.cmd("COMPRESS DEFLATE")
    assert t.name == "BAD"
    assert b"COMPRESS" not in r.greeting.raw
