"""Issue 2, "What must show": curl's imap:// URLs list mailboxes, fetch a
message by UID and upload one (APPEND)."""

import subprocess

from conftest import make_message, ok, flagset


def curl(server, path, *args, user="demo", password="demo", check=True):
    url = "imap://%s:%d/%s" % (server.host, server.port, path)
    p = subprocess.run(["curl", "--silent", "--show-error", "--max-time", "60",
                        "--user", "%s:%s" % (user, password), *args, url],
                       capture_output=True, timeout=90)
    if check:
        assert p.returncode == 0, "curl %s %s failed (%d): %s\nserver log:\n%s" % (
            " ".join(args), url, p.returncode, p.stderr.decode(errors="replace"),
            server.log_text())
    return p


def test_curl_lists_mailboxes(server):
    c = server.imap("demo")
    ok(c.create("Work"))
    ok(c.create("Work/Projects"))
    ok(c.create("Archive"))
    c.logout()
    out = curl(server, "").stdout.decode()
    names = set()
    for line in out.splitlines():
        assert line.startswith("* LIST "), "unexpected curl output line %r" % line
        names.add(line.rsplit(" ", 1)[1].strip('"'))
    assert {"INBOX", "Work", "Work/Projects", "Archive"} <= names, out


def test_curl_fetches_message_by_uid(server):
    msgs = [make_message("curl one"), make_message("curl two", size=200000)]
    c = server.imap("demo")
    for m in msgs:
        ok(c.append("INBOX", None, None, m))
    ok(c.select("INBOX"))
    uids = [c.fetch_dict("1:2", "(UID)")[i]["UID"] for i in (1, 2)]
    c.logout()
    for uid, m in zip(uids, msgs):
        out = curl(server, "INBOX;UID=%d" % uid).stdout
        assert out == m, "curl fetched %d bytes for UID %d, expected %d" % (len(out), uid, len(m))


def test_curl_fetch_missing_uid_fails_cleanly(server):
    c = server.imap("demo")
    ok(c.append("INBOX", None, None, make_message("only")))
    c.logout()
    p = curl(server, "INBOX;UID=999", check=False)
    assert p.returncode != 0 or p.stdout == b"", "a missing UID must not return a message"
    server.assert_serving()


def test_curl_uploads_message(server, tmp_path):
    m = make_message("uploaded by curl", size=30000)
    f = tmp_path / "upload.eml"
    f.write_bytes(m)
    curl(server, "INBOX", "--upload-file", str(f))
    c = server.imap("demo")
    ok(c.select("INBOX"))
    got = c.fetch_dict("1:*", "(BODY.PEEK[] FLAGS)")
    assert len(got) == 1
    assert got[1]["BODY[]"] == m
    c.logout()


def test_curl_upload_to_new_folder_and_search(server, tmp_path):
    c = server.imap("demo")
    ok(c.create("Uploads"))
    c.logout()
    for i in range(3):
        f = tmp_path / ("m%d.eml" % i)
        f.write_bytes(make_message("upload %d" % i))
        curl(server, "Uploads", "--upload-file", str(f))
    # imap://host/Uploads?ALL runs SEARCH ALL in the mailbox.
    out = curl(server, "Uploads?ALL").stdout.decode()
    assert out.strip() == "* SEARCH 1 2 3", out


def test_curl_wrong_password_is_refused(server):
    p = curl(server, "", password="nope", check=False)
    assert p.returncode == 67, "curl should report a login failure (67), got %d: %s" % (
        p.returncode, p.stderr)
    server.assert_serving()
