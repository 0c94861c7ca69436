"""Fixtures for the daemon's system tests (import * from the test files):

  rig           a fascia-sim and a fasciad configured for it, the device
                idle, a Sub collecting every sim message: rig.sim, rig.d,
                rig.sub, rig.dir, rig.profiles_dir
  start_daemon  start_daemon(conf_path) -> Daemon, finished at teardown
"""
import json
import os

import pytest

from conftest import start_sim, wait_until  # noqa: F401  (fixture re-export)
from daemon_rig import Daemon, write_config

IDLE_TIMEOUT_S = 5.0


@pytest.fixture
def start_daemon():
    started = []

    def start(conf_path, **kw):
        d = Daemon(conf_path, **kw)
        started.append(d)
        return d

    yield start
    errors = []
    for d in started:
        try:
            d.finish()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


class Rig:
    def __init__(self, sim, d, sub, directory):
        self.sim, self.d, self.sub, self.dir = sim, d, sub, directory
        self.profiles_dir = os.path.join(directory, "profiles")


@pytest.fixture
def rig(start_sim, start_daemon, tmp_path):
    sim = start_sim()
    conf = write_config(str(tmp_path), sim.port)
    d = start_daemon(conf)
    sub = d.subscribe()
    d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S,
                  what="device sim idle after start-up")
    return Rig(sim, d, sub, str(tmp_path))


def start_session(rig, profile="long"):
    """start, check the reply, wait for a running state message."""
    mark = rig.sub.mark()
    rep = rig.d.call("start", device="sim", profile=profile)
    assert rep["ok"], ("start %s refused" % profile, rep)
    assert rep["result"]["state"] == "running", rep
    rig.sub.wait_state(lambda m: m["state"] == "running" and m.get("session"), 2.0,
                       since=mark, what="state running")
    return rep


def sim_max_pressure(st, chambers=8):
    return max(c["pressure"] for c in st["chambers"][:chambers])


def wait_sim_vented(sim, timeout, below=5.0):
    """Poll the simulator's true pressures until every chamber is below
    `below`; returns its status."""
    return wait_until(lambda: (lambda st: st if sim_max_pressure(st) < below else None)(
        sim.status()), timeout, interval=0.01,
        what="every simulated chamber below %.1f mmHg" % below)


def record(name, **figures):
    """Keep a row's measured figures for make safety-report (which sets
    FASCIA_SAFETY_REPORT to a JSON-lines file)."""
    path = os.environ.get("FASCIA_SAFETY_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(dict(row=name, **figures)) + "\n")


def ack_until_idle(rig, timeout=6.0, since=None):
    """ack (retried while the chambers finish venting) until it is accepted;
    then the device must be idle with no alarms.  With since (a mark of
    rig.sub), idle as published from then on: a cause that remains (a
    noisy sensor) may trip again before a status poll would see it."""
    last = []

    def try_ack():
        rep = rig.d.call("ack", device="sim")
        last[:] = [rep]
        if not rep["ok"]:
            assert rep["error"]["code"] == "interlock", rep
        return rep["ok"]
    wait_until(try_ack, timeout, interval=0.1, what="ack accepted (last reply %r)" % last)
    if since is not None:
        st = rig.sub.wait_state(lambda m: m["state"] == "idle", 2.0, since=since,
                                what="idle after ack")
    else:
        st = rig.d.wait_status(lambda st: st["state"] == "idle", 2.0, what="idle after ack")
    assert st["alarms"] == [], st
    return st
