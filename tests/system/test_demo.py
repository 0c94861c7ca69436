"""make demo (clients/demo.py), run as CI would: DEMO_SECONDS=10, stdout a
pipe.  It must end by itself with status 0, show the session running with
its pressures rising, and leave neither of the programs it started behind.
Its state line is also checked alone: unknown readings are never 0."""
import http.cookiejar
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

import pytest

from conftest import BUILD, REPO, wait_until
import fascia  # noqa: E402  (on the path conftest set)

DEMO = os.path.join(REPO, "clients", "demo.py")
DEMO_SECONDS = 10
# start-up, DEMO_SECONDS, the release after stop (gentle, a few seconds),
# and the stops: well under this
DEMO_TIMEOUT_S = 60


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_demo_runs_a_session_and_leaves_nothing_running():
    env = dict(os.environ, FASCIA_BUILD=BUILD, DEMO_SECONDS=str(DEMO_SECONDS))
    env.pop("DEMO_VIEWER", None)
    proc = subprocess.Popen([sys.executable, DEMO], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, text=True)
    try:
        out, _ = proc.communicate(timeout=DEMO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += "\n[the demo did not end within %d s]" % DEMO_TIMEOUT_S
    m = re.search(r"^demo: fascia-sim pid (\d+), fasciad pid (\d+)$", out, re.M)
    assert m, "no pid line in the demo's output:\n" + out
    pids = [int(m.group(1)), int(m.group(2))]
    m = re.search(r"^demo: fascia-web pid (\d+)$", out, re.M)   # when it is built
    if m:
        pids.append(int(m.group(1)))
    left = [p for p in pids if alive(p)]
    for p in left:                       # ours: the demo printed them
        os.kill(p, signal.SIGKILL)
    assert not left, "the demo left pids %s running:\n%s" % (left, out)
    assert proc.returncode == 0, "demo exited %r:\n%s" % (proc.returncode, out)

    assert "demo: started gentle-wave on sim: running" in out, out
    running = re.findall(r"^t=\s*[\d.]+s\s+running\s.*chambers 1-4\s+(-?[\d.]+)", out, re.M)
    assert len(running) >= DEMO_SECONDS // 2, "too few running lines:\n" + out
    # gentle-wave ramps chamber 1 to 35 mmHg over 5 s: it must show rising
    assert max(float(p) for p in running) > 20.0, "chamber 1 never above 20 mmHg:\n" + out
    assert "demo: end: DEMO_SECONDS elapsed" in out, out
    assert re.search(r"^demo: stopped .*nothing left running$", out, re.M), out


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def test_demo_shows_a_device_never_read_as_no_reading_yet():
    """No chambers and a null supply (before the first reading) is
    unknown: the demo's line says so and shows no pressure at all."""
    demo = load_demo()
    data = {"v": 1, "device": "sim", "seq": 3, "state": "offline", "session": None,
            "chambers": [], "supply": None, "alarms": [], "link": {"up": False}}
    line = demo.state_line(fascia.Message("state.sim", "state", "sim", 3, data), 1.0)
    assert "no reading yet" in line, line
    assert "mmHg" not in line and "supply" not in line, line
    data = dict(data, state="idle", chambers=[{"pressure": None, "setpoint": 0.0}] * 8,
                supply=250.0)
    line = demo.state_line(fascia.Message("state.sim", "state", "sim", 4, data), 2.0)
    assert "chambers 1-4   ?  " in line and "supply 250" in line, line


def test_demo_opens_the_web_console_with_its_own_user():
    """With fascia-web built, the demo prints the console's address and a
    user's name and password; they log in, and the console shows the
    demo's room live with its device.  SIGTERM ends the demo early, and
    nothing it started is left, the console included."""
    web = os.path.join(BUILD, "fascia-web")
    if not os.access(web, os.X_OK):
        pytest.skip("fascia-web is not built")
    env = dict(os.environ, FASCIA_BUILD=BUILD, DEMO_SECONDS="60")
    env.pop("DEMO_VIEWER", None)
    proc = subprocess.Popen([sys.executable, DEMO], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, text=True)
    lines = []
    found = {}

    def read():
        for line in proc.stdout:
            lines.append(line)
            m = re.match(r"demo: the web console: (http://127\.0\.0\.1:\d+) "
                         r"\(log in as (\S+), password (\S+):", line)
            if m:
                found["url"], found["name"], found["password"] = m.groups()
            m = re.match(r"demo: fascia-web pid (\d+)$", line)
            if m:
                found["pid"] = int(m.group(1))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: "url" in found or proc.poll() is not None, 30,
                   interval=0.05, what="the console's address in the demo's output")
        assert "url" in found, "no console line:\n" + "".join(lines)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = urllib.parse.urlencode({"name": found["name"],
                                       "password": found["password"]}).encode()
        req = urllib.request.Request(found["url"] + "/login", data=form,
                                     headers={"Accept": "application/json"})
        with opener.open(req, timeout=10) as r:
            assert r.status == 200
        assert any(c.name == "fascia_session" for c in jar), list(jar)

        def demo_room():
            with opener.open(found["url"] + "/api/state", timeout=10) as r:
                rooms = json.load(r)["rooms"]
            room = rooms[0] if rooms else {}
            return room if room.get("live") and room.get("devices") else None
        room = wait_until(demo_room, 10, interval=0.1, what="the demo's room live")
        assert room["room"] == "demo" and room["devices"][0]["device"] == "sim", room
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)      # the demo's own: it stops the rest
        try:
            proc.wait(timeout=DEMO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    out = "".join(lines)
    assert proc.returncode == 0, "demo exited %r:\n%s" % (proc.returncode, out)
    assert "pid" in found and not alive(found["pid"]), \
        "the console (pid %s) is left running:\n%s" % (found.get("pid"), out)
    assert re.search(r"^demo: stopped .*fascia-web .*nothing left running$", out, re.M), out
