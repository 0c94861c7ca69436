"""fasciad under systemd, with a fake notify socket: a Unix datagram
socket the test listens on, passed as NOTIFY_SOCKET (systemd's own
protocol, sd_notify(3)).  READY=1 comes once the control socket answers,
STATUS= follows the devices' states, WATCHDOG=1 comes at half of
WATCHDOG_USEC, RELOADING=1 then READY=1 frame a SIGHUP and STOPPING=1
comes on SIGTERM.  And a daemon without its grants (run as nobody) says,
once, which grant each missing right needs."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import wait_until  # noqa: F401
from conftest_daemon import *  # noqa: F401,F403
from daemon_rig import FASCIAD_BIN, write_config

WATCHDOG_USEC = 200000       # WATCHDOG=1 every 0.1 s


class NotifySocket:
    """systemd's side: every datagram with the time it came."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.msgs = []           # (monotonic time, {key: value})
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines()
                          if "=" in line)
            with self.lock:
                self.msgs.append((time.monotonic(), fields))

    def all(self, key=None):
        with self.lock:
            return [(t, f) for t, f in self.msgs if key is None or key in f]

    def wait(self, key, pred=lambda v: True, since=0.0, timeout=5.0):
        def find():
            for t, f in self.all(key):
                if t >= since and pred(f[key]):
                    return t, f
            return None
        return wait_until(find, timeout, interval=0.01,
                          what="%s on the notify socket (got %r)" % (key, self.all()))

    def close(self):
        self._stop = True
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def notified(start_sim, start_daemon, tmp_path):
    sim = start_sim()
    note = NotifySocket(str(tmp_path / "notify"))
    conf = write_config(str(tmp_path), sim.port)
    d = start_daemon(conf, env={"NOTIFY_SOCKET": note.path,
                                "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    yield sim, d, note
    note.close()


def test_ready_comes_once_the_control_socket_answers(notified):
    sim, d, note = notified
    t_ready, f = note.wait("READY")
    assert f["READY"] == "1"
    assert f["STATUS"].startswith("1 device: sim "), f
    # the ready line (stdout) came before, READY=1 after the sockets listen:
    # a request at once is answered
    assert d.ok("hello")["devices"] == ["sim"]
    assert len(note.all("READY")) == 1, note.all()


def test_status_follows_the_device_from_offline_to_idle_to_running(notified):
    sim, d, note = notified
    note.wait("STATUS", lambda v: v == "1 device: sim idle")
    statuses = [f["STATUS"] for _, f in note.all("STATUS")]
    assert statuses[0] == "1 device: sim offline", statuses
    since = time.monotonic()
    d.ok("start", device="sim", profile="long")
    note.wait("STATUS", lambda v: v == "1 device: sim running", since=since)
    # one line a change, not one a tick: 25 ticks go by (five WATCHDOG=1
    # of the daemon's own loop) with no other STATUS
    n, w = len(note.all("STATUS")), len(note.all("WATCHDOG"))
    wait_until(lambda: len(note.all("WATCHDOG")) >= w + 5, 5.0, interval=0.02,
               what="five more WATCHDOG=1")
    assert len(note.all("STATUS")) == n, note.all("STATUS")[n:]
    d.ok("stop", device="sim")
    note.wait("STATUS", lambda v: v == "1 device: sim releasing", since=since)


def test_watchdog_at_half_of_watchdog_usec(notified):
    sim, d, note = notified
    t0, _ = note.wait("WATCHDOG")
    wait_until(lambda: len(note.all("WATCHDOG")) >= 21, 10.0, interval=0.05,
               what="21 WATCHDOG=1")
    times = [t for t, f in note.all("WATCHDOG")]
    assert all(f["WATCHDOG"] == "1" for _, f in note.all("WATCHDOG"))
    mean = (times[20] - times[0]) / 20
    # a timer of the loop at WATCHDOG_USEC / 2: the mean of 20 intervals
    # on a shared machine is within a factor of two of it
    assert WATCHDOG_USEC / 2e6 / 2 < mean < WATCHDOG_USEC / 2e6 * 2, (mean, times[:21])
    assert "WATCHDOG=1 every 0.100 s" in d.log()


def test_sighup_is_framed_by_reloading_and_ready(notified):
    sim, d, note = notified
    note.wait("READY")
    since = time.monotonic()
    d.signal(signal.SIGHUP)
    t_rel, _ = note.wait("RELOADING", since=since)
    t_ready, f = note.wait("READY", since=t_rel)
    assert t_ready >= t_rel
    assert f["STATUS"].startswith("1 device: sim"), f
    assert d.ok("hello")


def test_sigterm_says_stopping(notified):
    sim, d, note = notified
    note.wait("READY")
    since = time.monotonic()
    d.stop()
    _, f = note.wait("STOPPING", since=since)
    assert f["STOPPING"] == "1"
    assert "venting" in f["STATUS"], f


def test_without_notify_socket_nothing_is_sent(rig):
    """The other tests run so: no watchdog, no message of systemd's."""
    assert "watchdog" not in rig.d.log().lower()


@pytest.fixture
def open_dir():
    """A directory nobody may use (tmp_path's parents are root's alone)."""
    d = tempfile.mkdtemp(prefix="fascia-nobody-")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run fasciad as nobody")
def test_a_missing_grant_is_named_once(start_sim, open_dir):
    """As the unit's user without AmbientCapabilities or limits: one line
    for the real-time priority of both devices' threads, one for the
    locked memory, each naming the grant."""
    sim = start_sim()
    tmp_path = pathlib.Path(open_dir)
    # a second device, never reached: its thread runs all the same
    conf = write_config(str(tmp_path), sim.port, extra="[device two]\naddress = 127.0.0.1:1\n")
    for root, dirs, files in os.walk(str(tmp_path)):
        for n in dirs + files:
            os.chmod(os.path.join(root, n), 0o777)
    err = str(tmp_path / "nobody.err")
    with open(err, "w") as f:
        p = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              "prlimit", "--memlock=65536:65536", "--rtprio=0:0",
                              FASCIAD_BIN, "-f", "-c", conf],
                             stdout=subprocess.PIPE, stderr=f, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, STATE_DIRECTORY=str(tmp_path)))
    try:
        line = p.stdout.readline().decode()
        assert line.startswith("ready "), (line, open(err).read())
        wait_until(lambda: "device sim: link up" in open(err).read(), 5.0, interval=0.05,
                   what="device sim up")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    log = open(err).read()
    assert log.count("no real-time priority") == 1, log
    assert "Grant CAP_SYS_NICE (AmbientCapabilities=) or an RLIMIT_RTPRIO of" in log, log
    assert log.count("Grant CAP_IPC_LOCK") == 1, log
    assert "RLIMIT_MEMLOCK is 64 KiB" in log, log
