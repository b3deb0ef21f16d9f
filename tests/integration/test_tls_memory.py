"""Memory per TLS connection (issue 6 target: at most 40 KiB with Debian's
mbedTLS): 100 idle TLS sessions after LOGIN and SELECT, measured two ways
and divided by 100:
  heap   growth of glibc's "in use bytes" (malloc_stats() called through
         gdb): what the issue asks for, the target is checked on this;
  pages  growth of the process's private memory (smaps_rollup): adds
         allocator fragmentation and the poll tables.
The same is measured for 100 plaintext sessions in the same run, so the
TLS share is visible. Printed with -s.
"""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from test_tls import HOST, certs, ctx_for, tls_server  # noqa: F401  (fixture)
from conftest import Raw

pytestmark = pytest.mark.picoimapd_only

N = 100


def private_dirty_kib(pid):
    total = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(("Private_Dirty:", "Private_Clean:")):
                total += int(line.split()[1])
    return total


def heap_in_use(s):
    """glibc's in-use heap bytes of the server, or None without gdb."""
    if not shutil.which("gdb"):
        return None
    log = s.logs[-1]
    mark = os.path.getsize(log)
    subprocess.run(["gdb", "-p", str(s.proc.pid), "-batch", "-ex", "call (void)malloc_stats()"],
                   capture_output=True, timeout=60)
    time.sleep(0.1)
    with open(log, "rb") as f:
        f.seek(mark)
        text = f.read().decode("utf-8", "replace")
    m = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*\d+\s*in use bytes\s*=\s*(\d+)", text)
    return int(m.group(1)) if m else None


def tls_login_from(s, source, tls=True):
    so = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    so.bind((source, 0))
    so.settimeout(30)
    so.connect((HOST, s.tls_port if tls else s.port))
    r = Raw.__new__(Raw)
    r.sock = ctx_for(s.cert).wrap_socket(so, server_hostname=HOST) if tls else so
    r.buf, r.ntag, r.transcript, r.eof = b"", 0, [], False
    r.greeting = r.read_response(greeting=True)
    r.login("demo")
    r.cmd_ok("SELECT INBOX")
    return r


def measure(s, tls, base):
    warm = [tls_login_from(s, "127.0.0.%d" % (base - 1), tls) for _ in range(3)]
    time.sleep(0.2)
    h0, p0 = heap_in_use(s), private_dirty_kib(s.proc.pid)
    conns = []
    # CONFIG_MAX_CONNS_PER_IP is 64: spread the clients over addresses.
    for i in range(N):
        conns.append(tls_login_from(s, "127.0.0.%d" % (base + i // 50), tls))
    time.sleep(0.3)
    h1, p1 = heap_in_use(s), private_dirty_kib(s.proc.pid)
    for r in conns + warm:
        r.cmd_ok("NOOP")
        r.close()
    heap = (h1 - h0) / N / 1024 if h0 is not None and h1 is not None else None
    return heap, (p1 - p0) / N


def test_memory_per_idle_tls_session(server_factory, certs):  # noqa: F811
    if "asan" in os.environ.get("PICOIMAPD", ""):
        pytest.skip("sanitizer builds use their own allocator")
    s = tls_server(server_factory, certs)
    plain_heap, plain_pages = measure(s, False, 10)
    tls_heap, tls_pages = measure(s, True, 20)
    fmt = lambda v: "n/a" if v is None else "%.1f KiB" % v  # noqa: E731
    print("\nmemory per idle logged-in session (%d sessions): plaintext heap %s, pages %s; "
          "TLS heap %s, pages %s" % (N, fmt(plain_heap), fmt(plain_pages), fmt(tls_heap),
                                     fmt(tls_pages)))
    if tls_heap is None:
        pytest.skip("gdb not installed: no heap figure (pages: %.1f KiB)" % tls_pages)
    assert tls_heap <= 40, "%.1f KiB of heap per TLS session" % tls_heap
