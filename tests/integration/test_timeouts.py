"""Timers: an unauthenticated connection that idles for TIMEOUT_PREAUTH
(60 s by default) gets * BYE and is closed; an active one is not, and the
idle one never holds up the others. About a minute of wall time."""

import threading
import time

import pytest

PREAUTH = 60


@pytest.mark.picoimapd_only
def test_preauth_idle_timeout(server):
    idle = server.raw()
    busy = server.raw()
    t0 = time.monotonic()
    stop = threading.Event()
    errors = []

    def keep_busy():
        # A pre-auth client that keeps talking is not idle.
        try:
            while not stop.wait(5):
                busy.cmd_ok("NOOP")
        except Exception as e:
            errors.append(repr(e))
    th = threading.Thread(target=keep_busy, daemon=True)
    th.start()
    # Other clients are served meanwhile.
    server.assert_serving()
    got = idle.expect_closed(timeout=PREAUTH + 15)
    waited = time.monotonic() - t0
    stop.set()
    th.join()
    assert waited >= PREAUTH - 2, "closed after %.0f s, before the %d s timeout" % (waited, PREAUTH)
    assert [x.name for x in got] in (["BYE"], []), [x.line for x in got]
    assert got and got[0].name == "BYE", "RFC 3501 5.4: autologout sends * BYE first"
    assert not errors, errors
    busy.cmd_ok("NOOP")
