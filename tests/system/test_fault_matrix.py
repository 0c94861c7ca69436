"""The fault matrix (docs/safety.md): every fault fascia-sim can inject, put
into a running session, and for each:

  - the interlock's alarm is published and the state becomes fault;
  - the simulator counts the VENT within one exchange of the cause showing
    in block R (a few for the heartbeat row, which needs three missed
    echoes by definition), or, for causes that take time to show (a
    deviation held for 2 s) or link faults, within their bound;
  - ack is refused while the cause remains and accepted once it has
    cleared and the chambers are vented;
  - a fresh session then runs normally.

Some causes cannot be seen once the chambers are vented: a leak, a valve
stuck open or closed, a noisy sensor only show under pressure.  For those
the ack is accepted once vented, and the matrix checks the other half of
the promise: the next session trips again while the fault remains.

Also: SIGSTOP/SIGCONT of the daemon, a link flapping ten times, and two
clients sending conflicting commands at once.  (kill -9 of the daemon, a
simulator restart and reboot are in test_daemon_faults.py.)
"""
import collections
import json
import os
import re
import signal
import time

import pytest
import zmq

from conftest import FAULT_WATCHDOG, SLOW, VALGRIND, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import Rig, ack_until_idle, record, start_session, wait_sim_vented
from daemon_rig import write_config

WATCHDOG_MS = 500
TICK_MS = 20
HEARTBEAT_TICKS = 3

Row = collections.namedtuple("Row", "name inject alarms reaction provoke "
                             "before_start observable at", defaults=(10.0,))
# reaction: "prompt" (VENT within 1 exchange of the cause showing),
# "heartbeat" (within HEARTBEAT_TICKS), "timed" (the cause takes time to
# show: only that a VENT came), "link" (within the comms bound).
# provoke: "stop" to end the session after injecting (what shows the cause).
ROWS = [
    Row("overpressure", dict(fault="overpressure", chamber=1, mmhg=55),
        {"overpressure"}, "prompt", None, False, True),
    # a surge to 44 mmHg: under the 45 mmHg ceiling, but risen at once
    Row("surge", dict(fault="overpressure", chamber=2, mmhg=44),
        {"rate"}, "prompt", None, False, True, at=23.0),
    Row("valve_stuck_open", dict(fault="valve_stuck", chamber=1, state="open"),
        {"overpressure", "deviation", "rate"}, "timed", None, False, False),
    Row("valve_stuck_closed", dict(fault="valve_stuck", chamber=1, state="closed"),
        {"deviation"}, "timed", None, True, False),
    Row("leak", dict(fault="leak", chamber=1, mmhg_s=40),
        {"deviation"}, "timed", None, False, False),
    Row("blocked", dict(fault="blocked", chamber=1),
        {"deviation"}, "timed", "stop", False, True),
    Row("sensor_range", dict(fault="sensor", chamber=1, mode="range", value=400),
        {"sensor"}, "prompt", None, False, True),
    Row("sensor_stuck", dict(fault="sensor", chamber=1, mode="stuck", value=10),
        {"stale"}, "timed", None, False, True),
    Row("sensor_noise", dict(fault="sensor", chamber=1, mode="noise", value=8),
        {"rate", "deviation", "overpressure", "sensor", "device_fault"}, "timed", None,
        False, False),
    # injected on the hold (25 mmHg): reading 20 low, the firmware keeps the
    # chamber 20 mmHg above what it shows: nobody can see that until the
    # session ends and the device is held vented (docs/safety.md)
    Row("sensor_offset", dict(fault="sensor", chamber=1, mode="offset", value=-20),
        {"sensor"}, "timed", "stop", False, True, at=23.0),
    Row("freeze", dict(fault="freeze"),
        {"heartbeat", "stale"}, "heartbeat", None, False, True),
    Row("estop", dict(fault="estop"), {"estop"}, "prompt", None, False, True),
    Row("garment_off", dict(fault="garment_off"), {"garment"}, "prompt", None, False, True),
    Row("pump_fail", dict(fault="pump_fail"), {"device_fault"}, "prompt", None, False, True),
    Row("reboot", dict(fault="reboot"), {"comms"}, "link", None, False, True),
    Row("link_silent", dict(fault="link", mode="silent"), {"comms"}, "link", None, False, True),
    Row("link_slow", dict(fault="link", mode="slow", delay_ms=200), {"comms"}, "link",
        None, False, True),
    Row("link_garbage", dict(fault="link", mode="garbage"), {"comms"}, "link", None, False,
        True),
    Row("link_exception", dict(fault="link", mode="exception"), {"comms"}, "link", None,
        False, True),
    Row("link_disconnect", dict(fault="link", mode="disconnect"), {"comms"}, "link", None,
        False, True),
]


def inflated(rig, above=10.0):
    rig.sub.wait_state(lambda m: m["state"] == "running" and
                       min(c["pressure"] for c in m["chambers"][:4]) > above, 5.0,
                       what="the session's chambers above %.0f mmHg" % above)


def raised(rig, row, since, timeout=6.0):
    """The first alarm raised after since; it must be one the row expects."""
    alarm = rig.sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised", timeout,
                             since=since, what="an alarm for %s" % row.name)
    assert alarm["alarm"] in row.alarms, (
        "%s raised %s (%s), expected one of %s"
        % (row.name, alarm["alarm"], alarm.get("message"), sorted(row.alarms)))
    rig.sub.wait_state(lambda m: m["state"] == "fault", 2.0, since=since,
                       what="state fault after %s" % row.name)
    return alarm


def reaction(sim, fault, injected_ms, timeout=3.0):
    def find():
        for r in sim.stats()["reactions"]:
            if r["fault"] == fault and r["injected_ms"] == injected_ms and \
                    r["vented_ms"] is not None:
                return r
        return None
    return wait_until(find, timeout, interval=0.02,
                      what="a vented reaction record for %s" % fault)


def check_reaction(row, rec):
    if row.reaction == "prompt":
        assert rec["exchanges"] <= 1, ("%s: VENT %d exchanges after the cause showed: %r"
                                       % (row.name, rec["exchanges"], rec))
    elif row.reaction == "heartbeat":
        assert rec["exchanges"] <= HEARTBEAT_TICKS, (row.name, rec)
    elif row.reaction == "link":
        # the daemon's VENT once it can reach the device, or the device's
        # own watchdog: within WATCHDOG_MS plus the comms interlock's ticks
        assert rec["latency_ms"] <= WATCHDOG_MS + HEARTBEAT_TICKS * TICK_MS, (row.name, rec)


def ack_refused(rig, row):
    rep = rig.d.call("ack", device="sim")
    assert not rep["ok"] and rep["error"]["code"] == "interlock", (
        "%s: ack while the cause remains: %r" % (row.name, rep))


def fresh_session_runs(rig):
    st = rig.d.status()
    assert st["state"] == "idle", ("not idle before the fresh session", st["alarms"])
    start_session(rig, "long")
    inflated(rig, 5.0)
    st = rig.d.status()
    assert st["state"] == "running" and st["alarms"] == [], st
    rep = rig.d.call("stop", device="sim")
    assert rep["ok"], (rep, rig.d.status()["alarms"])


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_fault_matrix(rig, row):
    d, sim, sub = rig.d, rig.sim, rig.sub
    t_start = None
    if row.before_start:
        res = sim.inject(**row.inject)
        mark = sub.mark()
        t_start = time.monotonic()
        start_session(rig, "long")
    else:
        start_session(rig, "long")
        inflated(rig, row.at)
        mark = sub.mark()
        res = sim.inject(**row.inject)
    if row.provoke == "stop":
        rep = d.call("stop", device="sim")
        assert rep["ok"], (row.name, "stop refused: the cause showed mid-session?", rep,
                           d.status()["alarms"])
    # a release from 25 mmHg at 5 mmHg/s takes 5 s, then the 2 s deviation
    alarm = raised(rig, row, mark, timeout=10.0 if row.provoke else 6.0)
    # injected at rest, the device held vented: the cause shows only once
    # the session asks for pressure, so the time from the start is the figure
    since_start_ms = None if t_start is None else (time.monotonic() - t_start) * 1e3
    rec = reaction(sim, row.inject["fault"], res["injected_ms"])
    check_reaction(row, rec)
    print("\n%s: alarm %s; reaction %s exchanges, %s ms"
          % (row.name, alarm["alarm"], rec["exchanges"], rec["latency_ms"]))
    record(row.name, alarm=alarm["alarm"], exchanges=rec["exchanges"],
           latency_ms=rec["latency_ms"], reaction=row.reaction,
           since_start_ms=since_start_ms)

    if row.observable:
        if row.reaction == "link" and row.inject["fault"] == "reboot":
            pass  # the reboot ends by itself in 1 s: nothing to hold
        else:
            ack_refused(rig, row)
            assert d.status()["state"] == "fault"
    else:
        # vented, the cause cannot be seen: the ack goes through, and the
        # fault trips again while it remains: at rest (a noisy sensor), or
        # in the next session (a leak, a stuck valve)
        wait_sim_vented(sim, 5.0)
        mark = sub.mark()
        ack_until_idle(rig, since=mark)
        rep = d.call("start", device="sim", profile="long")
        if rep["ok"]:
            rig.sub.wait_state(lambda m: m["state"] == "running", 2.0, since=mark)
        else:
            assert rep["error"]["code"] == "interlock", rep  # already re-tripped
        raised(rig, row, mark, timeout=8.0)

    if row.inject["fault"] != "reboot":
        sim.clear(row.inject["fault"])
    if row.reaction == "link":
        sub.wait_state(lambda m: m["link"]["up"], 6.0, since=mark, what="link up again")
    wait_sim_vented(sim, 6.0)
    ack_until_idle(rig)
    assert sim.status()["fault"] == 0
    fresh_session_runs(rig)


def test_a_chamber_held_too_long_trips_hold_time(start_sim, start_daemon, tmp_path):
    """hold_time with its thresholds at their lowest bounds (20 mmHg for
    10 s): the "long" profile holds 25 mmHg; the ack is accepted once
    vented (the cause ends with the vent), and a session runs again."""
    sim = start_sim()
    d = start_daemon(write_config(str(tmp_path), sim.port,
                                  extra="\n[daemon]\nhold_mmhg = 20\nhold_s = 10\n"))
    sub = d.subscribe()
    d.wait_status(lambda st: st["state"] == "idle", 5.0 * SLOW, what="idle")
    rig = Rig(sim, d, sub, str(tmp_path))
    start_session(rig, "long")
    t0 = time.monotonic()
    mark = sub.mark()
    alarm = sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised", 16.0, since=mark,
                         what="the hold_time alarm")
    held = time.monotonic() - t0
    assert alarm["alarm"] == "hold_time", alarm
    sub.wait_state(lambda m: m["state"] == "fault", 2.0, since=mark, what="fault")
    print("\nhold_time: tripped %.1f s after the start (20 mmHg reached at ~2 s)" % held)
    assert held >= 10, held
    wait_sim_vented(sim, 5.0)
    ack_until_idle(rig)
    record("hold_time", alarm="hold_time", exchanges=None, latency_ms=None,
           reaction="held", held_s=round(held, 1))
    fresh_session_runs(rig)


def test_sigstop_and_sigcont_of_the_daemon(rig):
    """Stopped, the daemon writes nothing: the device's watchdog vents.
    Continued, the daemon reads the watchdog fault, latches it, and an ack
    (after its RESET) brings the device back."""
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    inflated(rig)
    d.signal(signal.SIGSTOP)
    try:
        st = wait_until(lambda: (lambda s: s if s["fault"] == FAULT_WATCHDOG else None)(
            sim.status()), 3.0, interval=0.01, what="the device watchdog trips")
        own = st["watchdog_tripped_ms"] - st["heartbeat_changed_ms"]
        assert WATCHDOG_MS <= own <= WATCHDOG_MS + 1, st
        record("sigstop", alarm="device watchdog", exchanges=None, latency_ms=own,
               reaction="watchdog")
        wait_sim_vented(sim, 3.0)
    finally:
        mark = sub.mark()
        d.signal(signal.SIGCONT)
    alarm = sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised", 3.0, since=mark,
                         what="an alarm after SIGCONT")
    assert alarm["alarm"] in ("device_fault", "deadline"), alarm
    st = sub.wait_state(lambda m: m["state"] == "fault", 2.0, since=mark, what="fault")
    assert any(a["id"] == "device_fault" for a in st["alarms"]) or \
        d.wait_status(lambda s: any(a["id"] == "device_fault" for a in s["alarms"]), 2.0)
    ack_until_idle(rig)
    assert sim.status()["fault"] == 0
    fresh_session_runs(rig)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_a_link_flapping_ten_times_latches_each_time_without_leaking(rig):
    d, sim, sub = rig.d, rig.sim, rig.sub
    rss = []
    for i in range(10):
        mark = sub.mark()
        sim.inject("link", mode="disconnect")
        sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised" and m["alarm"] == "comms",
                     3.0, since=mark, what="comms alarm, flap %d" % (i + 1))
        sub.wait_state(lambda m: m["state"] == "fault" and not m["link"]["up"], 2.0,
                       since=mark, what="fault, flap %d" % (i + 1))
        ack_refused(rig, ROWS[-1])
        sim.clear("link")
        sub.wait_state(lambda m: m["link"]["up"], 6.0, since=mark,
                       what="link up after flap %d" % (i + 1))
        wait_sim_vented(sim, 3.0)
        ack_until_idle(rig)
        rss.append(rss_kib(d.pid))
    assert d.alive()
    st = d.status()
    assert st["link"]["reconnects"] >= 10, st["link"]
    raised = [m for m in sub.alarms() if m["kind"] == "raised" and m["alarm"] == "comms"]
    assert len(raised) == 10, raised
    print("\nRSS over the flaps (KiB): %s" % rss)
    # the first flaps warm caches; from the third on, no growth beyond noise
    # (under valgrind the RSS is mostly memcheck's own: its leak check
    # answers instead)
    if "fasciad" not in VALGRIND:
        assert rss[-1] - rss[2] <= 256, rss
    fresh_session_runs(rig)


def test_two_clients_conflicting_at_once_one_wins_the_other_is_busy(rig):
    """Two operators press start at the same moment: exactly one session
    starts; the other is told `busy`, nothing else happens."""
    d = rig.d
    ctx = zmq.Context.instance()
    socks = []
    try:
        for _ in range(2):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, 4000)
            s.connect(d.control)
            socks.append(s)
        # both connections up before the race: a harmless request each
        for i, s in enumerate(socks):
            s.send_multipart([b"", json.dumps({"v": 1, "id": i, "cmd": "hello"}).encode()])
            s.recv_multipart()
        for i, s in enumerate(socks):
            s.send_multipart([b"", json.dumps({"v": 1, "id": 10 + i, "cmd": "start",
                                               "device": "sim",
                                               "profile": ("long", "wave")[i]}).encode()])
        replies = [json.loads(s.recv_multipart()[-1]) for s in socks]
    finally:
        for s in socks:
            s.close(linger=0)
    oks = [r for r in replies if r["ok"]]
    others = [r for r in replies if not r["ok"]]
    assert len(oks) == 1 and len(others) == 1, replies
    assert others[0]["error"]["code"] == "busy", replies
    st = d.status()
    assert st["state"] == "running", st
    # one session: one id, one record
    assert re.fullmatch(r"sim-\d{13}-[0-9a-f]{4}", st["session"]["id"]), st
    assert len(d.ok("history")["sessions"]) == 1
