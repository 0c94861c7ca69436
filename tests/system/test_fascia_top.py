"""fascia-top, the live terminal view, against a real fasciad and fascia-sim:
driven in a private tmux server (80x24, keys sent, the screen captured), and
in its plain mode with stdout on a pipe.

Every tmux server is started on its own -L socket and killed by that name
at teardown; the daemon and the simulator come from conftest_daemon's rig.
"""
import os
import re
import shlex
import socket
import subprocess
import time
import uuid

import pytest

from conftest import BUILD, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures: rig, start_daemon, start_sim)
from conftest_daemon import start_session
from test_fasciactl import FakeDaemon, answer_never_read, never_read_state

TOP_BIN = os.path.join(BUILD, "fascia-top")
SCREEN_TIMEOUT_S = 5.0

# " 1 [#####|.....]  25.1/ 25.0 +": chamber, bar, pressure, setpoint
BAR_RE = re.compile(r"^\s*(\d+) \[([#|.]+)\]\s+(-?\d+\.\d|\?)\s*/\s*(-?\d+\.\d)")


class Tmux:
    """One private tmux server running one fascia-top."""

    def __init__(self, argv, directory, width=80, height=24):
        self.name = "fascia-top-test-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self.err_path = os.path.join(directory, self.name + ".err")
        self.status_path = os.path.join(directory, self.name + ".status")
        # The shell records fascia-top's exit status (tmux 3.3a does not
        # always report a pane's), and its stderr for the failure messages.
        command = "%s 2>%s; echo $? >%s" % (
            " ".join(shlex.quote(a) for a in argv), shlex.quote(self.err_path),
            shlex.quote(self.status_path))
        self.started = False
        self.socket_path = None
        self.run("-f", "/dev/null", "new-session", "-d", "-x", str(width),
                 "-y", str(height), command)
        self.started = True
        # Keep the pane (and the server) after fascia-top exits.
        self.run("set-option", "-g", "remain-on-exit", "on")
        self.socket_path = self.run("display-message", "-p",
                                    "#{socket_path}").stdout.strip()

    def run(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.name] + list(args), check=check,
                              capture_output=True, text=True, timeout=10)

    def screen(self):
        return self.run("capture-pane", "-p").stdout

    def keys(self, *keys):
        self.run("send-keys", *keys)

    def status(self):
        """fascia-top's exit status, None while it runs."""
        try:
            with open(self.status_path) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def stderr(self):
        try:
            with open(self.err_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_screen(self, pred, timeout=SCREEN_TIMEOUT_S, what=None):
        """Poll the captured screen until pred(screen) is true; returns it."""
        last = [""]

        def check():
            last[0] = self.screen()
            return last[0] if pred(last[0]) else None
        try:
            return wait_until(check, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError("%s\nscreen:\n%s\nexit status %r, stderr:\n%s"
                                 % (e, last[0], self.status(), self.stderr()))

    def wait_text(self, text, timeout=SCREEN_TIMEOUT_S):
        return self.wait_screen(lambda s: text in s, timeout, what=repr(text))

    def wait_exit(self, timeout=SCREEN_TIMEOUT_S):
        wait_until(lambda: self.status() is not None, timeout, interval=0.05,
                   what="fascia-top to exit")
        return self.status()

    def kill(self):
        if self.started:
            self.run("kill-server", check=False)
            self.started = False
            # tmux 3.3a leaves the socket file behind.
            if self.socket_path and os.path.basename(self.socket_path) == self.name:
                try:
                    os.unlink(self.socket_path)
                except OSError:
                    pass


@pytest.fixture
def top(rig, tmp_path):
    """top(*args, width=, height=) -> Tmux running fascia-top on the rig's
    daemon; every tmux server is killed at teardown."""
    made = []

    def start(*args, width=80, height=24):
        argv = [TOP_BIN, "--endpoint", rig.d.control, "--publish", rig.d.publish] + \
            list(args)
        t = Tmux(argv, str(tmp_path), width, height)
        made.append(t)
        return t

    yield start
    for t in made:
        t.kill()


def bars(screen):
    """{chamber: (bar, pressure or None, setpoint)} of the bars on screen."""
    out = {}
    for line in screen.splitlines():
        m = BAR_RE.match(line)
        if m:
            p = None if m.group(3) == "?" else float(m.group(3))
            out[int(m.group(1))] = (m.group(2), p, float(m.group(4)))
    return out


def pressurised(screen):
    b = bars(screen)
    return len(b) == 8 and any(p is not None and p > 5.0 for _, p, _ in b.values())


def test_top_shows_a_bar_per_chamber_with_pressure_and_setpoint(rig, top):
    assert os.access(TOP_BIN, os.X_OK), "no fascia-top at %s" % TOP_BIN
    start_session(rig, "long")
    t = top()
    screen = t.wait_screen(pressurised, 8.0, what="8 bars, a pressure > 5 mmHg")
    assert "running" in screen and "long" in screen, screen
    b = bars(screen)
    # The ramp targets 25 mmHg in every chamber: the setpoint marker '|'
    # is in each bar, and the setpoint column is above zero.
    assert all("|" in bar for bar, _, _ in b.values()), screen
    assert any(sp > 0 for _, _, sp in b.values()), screen
    assert all(len(line) <= 80 for line in screen.splitlines()), screen


def test_top_shows_an_injected_estop_as_a_high_alarm(rig, top):
    t = top()
    t.wait_text("idle")
    rig.sim.inject("estop")
    screen = t.wait_screen(lambda s: re.search(r"ALARM high\s+estop", s) and "fault" in s,
                           what="the estop alarm and the fault state")
    line = next(ln for ln in screen.splitlines() if "estop" in ln and "ALARM" in ln)
    assert "latched" in line and "present" in line, line
    rig.sim.clear("estop")
    t.wait_screen(lambda s: re.search(r"estop.*latched\s+cleared", s),
                  what="the estop alarm latched, its cause cleared")


def test_top_stop_key_asks_then_stops_the_session(rig, top):
    start_session(rig, "long")
    t = top()
    t.wait_text("running")
    # Anything but y cancels: the session keeps running.
    t.keys("s")
    t.wait_text("Stop session on sim? [y/N]")
    t.keys("n")
    t.wait_text("stop sim: cancelled")
    assert rig.d.status()["state"] == "running"
    t.keys("s")
    t.wait_text("Stop session on sim? [y/N]")
    t.keys("y")
    t.wait_text("stop sim: ok")
    st = rig.d.status()
    assert st["state"] in ("releasing", "idle"), st
    t.wait_screen(lambda s: "releasing" in s or "idle" in s, what="releasing or idle")


def test_top_shows_the_daemon_error_for_a_refused_command(rig, top):
    t = top()
    t.wait_text("idle")
    t.keys("p")
    t.wait_text("Pause session on sim? [y/N]")
    t.keys("y")
    t.wait_text("pause sim: error forbidden")


def test_top_redraws_after_a_resize(rig, top):
    start_session(rig, "long")
    t = top()
    t.wait_screen(pressurised, 8.0)
    t.run("resize-window", "-x", "120", "-y", "30")

    def wide(s):
        b = bars(s)
        return len(b) == 8 and all(len(bar) > 80 for bar, _, _ in b.values())
    t.wait_screen(wide, what="bars redrawn for 120 columns")
    t.run("resize-window", "-x", "60", "-y", "16")
    t.wait_screen(lambda s: len(bars(s)) >= 4 and
                  all(len(line) <= 60 for line in s.splitlines()),
                  what="a redraw within 60x16")
    t.run("resize-window", "-x", "80", "-y", "24")
    t.wait_screen(pressurised, what="8 bars again at 80x24")
    assert t.status() is None, t.stderr()


def test_top_shows_daemon_unreachable_when_the_daemon_dies(rig, top):
    t = top()
    t.wait_text("idle")
    assert "unreachable" not in t.screen()
    rig.d.kill()
    t.wait_text("daemon unreachable", timeout=6.0)
    # Still drawing and answering keys: a command is not sent, q exits 0.
    assert t.status() is None, t.stderr()
    t.keys("s")
    t.wait_text("Stop session on sim? [y/N]")
    t.keys("y")
    t.wait_text("not sent: daemon unreachable")
    t0 = time.monotonic()
    t.keys("q")
    assert t.wait_exit() == 0
    assert time.monotonic() - t0 < 2.0


def test_top_stop_and_its_confirmation_work_with_caps_lock(rig, top):
    """Letters are read regardless of case: S asks, Y confirms."""
    start_session(rig, "long")
    t = top()
    t.wait_text("running")
    t.keys("S")
    t.wait_text("Stop session on sim? [y/N]")
    t.keys("Y")
    t.wait_text("stop sim: ok")
    assert rig.d.status()["state"] in ("releasing", "idle")


def test_top_on_a_silent_publisher_does_not_claim_to_be_connected(rig, tmp_path):
    """The control endpoint answers, the publish one is wrong: the banner
    says the daemon is unreachable, and no "connected to" contradicts it."""
    argv = [TOP_BIN, "--endpoint", rig.d.control, "--publish",
            "tcp://127.0.0.1:%d" % free_port()]
    t = Tmux(argv, str(tmp_path))
    try:
        t.wait_text("daemon unreachable", timeout=6.0)
        screen = t.wait_screen(lambda s: "connected to" not in s, timeout=1.0,
                               what="the banner without \"connected to\"")
        assert "daemon unreachable" in screen, screen
        t.keys("q")
        assert t.wait_exit() == 0
    finally:
        t.kill()


@pytest.fixture
def never_read():
    """A stand-in daemon whose one device "sim" has never answered."""
    f = FakeDaemon(answer_never_read, never_read_state)
    yield f
    f.close()


def test_top_shows_a_device_never_read_as_no_reading_yet(never_read, tmp_path):
    t = Tmux([TOP_BIN, "--endpoint", never_read.control, "--publish", never_read.publish],
             str(tmp_path))
    try:
        screen = t.wait_text("no reading yet (connect: Connection refused)")
        assert "supply ?" in screen, screen
        # no zero reading anywhere (the endpoints' "127.0.0.1" aside)
        assert not re.search(r"(?<![\d.])0\.0(?![\d.])", screen), screen
        assert not bars(screen), screen
        assert "offline" in screen, screen
        t.keys("q")
        assert t.wait_exit() == 0
    finally:
        t.kill()


def test_plain_mode_shows_a_device_never_read_as_unknown(never_read):
    p = subprocess.run([TOP_BIN, "--endpoint", never_read.control, "--publish",
                        never_read.publish, "--count", "1"], capture_output=True,
                       text=True, timeout=15)
    assert p.returncode == 0, p
    line = p.stdout.strip()
    assert " sim state=offline " in line, line
    assert " pressures=? supply=? " in line, line
    assert "0.0" not in line, line


def test_top_quits_on_q(rig, top):
    t = top()
    t.wait_text("sim")
    t.keys("q")
    assert t.wait_exit() == 0


def test_top_selects_the_device_named_at_start(rig, top):
    t = top("--device", "sim")
    screen = t.wait_text("> sim")
    assert "(no devices yet)" not in screen


# ---------------------------------------------------------------------------
# Without a terminal: plain lines

def test_plain_mode_prints_a_line_per_device_per_second(rig):
    start_session(rig, "long")
    t0 = time.monotonic()
    p = subprocess.run([TOP_BIN, "--endpoint", rig.d.control, "--publish", rig.d.publish,
                        "--count", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=15)
    took = time.monotonic() - t0
    assert p.returncode == 0, p
    lines = p.stdout.splitlines()
    assert len(lines) == 3, p.stdout
    assert all(" sim state=running profile=long " in ln for ln in lines), p.stdout
    assert "\x1b" not in p.stdout, "escape sequences in plain mode: %r" % p.stdout
    assert 1.5 < took < 6.0, took   # one line a second
    m = re.search(r"pressures=([^ ]+)", lines[-1])
    pressures = [float(x.split("/")[0]) for x in m.group(1).split(",")]
    assert len(pressures) == 8 and max(pressures) > 0, lines[-1]


def test_plain_mode_through_cat(rig):
    cmd = "%s --endpoint %s --publish %s --count 3 | cat" % (
        shlex.quote(TOP_BIN), rig.d.control, rig.d.publish)
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=15)
    assert p.returncode == 0, p
    assert len(p.stdout.splitlines()) == 3 and "sim state=idle" in p.stdout, p.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_plain_mode_exits_3_when_no_daemon_answers():
    t0 = time.monotonic()
    p = subprocess.run([TOP_BIN, "--endpoint", "tcp://127.0.0.1:%d" % free_port(),
                        "--publish", "tcp://127.0.0.1:%d" % free_port(), "--count", "2"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 3, p
    assert "unreachable" in p.stderr, p.stderr
    assert p.stdout == ""
    assert time.monotonic() - t0 < 10.0


def test_plain_mode_takes_endpoints_from_the_environment(rig):
    env = dict(os.environ, FASCIA_CONTROL=rig.d.control, FASCIA_PUBLISH=rig.d.publish)
    p = subprocess.run([TOP_BIN, "--count", "1"], capture_output=True, text=True,
                       timeout=15, env=env)
    assert p.returncode == 0, p
    assert p.stdout.count("sim state=") == 1, p.stdout


@pytest.mark.parametrize("args", [["--count", "0"], ["--count", "x"], ["--bogus"],
                                  ["extra"], ["--endpoint", "bogus"],
                                  ["--publish", "tcp://127.0.0.1"]])
def test_usage_errors_exit_2(args):
    p = subprocess.run([TOP_BIN] + args, capture_output=True, text=True, timeout=5)
    assert p.returncode == 2, p
    assert "usage" in p.stderr or "fascia-top:" in p.stderr, p.stderr


def test_help_exits_0():
    p = subprocess.run([TOP_BIN, "--help"], capture_output=True, text=True, timeout=5)
    assert p.returncode == 0 and "--count" in p.stdout, p
