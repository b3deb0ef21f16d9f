"""Clients for tests/integration/test_lwip.py, run inside the lwIP test namespace with
`ip netns exec NS python3 lwip_client.py CMD HOST ...`. Each command prints
one JSON object on stdout and exits 0 when its checks pass, 1 otherwise."""

import imaplib
import json
import os
import ssl
import sys
import threading
import time

USER, PASSWORD = "demo", "demo"
TIMEOUT = 60


def message(size, tag):
    """A CRLF-terminated RFC 5322 message of about `size` bytes."""
    head = ("From: lwip@example.org\r\nSubject: %s\r\n\r\n" % tag).encode()
    body = os.urandom(size // 2 + 64).hex().encode()
    lines = [body[i:i + 76] for i in range(0, size - len(head), 78)]
    out = head + b"\r\n".join(lines) + b"\r\n"
    return out


def connect(host, tls=False):
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = imaplib.IMAP4_SSL(host, 993, ssl_context=ctx, timeout=TIMEOUT)
    else:
        c = imaplib.IMAP4(host, 143, timeout=TIMEOUT)
    typ, _ = c.login(USER, PASSWORD)
    assert typ == "OK"
    return c


def cmd_login(host, tls="0"):
    c = connect(host, tls == "1")
    typ, caps = c.capability()
    typ2, boxes = c.list()
    c.logout()
    return {"ok": typ == "OK" and typ2 == "OK", "caps": caps[0].decode(),
            "boxes": [b.decode() for b in boxes]}


def cmd_big(host, size, tls="0"):
    size = int(size)
    msg = message(size, "big-%d" % size)
    box = "big%d%s" % (os.getpid(), "tls" if tls == "1" else "")
    c = connect(host, tls == "1")
    t0 = time.monotonic()
    assert c.create(box)[0] == "OK"
    typ, _ = c.append(box, None, None, msg)
    t1 = time.monotonic()
    assert typ == "OK"
    typ, data = c.select(box)
    assert typ == "OK" and int(data[0]) == 1
    typ, data = c.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    t2 = time.monotonic()
    assert typ == "OK"
    got = data[0][1]
    c.logout()
    return {"ok": got == msg, "sent": len(msg), "got": len(got),
            "append_s": round(t1 - t0, 3), "fetch_s": round(t2 - t1, 3)}


def cmd_many(host, n, tls="0"):
    """n clients at once: each logs in, creates its own mailbox, appends
    three messages, fetches them back and logs out."""
    n = int(n)
    barrier = threading.Barrier(n, timeout=TIMEOUT)
    results = [None] * n

    def client(i):
        try:
            c = connect(host, tls == "1")
            barrier.wait()
            box = "c%d-%d" % (os.getpid(), i)
            assert c.create(box)[0] == "OK"
            msgs = [message(2000 + 997 * k + i, "c%d-%d" % (i, k)) for k in range(3)]
            for m in msgs:
                assert c.append(box, None, None, m)[0] == "OK"
            typ, data = c.select(box)
            assert typ == "OK" and int(data[0]) == 3, data
            typ, data = c.fetch("1:3", "(BODY.PEEK[])")
            got = [d[1] for d in data if isinstance(d, tuple)]
            assert got == msgs, "client %d: fetched messages differ" % i
            c.logout()
            results[i] = True
        except Exception as e:  # reported in the JSON
            results[i] = "%s: %r" % (type(e).__name__, e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    errors = [r for r in results if r is not True]
    return {"ok": not errors, "clients": n, "errors": errors[:5]}


def cmd_stall(host, size):
    """One client asks for a big message and does not read it; while its
    window and the server's send queue are full, other clients must still
    be served. Then it reads everything, byte for byte."""
    import socket
    size = int(size)
    m = message(size, "stall")
    c = connect(host)
    box = "stall%d" % os.getpid()
    assert c.create(box)[0] == "OK"
    assert c.append(box, None, None, m)[0] == "OK"
    c.logout()
    s = socket.create_connection((host, 143), timeout=TIMEOUT)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN demo demo\r\nb SELECT %s\r\nc FETCH 1 BODY.PEEK[]\r\n" % box.encode())
    time.sleep(1.0)                      # the server fills every buffer on the way
    t0 = time.monotonic()
    served = cmd_many(host, 5)
    others_s = time.monotonic() - t0
    data = b""
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line.startswith(b"* 1 FETCH"):
            n = int(line.rsplit(b"{", 1)[1].split(b"}")[0])
            data = f.read(n)
        if line.startswith(b"c "):
            break
    s.close()
    return {"ok": served["ok"] and data == m, "others_s": round(others_s, 2),
            "got": len(data), "sent": len(m)}


def cmd_idle_bye(host):
    """Log in and wait for the server's untagged BYE (sent at SIGTERM)."""
    c = connect(host)
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    c.sock.settimeout(TIMEOUT)
    data = b""
    while True:
        d = c.sock.recv(4096)
        if not d:
            break
        data += d
    return {"ok": b"* BYE" in data, "data": data.decode(errors="replace")}


def main(argv):
    cmd = argv[1]
    fn = globals()["cmd_" + cmd]
    try:
        res = fn(*argv[2:])
    except Exception as e:
        res = {"ok": False, "error": "%s: %r" % (type(e).__name__, e)}
    print(json.dumps(res))
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
