"""The Python client module (clients/python/fascia) against a real fasciad
and fascia-sim: results, one exception class per error code, the monitor's
messages and its gap count.  SeqTracker and the late-reply rule are also
checked without the daemon (a synthetic sequence, a fake ROUTER)."""
import json
import os
import socket
import sys
import threading
import time

import pytest
import zmq

from conftest import REPO, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from daemon_rig import PROFILES, write_config

sys.path.insert(0, os.path.join(REPO, "clients", "python"))
import fascia  # noqa: E402

UNREACHABLE_MARGIN_S = 0.5


@pytest.fixture
def client(rig):
    c = fascia.Client(rig.d.control, timeout=4.0)
    yield c
    c.close()


@pytest.fixture
def monitor(rig):
    m = fascia.Monitor(rig.d.publish, timeout=3.0)
    # the SUB join is asynchronous: wait for the first message
    assert m.next(3.0) is not None, "no published message within 3 s"
    yield m
    m.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# results

def test_queries_return_their_results(rig, client):
    hello = client.hello()
    assert hello["protocol"] == 1 and hello["devices"] == ["sim"]
    devs = client.devices()
    assert [d["name"] for d in devs] == ["sim"] and devs[0]["chambers"] == 8
    st = client.status("sim")
    assert st["device"] == "sim" and st["state"] == "idle" and len(st["chambers"]) == 8
    every = client.status()
    assert [s["device"] for s in every] == ["sim"]
    assert sorted(p["name"] for p in client.profiles()) == sorted(PROFILES)
    assert client.profile_get("wave")["name"] == "wave"
    assert client.history() == {"sessions": [], "more": False}   # none ran yet
    assert client.call("hello") == hello


def test_ids_increment(rig, client):
    first = client.next_id
    client.hello()
    client.hello()
    assert client.next_id == first + 2


def test_endpoint_from_environment(rig, monkeypatch):
    monkeypatch.setenv("FASCIA_CONTROL", rig.d.control)
    with fascia.Client() as c:
        assert c.endpoint == rig.d.control
        assert c.hello()["devices"] == ["sim"]
    monkeypatch.delenv("FASCIA_CONTROL")
    with fascia.Client() as c:
        assert c.endpoint == "tcp://127.0.0.1:7410"


def test_profile_put_stores_a_profile(rig, client):
    doc = dict(PROFILES["wave"], name="py-wave")
    assert client.profile_put(doc) == {"name": "py-wave", "stored": True}
    assert "py-wave" in [p["name"] for p in client.profiles()]
    assert client.profile_get("py-wave")["steps"][0]["set"]["1"] == 25
    assert os.path.exists(os.path.join(rig.profiles_dir, "py-wave.json"))


def test_session_commands_give_the_state_after_them(rig, client, monitor):
    assert client.start("sim", "long") == {"device": "sim", "state": "running"}
    assert client.pause("sim")["state"] == "paused"
    assert client.resume("sim")["state"] == "running"
    assert client.stop("sim")["state"] in ("releasing", "idle")
    assert monitor.wait_for(lambda m: m.kind == "state" and m.data["state"] == "idle",
                            10.0), "no idle state after stop"
    assert client.vent("sim")["state"] in ("venting", "idle")


# --------------------------------------------------------------------------
# one exception class per error code

def test_bad_request_for_a_malformed_argument(rig, client):
    with pytest.raises(fascia.BadRequest) as e:
        client.call("status", device=5)
    assert e.value.code == "bad_request" and e.value.field == "device"
    assert e.value.reply["ok"] is False and isinstance(e.value.message, str)


def test_profile_put_with_a_nan_pressure_raises_bad_request(rig, client):
    """json.dumps writes NaN, which is not JSON: fasciad cannot parse the
    request, so its refusal has "id": null, and still reaches the caller."""
    doc = json.loads(json.dumps(PROFILES["wave"]))
    doc["name"] = "nan-wave"
    doc["steps"][0]["set"]["1"] = float("nan")
    t0 = time.monotonic()
    with pytest.raises(fascia.BadRequest) as e:
        client.profile_put(doc)
    assert time.monotonic() - t0 < 2.0, "waited for the timeout"
    assert e.value.code == "bad_request" and "JSON" in e.value.message, e.value
    assert e.value.reply["id"] is None
    assert "nan-wave" not in [p["name"] for p in client.profiles()]
    # the client goes on as before: the next reply is matched by its id
    assert client.hello()["devices"] == ["sim"]


def test_unknown_command(rig, client):
    with pytest.raises(fascia.UnknownCommand) as e:
        client.call("levitate")
    assert e.value.code == "unknown_command"


def test_unknown_device(rig, client):
    with pytest.raises(fascia.UnknownDevice):
        client.status("nosuch")
    with pytest.raises(fascia.UnknownDevice):
        client.start("nosuch", "wave")


def test_unknown_profile(rig, client):
    with pytest.raises(fascia.UnknownProfile):
        client.start("sim", "nosuch")
    with pytest.raises(fascia.UnknownProfile):
        client.profile_get("nosuch")


def test_invalid_profile_names_the_field(rig, client):
    doc = dict(PROFILES["wave"], name="too-high", max_pressure_mmhg=500)
    with pytest.raises(fascia.InvalidProfile) as e:
        client.profile_put(doc)
    assert e.value.field == "max_pressure_mmhg"
    assert "too-high" not in [p["name"] for p in client.profiles()]


def test_forbidden_pause_while_idle(rig, client):
    with pytest.raises(fascia.Forbidden):
        client.pause("sim")
    with pytest.raises(fascia.Forbidden):
        client.ack("sim")


def test_interlock_ack_while_the_estop_is_held(rig, client):
    rig.sim.inject("estop")
    wait_until(lambda: client.status("sim")["state"] == "fault", 3.0, interval=0.02,
               what="state fault after the e-stop")
    with pytest.raises(fascia.Interlock) as e:
        client.ack("sim")
    assert "estop" in e.value.message
    rig.sim.clear("estop")

    def acked():
        try:
            return client.ack("sim")["state"] in ("idle", "venting")
        except fascia.Interlock:
            return False
    wait_until(acked, 5.0, interval=0.05, what="ack accepted after the e-stop's release")


def test_busy_when_two_clients_command_one_device(rig, client):
    """A second command while the first waits for the device's verdict is
    answered busy.  The verdict comes within a tick (20 ms), so the second
    request must arrive inside that window: tried a few times."""
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(rig.d.control)
    other = fascia.Client(rig.d.control, timeout=4.0)
    try:
        other.hello()                     # both connections up before the race
        for attempt in range(10):
            wait_until(lambda: client.status("sim")["state"] == "idle", 10.0,
                       interval=0.02, what="idle before attempt %d" % attempt)
            raw.send_multipart([b"", b'{"v":1,"id":"raw","cmd":"start",'
                                b'"device":"sim","profile":"long"}'])
            try:
                other.stop("sim")
            except fascia.Busy as e:
                assert e.code == "busy"
                return
            except fascia.Forbidden:
                pass                      # stop came first, while idle
            finally:
                assert raw.poll(4000), "no reply to the raw start"
                raw.recv_multipart()
                try:
                    client.stop("sim")
                except fascia.Forbidden:
                    pass
        pytest.skip("no busy reply in 10 attempts: the verdict came too fast")
    finally:
        other.close()
        raw.close(linger=0)


def test_unreachable_within_timeout(tmp_path):
    c = fascia.Client("tcp://127.0.0.1:%d" % free_port(), timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(fascia.Unreachable) as e:
        c.hello()
    took = time.monotonic() - t0
    c.close()
    assert isinstance(e.value, TimeoutError) and isinstance(e.value, fascia.FasciaError)
    assert e.value.code == "unreachable"
    assert took < 0.5 + UNREACHABLE_MARGIN_S, "Unreachable after %.2f s" % took


class FakeDaemon:
    """A ROUTER that answers the first request late (after the client gave
    up) and the others at once: the late reply must be skipped."""

    def __init__(self):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.held = None
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import json
        while not self.stop:
            if not self.sock.poll(20):
                continue
            ident, delim, payload = self.sock.recv_multipart()
            req = json.loads(payload)
            reply = {"v": 1, "id": req["id"], "ok": True, "result": {"n": req["id"]}}
            if self.held is None:
                self.held = (ident, delim, reply)      # answered with the next one
                continue
            for r in (self.held[2], reply):
                self.sock.send_multipart([ident, delim, json.dumps(r).encode()])

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close(linger=0)


class NullIdDaemon:
    """A ROUTER that answers every request as fasciad answers one it cannot
    parse: "id": null.  hold=True keeps the first request's answer back
    until the second request comes."""

    def __init__(self, hold=False):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.hold = hold
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        n = 0
        while not self.stop:
            if not self.sock.poll(20):
                continue
            ident, delim, payload = self.sock.recv_multipart()
            n += 1
            reply = {"v": 1, "id": None, "ok": False,
                     "error": {"code": "bad_request", "message": "reply %d" % n}}
            if self.hold and n == 1:
                held = reply
                continue
            for r in ([held] if self.hold and n == 2 else []) + [reply]:
                self.sock.send_multipart([ident, delim, json.dumps(r).encode()])

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close(linger=0)


def test_a_null_id_reply_answers_the_call_in_progress():
    fake = NullIdDaemon()
    try:
        with fascia.Client(fake.endpoint, timeout=2.0) as c:
            t0 = time.monotonic()
            with pytest.raises(fascia.BadRequest) as e:
                c.call("hello")
            assert time.monotonic() - t0 < 1.5
            assert e.value.message == "reply 1"
            with pytest.raises(fascia.BadRequest) as e:
                c.call("hello")
            assert e.value.message == "reply 2" and c.skipped == 0
    finally:
        fake.close()


def test_a_null_id_reply_while_an_earlier_call_is_unanswered_is_not_taken():
    """After a timeout, a null-id reply may be the earlier call's: it is
    counted as that one's, and the call in progress waits for its own."""
    fake = NullIdDaemon(hold=True)
    try:
        with fascia.Client(fake.endpoint, timeout=0.3) as c:
            with pytest.raises(fascia.Unreachable):
                c.call("first")
            assert c.unanswered == 1
            # "reply 1" (the first call's) comes, then "reply 2" (this one's)
            with pytest.raises(fascia.BadRequest) as e:
                c.call("second")
            assert e.value.message == "reply 2", e.value
            assert c.skipped == 1 and c.unanswered == 0
    finally:
        fake.close()


def test_late_reply_of_a_timed_out_call_is_skipped():
    fake = FakeDaemon()
    try:
        with fascia.Client(fake.endpoint, timeout=0.3) as c:
            with pytest.raises(fascia.Unreachable):
                c.call("first")
            # the late reply to "first" (id 1) arrives before this one's
            assert c.call("second") == {"n": 2}
            assert c.skipped == 1
    finally:
        fake.close()


# --------------------------------------------------------------------------
# Monitor

def test_monitor_yields_state_messages_with_pressures(rig, client, monitor):
    client.start("sim", "wave")
    ev = monitor.wait_for(lambda m: m.kind == "event" and m.data.get("to") == "running", 2.0)
    assert ev is not None and ev.topic == "event.sim", "no idle -> running event"
    msg = monitor.wait_for(lambda m: m.kind == "state" and m.data["state"] == "running"
                           and m.data["chambers"][0]["pressure"] > 5.0, 8.0)
    assert msg is not None, "no running state with chamber 1 above 5 mmHg"
    assert msg.topic == "state.sim" and msg.device == "sim" and isinstance(msg.seq, int)
    assert msg.seq > ev.seq and msg.data["session"]["profile"] == "wave"
    client.stop("sim")


def test_a_device_never_read_has_no_chambers_and_no_supply(start_daemon, tmp_path):
    """Unknown is None, never 0.0: in status and in the state messages."""
    d = start_daemon(write_config(str(tmp_path), free_port()))
    with fascia.Client(d.control, timeout=4.0) as c, \
            fascia.Monitor(d.publish, topics=("state.sim",), timeout=3.0) as m:
        st = wait_until(lambda: (lambda st: st if st["link"].get("last_error") else None)(
            c.status("sim")), 5.0, interval=0.05, what="the link's reason for being down")
        assert st["chambers"] == [] and st["supply"] is None, st
        msg = m.next()
        assert msg is not None, "no state message within 3 s"
        assert msg.data["chambers"] == [] and msg.data["supply"] is None, msg.data


def test_monitor_iteration_ends_on_timeout(rig):
    with fascia.Monitor(rig.d.publish, topics=("nothing.",), timeout=0.3) as m:
        t0 = time.monotonic()
        assert list(m) == []
        assert m.next(0.1) is None
        assert time.monotonic() - t0 < 2.0


def test_monitor_sees_no_gap_in_a_normal_stream(rig, client, monitor):
    client.start("sim", "wave")
    seqs = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        m = monitor.next(1.0)
        assert m is not None, "the publisher went quiet"
        seqs.append(m.seq)
    client.stop("sim")
    assert len(seqs) >= 20, seqs
    assert monitor.gaps == 0 and monitor.gaps_per_device == {} and monitor.lost == 0, seqs
    assert all(b == a + 1 for a, b in zip(seqs, seqs[1:])), seqs


def test_monitor_counts_a_gap_in_its_stream(rig, monitor):
    """A subscriber that stops reading never loses messages here (the
    queue is large); a gap is made by feeding the tracker a skipped seq."""
    m = monitor.next(1.0)
    monitor.tracker.feed("sim", m.seq + 3)
    assert monitor.gaps == 1 and monitor.gaps_per_device == {"sim": 1}
    assert monitor.lost == 2


def test_seq_tracker_gaps_and_restarts():
    t = fascia.SeqTracker()
    assert t.feed("a", 10) == 0             # the first is never a gap
    assert t.feed("a", 11) == 0
    assert t.feed("b", 1) == 0
    assert t.feed("a", 14) == 2             # 12, 13 lost
    assert (t.gaps, t.lost) == (1, 2)
    assert t.feed("b", 2) == 0
    assert t.feed("b", 5) == 2
    assert t.feed("a", 15) == 0
    assert t.gaps == 2 and t.gaps_per_device == {"a": 1, "b": 1}
    assert t.lost_per_device == {"a": 2, "b": 2}
    assert t.feed("a", 1) == 0              # daemon restarted: seq from 1
    assert t.resets == 1 and t.gaps == 2
    assert t.feed("a", 2) == 0
    assert t.feed("a", 4) == 1
    assert t.gaps_per_device["a"] == 2
    assert t.feed("a", None) == 0 and t.feed("a", "x") == 0 and t.gaps == 3
