"""Helpers shared by tests/integration/test_clients_*.py: messages with a
known Message-ID, a server-side view of every folder (through imaplib),
a Maildir view, and running a client with its output kept for the
failure message."""

import email
import imaplib
import os
import re
import shutil
import subprocess
import time

CLIENTS = os.path.dirname(os.path.abspath(__file__))


def message(mid, subject=None, body="hello\r\n", frm="sender@example.org",
            to="demo@example.org"):
    """An RFC 5322 message whose Message-ID is <mid@test>."""
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 05 Jan 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@test>\r\n\r\n%s" % (frm, to, subject or mid, mid, body)).encode()


def mid_of(data):
    m = re.search(rb"(?im)^Message-ID:\s*<([^@>]+)@test>", data)
    return m.group(1).decode() if m else None


def run(argv, timeout=120, env=None, cwd=None, input=None, check=True):
    """Run a client; returns CompletedProcess (text). On a nonzero exit
    with check, fail with its whole output."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=cwd, input=input)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr\n%s"
                             % (argv[0], p.returncode, p.stdout[-6000:], p.stderr[-6000:]))
    return p


def have(prog):
    return shutil.which(prog) is not None


# ---------------------------------------------------------------- server side

SYSFLAGS = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R", "\\Deleted": "T",
            "\\Draft": "D"}


def server_state(server, user="demo", folders=None):
    """{folder: {mid: set(flags)}} for every folder (or the given ones),
    expunged messages not included."""
    c = imaplib.IMAP4(server.host, server.port)
    from conftest import USERS
    c.login(user, USERS[user])
    if folders is None:
        typ, data = c.list()
        folders = []
        for line in data:
            name = line.decode().rsplit(" ", 1)[1].strip('"')
            if "\\Noselect" not in line.decode():
                folders.append(name)
    out = {}
    for f in folders:
        typ, sel = c.select('"%s"' % f, readonly=True)
        if typ != "OK":
            continue
        box = {}
        if int(sel[0]):
            typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                flags = set(imaplib.ParseFlags(item[0]))
                box[mid_of(item[1])] = {x.decode() for x in flags}
        out[f] = box
        c.close()
    c.logout()
    return out


def server_append(server, folder, data, flags="", user="demo"):
    from conftest import USERS
    c = imaplib.IMAP4(server.host, server.port)
    c.login(user, USERS[user])
    typ, d = c.append(folder, flags or None, None, data)
    assert typ == "OK", d
    c.logout()


def server_do(server, folder, fn, user="demo"):
    """Run fn(imaplib client) with folder selected read-write."""
    from conftest import USERS
    c = imaplib.IMAP4(server.host, server.port)
    c.login(user, USERS[user])
    typ, d = c.select(folder)
    assert typ == "OK", d
    try:
        return fn(c)
    finally:
        c.logout()


def seq_of(c, mid):
    """Sequence number of the message with Message-ID <mid@test>."""
    typ, data = c.search(None, "HEADER", "Message-ID", "<%s@test>" % mid)
    assert typ == "OK" and data[0], "no message %s" % mid
    return data[0].split()[0].decode()


# ---------------------------------------------------------------- Maildir

def maildir_state(root, folder_dirs):
    """{folder: {mid: set(maildir flag letters)}} for Maildirs under root.
    folder_dirs maps a folder name to its directory."""
    out = {}
    for f, d in folder_dirs.items():
        box = {}
        path = os.path.join(root, d)
        for sub in ("new", "cur"):
            p = os.path.join(path, sub)
            if not os.path.isdir(p):
                continue
            for name in os.listdir(p):
                with open(os.path.join(p, name), "rb") as fh:
                    mid = mid_of(fh.read())
                flags = set(name.split(":2,", 1)[1]) if ":2," in name else set()
                box[mid] = flags
        out[f] = box
    return out


def maildir_file(root, d, mid):
    for sub in ("new", "cur"):
        p = os.path.join(root, d, sub)
        for name in os.listdir(p) if os.path.isdir(p) else []:
            with open(os.path.join(p, name), "rb") as fh:
                if mid_of(fh.read()) == mid:
                    return os.path.join(p, name)
    raise AssertionError("no %s in %s" % (mid, d))


def maildir_set_flags(path, letters):
    """Rename a Maildir file to carry exactly these flag letters (in cur/)."""
    d, name = os.path.split(path)
    base = name.split(":2,", 1)[0]
    new = os.path.join(os.path.dirname(d), "cur", base + ":2," + "".join(sorted(letters)))
    os.rename(path, new)
    return new


def maildir_deliver(root, d, data):
    """Put a new message into a Maildir the way an MDA does."""
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, d, sub), exist_ok=True)
    name = "%d.%d_%d.test" % (time.time(), os.getpid(), time.monotonic_ns())
    tmp = os.path.join(root, d, "tmp", name)
    with open(tmp, "wb") as fh:
        fh.write(data.replace(b"\r\n", b"\n"))
    os.rename(tmp, os.path.join(root, d, "new", name))


def flags_as_letters(imap_flags):
    return {SYSFLAGS[f] for f in imap_flags if f in SYSFLAGS}
