"""fasciad running sessions on fascia-sim: a profile to its end, and the
operator's pause, resume and stop, seen where a user sees them: the
published state and events, the replies, and the simulator's true
pressures."""
import threading
import time

from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import sim_max_pressure, start_session
from daemon_rig import PROFILES

# Once a ramp has settled (1 s after its end), a published pressure is within
# TRACK_MMHG of its setpoint: the firmware regulates at 1 kHz with +-0.1 mmHg
# sensor noise; the published value is the reading of the tick's exchange
# (up to 20 ms old against a setpoint that is not moving while held).  3 mmHg
# is also well inside the deviation interlock's 15.
TRACK_MMHG = 3.0
NOISE_MMHG = 0.5


def seq_gaps(msgs):
    seqs = [m["seq"] for m in msgs]
    return [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]


def test_a_profile_runs_to_completion_and_the_pressures_follow_it(rig):
    prof = PROFILES["wave"]
    pmax = prof["max_pressure_mmhg"]
    mark = rig.sub.mark()
    start_session(rig, "wave")
    # idle again is looked for after a running message: a periodic one
    # built before the control thread took the start still says idle
    running_seen = rig.sub.mark()
    # The true pressures from the simulator while the session runs.
    sim_samples = []
    stop_sampling = threading.Event()

    def sample():
        # its own control socket: Sim.ctl is used by this thread only
        while not stop_sampling.is_set():
            st = rig.sim.status()
            sim_samples.append(st)
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        done = rig.sub.wait_state(lambda m: m["state"] == "idle", 20.0, since=running_seen,
                                  what="state idle after the session")
    finally:
        stop_sampling.set()
        t.join(timeout=3)
    msgs = [m for _, m, _ in rig.sub.all(None, mark)]
    states = [m for m in rig.sub.states(mark) if m["seq"] <= done["seq"]]
    # until the control thread takes the start (within a tick), a periodic
    # message may still say idle: nothing else comes before running
    first = next(i for i, m in enumerate(states) if m["state"] == "running")
    assert all(m["state"] == "idle" for m in states[:first]), states[:first]
    states = states[first:]
    events = rig.sub.events(mark)

    # seq: +1 per message per device, no gaps on a local subscriber
    assert all(m["device"] == "sim" and m["v"] == 1 for m in msgs)
    assert not seq_gaps(msgs), "seq gaps %r" % seq_gaps(msgs)[:10]
    assert not rig.sub.bad, rig.sub.bad[:3]

    # the session progressing
    running = [m for m in states if m["state"] == "running"]
    assert len(running) > 50, "only %d running state messages" % len(running)
    sess = [m["session"] for m in running]
    assert all(s["profile"] == "wave" for s in sess)
    el = [s["elapsed_s"] for s in sess]
    assert all(b >= a for a, b in zip(el, el[1:])), "elapsed_s went back: %r" % el
    assert el[0] < 1.0 and el[-1] > 13.0, (el[0], el[-1])
    rem = [s["remaining_s"] for s in sess]
    assert all(b <= a for a, b in zip(rem, rem[1:])), "remaining_s went up"
    total = prof["repeat"] * sum(st["ramp_s"] + st["hold_s"] for st in prof["steps"])
    assert total == 14.0
    for s in sess:
        assert abs(s["elapsed_s"] + s["remaining_s"] - total) <= 0.2, s
    assert {s["step"] for s in sess} == {1, 2}, {s["step"] for s in sess}
    assert {s["cycle"] for s in sess} == {1, 2}, {s["cycle"] for s in sess}
    # the cycle is 7 s: step 1 ramps 0-2.5 s and holds to 4 s, step 2
    # ramps to 6.5 s and holds to 7 s; cycle 2 from 7 s
    s1 = [s for s in sess if 3.0 <= s["elapsed_s"] <= 3.8]
    assert s1 and all(s["step"] == 1 and s["cycle"] == 1 for s in s1), s1
    s2 = [s for s in sess if 4.5 <= s["elapsed_s"] <= 6.8]
    assert s2 and all(s["step"] == 2 and s["cycle"] == 1 for s in s2), s2
    c2 = [s for s in sess if 7.3 <= s["elapsed_s"] <= 9.0]
    assert c2 and all(s["cycle"] == 2 for s in c2), c2

    # pressures follow the setpoints while held, never above the maximum
    tracked = 0
    for m in running:
        e = m["session"]["elapsed_s"]
        # elapsed_s is rounded to 0.1: 4.0 may be 4.04 s, into the next ramp
        held = (3.5 <= e <= 3.9) or (10.5 <= e <= 10.9)
        for i, c in enumerate(m["chambers"][:4]):
            assert c["pressure"] <= pmax + NOISE_MMHG, (i + 1, m)
            assert c["setpoint"] <= pmax, (i + 1, m)
            if held:
                tracked += 1
                assert abs(c["pressure"] - c["setpoint"]) <= TRACK_MMHG, \
                    "chamber %d at %.1f, setpoint %.1f, t=%.1f" % (
                        i + 1, c["pressure"], c["setpoint"], e)
        # the hold targets themselves
        if held:
            want = [25, 25, 20, 15]
            for i in range(4):
                assert abs(m["chambers"][i]["setpoint"] - want[i]) <= 0.1, (
                    m["session"], m["chambers"])
        for c in m["chambers"][4:]:
            assert c["setpoint"] == 0 and c["pressure"] < 2.0, m["chambers"]
    assert tracked >= 8, "too few held samples (%d)" % tracked
    peak = max(max(c["pressure"] for c in m["chambers"][:4]) for m in running)
    assert peak >= 24.0, "the chambers never reached their targets (peak %.1f)" % peak

    # the simulator's true pressures
    assert len(sim_samples) > 50, len(sim_samples)
    true_peak = max(sim_max_pressure(st) for st in sim_samples)
    assert true_peak <= pmax + NOISE_MMHG, "simulator saw %.2f mmHg" % true_peak
    assert true_peak >= 24.0, true_peak

    # the end: running -> releasing -> idle, events started / completed
    order = []
    for m in states:
        if not order or order[-1] != m["state"]:
            order.append(m["state"])
    assert order == ["running", "releasing", "idle"], \
        "state sequence %r (expected running, releasing, idle)" % order
    texts = [e.get("text") for e in events if e["kind"] == "session"]
    assert texts[:1] == ["started wave"] and "completed" in texts, texts
    trans = [(e["from"], e["to"]) for e in events if e["kind"] == "state"]
    assert trans == [("idle", "running"), ("running", "releasing"),
                     ("releasing", "idle")], trans
    assert done["session"] is None and done["alarms"] == [], done
    assert all(not m["alarms"] for m in states), "alarms during the session"


def test_pause_freezes_the_clock_and_releases_resume_continues_stop_ends(rig):
    d, sub = rig.d, rig.sub
    # commands in the wrong state: forbidden
    for cmd in ("pause", "resume", "stop", "ack"):
        rep = d.call(cmd, device="sim")
        assert not rep["ok"] and rep["error"]["code"] == "forbidden", (cmd, rep)
    start_session(rig, "long")
    sub.wait_state(lambda m: m["state"] == "running" and
                   min(c["pressure"] for c in m["chambers"][:4]) > 20, 5.0,
                   what="chambers inflated")
    rep = d.call("start", device="sim", profile="long")
    assert not rep["ok"] and rep["error"]["code"] == "forbidden", rep
    rep = d.call("resume", device="sim")
    assert not rep["ok"] and rep["error"]["code"] == "forbidden", rep

    mark = sub.mark()
    rep = d.ok("pause", device="sim")
    assert rep["state"] == "paused", rep
    st = sub.wait_state(lambda m: m["state"] == "paused" and
                        max(c["pressure"] for c in m["chambers"]) < 5.0, 8.0, since=mark,
                        what="paused with every chamber below 5 mmHg")
    assert sim_max_pressure(rig.sim.status()) < 5.0
    frozen = st["session"]["elapsed_s"]
    for cmd in ("pause", "ack"):
        rep = d.call(cmd, device="sim")
        assert not rep["ok"] and rep["error"]["code"] == "forbidden", (cmd, rep)
    time.sleep(0.6)  # the clock must not move over this interval
    paused = [m for m in sub.states(mark) if m["state"] == "paused"]
    assert {m["session"]["elapsed_s"] for m in paused} == {frozen} or \
        max(m["session"]["elapsed_s"] for m in paused) - \
        min(m["session"]["elapsed_s"] for m in paused) <= 0.05, \
        "elapsed_s moved while paused: %r" % sorted({m["session"]["elapsed_s"] for m in paused})
    assert d.status()["session"]["elapsed_s"] == frozen
    assert any(e.get("text") == "paused" for e in sub.events(mark))

    mark = sub.mark()
    rep = d.ok("resume", device="sim")
    assert rep["state"] == "running", rep
    sub.wait_state(lambda m: m["state"] == "running" and
                   m["session"]["elapsed_s"] >= frozen + 0.5, 3.0, since=mark,
                   what="elapsed_s advancing after resume")
    assert any(e.get("text") == "resumed" for e in sub.events(mark))
    sub.wait_state(lambda m: min(c["pressure"] for c in m["chambers"][:4]) > 20, 6.0,
                   since=mark, what="ramped back into the step")

    mark = sub.mark()
    rep = d.ok("stop", device="sim")
    assert rep["state"] == "releasing", rep
    sub.wait_state(lambda m: m["state"] == "idle", 10.0, since=mark, what="idle after stop")
    order = []
    for m in sub.states(mark):
        if not order or order[-1] != m["state"]:
            order.append(m["state"])
    assert order == ["releasing", "idle"], order
    assert any(e.get("text") == "stopped" for e in sub.events(mark))
    assert sim_max_pressure(rig.sim.status()) < 5.0
    for cmd in ("pause", "resume", "stop"):
        rep = d.call(cmd, device="sim")
        assert not rep["ok"] and rep["error"]["code"] == "forbidden", (cmd, rep)
