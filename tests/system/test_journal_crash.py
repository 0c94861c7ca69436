"""kill -9 of fasciad mid-session, again and again at random moments, on one
journal and one simulator (docs/records.md, "Durability"): after each kill

  - the file is sound: PRAGMA integrity_check is "ok" (read-only, the
    daemon stopped);
  - every alarm published more than 1 s before the kill is in the record,
    and so is every alarm whose ack was answered, with its acknowledged and
    cleared entries (an ack is answered only once they are committed);
  - a session that ended (a fault) more than 1 s before the kill has its
    end; one still running is closed as `interrupted` at the next start,
    with an end no later than the kill, a daemon/interrupted log entry and
    fasciad's own log saying so.

A round: start the daemon, bring the device to idle (after a kill the
device's watchdog has vented the garment and latched its fault: ack until
idle), start a session, in some rounds press the e-stop (and in some of
those release it and ack), wait 0.2-3 s, SIGKILL by pid.

FASCIA_CRASH_ROUNDS=N runs N rounds instead of ROUNDS_DEFAULT;
FASCIA_CRASH_SEED=S repeats a run's random moments (each run prints its
seed).
"""
import collections
import os
import random
import re
import sqlite3
import time

from conftest import SLOW
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import Rig, ack_until_idle, wait_sim_vented
from daemon_rig import write_config
from test_journal import log_all, seq_gaps, session_if_recorded

ROUNDS_DEFAULT = 20
ROUNDS = int(os.environ.get("FASCIA_CRASH_ROUNDS", ROUNDS_DEFAULT))
SEED = int(os.environ.get("FASCIA_CRASH_SEED", time.time_ns() % 1000000007))
COMMIT_S = 1.0          # alarms and session ends: committed within 1 s
KILL_DELAY_S = (0.2, 3.0)

# What a round leaves for the next start to find.
Round = collections.namedtuple(
    "Round", "n kind sid start_s kill_s kill_ms alarms acked_by_s")


def integrity(path):
    """PRAGMA integrity_check on path opened read-only: its rows."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
    finally:
        con.close()


def to_idle(rig):
    """The device idle with no alarm: after a kill its watchdog fault (or
    the e-stop's) is latched; ack once vented."""
    st = rig.d.wait_status(lambda st: st["state"] in ("idle", "fault"), 8.0 * SLOW,
                           what="idle or fault after the restart")
    if st["state"] == "fault":
        wait_sim_vented(rig.sim, 5.0 * SLOW)
        st = ack_until_idle(rig, timeout=8.0 * SLOW)
    assert st["alarms"] == [], st
    return st


def crash_round(rig, rng, n, kind):
    """One round up to the kill; returns what the next start must find."""
    d, sim, sub = rig.d, rig.sim, rig.sub
    mark = sub.mark()
    rep = d.call("start", device="sim", profile="long")
    assert rep["ok"], ("round %d: start refused" % n, rep)
    start_s = time.monotonic()
    st = sub.wait_state(lambda m: m["state"] == "running" and m.get("session"), 2.0 * SLOW,
                        since=mark, what="round %d: running" % n)
    sid = st["session"]["id"]
    acked_by_s = None
    if kind in ("alarm", "ack"):
        time.sleep(rng.uniform(0.1, 1.5))
        m2 = sub.mark()
        sim.inject("estop")
        sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised" and m["alarm"] == "estop",
                     2.0 * SLOW, since=m2, what="round %d: estop raised" % n)
        if kind == "ack":
            wait_sim_vented(sim, 5.0 * SLOW)
            sim.clear("estop")
            d.wait_status(lambda s: not any(a["present"] for a in s["alarms"]), 2.0 * SLOW,
                          what="round %d: estop released" % n)
            ack_until_idle(rig)
            acked_by_s = time.monotonic()
    time.sleep(rng.uniform(*KILL_DELAY_S))
    kill_s, kill_ms = time.monotonic(), time.time() * 1000.0
    d.kill()
    alarms = [(m, t) for _, m, t in sub.all("alarm.sim", mark)]
    d.finish()
    if kind == "alarm":
        sim.clear("estop")   # before the next start: only the watchdog's fault remains
    return Round(n, kind, sid, start_s, kill_s, kill_ms, alarms, acked_by_s)


def check_round(rig, r, entries, stats):
    """What the restarted daemon's record says of round r."""
    d = rig.d
    where = "round %d (%s, session %s, killed %.2f s after its start)" % (
        r.n, r.kind, r.sid, r.kill_s - r.start_s)
    # the alarms that must be in the record: published over COMMIT_S
    # before the kill, or answered by an ack before it
    logged = {(e["event"], e["alarm"], e["chamber"], e["time"])
              for e in entries if e["kind"] == "alarm"}
    for m, t in r.alarms:
        must = r.kill_s - t > COMMIT_S or (r.acked_by_s is not None and t <= r.acked_by_s)
        key = (m["kind"], m["alarm"], m["chamber"], m["time"])
        if must:
            assert key in logged, ("%s: alarm %s %s published %.2f s before the kill is "
                                   "not in the record" % (where, m["alarm"], m["kind"],
                                                          r.kill_s - t), m)
            if m["kind"] == "acknowledged":
                assert ("cleared",) + key[1:] in logged, (where, "no cleared entry", m)
    if r.acked_by_s is not None:
        acks = [e for e in entries if e["kind"] == "command" and e["event"] == "ack"
                and e["outcome"] == "ok" and e["time"] <= r.kill_ms]
        assert acks, (where, "the answered ack is not in the log")

    s = session_if_recorded(d, r.sid)
    if s is None:
        # only a session start is not promised within 1 s
        assert r.kind == "plain" and r.kill_s - r.start_s <= COMMIT_S, \
            "%s: no record of the session" % where
        stats["unrecorded"] += 1
        return
    raised = [t for m, t in r.alarms if m["kind"] == "raised"]
    if r.kind == "ack" or (raised and r.kill_s - raised[0] > COMMIT_S):
        assert s["end_reason"] == "fault" and s["alarm"] == "estop", (where, s)
        stats["fault"] += 1
        return
    if r.kind == "alarm" and s["end_reason"] == "fault":
        stats["fault"] += 1
        return
    assert s["end_reason"] == "interrupted", (where, s)
    stats["interrupted"] += 1
    assert s["ended"] is not None and s["started"] <= s["ended"] <= r.kill_ms + 5, \
        ("%s: an interrupted session's end must be its last sample, before the kill at "
         "%d" % (where, r.kill_ms), s)
    assert s["delivered_s"] <= (r.kill_ms - s["started"]) / 1000.0 + 0.1, (where, s)
    stats["kept_s"].append(round((s["ended"] - s["started"]) / 1000.0, 1))
    told = [e for e in entries if e["kind"] == "daemon" and e["event"] == "interrupted" and
            (e.get("session") == r.sid or r.sid in e.get("message", ""))]
    assert len(told) == 1, ("%s: daemon/interrupted entries %r" % (where, told))
    line = re.compile(r"journal: session %s on device sim was left running.*closed as "
                      r"interrupted" % re.escape(r.sid))
    assert line.search(d.log()), ("%s: fasciad's log does not say the session was closed "
                                  "as interrupted" % where, d.log()[-2000:])


def kind_of(n):
    """Most rounds kill a running session; every fifth presses the e-stop
    first, every fifth (another) also acks it."""
    return {2: "alarm", 4: "ack"}.get(n % 5, "plain")


def test_kill_9_at_random_moments_leaves_a_sound_record_and_interrupted_sessions(
        start_sim, start_daemon, tmp_path):
    print("\nFASCIA_CRASH_SEED=%d FASCIA_CRASH_ROUNDS=%d" % (SEED, ROUNDS))
    rng = random.Random(SEED)
    sim = start_sim()
    conf = write_config(str(tmp_path), sim.port)
    journal = os.path.join(str(tmp_path), "journal.db")
    stats = {"interrupted": 0, "fault": 0, "unrecorded": 0, "kept_s": []}
    t0 = time.monotonic()
    prev = None
    for n in range(ROUNDS + 1):
        d = start_daemon(conf)
        rig = Rig(sim, d, d.subscribe(), str(tmp_path))
        if prev is not None:
            check_round(rig, prev, log_all(d), stats)
        to_idle(rig)
        if n == ROUNDS:
            break
        prev = crash_round(rig, rng, n, kind_of(n))
        rows = integrity(journal)
        assert rows == ["ok"], ("round %d: integrity_check after the kill" % n, rows)

    entries = log_all(d)
    assert not seq_gaps(entries), "log seq holes %r" % seq_gaps(entries)[:10]
    starts = [e for e in entries if e["kind"] == "daemon" and e["event"] == "start"]
    assert len(starts) == ROUNDS + 1, len(starts)
    print("%d rounds in %.0f s: %d interrupted, %d ended by the e-stop, %d killed before "
          "their start was recorded; interrupted sessions kept %s s"
          % (ROUNDS, time.monotonic() - t0, stats["interrupted"], stats["fault"],
             stats["unrecorded"], stats["kept_s"]))
    assert stats["interrupted"] >= 1
