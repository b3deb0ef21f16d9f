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


# ---------------------------------------------------------------- Dovecot

def proc_tree_private_kib(root):
    """Private memory (clean + dirty) of root and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            total += private_dirty_kib(pid)
        except OSError:
            pass
    return total


def test_memory_compared_with_dovecot(server_factory, certs, tmp_path):  # noqa: F811
    """The same 100 idle TLS sessions against Dovecot's imaps (if
    installed and we are root), for the README's comparison."""
    import tempfile
    from conftest import free_port as _free_port
    if not shutil.which("dovecot") or os.geteuid() != 0:
        pytest.skip("needs dovecot-imapd and root")
    if "asan" in os.environ.get("PICOIMAPD", ""):
        pytest.skip("sanitizer build")
    cert, key = certs["ec"]
    d = tempfile.mkdtemp(prefix="picoimapd-dcmem-")
    try:
        os.chmod(d, 0o755)
        store = os.path.join(d, "mail")
        os.mkdir(store)
        os.chown(store, 65534, 65534)
        pw = os.path.join(d, "passwd")
        with open(pw, "w") as f:
            f.write("demo:{PLAIN}demo\n")
        port = _free_port()
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("""base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain
first_valid_uid = 100
mail_uid = 65534
mail_gid = 65534
passdb {{
  driver = passwd-file
  args = {pw}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={m}/%u
}}
mail_location = maildir:{m}/%u/Maildir
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
  }}
  chroot =
  process_limit = 1000
}}
service imap {{
  process_limit = 1000
}}
service anvil {{
  chroot =
}}
default_client_limit = 2000
protocol imap {{
  mail_max_userip_connections = 1000
}}
""".format(d=d, cert=cert, key=key, pw=pw, m=store, port=port))
        proc = subprocess.Popen(["dovecot", "-F", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "dovecot did not start"
                    time.sleep(0.1)

            class Dc:
                tls_port = port
            Dc.cert = cert
            warm = [tls_login_from(Dc, "127.0.0.2") for _ in range(3)]
            time.sleep(0.5)
            p0 = proc_tree_private_kib(proc.pid)
            conns = [tls_login_from(Dc, "127.0.0.%d" % (20 + i // 50)) for i in range(N)]
            time.sleep(0.5)
            p1 = proc_tree_private_kib(proc.pid)
            dc = (p1 - p0) / N
            for r in conns + warm:
                r.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        s = tls_server(server_factory, certs)
        ours_heap, ours_pages = measure(s, True, 30)
        print("\nper idle TLS session after LOGIN+SELECT (%d sessions): picoimapd %.1f KiB heap / "
              "%.1f KiB pages; Dovecot %s imaps %.1f KiB private memory (all its processes)"
              % (N, ours_heap or -1, ours_pages, subprocess.run(
                  ["dovecot", "--version"], capture_output=True, text=True).stdout.split()[0], dc))
        assert ours_pages < dc
    finally:
        shutil.rmtree(d, ignore_errors=True)
