"""The treatment record (docs/records.md): sessions run on fascia-sim, then
read back through fasciad's own queries (history, session.get, log) and
held against what was published while they ran: a completed session's
dose and trace, how stop, vent and an interlock end one, every alarm's
raised / acknowledged / cleared entries, the commands with their outcomes,
the patient reference kept out of everything published, paging, and the
arguments refused.

The record helpers at the top (query, pages, session_get, seq_gaps, ...)
are also used by test_journal_crash.py and test_journal_disk.py.
"""
import copy
import json
import re
import threading

import pytest
import zmq

from conftest import SLOW, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import Rig, ack_until_idle, wait_sim_vented
from daemon_rig import PROFILES, write_config

SESSION_ID = re.compile(r"^sim-(\d{13})-[0-9a-f]{4}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHAMBERS = 8          # daemon_rig's device sim
TRACE_HZ = 2          # this file's daemons: 2 samples a second
# docs/records.md: alarms and session ends are committed within 1 s of
# happening.  These tests do not measure that (test_journal_crash.py
# does); they wait for the record generously.
RECORD_TIMEOUT_S = 5.0 * SLOW
IDLE_TIMEOUT_S = 5.0 * SLOW


# --------------------------------------------------------------------------
# Reading the record

def query(d, cmd, **args):
    """history or log -> the result (the query must be answered ok)."""
    rep = d.call(cmd, **args)
    assert rep["ok"], ("%s %r refused" % (cmd, args), rep)
    return rep["result"]


def pages(d, cmd, key, cursor, limit=1000, **args):
    """Every item of a history (key "sessions", cursor the session id) or
    a log (key "entries", cursor the seq), page after page, newest first;
    returns (items, the pages' lengths)."""
    items, lengths, before = [], [], None
    while True:
        a = dict(args, limit=limit)
        if before is not None:
            a["before"] = before
        res = query(d, cmd, **a)
        page = res[key]
        assert isinstance(page, list) and isinstance(res.get("more"), bool), res
        assert len(page) <= limit, (limit, len(page))
        items += page
        lengths.append(len(page))
        if not res["more"]:
            return items, lengths
        assert page, ("more: true with an empty page", cmd, a, res)
        before = cursor(page[-1])
        assert len(lengths) < 10000, "paging does not end"


def history_all(d, **args):
    return pages(d, "history", "sessions", lambda s: s["id"], **args)[0]


def log_all(d, **args):
    return pages(d, "log", "entries", lambda e: e["seq"], **args)[0]


def session_get_reply(d, sid, trace=False):
    """session.get of sid: the reply (ok or not)."""
    args = {"trace": True} if trace else {}
    return d.call("session.get", session=sid, **args)


def session_get(d, sid, trace=False):
    rep = session_get_reply(d, sid, trace)
    assert rep["ok"], ("session.get %s refused" % sid, rep)
    s = rep["result"]["session"]
    assert s["id"] == sid, s
    return s


def session_if_recorded(d, sid):
    """The session's record, or None while there is none (bad_request
    naming session: unknown)."""
    rep = session_get_reply(d, sid)
    if rep["ok"]:
        return rep["result"]["session"]
    assert rep["error"]["code"] == "bad_request" and \
        rep["error"].get("field") == "session", rep
    return None


def wait_ended(d, sid, timeout=RECORD_TIMEOUT_S):
    """The session's record once it says how the session ended."""
    return wait_until(lambda: (lambda s: s if s and s["end_reason"] != "running" else None)(
        session_if_recorded(d, sid)), timeout, interval=0.05,
        what="session %s closed in the record" % sid)


def seq_gaps(entries):
    """(a, b) for each hole between two consecutive seqs, in any order
    given; also the duplicates as (a, a)."""
    seqs = sorted(e["seq"] for e in entries)
    return [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]


def summary_only(s):
    """A session.get body without what only session.get has."""
    return {k: v for k, v in s.items() if k not in ("profile_document", "log", "trace")}


def alarm_events(entries):
    """{(alarm, chamber): [event, ...]} of the alarm entries, oldest first."""
    out = {}
    for e in sorted(entries, key=lambda e: e["seq"]):
        if e["kind"] == "alarm":
            out.setdefault((e["alarm"], e["chamber"]), []).append(e["event"])
    return out


def assert_alarm_lifecycles(entries):
    """Every alarm raised is acknowledged, then cleared: raised,
    acknowledged, cleared, in that order, for each alarm (and chamber)."""
    for key, evs in alarm_events(entries).items():
        assert len(evs) % 3 == 0 and \
            evs == ["raised", "acknowledged", "cleared"] * (len(evs) // 3), \
            "alarm %s chamber %d: entries %r" % (key[0], key[1], evs)


def published_alarms_are_logged(sub_alarms, entries):
    """Each alarm.sim message (raised, acknowledged, cleared) has its log
    entry: same alarm, chamber, priority, message and time (both are the
    time it happened)."""
    by = {}
    for e in entries:
        if e["kind"] == "alarm":
            by.setdefault((e["event"], e["alarm"], e["chamber"], e["time"]), []).append(e)
    for m in sub_alarms:
        key = (m["kind"], m["alarm"], m["chamber"], m["time"])
        assert key in by, ("published alarm without its log entry", m,
                           sorted(k for k in by if k[1] == m["alarm"]))
        e = by[key][0]
        assert e["priority"] == m["priority"] and e["message"] == m["message"], (m, e)
        if m["kind"] == "raised":
            assert e["value"] == m["value"] and e["threshold"] == m["threshold"], (m, e)


# --------------------------------------------------------------------------
# Everything published, as it came

class RawSub:
    """A SUB socket subscribed to the empty prefix (every topic), keeping
    every multipart message as its raw frames."""

    def __init__(self, ctx, endpoint):
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.lock = threading.Lock()
        self.frames = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop:
            if not poller.poll(50):
                continue
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                with self.lock:
                    self.frames.append(frames)

    def all(self):
        with self.lock:
            return list(self.frames)

    def count(self):
        with self.lock:
            return len(self.frames)

    def containing(self, needle):
        """The messages with needle (bytes) in any frame."""
        return [f for f in self.all() if any(needle in x for x in f)]

    def topics(self):
        return {f[0].decode(errors="replace") for f in self.all() if f}

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close(linger=0)


def assert_never_published(rig, *secrets):
    """None of secrets in anything the daemon published since the rig
    started: checked once a state message later than now has come, so
    that what was published up to now has arrived."""
    n = rig.raw.count()
    wait_until(lambda: rig.raw.count() > n + 1, 3.0, interval=0.02,
               what="the publisher still sending")
    assert rig.raw.count() > 10, "only %d messages published" % rig.raw.count()
    for s in secrets:
        hits = rig.raw.containing(s.encode())
        assert not hits, "%r was published: %r" % (s, hits[:3])


# --------------------------------------------------------------------------
# Sessions

@pytest.fixture
def jrig(start_sim, start_daemon, tmp_path):
    """daemon_rig's rig with trace_hz = TRACE_HZ, and rig.raw subscribed to
    every topic from before the first session."""
    sim = start_sim()
    conf = write_config(str(tmp_path), sim.port,
                        extra="\n[daemon]\ntrace_hz = %d\n" % TRACE_HZ)
    d = start_daemon(conf)
    raw = RawSub(d._zctx, d.publish)
    try:
        sub = d.subscribe()
        wait_until(lambda: raw.count() > 0, 3.0, interval=0.01, what="a first raw message")
        d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S,
                      what="device sim idle after start-up")
        rig = Rig(sim, d, sub, str(tmp_path))
        rig.raw = raw
        rig.conf = conf
        yield rig
    finally:
        raw.close()


def begin(rig, profile, **args):
    """start; returns the session id its running state carries."""
    mark = rig.sub.mark()
    rep = rig.d.call("start", device="sim", profile=profile, **args)
    assert rep["ok"], ("start %s %r refused" % (profile, args), rep)
    st = rig.sub.wait_state(lambda m: m["state"] == "running" and m.get("session"),
                            2.0 * SLOW, since=mark, what="state running")
    sid = st["session"]["id"]
    assert SESSION_ID.match(sid), "session id %r is not sim-<Unix ms>-<4 hex>" % sid
    return sid


def inflated(rig, above=10.0):
    rig.sub.wait_state(lambda m: m["state"] == "running" and
                       min(c["pressure"] for c in m["chambers"][:4]) > above, 5.0 * SLOW,
                       what="the chambers above %.0f mmHg" % above)


def end_with(rig, cmd):
    """stop or vent, then wait for idle."""
    mark = rig.sub.mark()
    rig.d.ok(cmd, device="sim")
    rig.sub.wait_state(lambda m: m["state"] == "idle", 10.0 * SLOW, since=mark,
                       what="idle after %s" % cmd)


def start_stop(rig, profile, **args):
    sid = begin(rig, profile, **args)
    end_with(rig, "stop")
    return sid


def integrate(states):
    """From published state messages: per chamber the trapezoid
    pressure-time integral over their times, the highest pressure, and the
    mean pressure over the intervals that began with the setpoint above 0."""
    n = min(len(m["chambers"]) for m in states)
    area, peak = [0.0] * n, [max(m["chambers"][i]["pressure"] for m in states) for i in range(n)]
    set_area, set_t = [0.0] * n, [0.0] * n
    for a, b in zip(states, states[1:]):
        dt = (b["time"] - a["time"]) / 1000.0
        assert dt >= 0, (a["time"], b["time"])
        for i in range(n):
            piece = (a["chambers"][i]["pressure"] + b["chambers"][i]["pressure"]) / 2 * dt
            area[i] += piece
            if a["chambers"][i]["setpoint"] > 0:
                set_area[i] += piece
                set_t[i] += dt
    mean = [set_area[i] / set_t[i] if set_t[i] else 0.0 for i in range(n)]
    return area, peak, mean


def test_a_completed_session_is_recorded_with_its_dose_and_its_trace(jrig):
    rig = jrig
    d, sub = rig.d, rig.sub
    prof = PROFILES["wave"]
    planned = prof["repeat"] * sum(s["ramp_s"] + s["hold_s"] for s in prof["steps"])
    patient, note = "MRN-J0042.x_q", "right arm, after the first visit"
    mark = sub.mark()
    sid = begin(rig, "wave", patient=patient, note=note)
    id_ms = int(SESSION_ID.match(sid).group(1))
    after_running = sub.mark()
    sub.wait_state(lambda m: m["state"] == "idle", 25.0 * SLOW, since=after_running,
                   what="idle after the profile's end")
    s = wait_ended(d, sid)

    # the published states from the session's first running one to idle
    states = sub.states(mark)
    first = next(i for i, m in enumerate(states)
                 if m["state"] == "running" and (m["session"] or {}).get("id") == sid)
    last = next(i for i in range(first, len(states)) if states[i]["state"] == "idle")
    run = states[first:last + 1]
    area, peak, mean = integrate(run)
    print("\npublished: mmHg.s %s, max %s, mean %s" % (
        [round(a, 1) for a in area[:4]], peak[:4], [round(m, 1) for m in mean[:4]]))
    print("recorded:  %s" % [(c["mmhg_s"], c["max_mmhg"], c["mean_mmhg"])
                             for c in s["chambers"][:4]])

    assert s["device"] == "sim" and s["profile"] == "wave", s
    assert s["end_reason"] == "completed" and s["alarm"] is None, s
    assert s["patient"] == patient and s["note"] == note, s
    assert s["operator"] is None, s   # control is not authenticated
    assert HEX64.match(s["profile_sha256"]), s["profile_sha256"]
    assert s["trace_hz"] == TRACE_HZ, s
    assert abs(s["planned_s"] - planned) < 0.05, (s["planned_s"], planned)
    assert abs(s["delivered_s"] - planned) <= 0.3, (s["delivered_s"], planned)
    assert s["paused_s"] == 0, s
    assert 0 <= s["started"] - id_ms <= 2000 * SLOW, (s["started"], sid)
    # the release after the profile's end (from ~0 mmHg) is short; the
    # profile's clock is the monotonic one, started and ended the wall
    # clock's, read at each tick's snapshot: a tick of slack
    assert (planned - 0.05) * 1000 <= s["ended"] - s["started"] <= (planned + 5) * 1000, s

    assert [c["chamber"] for c in s["chambers"]] == list(range(1, CHAMBERS + 1)), s["chambers"]
    for i, c in enumerate(s["chambers"]):
        assert abs(c["mmhg_s"] - area[i]) <= max(0.05 * area[i], 3.0), \
            "chamber %d: recorded %.1f mmHg.s, published pressures give %.1f" % (
                i + 1, c["mmhg_s"], area[i])
        assert abs(c["max_mmhg"] - peak[i]) <= 1.0, \
            "chamber %d: recorded max %.1f, published max %.1f" % (i + 1, c["max_mmhg"], peak[i])
        assert c["above_30_s"] == 0, c   # the profile stays at 25 mmHg and below
        if i < 4:
            assert abs(c["mean_mmhg"] - mean[i]) <= max(0.08 * mean[i], 1.5), \
                "chamber %d: recorded mean %.1f, published %.1f" % (i + 1, c["mean_mmhg"], mean[i])
        else:
            assert c["mean_mmhg"] == 0, c   # never set above 0

    # history has the same summary; session.get adds the profile as it
    # ran, the session's log and, asked for, the trace
    listed = [h for h in query(d, "history", device="sim")["sessions"] if h["id"] == sid]
    assert listed == [summary_only(s)], (listed, summary_only(s))
    full = session_get(d, sid, trace=True)
    assert summary_only(full) == summary_only(s)
    doc = full["profile_document"]
    assert doc["name"] == "wave" and doc["repeat"] == 2 and len(doc["steps"]) == 2, doc
    slog = full["log"]
    assert slog and all(e["session"] == sid for e in slog), slog
    seqs = [e["seq"] for e in slog]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    texts = [e.get("message") for e in slog if e["kind"] == "state" and e["event"] == "session"]
    assert texts[:1] == ["started wave"] and "completed" in texts, texts
    changes = [(e["from"], e["to"]) for e in slog if e["event"] == "changed"]
    assert ("running", "releasing") in changes and changes[-1] == ("releasing", "idle"), changes

    tr = full["trace"]
    assert tr["hz"] == TRACE_HZ, tr["hz"]
    n = len(tr["pressure"])
    want = (s["ended"] - s["started"]) / 1000.0 * TRACE_HZ
    print("trace: %d samples over %.1f s (%.1f expected)"
          % (n, (s["ended"] - s["started"]) / 1000.0, want))
    assert abs(n - want) <= 2, "trace of %d samples, %.1f expected" % (n, want)
    assert len(tr["setpoint"]) == n
    # none missing (the writer's queue was never half full), every chamber read
    assert all(r is not None and len(r) == CHAMBERS and None not in r
               for r in tr["pressure"] + tr["setpoint"]), tr
    assert s["started"] <= tr["t0"] <= s["started"] + 1000 + 1000 // TRACE_HZ, (tr["t0"], s)
    # the holds (1.5 s at 2 Hz) are in the trace; no sample above the dose's max
    top_set = [max(r[i] for r in tr["setpoint"]) for i in range(CHAMBERS)]
    assert top_set == [25, 25, 20, 15, 0, 0, 0, 0], top_set
    for i in range(CHAMBERS):
        top = max(r[i] for r in tr["pressure"])
        assert top <= s["chambers"][i]["max_mmhg"] + 0.1, (i + 1, top, s["chambers"][i])
    assert max(r[0] for r in tr["pressure"]) >= 23.0, "the trace never shows the 25 mmHg hold"

    assert_never_published(rig, patient, note)


def test_the_same_profile_has_the_same_hash_and_a_changed_one_another(jrig):
    rig = jrig
    d = rig.d
    a = start_stop(rig, "wave")
    b = start_stop(rig, "wave")
    changed = copy.deepcopy(PROFILES["wave"])
    changed["steps"][0]["hold_s"] = 1.0
    assert d.ok("profile.put", profile=changed)["stored"] is True
    c = start_stop(rig, "wave")
    sa, sb, sc = (wait_ended(d, x) for x in (a, b, c))
    for s in (sa, sb, sc):
        assert HEX64.match(s["profile_sha256"]), s
        assert s["end_reason"] == "stopped" and s["alarm"] is None, s
    assert sa["profile_sha256"] == sb["profile_sha256"], (sa, sb)
    assert sc["profile_sha256"] != sa["profile_sha256"], (sa, sc)
    assert sa["planned_s"] == 14.0 and sc["planned_s"] == 13.0, (sa, sc)
    # the record keeps each document as it ran, after the file changed
    assert session_get(d, a)["profile_document"]["steps"][0]["hold_s"] == 1.5
    assert session_get(d, c)["profile_document"]["steps"][0]["hold_s"] == 1.0


def test_stop_vent_and_an_interlock_end_sessions_with_their_reasons(jrig):
    rig = jrig
    d, sim, sub = rig.d, rig.sim, rig.sub
    mark0 = sub.mark()
    ends = {}
    for cmd in ("stop", "vent"):
        sid = begin(rig, "long")
        inflated(rig)
        end_with(rig, cmd)
        ends[cmd] = sid

    sid = begin(rig, "long")
    inflated(rig)
    mark = sub.mark()
    sim.inject("estop")
    raised = sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised" and m["alarm"] == "estop",
                          2.0 * SLOW, since=mark, what="estop raised")
    assert raised["value"] is None and raised["threshold"] is None, raised
    sub.wait_state(lambda m: m["state"] == "fault", 2.0 * SLOW, since=mark, what="fault")
    s = wait_ended(d, sid)
    assert s["end_reason"] == "fault" and s["alarm"] == "estop", s
    assert s["ended"] >= raised["time"], (s, raised)
    wait_sim_vented(sim, 5.0 * SLOW)
    sim.clear("estop")
    d.wait_status(lambda st: not any(a["present"] for a in st["alarms"]), 2.0 * SLOW,
                  what="the estop alarm no longer present")
    ack_until_idle(rig)
    # an ack is answered only once the alarm it acknowledges is committed:
    # the log read right after the reply has it
    alarms = query(d, "log", kinds=["alarm"], limit=1000)["entries"]
    got = [e["event"] for e in sorted(alarms, key=lambda e: e["seq"]) if e["alarm"] == "estop"]
    assert got == ["raised", "acknowledged", "cleared"], got

    for cmd, want in (("stop", "stopped"), ("vent", "vented")):
        e = wait_ended(d, ends[cmd])
        assert e["end_reason"] == want and e["alarm"] is None, (cmd, e)

    entries = log_all(d)
    assert not seq_gaps(entries), "log seq holes/duplicates %r" % seq_gaps(entries)[:10]
    assert_alarm_lifecycles(entries)
    published_alarms_are_logged(sub.alarms(mark0), entries)
    mine = [e for e in entries if e["kind"] == "alarm" and e["alarm"] == "estop"]
    assert all(e["session"] == sid for e in mine), mine
    r = [e for e in mine if e["event"] == "raised"][0]
    assert r["priority"] == "high" and r["chamber"] == 0, r
    assert "value" in r and r["value"] is None and r["threshold"] is None, r
    # the faulted session's own log has its alarm's three entries
    slog = session_get(d, sid)["log"]
    assert [e["event"] for e in slog if e["kind"] == "alarm" and e["alarm"] == "estop"] == \
        ["raised", "acknowledged", "cleared"], slog


def commands_since(d, seq0):
    es = [e for e in query(d, "log", kinds=["command"], limit=1000)["entries"] if e["seq"] > seq0]
    return sorted(es, key=lambda e: e["seq"])


def last_seq(d):
    es = query(d, "log", limit=1)["entries"]
    return es[0]["seq"] if es else 0


def test_commands_are_logged_with_their_outcome_refusals_too(jrig):
    rig = jrig
    d = rig.d
    seq0 = last_seq(d)
    replies = []

    def call(cmd, **args):
        rep = d.call(cmd, **args)
        replies.append((cmd, rep))
        return rep

    assert call("pause", device="sim")["error"]["code"] == "forbidden"
    assert call("start", device="sim", profile="no-such")["error"]["code"] == "unknown_profile"
    mark = rig.sub.mark()
    assert call("start", device="sim", profile="long", patient="P-1")["ok"]
    rig.sub.wait_state(lambda m: m["state"] == "running", 2.0 * SLOW, since=mark)
    assert call("start", device="sim", profile="long")["error"]["code"] == "forbidden"
    mark = rig.sub.mark()
    assert call("stop", device="sim")["ok"]
    rig.sub.wait_state(lambda m: m["state"] == "idle", 10.0 * SLOW, since=mark)
    extra = copy.deepcopy(PROFILES["wave"])
    extra["name"] = "wave2"
    assert call("profile.put", profile=extra)["ok"]
    assert call("ack", device="sim")["error"]["code"] == "forbidden"
    # queries change nothing and are not logged
    for cmd in ("status", "profiles", "history", "log"):
        assert d.call(cmd)["ok"], cmd

    got = wait_until(lambda: (lambda es: es if len(es) >= len(replies) else None)(
        commands_since(d, seq0)), RECORD_TIMEOUT_S, interval=0.05,
        what="%d command entries" % len(replies))
    assert [e["event"] for e in got] == [c for c, _ in replies], got
    for e, (cmd, rep) in zip(got, replies):
        outcome = "ok" if rep["ok"] else rep["error"]["code"]
        assert e["outcome"] == outcome, (e, rep)
        assert e["message"] == ("" if rep["ok"] else rep["error"]["message"]), (e, rep)
        assert e["by"] is None, e
        assert e["kind"] == "command", e
        if cmd != "profile.put":
            assert e["device"] == "sim", e
    assert [e.get("profile") for e in got if e["event"] == "start"] == \
        ["no-such", "long", "long"], got
    assert [e.get("profile") for e in got if e["event"] == "profile.put"] == ["wave2"], got


def test_a_start_and_a_profile_put_are_logged_with_the_profile_hash(jrig):
    """docs/records.md: a command entry has what it named: profile,
    sha256."""
    rig = jrig
    d = rig.d
    seq0 = last_seq(d)
    sid = start_stop(rig, "wave")
    extra = copy.deepcopy(PROFILES["wave"])
    extra["name"] = "wave2"
    d.ok("profile.put", profile=extra)
    sid2 = start_stop(rig, "wave2")
    s, s2 = wait_ended(d, sid), wait_ended(d, sid2)
    got = wait_until(lambda: (lambda es: es if len(es) >= 5 else None)(
        commands_since(d, seq0)), RECORD_TIMEOUT_S, interval=0.05, what="5 command entries")
    starts = [e for e in got if e["event"] == "start"]
    puts = [e for e in got if e["event"] == "profile.put"]
    assert [e.get("sha256") for e in starts] == [s["profile_sha256"], s2["profile_sha256"]], \
        ("start entries without the hash of the profile they started", starts)
    assert puts and puts[0].get("sha256") == s2["profile_sha256"], \
        ("the profile.put entry without the hash of what it stored", puts)


def test_the_patient_reference_and_note_are_recorded_but_never_published(jrig):
    rig = jrig
    d, sim, sub = rig.d, rig.sim, rig.sub
    patient = "PT-q7Zx.K_93-unpublished"
    note = "NOTE-w4Rb9 left calf"
    sid = begin(rig, "long", patient=patient, note=note)
    inflated(rig)
    st = d.status()
    assert st["session"]["id"] == sid
    assert patient not in json.dumps(st) and "w4Rb9" not in json.dumps(st), st
    # an alarm, its ack and a second session: every kind of message
    mark = sub.mark()
    sim.inject("estop")
    sub.wait_for("alarm.sim", lambda m: m["kind"] == "raised", 2.0 * SLOW, since=mark)
    wait_sim_vented(sim, 5.0 * SLOW)
    sim.clear("estop")
    ack_until_idle(rig)
    sid2 = start_stop(rig, "long", patient=patient, note=note)

    for x in (sid, sid2):
        s = wait_ended(d, x)
        assert s["patient"] == patient and s["note"] == note, s
    mine = history_all(d, patient=patient)
    assert {s["id"] for s in mine} == {sid, sid2}, mine
    assert history_all(d, patient="PT-someone-else") == []
    topics = rig.raw.topics()
    assert {"state.sim", "event.sim", "alarm.sim"} <= topics, topics
    assert rig.raw.containing(sid.encode()), "the session id was never published"
    assert_never_published(rig, patient, note, "w4Rb9")


def test_history_and_log_pages_have_no_duplicates_and_no_holes(jrig):
    rig = jrig
    d = rig.d
    sids = [start_stop(rig, "long", patient=("PA" if i % 2 == 0 else "PB")) for i in range(5)]
    for x in sids:
        wait_ended(d, x)
    full = history_all(d)
    assert [s["id"] for s in full] == sids[::-1], ([s["id"] for s in full], sids)
    started = [s["started"] for s in full]
    assert started == sorted(started, reverse=True), started
    assert query(d, "history")["more"] is False and len(query(d, "history")["sessions"]) == 5
    for limit in (1, 2, 3):
        items, lengths = pages(d, "history", "sessions", lambda s: s["id"], limit=limit)
        assert [s["id"] for s in items] == [s["id"] for s in full], (limit, lengths)
        assert all(n == limit for n in lengths[:-1]), (limit, lengths)
    page = query(d, "history", limit=2)
    assert page["more"] is True and len(page["sessions"]) == 2
    last = query(d, "history", before=full[-1]["id"])
    assert last == {"sessions": [], "more": False}, last
    # filters
    pa = history_all(d, patient="PA")
    assert [s["id"] for s in pa] == [sids[4], sids[2], sids[0]], pa
    assert [s["id"] for s in pages(d, "history", "sessions", lambda s: s["id"], limit=1,
                                   patient="PA")[0]] == [s["id"] for s in pa]
    # since <= started < until
    win = history_all(d, since=full[3]["started"], until=full[1]["started"])
    assert [s["id"] for s in win] == [full[2]["id"], full[3]["id"]], win
    assert history_all(d, device="sim") == full
    assert history_all(d, device="nosuch") == []

    entries = log_all(d)
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs), seqs[:20]
    assert not seq_gaps(entries), seq_gaps(entries)[:10]
    assert len(entries) > 20, len(entries)
    for limit in (1, 7, 50):
        items, lengths = pages(d, "log", "entries", lambda e: e["seq"], limit=limit)
        assert [e["seq"] for e in items] == seqs, (limit, lengths)
        assert all(n == limit for n in lengths[:-1]), (limit, lengths)
    assert query(d, "log", before=min(seqs)) == {"entries": [], "more": False}
    commands = log_all(d, kinds=["command"])
    assert commands and all(e["kind"] == "command" for e in commands)
    items, _ = pages(d, "log", "entries", lambda e: e["seq"], limit=2, kinds=["command"])
    assert items == commands
    both = log_all(d, kinds=["command", "state"])
    assert [e["seq"] for e in both] == [e["seq"] for e in entries
                                         if e["kind"] in ("command", "state")]
    # one session's entries: the same as its session.get log, newest first
    one = log_all(d, session=sids[2])
    assert one and one == [e for e in entries if e["session"] == sids[2]], one
    assert one[::-1] == session_get(d, sids[2])["log"]
    # since <= time < until
    times = sorted({e["time"] for e in entries})
    lo, hi = times[len(times) // 4], times[3 * len(times) // 4]
    win = log_all(d, since=lo, until=hi)
    assert win == [e for e in entries if lo <= e["time"] < hi], (lo, hi, win)
    assert pages(d, "log", "entries", lambda e: e["seq"], limit=3, since=lo, until=hi)[0] == win


def test_bad_arguments_are_refused_naming_the_argument(jrig):
    rig = jrig
    d = rig.d

    def refused(code, field, cmd, **args):
        rep = d.call(cmd, **args)
        assert not rep["ok"], (cmd, args, rep)
        assert rep["error"]["code"] == code and rep["error"].get("field") == field, (
            "%s %r: expected %s naming %s" % (cmd, args, code, field), rep)
        return rep

    for patient in ("has space", "x" * 65, "", "semi;colon", "é-accent", 42):
        refused("bad_request", "patient", "start", device="sim", profile="long", patient=patient)
    refused("bad_request", "note", "start", device="sim", profile="long", note="n" * 501)
    refused("bad_request", "note", "start", device="sim", profile="long", note=7)
    assert d.status()["state"] == "idle"
    # the longest reference, and a note of 500 bytes, are taken
    sid = start_stop(rig, "long", patient="A" * 64, note="n" * 500)
    assert wait_ended(d, sid)["patient"] == "A" * 64

    for cmd in ("history", "log"):
        for limit in (0, 1001, -1, "5", 2.5):
            refused("bad_request", "limit", cmd, limit=limit)
    refused("bad_request", "until", "history", since=2000, until=1000)
    refused("bad_request", "kinds", "log", kinds=["alarm", "nonsense"])
    refused("bad_request", "kinds", "log", kinds=[])
    refused("bad_request", "before", "log", before="x")
    refused("bad_request", "before", "history", before="sim-0000000000000-dead")
    refused("bad_request", "session", "session.get", session="sim-0000000000000-dead")
    refused("bad_request", "session", "session.get")
    refused("bad_request", "trace", "session.get", session=sid, trace="yes")
    assert d.alive()
