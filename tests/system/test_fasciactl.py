"""fasciactl against a real fasciad and fascia-sim: every subcommand, every
exit code, --json, the helpful messages (unknown device, invalid profile),
the offline profile check, and watch's one-line stream.

Run: FASCIA_BUILD=/path/to/build /usr/bin/python3 -m pytest -q \
         tests/system/test_fasciactl.py
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import zmq

from conftest import BUILD, REPO, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures: rig, start_sim, ...)
from daemon_rig import PROFILES, write_config

CTL_BIN = os.path.join(BUILD, "fasciactl")
RUN_TIMEOUT_S = 15


def run_ctl(*args, env_extra=None, timeout=RUN_TIMEOUT_S):
    """fasciactl ARGS -> CompletedProcess (text)."""
    if not os.access(CTL_BIN, os.X_OK):
        pytest.fail("no fasciactl at %s (set FASCIA_BUILD, run make)" % CTL_BIN)
    env = dict(os.environ)
    env.pop("FASCIA_CONTROL", None)
    env.pop("FASCIA_PUBLISH", None)
    env.update(env_extra or {})
    return subprocess.run([CTL_BIN] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


class Ctl:
    """fasciactl bound to one rig's endpoints."""

    def __init__(self, rig):
        self.rig = rig

    def __call__(self, *args, **kw):
        return run_ctl("--endpoint", self.rig.d.control, "--publish", self.rig.d.publish,
                       *args, **kw)


@pytest.fixture
def ctl(rig):
    return Ctl(rig)


def free_port():
    """A loopback TCP port where nothing listens (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
    return str(path)


class FakeDaemon:
    """A stand-in for fasciad on loopback ports, for what a real one cannot
    be made to send: a ROUTER whose replies come from answer(request) (a
    dict; its "id" is the request's unless it sets one), and a PUB that
    sends state(seq) as "state.sim" every 100 ms while state is given.
    Also used by test_fascia_top.py."""

    def __init__(self, answer, state=None):
        ctx = zmq.Context.instance()
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.control = "tcp://127.0.0.1:%d" % self.router.bind_to_random_port(
            "tcp://127.0.0.1")
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.publish = "tcp://127.0.0.1:%d" % self.pub.bind_to_random_port(
            "tcp://127.0.0.1")
        self.answer, self.state = answer, state
        self.requests = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        seq, next_pub = 0, 0.0
        while not self.stop:
            if self.state is not None and time.monotonic() >= next_pub:
                seq += 1
                self.pub.send_multipart([b"state.sim", json.dumps(self.state(seq)).encode()])
                next_pub = time.monotonic() + 0.1
            if not self.router.poll(20):
                continue
            frames = self.router.recv_multipart()
            try:
                req = json.loads(frames[-1])
            except ValueError:
                req = None
            self.requests.append(req)
            reply = dict(self.answer(req))
            reply.setdefault("v", 1)
            if "id" not in reply:
                reply["id"] = req.get("id") if isinstance(req, dict) else None
            self.router.send_multipart(frames[:-1] + [json.dumps(reply).encode()])

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.router.close(linger=0)
        self.pub.close(linger=0)


def never_read_state(seq=1):
    """A device's state before its first reading (docs/protocol.md): no
    chambers, supply null, the link down with its reason."""
    return {"v": 1, "device": "sim", "seq": seq, "time": int(time.time() * 1000),
            "state": "offline", "session": None, "chambers": [], "supply": None,
            "alarms": [],
            "link": {"up": False, "rtt_us": 0, "timeouts": 0, "exceptions": 0,
                     "errors": 3, "reconnects": 3, "exchanges": 0, "fc23": False,
                     "last_error": "connect: Connection refused"},
            "device_status": {"status": 0, "fault": 0}}


def answer_never_read(req):
    """fasciad's answers for one device "sim" that never answered."""
    cmd = req.get("cmd") if isinstance(req, dict) else None
    if cmd == "hello":
        result = {"protocol": 1, "version": "0.1", "devices": ["sim"], "tick_hz": 50,
                  "publish_hz": 10}
    elif cmd == "devices":
        result = {"devices": [{"name": "sim", "state": "offline", "chambers": 8,
                               "transport": "tcp", "address": "127.0.0.1:1",
                               "unit": 1, "limit_mmhg": 60.0, "link": {"up": False}}]}
    elif cmd == "status" and "device" in req:
        result = never_read_state()
    elif cmd == "status":
        result = {"devices": [never_read_state()]}
    else:
        return {"ok": False, "error": {"code": "unknown_command", "message": str(cmd)}}
    return {"ok": True, "result": result}


@pytest.fixture
def fake_daemon():
    """fake_daemon(answer, state=None) -> FakeDaemon, closed at teardown."""
    made = []

    def make(answer, state=None):
        f = FakeDaemon(answer, state)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def bad_profile(name="too-high"):
    doc = json.loads(json.dumps(PROFILES["wave"]))
    doc["name"] = name
    doc["steps"][0]["set"]["1"] = 55      # above max_pressure_mmhg 40
    return doc


# ---- lists and status -------------------------------------------------

def test_devices_lists_the_simulated_device(ctl):
    r = ctl("devices")
    assert r.returncode == 0, r.stderr
    assert "DEVICE" in r.stdout and "sim" in r.stdout and "idle" in r.stdout


def test_status_shows_state_chambers_alarms_and_link(ctl):
    r = ctl("status", "sim")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("sim: idle"), out
    assert "PRESSURE" in out and "SETPOINT" in out
    assert "alarms    none" in out
    assert "link      up, rtt" in out
    # eight chamber rows
    rows = [l for l in out.splitlines() if l.strip()[:1].isdigit()]
    assert len(rows) == 8, out


def test_status_without_device_shows_every_device(ctl):
    r = ctl("status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sim: idle")


def test_json_output_is_one_json_object_per_line(ctl):
    for args in (("devices",), ("status", "sim"), ("profiles",),
                 ("profile", "show", "wave")):
        r = ctl("--json", *args)
        assert r.returncode == 0, (args, r.stderr)
        lines = r.stdout.splitlines()
        assert len(lines) == 1, (args, r.stdout)
        rep = json.loads(lines[0])
        assert rep["v"] == 1 and rep["ok"] is True, rep
    # the journal's queries print their result object alone
    r = ctl("--json", "history")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, (r.stdout, r.stderr)
    assert json.loads(r.stdout) == {"sessions": [], "more": False}
    rep = json.loads(ctl("--json", "status", "sim").stdout)
    assert rep["result"]["device"] == "sim" and rep["result"]["state"] == "idle"


def test_profiles_lists_the_stored_profiles(ctl):
    r = ctl("profiles")
    assert r.returncode == 0, r.stderr
    for name in PROFILES:
        assert name in r.stdout


def test_profile_show_prints_the_document(ctl):
    r = ctl("profile", "show", "wave")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["name"] == "wave" and doc["chambers"] == 4


def test_profile_show_of_an_unknown_profile_is_refused(ctl):
    r = ctl("profile", "show", "nope")
    assert r.returncode == 1
    assert "fasciactl: unknown_profile:" in r.stderr


def test_history_of_a_fresh_journal_says_no_sessions_recorded(ctl):
    # the daemon keeps the journal: an empty page means none ran
    r = ctl("history")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "no sessions recorded", r.stdout
    assert ctl("history", "sim").returncode == 0


# ---- a device that has never answered: unknown, not zero ----------------

def test_status_and_watch_show_a_device_never_read_as_no_reading_yet(fake_daemon):
    f = fake_daemon(answer_never_read, never_read_state)
    for args in (("status", "sim"), ("status",)):
        r = run_ctl("--endpoint", f.control, *args)
        assert r.returncode == 0, r.stderr
        assert "supply    no reading yet" in r.stdout, r.stdout
        assert "chambers  no reading yet" in r.stdout, r.stdout
        assert "0.0" not in r.stdout, r.stdout
        assert "last error connect: Connection refused" in r.stdout, r.stdout
    r = run_ctl("--endpoint", f.control, "--publish", f.publish, "watch", "--count", "1",
                "sim")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert " sim state offline no reading yet link down (connect: Connection refused)" \
        in line, line
    assert "0.0" not in line and "mmHg" not in line, line


def test_status_of_a_device_nobody_listens_for_says_no_reading_yet(start_daemon, tmp_path):
    d = start_daemon(write_config(str(tmp_path), free_port()))
    st = d.wait_status(lambda st: st["link"].get("last_error"), 5.0,
                       what="the link's reason for being down")
    assert st["chambers"] == [] and st["supply"] is None, st
    r = run_ctl("--endpoint", d.control, "status", "sim")
    assert r.returncode == 0, r.stderr
    assert "supply    no reading yet" in r.stdout, r.stdout
    assert "chambers  no reading yet" in r.stdout, r.stdout
    assert "0.0" not in r.stdout, r.stdout


# ---- profiles: upload and offline check -------------------------------

def test_profile_upload_stores_a_profile(ctl, rig, tmp_path):
    doc = json.loads(json.dumps(PROFILES["wave"]))
    doc["name"] = "uploaded"
    r = ctl("profile", "upload", write_json(tmp_path / "p.json", doc))
    assert r.returncode == 0, r.stderr
    assert "stored uploaded" in r.stdout
    assert "uploaded" in ctl("profiles").stdout
    assert os.path.exists(os.path.join(rig.profiles_dir, "uploaded.json"))


def test_profile_upload_of_an_invalid_profile_names_the_field(ctl, tmp_path):
    r = ctl("profile", "upload", write_json(tmp_path / "bad.json", bad_profile()))
    assert r.returncode == 1
    assert "fasciactl: invalid_profile:" in r.stderr
    assert "fasciactl: field: steps[0].set.1" in r.stderr
    assert "too-high" not in ctl("profiles").stdout


def test_profile_upload_of_a_file_that_is_not_json_fails(ctl, tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{ nope")
    r = ctl("profile", "upload", str(p))
    assert r.returncode == 1
    assert "not JSON" in r.stderr


def test_profile_check_is_offline_and_accepts_a_good_profile(tmp_path):
    # no daemon anywhere: an endpoint where nothing listens
    path = write_json(tmp_path / "wave.json", PROFILES["wave"])
    r = run_ctl("--endpoint", "tcp://127.0.0.1:%d" % free_port(), "profile", "check", path)
    assert r.returncode == 0, r.stderr
    assert "ok: wave, 4 chambers" in r.stdout
    shipped = os.path.join(REPO, "etc", "profiles", "gentle-wave.json")
    assert run_ctl("profile", "check", shipped).returncode == 0


def test_profile_check_names_the_field_of_a_bad_profile(tmp_path):
    path = write_json(tmp_path / "bad.json", bad_profile())
    r = run_ctl("profile", "check", path)
    assert r.returncode == 1
    assert "steps[0].set.1" in r.stderr and "bad.json" in r.stderr
    r = run_ctl("--json", "profile", "check", path)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["field"] == "steps[0].set.1"


def test_profile_check_against_a_device_with_options(tmp_path):
    path = write_json(tmp_path / "wave.json", PROFILES["wave"])
    r = run_ctl("profile", "check", "--chambers", "2", path)
    assert r.returncode == 1 and "chambers:" in r.stderr
    r = run_ctl("profile", "check", "--limit", "30", path)
    assert r.returncode == 1 and "max_pressure_mmhg:" in r.stderr
    r = run_ctl("profile", "check", "--chambers", "4", "--limit", "60", path)
    assert r.returncode == 0, r.stderr


def long_profile(seconds):
    """Chamber 1 held at 20 mmHg in two steps: `seconds` long with its 2 s
    ramp and 4 s release."""
    hold = (seconds - 6) / 2.0
    return {"name": "long-hold", "description": "a long hold", "chambers": 4,
            "max_pressure_mmhg": 40, "max_ramp_mmhg_s": 10, "gradient": "none",
            "repeat": 1, "steps": [{"set": {"1": 20}, "ramp_s": 2, "hold_s": hold},
                                   {"set": {"1": 20}, "ramp_s": 0, "hold_s": hold}]}


def test_profile_check_refuses_what_the_default_daemon_refuses(ctl, tmp_path):
    """4400 s is over the default max_session_s (3600 s): the daemon (its
    configuration leaves max_session_s alone) and the offline check agree."""
    path = write_json(tmp_path / "long.json", long_profile(4400))
    r = run_ctl("profile", "check", path)
    assert r.returncode == 1, r.stdout
    assert "long.json: steps: the session lasts 4400 s" in r.stderr, r.stderr
    assert "longer than the maximum 3600 s" in r.stderr, r.stderr
    up = ctl("profile", "upload", path)
    assert up.returncode == 1 and "invalid_profile" in up.stderr, up.stderr
    # a daemon allowing 7200 s would take it: so does the check told so
    r = run_ctl("profile", "check", "--max-session", "7200", path)
    assert r.returncode == 0, r.stderr
    ok = write_json(tmp_path / "ok.json", long_profile(3600))
    assert run_ctl("profile", "check", ok).returncode == 0


@pytest.mark.parametrize("value", ["59", "7201", "0", "5", "nan", "1e9"])
def test_max_session_outside_the_daemons_bounds_is_a_usage_error(tmp_path, value):
    path = write_json(tmp_path / "wave.json", PROFILES["wave"])
    r = run_ctl("profile", "check", "--max-session", value, path)
    assert r.returncode == 2, (value, r.stdout, r.stderr)
    assert "60..7200" in r.stderr, r.stderr


@pytest.mark.parametrize("value", ["60", "7200"])
def test_max_session_at_the_daemons_bounds_is_accepted(tmp_path, value):
    path = write_json(tmp_path / "wave.json", PROFILES["wave"])
    r = run_ctl("profile", "check", "--max-session", value, path)
    assert r.returncode == 0, (value, r.stderr)


@pytest.mark.parametrize("text", ['{"name": "x",\n "chambers": nope}', "[1, 2]", ""])
def test_upload_and_check_refuse_a_broken_file_in_the_same_words(ctl, tmp_path, text):
    path = tmp_path / "broken.json"
    path.write_text(text)
    check = run_ctl("profile", "check", str(path))
    upload = ctl("profile", "upload", str(path))
    assert check.returncode == upload.returncode == 1, (check, upload)
    assert check.stderr == upload.stderr, (check.stderr, upload.stderr)
    if "nope" in text:
        assert "at line 2 column" in check.stderr, check.stderr


# ---- the operator's commands ------------------------------------------

def test_start_pause_resume_stop_and_vent(ctl, rig):
    r = ctl("start", "sim", "long")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "sim: running"
    r = ctl("status", "sim")
    assert re.search(r"session   sim-\d{13}-[0-9a-f]{4}  profile long", r.stdout), r.stdout
    assert "s left" in r.stdout
    r = ctl("pause", "sim")
    assert (r.returncode, r.stdout.strip()) == (0, "sim: paused"), r.stderr
    # the device may be left out: the daemon has one
    r = ctl("resume")
    assert (r.returncode, r.stdout.strip()) == (0, "sim: running"), r.stderr
    r = ctl("stop")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("sim: releasing", "sim: idle")
    rig.d.wait_status(lambda st: st["state"] == "idle", 10, what="idle after stop")
    r = ctl("vent", "sim")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sim: ")
    rig.d.wait_status(lambda st: st["state"] == "idle", 10, what="idle after vent")


def test_a_refused_command_exits_1_with_the_code(ctl):
    r = ctl("ack", "sim")
    assert r.returncode == 1
    assert r.stderr.startswith("fasciactl: forbidden: "), r.stderr
    r = ctl("--json", "pause", "sim")
    assert r.returncode == 1
    rep = json.loads(r.stdout)
    assert rep["ok"] is False and rep["error"]["code"] == "forbidden"


def test_start_with_an_unknown_profile_is_refused(ctl):
    r = ctl("start", "sim", "nope")
    assert r.returncode == 1
    assert "unknown_profile" in r.stderr


def test_an_unknown_device_lists_the_known_ones(ctl):
    for args in (("status", "nope"), ("pause", "nope"), ("start", "nope", "wave"),
                 ("watch", "--count", "1", "nope"), ("history", "nope")):
        r = ctl(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert "unknown_device" in r.stderr, (args, r.stderr)
        assert "known devices: sim" in r.stderr, (args, r.stderr)


# ---- usage and reachability -------------------------------------------

@pytest.mark.parametrize("args", [
    (), ("bogus",), ("status", "a", "b"), ("start", "sim"), ("profile",),
    ("profile", "frob", "x"), ("--timeout", "0", "devices"), ("--count", "2", "devices"),
    ("--chambers", "3", "status"), ("--no-such-option", "devices"),
    ("profile", "check", "--chambers", "99", "x.json"), ("pause", "a", "b"),
])
def test_usage_errors_exit_2(args):
    r = run_ctl(*args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "fasciactl" in r.stderr


@pytest.mark.parametrize("args,env", [
    (("--endpoint", "bogus", "devices"), {}),
    (("--endpoint", "tcp://127.0.0.1", "status"), {}),
    (("--endpoint", "nosuch://x", "pause", "sim"), {}),
    (("devices",), {"FASCIA_CONTROL": "bogus"}),
])
def test_an_endpoint_that_is_not_one_is_a_usage_error(args, env):
    r = run_ctl(*args, env_extra=env)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "is not a ZeroMQ endpoint" in r.stderr, r.stderr
    source = "FASCIA_CONTROL" if env else "--endpoint"
    assert r.stderr.startswith("fasciactl: %s: " % source), r.stderr


def test_a_publish_endpoint_that_is_not_one_is_a_usage_error(fake_daemon):
    f = fake_daemon(answer_never_read)
    r = run_ctl("--endpoint", f.control, "--publish", "bogus", "watch")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "fasciactl: --publish: \"bogus\" is not a ZeroMQ endpoint" in r.stderr, r.stderr


def test_help_and_version():
    r = run_ctl("--help")
    assert r.returncode == 0 and "profile check FILE" in r.stdout
    r = run_ctl("--version")
    assert r.returncode == 0 and r.stdout.startswith("fasciactl ")


@pytest.mark.parametrize("args", [("devices",), ("status",), ("pause",),
                                  ("start", "sim", "wave"), ("watch",)])
def test_an_endpoint_where_nothing_listens_exits_3_within_the_timeout(args):
    ep = "tcp://127.0.0.1:%d" % free_port()
    t0 = time.monotonic()
    r = run_ctl("--endpoint", ep, "--publish", ep, "--timeout", "300", *args)
    took = time.monotonic() - t0
    assert r.returncode == 3, (args, r.stderr)
    assert "no reply from %s within 300 ms" % ep in r.stderr
    assert took < 0.3 + 1.0, took


def test_a_refusal_of_a_request_the_daemon_could_not_parse_reaches_fasciactl(fake_daemon):
    """fasciad answers a request it cannot parse with "id": null: that
    reply came back on fasciactl's own connection and is its answer."""
    f = fake_daemon(lambda req: {"id": None, "ok": False, "error": {
        "code": "bad_request", "message": "not JSON (UTF-8): invalid token at byte 3"}})
    t0 = time.monotonic()
    r = run_ctl("--endpoint", f.control, "--timeout", "3000", "devices")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "fasciactl: bad_request: not JSON" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 2.5, "waited for the timeout instead"


def test_the_environment_gives_the_endpoints(rig):
    env = {"FASCIA_CONTROL": rig.d.control, "FASCIA_PUBLISH": rig.d.publish}
    r = run_ctl("devices", env_extra=env)
    assert r.returncode == 0, r.stderr
    r = run_ctl("--count", "1", "watch", env_extra=env)
    assert r.returncode == 0, r.stderr
    # an option wins over the environment
    ep = "tcp://127.0.0.1:%d" % free_port()
    r = run_ctl("--endpoint", ep, "--timeout", "200", "devices", env_extra=env)
    assert r.returncode == 3


# ---- watch ------------------------------------------------------------

def start_watch(ctl_obj, *args):
    rig = ctl_obj.rig
    return subprocess.Popen([CTL_BIN, "--endpoint", rig.d.control, "--publish",
                             rig.d.publish] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def test_watch_count_prints_state_lines_at_most_once_a_second(ctl):
    t0 = time.monotonic()
    r = ctl("watch", "--count", "3", "sim")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3, r.stdout
    assert all(" sim state idle" in l for l in lines), lines
    # publish_hz is 10: three unchanged states take about two seconds
    assert took > 1.8, took


def test_watch_json_prints_every_message_with_its_topic(ctl):
    r = ctl("--json", "watch", "--count", "5")
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(msgs) == 5
    seqs = [m["message"]["seq"] for m in msgs]
    assert all(m["topic"] == "state.sim" for m in msgs)
    assert seqs == list(range(seqs[0], seqs[0] + 5)), seqs


def test_watch_shows_events_and_an_estop_alarm(ctl, rig):
    w = start_watch(ctl, "watch", "--count", "8", "sim")
    try:
        # a first line shows the watcher's subscription is in place
        first = w.stdout.readline()
        assert " sim state idle" in first, first
        mark = rig.sub.mark()
        rig.sim.inject("estop")
        rig.sub.wait_for("alarm.sim", lambda m: m.get("alarm") == "estop", 3.0,
                         since=mark)
        out, err = w.communicate(timeout=10)
        out = first + out
    finally:
        if w.poll() is None:
            os.kill(w.pid, signal.SIGKILL)
            w.wait()
        rig.sim.clear("all")
    assert w.returncode == 0, err
    lines = out.splitlines()
    assert any(" sim ALARM raised estop" in l for l in lines), out
    assert any(" sim event state: " in l and "fault" in l for l in lines), out
    assert any(" sim state fault" in l for l in lines), out
    # once released, ack clears the fault
    rig.d.wait_status(lambda st: st["state"] == "fault" and st["alarms"]
                      and not any(a.get("present") for a in st["alarms"]), 10,
                      what="the estop cause gone")
    r = ctl("ack", "sim")
    assert r.returncode == 0, r.stderr


def test_watch_exits_0_on_ctrl_c(ctl):
    w = start_watch(ctl, "watch")
    try:
        line = w.stdout.readline()
        assert " state " in line, line
        w.send_signal(signal.SIGINT)
        assert w.wait(timeout=3) == 0
    finally:
        if w.poll() is None:
            os.kill(w.pid, signal.SIGKILL)
            w.wait()
        w.stdout.close()
        w.stderr.close()


WATCH_QUIET_S = 3.0   # watch.c's WATCH_QUIET_MS


def test_watch_on_a_silent_publish_endpoint_says_so_once_and_keeps_waiting(ctl):
    # the control endpoint answers; the publish one has nothing to say
    ep = "tcp://127.0.0.1:%d" % free_port()
    t0 = time.monotonic()
    w = subprocess.Popen([CTL_BIN, "--endpoint", ctl.rig.d.control, "--publish", ep,
                          "--timeout", "300", "watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        err = []
        reader = threading.Thread(target=lambda: err.extend(w.stderr), daemon=True)
        reader.start()
        wait_until(lambda: err, WATCH_QUIET_S + 3.0, interval=0.05,
                   what="a word on stderr about the silence")
        took = time.monotonic() - t0
        assert WATCH_QUIET_S - 0.5 < took < WATCH_QUIET_S + 3.0, took
        assert "nothing received from %s" % ep in err[0], err
        assert "still waiting" in err[0], err
        # it keeps waiting, and does not say it again for the same silence
        with pytest.raises(subprocess.TimeoutExpired):
            w.wait(timeout=WATCH_QUIET_S + 0.5)
        assert len(err) == 1, err
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=3) == 0
        reader.join(2)
        assert w.stdout.read() == ""
    finally:
        if w.poll() is None:
            os.kill(w.pid, signal.SIGKILL)
            w.wait()
        w.stdout.close()
        w.stderr.close()


def test_watch_of_a_live_daemon_says_nothing_on_stderr(ctl):
    r = ctl("watch", "--count", "4", "sim")     # about 3 s of state lines
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
