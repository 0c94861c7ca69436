"""fasciad as an operator runs it: the configuration check, a SIGTERM that
vents, two clients racing, storing profiles.  SIGHUP's reload is
tests/system/test_profile_loading.py's."""
import json
import os
import re
import signal
import threading

import zmq

from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import sim_max_pressure, start_session
import subprocess

from daemon_rig import FASCIAD_BIN, PROFILES, run_check, write_config

BAD_CONF = """[daemon]
control = tcp://127.0.0.1:*
tick_hz = abc
publish_hz = 9999
bogus = 1
[device sim]
address = 127.0.0.1:99999
chambers = 40
"""
BAD_LINES = {3: "tick_hz", 4: "publish_hz", 5: "bogus", 7: "address", 8: "chambers"}


def test_check_mode_names_each_error_with_its_line_and_exits_1(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text(BAD_CONF)
    r = run_check(str(bad))
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    for n, key in BAD_LINES.items():
        hit = [l for l in lines if l.startswith("%s:%d:" % (bad, n)) and key in l]
        assert hit, "no error for line %d (%s) in:\n%s" % (n, key, r.stderr)
    assert r.stdout == "", r.stdout

    good = write_config(str(tmp_path), 1502)
    r = run_check(good)
    assert r.returncode == 0, (r.returncode, r.stderr)

    # a broken profile in the directory is refused alone: the check names
    # the file and passes (tests/system/test_profile_loading.py has more)
    with open(os.path.join(str(tmp_path), "profiles", "broken.json"), "w") as f:
        f.write('{"name": "broken", "chambers": 4,')
    r = run_check(good)
    assert r.returncode == 0 and "broken.json" in r.stderr, (r.returncode, r.stderr)


def test_help_prints_the_usage_and_exits_0():
    for flag in ("--help", "-h"):
        r = subprocess.run([FASCIAD_BIN, flag], capture_output=True, text=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (flag, r.returncode, r.stderr)
        assert r.stdout.startswith("usage: fasciad"), (flag, r.stdout)
        assert "--help" in r.stdout and "-B" in r.stdout and r.stderr == "", r
    r = subprocess.run([FASCIAD_BIN, "--bogus"], capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "usage: fasciad" in r.stderr, r


def test_check_mode_counts_in_words(tmp_path):
    r = run_check(write_config(str(tmp_path), 1502))
    assert r.returncode == 0, r
    assert "configuration OK, 1 device, %d profiles" % len(PROFILES) in r.stdout, r.stdout


def test_sigterm_mid_session_vents_the_device_and_exits_0(rig):
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    sub.wait_state(lambda m: min(c["pressure"] for c in m["chambers"][:4]) > 20, 5.0,
                   what="chambers inflated")
    vents_before = sim.status()["vent_writes"]
    d.signal(signal.SIGTERM)
    rc = d.wait_exit(timeout=3.5)
    assert rc == 0, "fasciad exited %r after SIGTERM; log:\n%s" % (rc, d.log()[-2000:])
    st = sim.status()
    assert st["command"] == "vent", "the last COMMAND written was %r, not vent" % st["command"]
    assert st["vent_writes"] > vents_before, st
    assert sim_max_pressure(st) < 5.0, "the daemon exited with chambers at %r" % (
        [c["pressure"] for c in st["chambers"]])


def race(d, cmds):
    """Send each (cmd, args) from its own DEALER at the same moment;
    the replies in order."""
    socks = [d.socket(zmq.DEALER) for _ in cmds]
    try:
        for s in socks:  # make sure every socket is connected first
            s.send(json.dumps({"v": 1, "id": "ping", "cmd": "hello"}).encode())
            assert s.poll(3000)
            s.recv()
        go = threading.Barrier(len(cmds))
        replies = [None] * len(cmds)

        def one(i):
            cmd, args = cmds[i]
            req = {"v": 1, "id": "r%d" % i, "cmd": cmd}
            req.update(args)
            go.wait()
            socks[i].send(json.dumps(req).encode())
            if socks[i].poll(4000):
                replies[i] = json.loads(socks[i].recv())
        ts = [threading.Thread(target=one, args=(i,)) for i in range(len(cmds))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(6)
    finally:
        for s in socks:
            s.close(linger=0)
    for i, rep in enumerate(replies):
        assert isinstance(rep, dict) and rep.get("v") == 1 and rep.get("id") == "r%d" % i, \
            "reply %d: %r" % (i, rep)
        if rep["ok"]:
            assert isinstance(rep["result"], dict), rep
        else:
            assert rep["error"]["code"] in ("busy", "forbidden"), rep
            assert rep["error"]["message"], rep
    return replies


def test_two_clients_starting_or_stopping_at_once_one_wins(rig):
    d = rig.d
    reps = race(d, [("start", {"device": "sim", "profile": "long"})] * 2)
    assert sum(r["ok"] for r in reps) == 1, "exactly one start must succeed: %r" % reps
    # one session: one id, one record
    assert re.fullmatch(r"sim-\d{13}-[0-9a-f]{4}", d.status()["session"]["id"])
    assert len(d.ok("history")["sessions"]) == 1
    rig.sub.wait_state(lambda m: m["state"] == "running", 2.0)
    reps = race(d, [("stop", {"device": "sim"})] * 2)
    assert sum(r["ok"] for r in reps) == 1, "exactly one stop must succeed: %r" % reps
    d.wait_status(lambda st: st["state"] == "idle", 8.0, what="idle after the stop")


def test_a_stored_profile_is_listed_and_written_atomically(rig):
    d = rig.d
    names = [p["name"] for p in d.ok("profiles")["profiles"]]
    assert names == sorted(PROFILES), names
    doc = json.loads(json.dumps(PROFILES["wave"]))
    doc["name"] = "stored-wave"
    doc["description"] = "stored by the test"
    res = d.ok("profile.put", profile=doc)
    assert res == {"name": "stored-wave", "stored": True}, res
    listed = d.ok("profiles")["profiles"]
    assert [p["name"] for p in listed] == sorted(list(PROFILES) + ["stored-wave"]), listed
    entry = [p for p in listed if p["name"] == "stored-wave"][0]
    assert entry["chambers"] == 4 and entry["max_pressure_mmhg"] == 40, entry
    assert abs(entry["duration_s"] - 14.0) < 0.01, entry
    path = os.path.join(rig.profiles_dir, "stored-wave.json")
    assert os.path.isfile(path), os.listdir(rig.profiles_dir)
    with open(path) as f:
        on_disk = json.load(f)
    assert on_disk["name"] == "stored-wave" and on_disk["steps"][0]["set"]["1"] == 25, on_disk
    files = sorted(os.listdir(rig.profiles_dir))
    assert files == sorted(n + ".json" for n in list(PROFILES) + ["stored-wave"]), \
        "temporary files left: %r" % files
    got = d.ok("profile.get", name="stored-wave")["profile"]
    assert got["description"] == "stored by the test", got
    # the stored profile runs
    start_session(rig, "stored-wave")
    d.ok("stop", device="sim")
