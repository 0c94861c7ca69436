"""fasciad's profile directory as an operator meets it: a file that does not
load is refused alone, named with what to do, and the daemon starts with
the others; `fasciad -n` reports every refused file and every device a
loaded profile does not fit, and exits 0; a profile that does not fit a
device loads and `start` of it there is refused with `interlock` and the
reason; SIGHUP reloads by the same rule (docs/profiles.md, "The profile
directory")."""
import glob
import json
import os
import shutil
import signal

from conftest import REPO, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import IDLE_TIMEOUT_S
from daemon_rig import PROFILES, run_check, write_config, write_profiles

WHAT_TO_DO = "fix or remove the file"
DEVICE_LINES = "chambers = 8\nlimit_mmhg = 60\n"


def shipped():
    """The shipped profiles: name -> document."""
    docs = {}
    for path in sorted(glob.glob(os.path.join(REPO, "etc", "profiles", "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        docs[doc["name"]] = doc
    assert docs, "no shipped profiles in etc/profiles"
    return docs


def config(tmp_path, port, profiles_dir, chambers=8, limit_mmhg=60):
    """write_config() with the device `sim` given chambers and limit_mmhg."""
    path = write_config(str(tmp_path), port, profiles_dir=str(profiles_dir))
    with open(path) as f:
        text = f.read()
    assert DEVICE_LINES in text, text
    text = text.replace(DEVICE_LINES, "chambers = %d\nlimit_mmhg = %g\n"
                        % (chambers, limit_mmhg))
    with open(path, "w") as f:
        f.write(text)
    return path


def add_bad_files(directory):
    """Three files that cannot load, each for its own reason -> {file: what
    the log must say about it}."""
    with open(os.path.join(directory, "broken.json"), "w") as f:
        f.write('{"name": "broken", "chambers": 4,')
    high = json.loads(json.dumps(PROFILES["wave"]))
    high["name"] = "too-high"
    high["max_pressure_mmhg"] = 90
    with open(os.path.join(directory, "too-high.json"), "w") as f:
        json.dump(high, f)
    # a copy left under another file name: its name is still "wave"
    with open(os.path.join(directory, "wave-copy.json"), "w") as f:
        json.dump(PROFILES["wave"], f)
    return {"broken.json": "not JSON", "too-high.json": "max_pressure_mmhg: 90 mmHg",
            "wave-copy.json": 'name: "wave" differs'}


def refusal_lines(log, file):
    return [line for line in log.splitlines() if "/" + file + ":" in line]


def assert_each_refused_with_what_to_do(log, bad):
    for file, reason in bad.items():
        lines = refusal_lines(log, file)
        assert lines, "no line for %s in:\n%s" % (file, log)
        assert any(reason in line and WHAT_TO_DO in line and "profiles =" in line
                   for line in lines), \
            "%s: want %r and what to do in:\n%s" % (file, reason, "\n".join(lines))


def idle(d):
    return d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S,
                         what="device sim idle after start-up")


def start_refused(d, profile):
    rep = d.call("start", device="sim", profile=profile)
    assert not rep["ok"], ("start %s on a device it does not fit was accepted" % profile, rep)
    assert rep["error"]["code"] == "interlock", rep
    assert d.status()["state"] == "idle", "a refused start moved the device"
    return rep["error"]["message"]


def start_and_stop(d, profile):
    rep = d.call("start", device="sim", profile=profile)
    assert rep["ok"], ("start %s refused" % profile, rep)
    d.ok("stop", device="sim")


def test_the_daemon_starts_and_serves_with_bad_files_in_the_directory(
        start_sim, start_daemon, tmp_path):
    profiles = tmp_path / "profiles"
    write_profiles(str(profiles))
    bad = add_bad_files(str(profiles))
    sim = start_sim()
    d = start_daemon(config(tmp_path, sim.port, profiles))
    idle(d)
    names = [p["name"] for p in d.ok("profiles")["profiles"]]
    assert names == sorted(PROFILES), names
    assert d.ok("profile.get", name="wave")["profile"]["max_pressure_mmhg"] == 40
    log = d.log()
    assert_each_refused_with_what_to_do(log, bad)
    assert "%d profiles loaded, %d files refused" % (len(PROFILES), len(bad)) in log, log
    start_and_stop(d, "wave")


def test_check_mode_reports_each_refused_file_and_misfit_and_exits_0(tmp_path):
    ship = shipped()
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name in ship:
        shutil.copy(os.path.join(REPO, "etc", "profiles", name + ".json"), str(profiles))
    bad = add_bad_files(str(profiles))
    lowest = min(p["max_pressure_mmhg"] for p in ship.values())
    r = run_check(config(tmp_path, 1502, profiles, chambers=4, limit_mmhg=lowest))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert_each_refused_with_what_to_do(r.stderr, bad)
    for name, p in ship.items():
        lines = [line for line in r.stderr.splitlines()
                 if "profile %s does not fit device sim" % name in line]
        wide, high = p["chambers"] > 4, p["max_pressure_mmhg"] > lowest
        assert bool(lines) == (wide or high), (name, r.stderr)
        if wide:
            assert "%d chambers, the device 4" % p["chambers"] in lines[0], lines
        if high:
            assert "%.1f mmHg is above the device limit %.1f mmHg" % (
                p["max_pressure_mmhg"], lowest) in lines[0], lines
    assert r.stdout.strip().endswith(
        "configuration OK, 1 device, %d profiles; %d profile files refused"
        % (len(ship), len(bad))), r.stdout


def test_check_mode_exits_1_only_when_the_directory_cannot_be_read(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_check(config(tmp_path, 1502, empty))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "configuration OK, 1 device, 0 profiles" in r.stdout, r.stdout
    assert "no profile loaded" in r.stderr, r.stderr

    missing = tmp_path / "missing"
    r = run_check(config(tmp_path, 1502, missing))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    assert str(missing) in r.stderr and "profiles =" in r.stderr, r.stderr


def test_a_device_limit_below_a_shipped_maximum_refuses_that_profile(
        start_sim, start_daemon, tmp_path):
    ship = shipped()
    high = max(ship.values(), key=lambda p: p["max_pressure_mmhg"])
    fits = [p for p in ship.values()
            if p["max_pressure_mmhg"] < high["max_pressure_mmhg"] and p["chambers"] <= 8]
    assert fits, "every shipped profile has the same maximum"
    low = max(p["max_pressure_mmhg"] for p in fits)
    sim = start_sim()
    d = start_daemon(config(tmp_path, sim.port, os.path.join(REPO, "etc", "profiles"),
                            limit_mmhg=low))
    idle(d)
    assert sorted(p["name"] for p in d.ok("profiles")["profiles"]) == sorted(ship)
    assert "profile %s does not fit device sim" % high["name"] in d.log(), d.log()
    msg = start_refused(d, high["name"])
    assert "%.1f mmHg" % high["max_pressure_mmhg"] in msg and "%.1f mmHg" % low in msg, msg
    start_and_stop(d, fits[0]["name"])


def test_a_4_chamber_device_refuses_an_8_chamber_profile(start_sim, start_daemon, tmp_path):
    ship = shipped()
    wide = [p for p in ship.values() if p["chambers"] == 8]
    narrow = [p for p in ship.values() if p["chambers"] <= 4]
    assert wide and narrow, "want an 8-chamber and a 4-chamber shipped profile"
    sim = start_sim("--chambers", "4")
    d = start_daemon(config(tmp_path, sim.port, os.path.join(REPO, "etc", "profiles"),
                            chambers=4, limit_mmhg=80))
    idle(d)
    assert sorted(p["name"] for p in d.ok("profiles")["profiles"]) == sorted(ship)
    msg = start_refused(d, wide[0]["name"])
    assert "8 chambers, the device 4" in msg, msg
    start_and_stop(d, narrow[0]["name"])


def test_sighup_loads_the_valid_files_and_drops_a_refused_one(
        start_sim, start_daemon, tmp_path):
    profiles = tmp_path / "profiles"
    write_profiles(str(profiles))
    sim = start_sim()
    d = start_daemon(config(tmp_path, sim.port, profiles))
    idle(d)
    rep = d.call("start", device="sim", profile="long")
    assert rep["ok"], rep
    d.wait_status(lambda st: st["state"] == "running", 2.0, what="running")
    # a new good file, a new broken one, and the running profile's file broken
    newcomer = json.loads(json.dumps(PROFILES["wave"]))
    newcomer["name"] = "newcomer"
    with open(str(profiles / "newcomer.json"), "w") as f:
        json.dump(newcomer, f)
    with open(str(profiles / "zz-broken.json"), "w") as f:
        f.write('{"name": "zz-broken",')
    long_doc = json.loads(json.dumps(PROFILES["long"]))
    long_doc["hodl_s"] = 1
    with open(str(profiles / "long.json"), "w") as f:
        json.dump(long_doc, f)
    d.signal(signal.SIGHUP)
    wait_until(lambda: "newcomer" in [p["name"] for p in d.ok("profiles")["profiles"]],
               3.0, interval=0.05, what="newcomer loaded by SIGHUP; log:\n%s" % d.log()[-1500:])
    assert [p["name"] for p in d.ok("profiles")["profiles"]] == ["newcomer", "wave"]
    log = d.log()
    assert_each_refused_with_what_to_do(log, {"zz-broken.json": "not JSON",
                                              "long.json": "hodl_s: unknown field"})
    assert "profile long is no longer served" in log, log
    # the session runs on the copy it started with
    assert d.status()["state"] == "running"
    d.ok("stop", device="sim")


def test_sighup_keeps_the_old_set_when_the_directory_cannot_be_read(
        start_sim, start_daemon, tmp_path):
    profiles = tmp_path / "profiles"
    write_profiles(str(profiles))
    sim = start_sim()
    d = start_daemon(config(tmp_path, sim.port, profiles))
    idle(d)
    before = d.ok("profiles")["profiles"]
    os.rename(str(profiles), str(tmp_path / "moved"))
    d.signal(signal.SIGHUP)
    wait_until(lambda: "keeping the" in d.log(), 3.0,
               interval=0.02, what="the reload refused; log:\n%s" % d.log()[-1500:])
    assert d.ok("profiles")["profiles"] == before
