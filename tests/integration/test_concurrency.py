"""Issue 2, "What must show": fifty concurrent clients each append and
fetch their own messages while one more client sends a 1 MB literal one
byte a second: nobody is starved. Also: a client that does not read its
output never stalls the others, and SIGTERM ends a busy server cleanly."""

import threading
import time

import pytest

from conftest import USERS, make_message, ok, fetches, select_info

N_CLIENTS = 50
DEADLINE = 60.0   # seconds for all fifty to finish
USER_CYCLE = ("demo", "alice", "bob")


def worker(server, i, errors, done_at, t0):
    try:
        user = USER_CYCLE[i % len(USER_CYCLE)]
        c = server.imap(user)
        box = "load%02d" % i
        ok(c.create(box), "CREATE " + box)
        msgs = [make_message("client %d message %d" % (i, j), size=2000 + 7000 * j + i)
                for j in range(5)]
        for m in msgs:
            ok(c.append(box, None, None, m), "APPEND")
        ok(c.append("INBOX", None, None, make_message("inbox note from client %d" % i)))
        ok(c.select(box))
        got = c.fetch_dict("1:*", "(UID BODY.PEEK[])")
        assert sorted(got) == [1, 2, 3, 4, 5], "client %d sees %r" % (i, sorted(got))
        for k, m in enumerate(msgs, 1):
            assert got[k]["BODY[]"] == m, "client %d message %d differs" % (i, k)
        uids = [got[k]["UID"] for k in range(1, 6)]
        assert uids == sorted(set(uids)), uids
        c.logout()
        done_at[i] = time.monotonic() - t0
    except BaseException as e:  # noqa: B902 -- reported by the main thread
        errors.append("client %d: %r" % (i, e))


def run_workers(server, n):
    errors, done_at = [], {}
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(server, i, errors, done_at, t0), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, DEADLINE - (time.monotonic() - t0)))
    elapsed = time.monotonic() - t0
    assert not errors, "\n".join(errors[:10])
    assert len(done_at) == n, "only %d of %d clients finished within %.0f s" % (
        len(done_at), n, DEADLINE)
    return elapsed


class Trickler(threading.Thread):
    """Sends `data` one byte a second on a raw connection until stopped."""

    def __init__(self, raw, data, interval=1.0):
        super().__init__(daemon=True)
        self.raw, self.data, self.interval = raw, data, interval
        self.stop = threading.Event()
        self.sent = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set() and self.sent < len(self.data):
                self.raw.sock.sendall(self.data[self.sent:self.sent + 1])
                self.sent += 1
                self.stop.wait(self.interval)
        except OSError as e:
            self.error = e


def test_fifty_clients_while_one_trickles_a_literal(server):
    slow = server.raw("alice")
    t = slow.tag()
    slow.send("%s APPEND INBOX {%d}\r\n" % (t, 1 << 20))
    cont = slow.read_response()
    assert cont.kind == "cont", "expected '+' for a 1 MB literal after login: %s" % cont.line
    trickle = Trickler(slow, make_message("slow", size=1 << 20))
    trickle.start()
    try:
        elapsed = run_workers(server, N_CLIENTS)
        assert trickle.is_alive() and trickle.error is None, \
            "the slow client was cut off while it was sending: %r" % (trickle.error,)
    finally:
        trickle.stop.set()
        trickle.join()
    print("%d clients finished in %.1f s while the slow client sent %d bytes"
          % (N_CLIENTS, elapsed, trickle.sent))
    slow.close()   # drop it mid-literal

    # The half-sent APPEND left nothing behind; the fifty INBOX notes are there.
    for user in USER_CYCLE:
        expected = len([i for i in range(N_CLIENTS) if USER_CYCLE[i % 3] == user])
        r = server.raw(user)
        u, _ = r.cmd_ok("SELECT INBOX")
        assert select_info(u)["exists"] == expected, (user, select_info(u))
        u, _ = r.cmd_ok("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = sorted(v["BODY[HEADER.FIELDS (SUBJECT)]"] for v in fetches(u).values())
        assert len(set(subjects)) == expected
        assert not any(b"slow" in s for s in subjects)
        r.cmd_ok("LOGOUT")


def test_non_reading_client_does_not_stall_others(server):
    """A client asks for ~50 MB and never reads: the server must stop
    producing for it (back-pressure) and keep serving everyone else."""
    big = make_message("big", size=5 * 1024 * 1024)
    c = server.imap("demo")
    ok(c.create("Big"))
    ok(c.append("Big", None, None, big))
    c.logout()
    hog = server.raw("demo")
    hog.cmd_ok("SELECT Big")
    tags = []
    for _ in range(10):
        tags.append(hog.tag())
        hog.send("%s FETCH 1 BODY.PEEK[]\r\n" % tags[-1])
    time.sleep(0.5)
    elapsed = run_workers(server, 10)
    print("10 clients finished in %.1f s next to a non-reading client" % elapsed)
    # Now read it all: the hog still gets all of its ten answers. (Untagged
    # FETCH responses are not tied to a tag; a server may interleave them.)
    bodies = []
    for t in tags:
        u, done = hog.read_until_tagged(t, timeout=60)
        assert done.name == "OK", done.line
        bodies += [r.data["BODY[]"] for r in u if r.name == "FETCH" and "BODY[]" in r.data]
    assert len(bodies) == 10 and all(b == big for b in bodies)
    hog.cmd_ok("LOGOUT")


def test_many_pipelined_commands(server):
    """200 commands in one write: answered in order, none lost."""
    r = server.raw("demo")
    tags = ["p%d" % i for i in range(200)]
    r.send("".join("%s NOOP\r\n" % t for t in tags))
    for t in tags:
        _, done = r.read_until_tagged(t)
        assert done.name == "OK"


def test_command_split_into_single_bytes(server):
    """The parser resumes across reads: a LOGIN and an APPEND with a literal,
    sent one byte per write."""
    r = server.raw()
    for b in b"a1 LOGIN demo demo\r\n":
        r.send(bytes([b]))
        time.sleep(0.002)
    _, done = r.read_until_tagged("a1")
    assert done.name == "OK"
    m = make_message("byte by byte")
    r.send(b"a2 APPEND INBOX {%d}\r\n" % len(m))
    assert r.read_response().kind == "cont"
    for i in range(len(m)):
        r.send(m[i:i + 1])
    r.send(b"\r\n")
    _, done = r.read_until_tagged("a2")
    assert done.name == "OK", done.line
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1 BODY.PEEK[]")
    assert fetches(u)[1]["BODY[]"] == m


@pytest.mark.picoimapd_only
def test_sigterm_with_busy_clients(server):
    """SIGTERM while clients are idle, mid-literal and mid-FETCH: exit 0
    quickly, clients see the connection end, the store opens again."""
    c = server.imap("demo")
    ok(c.append("INBOX", None, None, make_message("kept", size=3 * 1024 * 1024)))
    c.logout()
    idle = server.raw()
    lit = server.raw("alice")
    lit.send("x1 APPEND INBOX {100000}\r\n")
    assert lit.read_response().kind == "cont"
    lit.send(b"Subject: partial\r\n\r\n" + b"x" * 5000)
    hog = server.raw("demo")
    hog.cmd_ok("SELECT INBOX")
    for _ in range(5):
        hog.send("%s FETCH 1 BODY.PEEK[]\r\n" % hog.tag())
    time.sleep(0.5)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 10, "shutdown took %.1f s" % (time.monotonic() - t0)
    for r in (idle, lit):
        r.expect_closed(timeout=5)
    server.start()
    r = server.raw("alice")
    u, _ = r.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 0, "the unfinished APPEND must leave nothing"
    r = server.raw("demo")
    u, _ = r.cmd_ok("SELECT INBOX")
    assert select_info(u)["exists"] == 1
