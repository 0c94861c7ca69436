"""The clients of the treatment record (docs/records.md, "The commands"):
fasciactl's history, session, log, export --fhir and start --patient/--note,
the Python module's history/session/log/start, and fascia-top's panel of
the last sessions, against a stand-in daemon (JournalDaemon) that answers
in the contract's shape, so that these tests do not wait for the daemon's
journal.  Every request the stand-in gets is kept, so a test can check
that a client sent exactly the arguments given.

Run: FASCIA_BUILD=$PWD/build /usr/bin/python3 -m pytest -q \
         tests/system/test_records_clients.py
"""
import copy
import csv
import datetime
import io
import json
import os
import queue
import re
import subprocess
import threading
import time

import pytest
import zmq

from conftest import BUILD, wait_until
import fascia  # conftest puts clients/python on sys.path

CTL_BIN = os.path.join(BUILD, "fasciactl")
TOP_BIN = os.path.join(BUILD, "fascia-top")
RUN_TIMEOUT_S = 15

# ---------------------------------------------------------------------------
# The canned journal: two sessions of device "sim", newest first.

DONE_ID = "sim-1795440360000-a1b2"      # completed, with a patient and a note
FAULT_ID = "sim-1795440000123-3fa2"     # ended by an alarm, no patient
NOTE = 'left leg, "calf"\nsecond line'  # a comma, quotes and a newline: CSV

DONE = {
    "id": DONE_ID, "device": "sim", "profile": "gentle-wave",
    "profile_sha256": "9f2c" + "0" * 60, "patient": "MRN-0042", "operator": None,
    "note": NOTE, "started": 1795440360000, "ended": 1795440720456,
    "end_reason": "completed", "alarm": None, "planned_s": 360.0,
    "delivered_s": 359.9, "paused_s": 0.0, "trace_hz": 1,
    "chambers": [
        {"chamber": 1, "max_mmhg": 40.1, "mean_mmhg": 31.2, "mmhg_s": 9012.4,
         "above_30_s": 121.3},
        {"chamber": 2, "max_mmhg": 35.5, "mean_mmhg": 28.7, "mmhg_s": 8000.0,
         "above_30_s": 60.0},
    ],
}

FAULT = {
    "id": FAULT_ID, "device": "sim", "profile": "long",
    "profile_sha256": "ab12" + "f" * 60, "patient": None, "operator": "alice",
    "note": None, "started": 1795440000123, "ended": 1795440151323,
    "end_reason": "fault", "alarm": "overpressure", "planned_s": 600.0,
    "delivered_s": 151.2, "paused_s": 0.0, "trace_hz": 1,
    "chambers": [
        {"chamber": 1, "max_mmhg": 52.3, "mean_mmhg": 30.0, "mmhg_s": 4536.0,
         "above_30_s": 75.5},
        {"chamber": 2, "max_mmhg": 30.2, "mean_mmhg": None, "mmhg_s": 3000.0,
         "above_30_s": 0.4},
    ],
}

FAULT_LOG = [
    {"seq": 11, "time": 1795440000123, "kind": "command", "device": "sim",
     "session": FAULT_ID, "event": "start", "by": "alice", "outcome": "ok",
     "message": "", "profile": "long", "sha256": "ab12" + "f" * 60},
    {"seq": 12, "time": 1795440151000, "kind": "alarm", "device": "sim",
     "session": FAULT_ID, "event": "raised", "alarm": "overpressure",
     "priority": "high", "chamber": 1, "value": 52.3, "threshold": 50.0,
     "message": "chamber 1 at 52.3 mmHg > 50.0"},
    {"seq": 13, "time": 1795440151010, "kind": "state", "device": "sim",
     "session": FAULT_ID, "event": "changed", "from": "running",
     "to": "fault_releasing", "cause": "trip"},
    {"seq": 14, "time": 1795440200000, "kind": "alarm", "device": "sim",
     "session": FAULT_ID, "event": "acknowledged", "alarm": "overpressure",
     "priority": "high", "chamber": 1, "value": None, "threshold": None,
     "message": "chamber 1 at 52.3 mmHg > 50.0"},
]

FAULT_TRACE = {"hz": 1, "t0": 1795440000123,
               "pressure": [[0.1, 0.0], [12.5, 3.2], [25.0, None]],
               "setpoint": [[0.0, 0.0], [12.0, 3.0], [25.0, 6.0]]}

LOG_ENTRIES = [
    {"seq": 3, "time": 1795440151000, "kind": "alarm", "device": "sim",
     "session": FAULT_ID, "event": "raised", "alarm": "estop", "priority": "high",
     "chamber": 0, "value": None, "threshold": None, "message": "e-stop pressed"},
    {"seq": 2, "time": 1795440000200, "kind": "link", "device": "sim",
     "session": None, "event": "down", "message": "no good exchange for 3 ticks"},
    {"seq": 1, "time": 1795440000123, "kind": "command", "device": "sim",
     "session": FAULT_ID, "event": "start", "by": None, "outcome": "interlock",
     "message": "estop is still present", "profile": "long", "sha256": "ab12"},
]


def history_result():
    return {"sessions": [copy.deepcopy(DONE), copy.deepcopy(FAULT)], "more": True}


def session_result(sid, trace):
    base = {DONE_ID: DONE, FAULT_ID: FAULT}[sid]
    s = copy.deepcopy(base)
    s["profile_document"] = {"name": s["profile"], "chambers": 2}
    s["log"] = copy.deepcopy(FAULT_LOG) if sid == FAULT_ID else []
    if trace:
        s["trace"] = copy.deepcopy(FAULT_TRACE)
    return {"session": s}


def idle_state(seq=1):
    return {"v": 1, "device": "sim", "seq": seq, "time": int(time.time() * 1000),
            "state": "idle", "session": None,
            "chambers": [{"pressure": 0.1, "setpoint": 0.0, "valve": "hold"}] * 2,
            "supply": 250.0, "alarms": [],
            "link": {"up": True, "rtt_us": 80, "timeouts": 0, "exceptions": 0,
                     "errors": 0, "reconnects": 0, "exchanges": 10, "fc23": True,
                     "last_error": ""},
            "device_status": {"status": 33, "fault": 0}}


def canned(req):
    """The stand-in's answers: hello, devices, status, history, session.get,
    log and start in the contract's shape."""
    cmd = req.get("cmd")
    if cmd == "hello":
        res = {"protocol": 1, "version": "0.1", "devices": ["sim"], "tick_hz": 50,
               "publish_hz": 10}
    elif cmd == "devices":
        res = {"devices": [{"name": "sim", "state": "idle", "chambers": 2,
                            "transport": "tcp", "address": "127.0.0.1:1",
                            "unit": 1, "limit_mmhg": 60.0, "link": {"up": True}}]}
    elif cmd == "status":
        res = idle_state() if "device" in req else {"devices": [idle_state()]}
    elif cmd == "history":
        if req.get("device") not in (None, "sim"):
            res = {"sessions": [], "more": False}
        else:
            res = history_result()
    elif cmd == "session.get":
        if req.get("session") not in (DONE_ID, FAULT_ID):
            return {"ok": False, "error": {"code": "bad_request",
                                           "message": "no session \"%s\"" % req.get("session"),
                                           "field": "session"}}
        res = session_result(req["session"], req.get("trace") is True)
    elif cmd == "log":
        res = {"entries": copy.deepcopy(LOG_ENTRIES), "more": True}
    elif cmd == "start":
        res = {"device": req.get("device"), "state": "running"}
    else:
        return {"ok": False, "error": {"code": "unknown_command", "message": str(cmd)}}
    return {"ok": True, "result": res}


class JournalDaemon:
    """A stand-in for fasciad on loopback ports a ROUTER and a PUB bound
    to free ports: its replies come from answer(request) (canned() unless
    given), every request is kept in .requests, and while publishing is on
    it sends an idle "state.sim" every 100 ms; publish() queues any other
    message.  Only its own thread touches the sockets."""

    def __init__(self, answer=canned, state=idle_state):
        ctx = zmq.Context.instance()
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.control = "tcp://127.0.0.1:%d" % self.router.bind_to_random_port(
            "tcp://127.0.0.1")
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.publish_ep = "tcp://127.0.0.1:%d" % self.pub.bind_to_random_port(
            "tcp://127.0.0.1")
        self.answer, self.state = answer, state
        self.requests = []
        self.outbox = queue.Queue()
        self.stop = False
        self.seq = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def publish(self, topic, msg):
        self.outbox.put((topic, msg))

    def _send(self, topic, msg):
        self.seq += 1
        msg = dict(msg, v=1, device="sim", seq=self.seq)
        msg.setdefault("time", int(time.time() * 1000))
        self.pub.send_multipart([topic.encode(), json.dumps(msg).encode()])

    def run(self):
        next_pub = 0.0
        while not self.stop:
            if self.state is not None and time.monotonic() >= next_pub:
                self._send("state.sim", self.state(self.seq + 1))
                next_pub = time.monotonic() + 0.1
            while not self.outbox.empty():
                self._send(*self.outbox.get())
            if not self.router.poll(20):
                continue
            frames = self.router.recv_multipart()
            try:
                req = json.loads(frames[-1])
            except ValueError:
                req = None
            self.requests.append(req)
            reply = dict(self.answer(req if isinstance(req, dict) else {}))
            reply.setdefault("v", 1)
            reply.setdefault("id", req.get("id") if isinstance(req, dict) else None)
            self.router.send_multipart(frames[:-1] + [json.dumps(reply).encode()])

    def sent(self, cmd):
        """The requests of cmd received so far, without "v" and the
        clients' own "id"."""
        return [{k: v for k, v in r.items() if k not in ("v", "id")}
                for r in self.requests if isinstance(r, dict) and r.get("cmd") == cmd]

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.router.close(linger=0)
        self.pub.close(linger=0)


@pytest.fixture
def journal():
    """journal(answer=canned) -> JournalDaemon, closed at teardown."""
    made = []

    def make(answer=canned, state=idle_state):
        d = JournalDaemon(answer, state)
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()


@pytest.fixture
def jd(journal):
    return journal()


def ctl(daemon, *args, tz="UTC"):
    """fasciactl on the stand-in's endpoints, in time zone tz; stdout and
    stderr as text with their line ends as written (CSV's are CRLF)."""
    if not os.access(CTL_BIN, os.X_OK):
        pytest.fail("no fasciactl at %s (set FASCIA_BUILD, run make)" % CTL_BIN)
    env = dict(os.environ, TZ=tz)
    env.pop("FASCIA_CONTROL", None)
    env.pop("FASCIA_PUBLISH", None)
    ep = ["--endpoint", daemon.control, "--publish", daemon.publish_ep] if daemon else []
    r = subprocess.run([CTL_BIN] + ep + [str(a) for a in args], capture_output=True,
                       timeout=RUN_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    return r


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def rows_of(text):
    """The table rows of fasciactl's output: a list of the whitespace-split
    cells of each line."""
    return [ln.split() for ln in text.splitlines() if ln.strip()]


# ---------------------------------------------------------------------------
# fasciactl history

def test_history_prints_a_row_per_session_with_local_times_and_durations(jd):
    out = ok(ctl(jd, "history"))
    assert jd.sent("history") == [{"cmd": "history"}]   # nothing not given
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "DEVICE", "PROFILE", "PATIENT", "STARTED",
                                "DURATION", "END_REASON", "ALARM", "DELIVERED_S"]
    done = next(ln for ln in lines if ln.startswith(DONE_ID)).split()
    # id device profile patient date time duration end alarm delivered
    assert done == [DONE_ID, "sim", "gentle-wave", "MRN-0042", "2026-11-23",
                    "13:26:00", "6:00", "completed", "-", "359.9"], out
    fault = next(ln for ln in lines if ln.startswith(FAULT_ID)).split()
    assert fault == [FAULT_ID, "sim", "long", "-", "2026-11-23", "13:20:00",
                     "2:31", "fault", "overpressure", "151.2"], out


def test_history_started_is_local_time(jd):
    out = ok(ctl(jd, "history", tz="XYZ-5:30"))   # UTC+05:30
    assert "2026-11-23  18:56:00" in out or "2026-11-23 18:56:00" in out, out


def test_history_shows_more_as_the_before_to_use(jd):
    out = ok(ctl(jd, "history"))
    assert out.splitlines()[-1] == "more sessions: repeat with --before %s" % FAULT_ID


def test_history_sends_exactly_the_options_given(jd):
    ok(ctl(jd, "history", "sim", "--patient", "MRN-0042", "--since", "2026-11-23",
           "--until", "1795500000000", "--limit", "5", "--before", DONE_ID))
    midnight = int(datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc)
                   .timestamp() * 1000)
    assert jd.sent("history") == [{"cmd": "history", "device": "sim",
                                   "patient": "MRN-0042", "since": midnight,
                                   "until": 1795500000000, "limit": 5,
                                   "before": DONE_ID}]


@pytest.mark.parametrize("text,utc", [
    ("2026-11-23T13:20", (2026, 11, 23, 13, 20, 0)),
    ("2026-11-23T13:20:07", (2026, 11, 23, 13, 20, 7)),
    ("2026-11-23", (2026, 11, 23, 0, 0, 0)),
])
def test_since_takes_a_local_date_and_time(jd, text, utc):
    """In UTC+05:30, 13:20 local is 07:50 UTC."""
    ok(ctl(jd, "history", "--since", text, tz="XYZ-5:30"))
    want = datetime.datetime(*utc, tzinfo=datetime.timezone(datetime.timedelta(
        hours=5, minutes=30)))
    assert jd.sent("history")[-1]["since"] == int(want.timestamp() * 1000)


def test_history_json_prints_the_result_object_as_is(jd):
    out = ok(ctl(jd, "--json", "history"))
    assert len(out.splitlines()) == 1, out
    assert json.loads(out) == history_result()


def test_history_csv_is_rfc4180_with_a_header(jd):
    r = ctl(jd, "history", "--csv")
    out = ok(r)
    # three records (the head, two sessions), each ended by CRLF; the
    # note's own newline is inside its quotes
    assert out.endswith("\r\n") and out.count("\r\n") == 3, repr(out)
    assert '"left leg, ""calf""\nsecond line"' in out, repr(out)
    rows = list(csv.reader(io.StringIO(out, newline="")))
    head = rows[0]
    assert head[:4] == ["id", "device", "profile", "profile_sha256"]
    assert len(rows) == 3 and all(len(row) == len(head) for row in rows), rows
    done = dict(zip(head, rows[1]))
    assert done["id"] == DONE_ID and done["patient"] == "MRN-0042"
    assert done["note"] == NOTE                      # quoted, kept whole
    assert done["started"] == "2026-11-23T13:26:00.000+00:00"
    assert done["ended"] == "2026-11-23T13:32:00.456+00:00"
    assert float(done["duration_s"]) == pytest.approx(360.456)
    assert done["delivered_s"] == "359.9" and done["alarm"] == ""
    fault = dict(zip(head, rows[2]))
    assert fault["end_reason"] == "fault" and fault["alarm"] == "overpressure"
    assert fault["patient"] == "" and fault["operator"] == "alice"
    # the paging hint must not break the table: it goes to stderr
    assert "--before %s" % FAULT_ID in r.stderr


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-3", "5.5"])
def test_history_limit_is_bounded_to_1_1000(jd, limit):
    r = ctl(jd, "history", "--limit", limit)
    assert r.returncode == 2, r
    assert "--limit" in r.stderr and "1..1000" in r.stderr, r.stderr
    assert jd.sent("history") == []


@pytest.mark.parametrize("t", ["yesterday", "2026-13-01", "2026-02-30", "2026-11-23T25:00",
                               "2026-11-23T10", "1795440000000.5"])
def test_a_time_that_is_not_one_is_a_usage_error(jd, t):
    r = ctl(jd, "history", "--since", t)
    assert r.returncode == 2, r
    assert "--since" in r.stderr and "not a time" in r.stderr, r.stderr
    assert jd.sent("history") == []


def test_history_error_from_the_daemon_is_printed_with_its_code(journal):
    def answer(req):
        if req.get("cmd") == "history":
            return {"ok": False, "error": {"code": "internal",
                                           "message": "journal unreadable: disk I/O error"}}
        return canned(req)
    d = journal(answer)
    for args in (("history",), ("--json", "history"), ("history", "--csv")):
        r = ctl(d, *args)
        assert r.returncode == 1, (args, r)
        assert "fasciactl: internal: journal unreadable: disk I/O error" in r.stderr
        assert r.stdout == "", (args, r.stdout)


def test_history_of_an_unconfigured_device_without_sessions_is_unknown(jd):
    r = ctl(jd, "history", "nope")
    assert r.returncode == 1, r
    assert "unknown_device" in r.stderr and "known devices: sim" in r.stderr


def test_history_of_a_configured_device_without_sessions(journal):
    d = journal(lambda req: {"ok": True, "result": {"sessions": [], "more": False}}
                if req.get("cmd") == "history" else canned(req))
    out = ok(ctl(d, "history", "sim"))
    assert out.strip() == "no sessions recorded"


def test_history_from_a_daemon_without_a_journal(journal):
    d = journal(lambda req: {"ok": True, "result": {"entries": []}}
                if req.get("cmd") == "history" else canned(req))
    out = ok(ctl(d, "history"))
    assert "sessions are not recorded" in out and "no sessions recorded" not in out


# ---------------------------------------------------------------------------
# fasciactl session

def test_session_shows_summary_dose_and_log(jd):
    out = ok(ctl(jd, "session", FAULT_ID))
    assert jd.sent("session.get") == [{"cmd": "session.get", "session": FAULT_ID}]
    assert re.search(r"^profile\s+long\s+sha256 ab12f", out, re.M), out
    assert re.search(r"^end\s+fault, alarm overpressure$", out, re.M), out
    assert re.search(r"^operator\s+alice$", out, re.M), out
    rows = rows_of(out)
    i = rows.index(["dose:"])
    assert rows[i + 1] == ["CHAMBER", "MAX", "mmHg", "MEAN", "mmHg", "mmHg.s", "s",
                           ">30", "mmHg"]
    assert rows[i + 2] == ["1", "52.3", "30.0", "4536.0", "75.5"]
    assert rows[i + 3] == ["2", "30.2", "-", "3000.0", "0.4"]    # unknown, not 0
    log = out[out.index("log:"):]
    assert "overpressure chamber 1 high: chamber 1 at 52.3 mmHg > 50.0 " \
           "(value 52.3, threshold 50.0)" in log, log
    assert "running -> fault_releasing (trip)" in log
    assert "by alice: ok, profile long" in log
    assert "trace:" not in out


def test_session_trace_prints_offset_then_pressure_and_setpoint_per_chamber(jd):
    out = ok(ctl(jd, "session", FAULT_ID, "--trace"))
    assert jd.sent("session.get") == [{"cmd": "session.get", "session": FAULT_ID,
                                       "trace": True}]
    trace = rows_of(out[out.index("trace:"):])
    assert trace[0][:3] == ["trace:", "1", "Hz"] and "3 samples" in " ".join(trace[0])
    assert trace[1] == ["T_S", "P1", "SP1", "P2", "SP2"]
    assert trace[2:] == [["0", "0.1", "0.0", "0.0", "0.0"],
                         ["1", "12.5", "12.0", "3.2", "3.0"],
                         ["2", "25.0", "25.0", "-", "6.0"]]


def test_session_csv_is_the_dose_table(jd):
    out = ok(ctl(jd, "session", DONE_ID, "--csv"))
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows == [["chamber", "max_mmhg", "mean_mmhg", "mmhg_s", "above_30_s"],
                    ["1", "40.1", "31.2", "9012.4", "121.3"],
                    ["2", "35.5", "28.7", "8000.0", "60.0"]]


def test_session_csv_with_trace_is_the_trace_rows(jd):
    out = ok(ctl(jd, "session", FAULT_ID, "--csv", "--trace"))
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows == [["t_s", "p1", "sp1", "p2", "sp2"],
                    ["0.000", "0.1", "0.0", "0.0", "0.0"],
                    ["1.000", "12.5", "12.0", "3.2", "3.0"],
                    ["2.000", "25.0", "25.0", "", "6.0"]]


def test_session_json_prints_the_result_object_as_is(jd):
    out = ok(ctl(jd, "--json", "session", FAULT_ID, "--trace"))
    assert json.loads(out) == session_result(FAULT_ID, True)


def test_session_of_an_unknown_id_prints_the_daemons_error(jd):
    r = ctl(jd, "session", "sim-1-0000")
    assert r.returncode == 1, r
    assert "fasciactl: bad_request: no session \"sim-1-0000\"" in r.stderr
    assert "fasciactl: field: session" in r.stderr


# ---------------------------------------------------------------------------
# fasciactl log

def test_log_sends_the_kinds_and_prints_a_row_per_entry(jd):
    out = ok(ctl(jd, "log", "sim", "--kind", "alarm", "--kind", "command,link",
                 "--limit", "3", "--before", "40"))
    assert jd.sent("log") == [{"cmd": "log", "device": "sim",
                               "kinds": ["alarm", "command", "link"], "limit": 3,
                               "before": 40}]
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "KIND", "DEVICE", "EVENT", "SUMMARY"]
    assert re.match(r"\s*3\s+2026-11-23 13:22:31\.000\s+alarm\s+sim\s+raised\s+"
                    r"estop chamber 0 high: e-stop pressed$", lines[1]), lines[1]
    assert re.match(r"\s*2\s+2026-11-23 13:20:00\.200\s+link\s+sim\s+down\s+"
                    r"no good exchange for 3 ticks$", lines[2]), lines[2]
    assert re.search(r"\scommand\s+sim\s+start\s+by -: interlock, profile long: "
                     r"estop is still present$", lines[3]), lines[3]
    assert lines[-1] == "more entries: repeat with --before 1"


def test_log_without_options_sends_only_the_command(jd):
    ok(ctl(jd, "log"))
    assert jd.sent("log") == [{"cmd": "log"}]


def test_log_csv_and_json(jd):
    out = ok(ctl(jd, "log", "--csv"))
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["seq", "time", "kind", "device", "session", "event", "summary"]
    assert rows[1][:6] == ["3", "2026-11-23T13:22:31.000+00:00", "alarm", "sim",
                           FAULT_ID, "raised"]
    assert rows[2][4] == ""                          # no session: null
    assert json.loads(ok(ctl(jd, "--json", "log"))) == {"entries": LOG_ENTRIES,
                                                        "more": True}


def test_log_before_is_a_seq(jd):
    r = ctl(jd, "log", "--before", "sim-1")
    assert r.returncode == 2 and "--before" in r.stderr, r
    assert jd.sent("log") == []


# ---------------------------------------------------------------------------
# fasciactl start --patient --note

def test_start_sends_patient_and_note_only_when_given(jd):
    ok(ctl(jd, "start", "sim", "gentle-wave"))
    ok(ctl(jd, "start", "sim", "gentle-wave", "--patient", "MRN-0042",
           "--note", "left leg"))
    ok(ctl(jd, "start", "--note", "x", "sim", "gentle-wave"))
    assert jd.sent("start") == [
        {"cmd": "start", "device": "sim", "profile": "gentle-wave"},
        {"cmd": "start", "device": "sim", "profile": "gentle-wave",
         "patient": "MRN-0042", "note": "left leg"},
        {"cmd": "start", "device": "sim", "profile": "gentle-wave", "note": "x"},
    ]


@pytest.mark.parametrize("ref", ["MRN 0042", "", "x" * 65, "Müller", "a/b", "id;1"])
def test_a_patient_reference_outside_the_rule_is_refused_here(jd, ref):
    for args in (("start", "sim", "gentle-wave", "--patient", ref),
                 ("history", "--patient", ref)):
        r = ctl(jd, *args)
        assert r.returncode == 2, (args, r)
        assert "--patient" in r.stderr and "A-Z a-z 0-9 . _ -" in r.stderr, r.stderr
    assert jd.sent("start") == [] and jd.sent("history") == []


def test_a_patient_reference_of_64_characters_is_taken(jd):
    ref = "A-._" * 16
    ok(ctl(jd, "start", "sim", "gentle-wave", "--patient", ref))
    assert jd.sent("start")[0]["patient"] == ref


def test_a_note_over_500_characters_is_refused_here(jd):
    r = ctl(jd, "start", "sim", "gentle-wave", "--note", "é" * 501)
    assert r.returncode == 2 and "--note" in r.stderr, r
    ok(ctl(jd, "start", "sim", "gentle-wave", "--note", "é" * 500))
    assert jd.sent("start")[0]["note"] == "é" * 500


@pytest.mark.parametrize("args", [
    ("status", "--csv"), ("history", "--trace"), ("session", "x", "--kind", "alarm"),
    ("pause", "--patient", "a"), ("history", "--json", "--csv"),
    ("export", FAULT_ID), ("export", "--fhir"), ("--json", "export", "--fhir", FAULT_ID),
    ("log", "--note", "x"), ("session",), ("history", "a", "b"),
])
def test_options_out_of_place_are_usage_errors(jd, args):
    r = ctl(jd, *args)
    assert r.returncode == 2, (args, r)
    assert r.stderr.startswith("fasciactl: "), r.stderr


# ---------------------------------------------------------------------------
# fasciactl export --fhir

UUID_URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                      r"[0-9a-f]{12}$")


def export(daemon, sid, tz="XYZ-5:30"):
    r = ctl(daemon, "export", "--fhir", sid, tz=tz)
    return json.loads(ok(r))


def resources(bundle, rtype):
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def from_iso(text):
    return datetime.datetime.fromisoformat(text)


def ms(text):
    return round(from_iso(text).timestamp() * 1000)


def test_export_is_a_fhir_collection_bundle(jd):
    b = export(jd, FAULT_ID)
    assert jd.sent("session.get") == [{"cmd": "session.get", "session": FAULT_ID}]
    assert b["resourceType"] == "Bundle" and b["type"] == "collection"
    stamp = from_iso(b["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(hours=5, minutes=30)
    assert abs(stamp.timestamp() - time.time()) < 60
    urls = [e["fullUrl"] for e in b["entry"]]
    assert all(UUID_URN.match(u) for u in urls) and len(set(urls)) == len(urls)
    # 1 Procedure, 2 doses, 1 alarm raised (its acknowledgement is no alarm)
    assert [e["resource"]["resourceType"] for e in b["entry"]] == \
        ["Procedure", "Observation", "Observation", "Observation"]


def test_export_procedure_carries_the_session(jd):
    b = export(jd, FAULT_ID)
    p = resources(b, "Procedure")[0]["resource"]
    assert {"system": "urn:fascia:session", "value": FAULT_ID} in p["identifier"]
    assert p["status"] == "stopped"
    assert "overpressure" in p["statusReason"]["text"]
    assert p["code"]["text"] == "Pneumatic compression therapy"
    start, end = p["performedPeriod"]["start"], p["performedPeriod"]["end"]
    assert start == "2026-11-23T18:50:00.123+05:30"
    assert ms(start) == FAULT["started"] and ms(end) == FAULT["ended"]
    notes = " ".join(n["text"] for n in p["note"])
    assert "long" in notes and FAULT["profile_sha256"] in notes
    # no patient reference: no identifier, and no name ever
    assert "identifier" not in p["subject"] and "display" in p["subject"]
    assert p["performer"][0]["actor"]["display"] == "alice"


def test_export_of_a_completed_session_with_a_patient(jd):
    b = export(jd, DONE_ID, tz="UTC")
    p = resources(b, "Procedure")[0]["resource"]
    assert p["status"] == "completed" and "statusReason" not in p
    assert p["subject"]["identifier"] == {"value": "MRN-0042"}
    assert "name" not in json.dumps(p["subject"])
    assert p["performedPeriod"] == {"start": "2026-11-23T13:26:00.000+00:00",
                                    "end": "2026-11-23T13:32:00.456+00:00"}
    assert NOTE in [n["text"] for n in p["note"]]
    # no alarm: the Procedure and one Observation per chamber
    assert len(resources(b, "Observation")) == 2


def component(obs, code):
    return next(c for c in obs["component"] if c["code"]["coding"][0]["code"] == code)


def test_export_doses_are_observations_in_ucum(jd):
    b = export(jd, FAULT_ID)
    proc_url = resources(b, "Procedure")[0]["fullUrl"]
    doses = [e["resource"] for e in resources(b, "Observation")
             if e["resource"]["code"]["text"].startswith("Compression dose")]
    assert len(doses) == 2
    units = {"max_mmhg": "mm[Hg]", "mean_mmhg": "mm[Hg]", "mmhg_s": "mm[Hg].s",
             "above_30_s": "s"}
    for obs, dose in zip(doses, FAULT["chambers"]):
        assert obs["partOf"] == [{"reference": proc_url}]
        assert obs["code"]["text"] == "Compression dose, chamber %d" % dose["chamber"]
        assert obs["subject"] == resources(b, "Procedure")[0]["resource"]["subject"]
        assert len(obs["component"]) == 4
        for key, unit in units.items():
            c = component(obs, key)
            if dose[key] is None:               # unknown is left out, never 0
                assert "valueQuantity" not in c and "dataAbsentReason" in c
                continue
            assert c["valueQuantity"] == {"value": dose[key], "unit": unit,
                                          "system": "http://unitsofmeasure.org",
                                          "code": unit}


def test_export_alarms_raised_are_observations(jd):
    b = export(jd, FAULT_ID)
    proc_url = resources(b, "Procedure")[0]["fullUrl"]
    alarms = [e["resource"] for e in resources(b, "Observation")
              if e["resource"]["code"]["text"].startswith("Device alarm")]
    assert len(alarms) == 1
    a = alarms[0]
    assert a["partOf"] == [{"reference": proc_url}]
    assert a["code"]["coding"][0]["code"] == "overpressure"
    assert ms(a["effectiveDateTime"]) == FAULT_LOG[1]["time"]
    assert a["valueString"] == "chamber 1 at 52.3 mmHg > 50.0"
    assert component(a, "priority")["valueString"] == "high"
    assert component(a, "chamber")["valueInteger"] == 1


def test_export_is_the_same_bundle_each_time_but_for_uuids_and_timestamp(jd):
    def canonical(b):
        text = json.dumps(dict(b, timestamp=None), sort_keys=True)
        seen = {}
        return re.sub(r"urn:uuid:[0-9a-f-]{36}",
                      lambda m: seen.setdefault(m.group(0), "U%d" % len(seen)), text)
    first, second = export(jd, FAULT_ID), export(jd, FAULT_ID)
    assert first["entry"][0]["fullUrl"] != second["entry"][0]["fullUrl"]
    assert canonical(first) == canonical(second)


def test_export_to_a_file(jd, tmp_path):
    path = tmp_path / "session.fhir.json"
    r = ctl(jd, "export", "--fhir", DONE_ID, "-o", str(path))
    assert ok(r) == ""
    b = json.loads(path.read_text())
    assert b["resourceType"] == "Bundle"
    assert os.listdir(tmp_path) == ["session.fhir.json"]     # no temporary left


def test_export_of_an_unknown_session_writes_nothing(jd, tmp_path):
    path = tmp_path / "x.json"
    r = ctl(jd, "export", "--fhir", "sim-1-0000", "-o", str(path))
    assert r.returncode == 1 and "fasciactl: bad_request:" in r.stderr, r
    assert not path.exists() and r.stdout == ""


# ---------------------------------------------------------------------------
# The Python module

@pytest.fixture
def client(jd):
    c = fascia.Client(jd.control, timeout=3.0)
    yield c
    c.close()


def test_python_history_sends_exactly_the_arguments_given(jd, client):
    assert client.history() == history_result()
    assert client.history(device="sim", patient="MRN-0042", since=1, until=2, limit=5,
                          before=DONE_ID) == history_result()
    client.history(limit=1)
    assert jd.sent("history") == [
        {"cmd": "history"},
        {"cmd": "history", "device": "sim", "patient": "MRN-0042", "since": 1,
         "until": 2, "limit": 5, "before": DONE_ID},
        {"cmd": "history", "limit": 1},
    ]


def test_python_history_takes_datetimes(jd, client):
    when = datetime.datetime(2026, 11, 23, 13, 20, tzinfo=datetime.timezone.utc)
    client.history(since=when)
    assert jd.sent("history") == [{"cmd": "history", "since": 1795440000000}]


def test_python_session_returns_the_session(jd, client):
    s = client.session(FAULT_ID)
    assert s == session_result(FAULT_ID, False)["session"]
    t = client.session(FAULT_ID, trace=True)
    assert t["trace"] == FAULT_TRACE
    assert jd.sent("session.get") == [{"cmd": "session.get", "session": FAULT_ID},
                                      {"cmd": "session.get", "session": FAULT_ID,
                                       "trace": True}]
    with pytest.raises(fascia.BadRequest) as e:
        client.session("sim-1-0000")
    assert e.value.field == "session"


def test_python_log_sends_exactly_the_arguments_given(jd, client):
    assert client.log() == {"entries": LOG_ENTRIES, "more": True}
    client.log(device="sim", kinds=["alarm", "state"], since=5, until=6, limit=7,
               before=8)
    client.log(kinds=("alarm",))
    assert jd.sent("log") == [
        {"cmd": "log"},
        {"cmd": "log", "device": "sim", "kinds": ["alarm", "state"], "since": 5,
         "until": 6, "limit": 7, "before": 8},
        {"cmd": "log", "kinds": ["alarm"]},
    ]


def test_python_start_sends_patient_and_note_only_when_given(jd, client):
    assert client.start("sim", "gentle-wave") == {"device": "sim", "state": "running"}
    client.start("sim", "gentle-wave", patient="MRN-0042", note="left leg")
    client.start("sim", "gentle-wave", note="")
    assert jd.sent("start") == [
        {"cmd": "start", "device": "sim", "profile": "gentle-wave"},
        {"cmd": "start", "device": "sim", "profile": "gentle-wave",
         "patient": "MRN-0042", "note": "left leg"},
        {"cmd": "start", "device": "sim", "profile": "gentle-wave", "note": ""},
    ]


# ---------------------------------------------------------------------------
# fascia-top: the last sessions of the selected device

class Tmux:
    """One private tmux server (its own -L name, killed at teardown)
    running fascia-top at 80x24."""

    def __init__(self, argv, width=80, height=24):
        self.name = "fascia-top-records-%d-%d" % (os.getpid(), id(self))
        self.run("-f", "/dev/null", "new-session", "-d", "-x", str(width), "-y",
                 str(height), " ".join(argv))
        self.run("set-option", "-g", "remain-on-exit", "on")
        self.socket_path = self.run("display-message", "-p",
                                    "#{socket_path}").stdout.strip()

    def run(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.name] + list(args), check=check,
                              capture_output=True, text=True, timeout=10)

    def screen(self):
        return self.run("capture-pane", "-p").stdout

    def wait_screen(self, pred, timeout=6.0, what=None):
        last = [""]

        def check():
            last[0] = self.screen()
            return pred(last[0])
        try:
            wait_until(check, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError("%s\nscreen:\n%s" % (e, last[0]))
        return last[0]

    def kill(self):
        self.run("kill-server", check=False)
        if os.path.basename(self.socket_path) == self.name:
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass


@pytest.fixture
def top():
    made = []

    def start(daemon):
        if not os.access(TOP_BIN, os.X_OK):
            pytest.fail("no fascia-top at %s (set FASCIA_BUILD, run make)" % TOP_BIN)
        t = Tmux(["env", "TZ=UTC", TOP_BIN, "--endpoint", daemon.control,
                  "--publish", daemon.publish_ep])
        made.append(t)
        return t
    yield start
    for t in made:
        t.kill()


def test_top_shows_the_last_sessions_of_the_selected_device(jd, top):
    t = top(jd)
    screen = t.wait_screen(lambda s: "gentle-wave" in s and "overpressure" in s,
                           what="the two sessions")
    assert jd.sent("history")[0] == {"cmd": "history", "device": "sim", "limit": 5}
    done = next(ln for ln in screen.splitlines() if "gentle-wave" in ln)
    assert "11-23 13:26" in done and "completed" in done and "6:00" in done, done
    fault = next(ln for ln in screen.splitlines() if "overpressure" in ln)
    assert "long" in fault and "fault" in fault and "2:31" in fault, fault
    assert all(len(ln) <= 80 for ln in screen.splitlines())


def test_top_asks_again_when_a_session_of_the_device_ends(journal, top):
    sessions = [copy.deepcopy(FAULT)]

    def answer(req):
        if req.get("cmd") == "history":
            return {"ok": True, "result": {"sessions": copy.deepcopy(sessions),
                                           "more": False}}
        return canned(req)
    d = journal(answer)
    t = top(d)
    t.wait_screen(lambda s: "overpressure" in s, what="the first session")
    asked = len(d.sent("history"))
    sessions.insert(0, copy.deepcopy(DONE))
    d.publish("event.sim", {"kind": "session", "text": "completed",
                            "session": {"id": DONE_ID, "profile": "gentle-wave"}})
    t0 = time.monotonic()
    t.wait_screen(lambda s: "gentle-wave" in s, timeout=3.0,
                  what="the session that ended")
    assert len(d.sent("history")) > asked
    # well before the periodic refresh (5 s)
    assert time.monotonic() - t0 < 3.0


def test_top_shows_the_daemons_error_in_the_sessions_panel(journal, top):
    d = journal(lambda req: {"ok": False, "error": {
        "code": "internal", "message": "journal is off (no journal = in fasciad.conf)"}}
        if req.get("cmd") == "history" else canned(req))
    t = top(d)
    screen = t.wait_screen(lambda s: "journal is off" in s, what="the error")
    assert "internal" in screen
    assert "idle" in screen     # the rest of the view is there as ever
