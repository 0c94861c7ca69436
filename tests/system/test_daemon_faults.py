"""fasciad's interlocks and link handling, with the causes injected through
fascia-sim's control socket: the alarm, the fault state, the vent within one
exchange, the acknowledgement refused while the cause is there and accepted
once it is gone; the daemon killed, the simulator restarted or rebooted."""
import re
import time

import pytest

from conftest import FAULT_WATCHDOG, ST_WATCHDOG_TRIPPED, Sim, SimStartError, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import (ack_until_idle, record, sim_max_pressure, start_session,
                             wait_sim_vented)

WATCHDOG_MS = 500


def reaction(sim, fault, injected_ms, timeout=3.0):
    """The simulator's reaction record of one injection, once it has a vent."""
    def find():
        for r in sim.stats()["reactions"]:
            if r["fault"] == fault and r["injected_ms"] == injected_ms and \
                    r["vented_ms"] is not None:
                return r
        return None
    return wait_until(find, timeout, interval=0.02,
                      what="a vented reaction record for %s injected at %d ms"
                      % (fault, injected_ms))


def alarm_ids(st):
    return {a["id"] for a in st["alarms"]}


def ack_refused(d, code="interlock"):
    rep = d.call("ack", device="sim")
    assert not rep["ok"] and rep["error"]["code"] == code, \
        "ack while the cause remains: %r" % rep
    return rep


def fresh_session_works(rig):
    start_session(rig, "long")
    rig.sub.wait_state(lambda m: m["state"] == "running" and
                       min(c["pressure"] for c in m["chambers"][:4]) > 5, 4.0,
                       what="a fresh session inflating")
    rig.d.ok("stop", device="sim")


@pytest.mark.parametrize("case", ["overpressure", "estop"])
def test_an_interlock_trips_vents_at_once_and_is_acknowledged_after_the_cause(rig, case):
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    sub.wait_state(lambda m: m["state"] == "running" and
                   min(c["pressure"] for c in m["chambers"][:4]) > 10, 4.0,
                   what="chambers inflating")
    mark = sub.mark()
    if case == "overpressure":
        # the profile's maximum is 40: the interlock trips above 45; 55 is
        # below the device limit 60, so the firmware does not vent by itself
        res = sim.inject("overpressure", chamber=1, mmhg=55)
    else:
        res = sim.inject("estop")
    alarm = sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised" and m["alarm"] == case,
                         2.0, since=mark, what="alarm %s raised" % case)
    assert alarm["chamber"] == (1 if case == "overpressure" else 0), alarm
    assert alarm["priority"] == "high", alarm
    st = sub.wait_state(lambda m: m["state"] == "fault", 2.0, since=mark, what="state fault")
    assert case in alarm_ids(st), st
    a = [a for a in st["alarms"] if a["id"] == case][0]
    assert a["latched"] is True and a["present"] is True, a
    assert st["session"] is None or st["state"] == "fault"

    # the simulator saw the VENT within one exchange of the cause
    rec = reaction(sim, case, res["injected_ms"])
    print("\n%s: reaction %r" % (case, rec))
    assert rec["exchanges"] <= 1, "VENT came %d exchanges after the cause: %r" % (
        rec["exchanges"], rec)
    wait_until(lambda: sim.status()["command"] == "vent", 1.0, what="COMMAND vent")

    # ack refused while the cause remains (the surge holds chamber 1)
    wait_sim_vented(sim, 5.0, below=60.0)
    rep = ack_refused(d)
    # refused for the cause itself (overpressure: the surge holds chamber 1
    # at 55 mmHg, above the profile's 40 + 5)
    assert case in rep["error"]["message"], rep
    assert d.status()["state"] == "fault"
    rep = d.call("start", device="sim", profile="long")
    assert not rep["ok"] and rep["error"]["code"] in ("forbidden", "interlock"), rep

    sim.clear(case)
    d.wait_status(lambda st: not any(a["present"] for a in st["alarms"]), 2.0,
                  what="the alarm no longer present")
    wait_sim_vented(sim, 5.0)
    mark = sub.mark()
    ack_until_idle(rig)
    acked = sub.wait_for("alarm.sim", lambda m: m["kind"] == "acknowledged" and
                         m["alarm"] == case, 2.0, since=mark, what="alarm acknowledged")
    assert acked
    assert sim.status()["fault"] == 0
    fresh_session_works(rig)


def test_an_overpressure_alarm_stays_present_while_the_surge_holds(rig):
    """docs/protocol.md: `present` says whether the cause is still there.
    A chamber held at 55 mmHg, above the 45 mmHg trip point of the session's
    profile, is still the cause after the trip."""
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    mark = sub.mark()
    sim.inject("overpressure", chamber=1, mmhg=55)
    sub.wait_state(lambda m: m["state"] == "fault", 2.0, since=mark, what="state fault")
    time.sleep(0.3)  # the surge goes on; the alarm must stay present over it
    st = d.status()
    assert st["chambers"][0]["pressure"] > 50, st["chambers"][0]
    a = [a for a in st["alarms"] if a["id"] == "overpressure"]
    assert a, st["alarms"]
    assert a[0]["present"] is True, (
        "chamber 1 reads %.1f mmHg (> profile max 40 + 5) but the overpressure alarm "
        "says present=false in fault: the session's profile limits must hold until "
        "the ack; %r" % (st["chambers"][0]["pressure"], a[0]))
    sim.clear("overpressure")
    wait_sim_vented(sim, 5.0)
    ack_until_idle(rig)


@pytest.mark.parametrize("mode", ["silent", "disconnect"])
def test_a_lost_link_faults_the_watchdog_vents_and_the_daemon_reconnects(rig, mode):
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    sub.wait_state(lambda m: m["state"] == "running" and
                   min(c["pressure"] for c in m["chambers"][:4]) > 10, 4.0,
                   what="chambers inflating")
    before = d.status()["link"]["reconnects"]
    mark = sub.mark()
    sim.inject("link", mode=mode)
    sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised" and m["alarm"] == "comms",
                 2.0, since=mark, what="comms alarm")
    st = sub.wait_state(lambda m: m["state"] == "fault" and not m["link"]["up"], 2.0,
                        since=mark, what="fault, link down")
    assert "comms" in alarm_ids(st), st
    assert any(e["kind"] == "link" and e["up"] is False for e in sub.events(mark))
    # nobody reaches the device: its own watchdog vents it
    t0 = time.monotonic()
    sst = wait_until(lambda: (lambda s: s if s["fault"] == FAULT_WATCHDOG else None)(
        sim.status()), 2.0, what="the simulator's watchdog trips")
    assert sst["status_bits"] & ST_WATCHDOG_TRIPPED and sst["venting"], sst
    wait_sim_vented(sim, 5.0)
    print("\nlink %s: watchdog tripped %.0f ms after the comms alarm was seen"
          % (mode, (time.monotonic() - t0) * 1000))
    ack_refused(d)  # the link is down

    mark = sub.mark()
    sim.clear("link")
    st = sub.wait_state(lambda m: m["link"]["up"], 5.0, since=mark, what="link up again")
    assert st["link"]["reconnects"] >= before + 1, st["link"]
    assert any(e["kind"] == "link" and e["up"] is True for e in sub.events(mark))
    assert st["state"] == "fault", st
    # the log (written by the main thread: the control thread logs nothing)
    # says why the link went down, what moved the state, and that it is up
    log = wait_until(lambda: (lambda l: l if "device sim: link up (FC23)" in
                              l.split("link down")[-1] else None)(d.log()),
                     3.0, what="the link's return in the log")
    assert re.search(r"device sim: link down: no good exchange for 3 ticks "
                     r"\(limit 3\); last error: \S", log), log[-2000:]
    assert "device sim: running -> fault (link_down)" in log, log[-2000:]
    ack_until_idle(rig)
    assert sim.status()["fault"] == 0, "the ack's RESET did not clear the watchdog fault"
    fresh_session_works(rig)


def test_kill_9_of_the_daemon_mid_session_the_device_watchdog_vents(rig):
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    sub.wait_state(lambda m: min(c["pressure"] for c in m["chambers"][:4]) > 20, 5.0,
                   what="chambers inflated")
    assert sim_max_pressure(sim.status()) > 20
    t0 = time.monotonic()
    d.kill()
    tripped = wait_until(lambda: (lambda s: s if s["fault"] == FAULT_WATCHDOG else None)(
        sim.status()), 3.0, interval=0.005, what="the simulator's watchdog trips")
    t_trip = (time.monotonic() - t0) * 1000
    assert tripped["status_bits"] & ST_WATCHDOG_TRIPPED, tripped
    assert "watchdog_tripped" in tripped["status"], tripped
    wait_sim_vented(sim, 3.0)
    t_vent = (time.monotonic() - t0) * 1000
    print("\nkill -9: watchdog tripped after %.0f ms, chambers < 5 mmHg after %.0f ms"
          % (t_trip, t_vent))
    # the firmware's own clock: the trip came WATCHDOG_MS after the last
    # HEARTBEAT change, within one 1 ms firmware sample (no polling in it)
    own = tripped["watchdog_tripped_ms"] - tripped["heartbeat_changed_ms"]
    print("watchdog reaction on the firmware's clock: %d ms" % own)
    assert WATCHDOG_MS <= own <= WATCHDOG_MS + 1, tripped
    record("kill9", alarm="device watchdog", exchanges=None, latency_ms=own,
           reaction="watchdog", vented_ms=round(t_vent))
    assert tripped["venting"], tripped


def restart_sim_on(port, timeout=5.0):
    """A new fascia-sim on the same port (retrying while the port is not
    free yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Sim("-p", port, port_arg=False)
        except SimStartError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_simulator_restarting_mid_session_faults_and_reconnects_cleanly(rig):
    d, sim, sub = rig.d, rig.sim, rig.sub
    port = sim.port
    start_session(rig, "long")
    sub.wait_state(lambda m: min(c["pressure"] for c in m["chambers"][:4]) > 10, 4.0,
                   what="chambers inflating")
    before = d.status()["link"]["reconnects"]
    mark = sub.mark()
    sim.kill()
    new = restart_sim_on(port)
    try:
        sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised" and m["alarm"] == "comms",
                     3.0, since=mark, what="comms alarm")
        st = sub.wait_state(lambda m: m["state"] == "fault" and m["link"]["up"] and
                            m["link"]["reconnects"] >= before + 1, 8.0, since=mark,
                            what="reconnected, still fault")
        assert "comms" in alarm_ids(st), st
        nst = new.status()
        assert nst["fault"] == 0, "a fresh simulator has no latched fault: %r" % nst
        assert nst["exchanges"] > 0
        wait_until(lambda: new.status()["command"] == "vent", 2.0,
                   what="the daemon vents the new device")
        rig.sim = new
        ack_until_idle(rig)
        assert new.status()["fault"] == 0
        fresh_session_works(rig)
    finally:
        new.finish()


def test_a_device_reboot_faults_and_reconnects_cleanly(rig):
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    sub.wait_state(lambda m: min(c["pressure"] for c in m["chambers"][:4]) > 10, 4.0,
                   what="chambers inflating")
    before = d.status()["link"]["reconnects"]
    mark = sub.mark()
    sim.inject("reboot")
    sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised" and m["alarm"] == "comms",
                 2.0, since=mark, what="comms alarm")
    sub.wait_state(lambda m: m["state"] == "fault" and not m["link"]["up"], 2.0,
                   since=mark, what="fault, link down")
    st = sub.wait_state(lambda m: m["link"]["up"] and m["link"]["reconnects"] >= before + 1,
                        6.0, since=mark, what="reconnected after the reboot")
    assert st["state"] == "fault" and "comms" in alarm_ids(st), st
    sst = sim.status()
    assert sst["fault"] == 0 and not sst["booting"], sst
    ack_until_idle(rig)
    fresh_session_works(rig)
