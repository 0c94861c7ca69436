"""The ready line: what fasciad -f and fascia-sim print on standard output
once they serve, "ready k=v ..." (fasciad(8), fascia-sim(1)); a rig that
starts them reads it to learn the endpoints they bound."""
import os
import select
import time


class NotReady(Exception):
    """The program printed no ready line; the message says what happened
    instead."""


def read_ready(proc, timeout):
    """The first line of proc's standard output (a pipe), which must begin
    "ready "; NotReady when it does not, when it does not come within
    timeout seconds, or when the program exits first."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NotReady("no ready line within %.1f s (stdout %r)" % (timeout, buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait(timeout=2)
                raise NotReady("exited (%s) before it was ready (stdout %r)"
                               % (proc.returncode, buf))
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode(errors="replace")
    if not line.startswith("ready "):
        raise NotReady("unexpected first line %r" % line)
    return line


def ready_fields(line):
    """The k=v fields of a ready line, as a dict."""
    return dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
