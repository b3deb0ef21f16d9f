"""SEARCH and UID SEARCH: ALL, UID, sequence sets, flag keys, LARGER,
SMALLER, BEFORE, ON, SINCE, NOT, OR, parenthesized lists."""

import pytest

from conftest import make_message, fetches, search_result

# (size, internal date or None for now, flags)
MESSAGES = [
    (1000, "01-Jan-2024 12:00:00 +0000", "\\Seen"),
    (5000, "15-Jun-2024 12:00:00 +0000", "\\Flagged \\Answered"),
    (20000, "31-Dec-2024 12:00:00 +0000", "\\Deleted \\Seen"),
    (3000, "15-Jun-2024 06:00:00 +0000", "\\Draft"),
    (800, None, ""),
]

CASES = [
    ("ALL", [1, 2, 3, 4, 5]),
    ("SEEN", [1, 3]),
    ("UNSEEN", [2, 4, 5]),
    ("DELETED", [3]),
    ("UNDELETED", [1, 2, 4, 5]),
    ("FLAGGED", [2]),
    ("UNFLAGGED", [1, 3, 4, 5]),
    ("ANSWERED", [2]),
    ("UNANSWERED", [1, 3, 4, 5]),
    ("DRAFT", [4]),
    ("UNDRAFT", [1, 2, 3, 5]),
    ("LARGER 4000", [2, 3]),
    ("LARGER 1000", [2, 3, 4]),
    ("LARGER 4294967295", []),
    ("SMALLER 1000", [5]),
    ("SMALLER 1001", [1, 5]),
    ("SMALLER 0", []),
    ("BEFORE 15-Jun-2024", [1]),
    ("BEFORE 1-Jan-2000", []),
    ('BEFORE "1-Jan-2100"', [1, 2, 3, 4, 5]),
    ("ON 15-Jun-2024", [2, 4]),
    ("ON 01-Jan-2024", [1]),
    ("ON 2-Jan-2024", []),
    ("SINCE 15-Jun-2024", [2, 3, 4, 5]),
    ("SINCE 1-Jan-2025", [5]),
    ("since 31-dec-2024", [3, 5]),
    ("NOT SEEN", [2, 4, 5]),
    ("NOT NOT SEEN", [1, 3]),
    ("OR SEEN FLAGGED", [1, 2, 3]),
    ("OR DRAFT LARGER 10000", [3, 4]),
    ("OR OR DRAFT FLAGGED DELETED", [2, 3, 4]),
    ("SEEN LARGER 2000", [3]),
    ("NOT (OR SEEN DRAFT)", [2, 5]),
    ("(SEEN) (LARGER 2000)", [3]),
    ("UNSEEN SMALLER 4000 SINCE 1-Jan-2024", [4, 5]),
    ("2:4", [2, 3, 4]),
    ("2:4 SEEN", [3]),
    ("*", [5]),
    ("1,5", [1, 5]),
    ("4:*", [4, 5]),
    ("NOT 1:3", [4, 5]),
    ("OR 1 5", [1, 5]),
]


@pytest.fixture
def box(server):
    r = server.raw("demo")
    for i, (size, date, flags) in enumerate(MESSAGES):
        head = "APPEND INBOX (%s) " % flags
        if date:
            head += '"%s" ' % date
        _, done = r.cmd_lit([head, make_message("search %d" % i, size=size), ""])
        assert done.name == "OK", done.line
    r.cmd_ok("SELECT INBOX")
    u, _ = r.cmd_ok("FETCH 1:* (UID RFC822.SIZE)")
    f = fetches(u)
    assert [f[i]["RFC822.SIZE"] for i in range(1, 6)] == [m[0] for m in MESSAGES]
    r.uids = [f[i]["UID"] for i in range(1, 6)]
    return r


@pytest.mark.parametrize("query,want", CASES, ids=[c[0] for c in CASES])
def test_search(box, query, want):
    u, _ = box.cmd_ok("SEARCH " + query)
    assert search_result(u) == want, "SEARCH %s" % query


@pytest.mark.parametrize("query,want", CASES[:12] + CASES[-7:], ids=[c[0] for c in CASES[:12] + CASES[-7:]])
def test_uid_search(box, query, want):
    u, _ = box.cmd_ok("UID SEARCH " + query)
    assert search_result(u) == [box.uids[i - 1] for i in want], "UID SEARCH %s" % query


def test_search_uid_key(box):
    u = box.uids
    u_, _ = box.cmd_ok("SEARCH UID %d:%d" % (u[1], u[3]))
    assert search_result(u_) == [2, 3, 4]
    u_, _ = box.cmd_ok("UID SEARCH UID %d:*" % u[2])
    assert search_result(u_) == u[2:]
    u_, _ = box.cmd_ok("UID SEARCH UID %d,%d" % (u[0], u[4] + 50))
    assert search_result(u_) == [u[0]]
    u_, _ = box.cmd_ok("SEARCH UID %d:* NOT SEEN" % (u[4] + 50))
    assert search_result(u_) == [5], "n:* includes the last message"
    u_, _ = box.cmd_ok("SEARCH NOT UID %d" % u[0])
    assert search_result(u_) == [2, 3, 4, 5]


def test_search_charset(box):
    u, _ = box.cmd_ok("SEARCH CHARSET US-ASCII SEEN")
    assert search_result(u) == [1, 3]
    u, _ = box.cmd_ok("SEARCH CHARSET UTF-8 ALL")
    assert search_result(u) == [1, 2, 3, 4, 5]
    _, done = box.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET ALL")
    assert done.name == "NO" and done.code == "BADCHARSET", done.line


def test_search_after_expunge_renumbers(box):
    box.cmd_ok("EXPUNGE")       # message 3 is \Deleted
    u, _ = box.cmd_ok("SEARCH SEEN")
    assert search_result(u) == [1]
    u, _ = box.cmd_ok("SEARCH LARGER 2000")
    assert search_result(u) == [2, 3]
    u, _ = box.cmd_ok("UID SEARCH ALL")
    assert search_result(u) == [box.uids[i] for i in (0, 1, 3, 4)]
