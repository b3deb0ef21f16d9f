"""A throw-away Dovecot instance for comparisons (integration tests and
benchmarks): one config template, started in its own process group so it
and all its children can be killed together. Needs root. Also the two
port helpers every benchmark uses for any server (free_port, wait_port)."""
import os
import signal
import socket
import subprocess
import time

TEMPLATE = """base_dir = {d}/run
state_dir = {d}/state
log_path = {log}
info_log_path = {log}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_uid = 65534
mail_gid = 65534
passdb {{
  driver = passwd-file
  args = {pw}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={home}
}}
mail_location = {location}
mbox_read_locks = fcntl
mbox_write_locks = fcntl
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


def free_port():
    """A loopback TCP port nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=60):
    """Wait until something accepts on 127.0.0.1:port; RuntimeError if
    proc exits first or nothing listens within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("server did not start")


def chown_nobody(path):
    """Dovecot's mail processes run as nobody: give it the files."""
    os.chown(path, 65534, 65534)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(root, n), 65534, 65534)


def write_conf(workdir, port, passwd, location, home=None, log="/dev/null"):
    """Writes workdir/dovecot.conf and returns its path. workdir must be
    world-readable; `location` is Dovecot's mail_location."""
    conf = os.path.join(workdir, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(TEMPLATE.format(d=workdir, pw=passwd, home=home or workdir, location=location,
                                port=port, log=log))
    return conf


def start(conf, port, timeout=20):
    """Starts Dovecot in the foreground in a new process group and waits
    until it accepts on port. Returns the Popen (stderr piped)."""
    proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("dovecot exited at start: %s" % proc.stderr.read().decode(errors="replace"))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError("dovecot did not start")
            time.sleep(0.05)


def stop(proc):
    """Kills the master and every child; returns what it logged."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.communicate(timeout=10)[1].decode(errors="replace")
