"""fasciad's control socket under bad input while a session runs: every
malformed request gets the right error with its id, and the session goes on
undisturbed."""
import json
import os

import zmq

from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import start_session
from daemon_rig import PROFILES


def dealer_call(sock, frames, timeout=4.0):
    """Send frames from a DEALER (no delimiter); the reply parsed."""
    sock.send_multipart(frames)
    if not sock.poll(int(timeout * 1000)):
        raise AssertionError("no reply to %r within %.1fs" % ([f[:80] for f in frames], timeout))
    rep = sock.recv_multipart()
    assert len(rep) == 1, "a DEALER's reply is one frame: %r" % rep
    rep = json.loads(rep[0])
    assert isinstance(rep, dict) and rep.get("v") == 1 and rep.get("ok") is False, rep
    err = rep.get("error")
    assert isinstance(err, dict) and isinstance(err.get("code"), str) and \
        isinstance(err.get("message"), str) and err["message"], rep
    return rep


def bad_profile(**changes):
    p = json.loads(json.dumps(PROFILES["wave"]))
    p["name"] = "bad"
    p.update(changes)
    return p


def j(obj):
    return json.dumps(obj).encode()


# (what, frames, expected code, expected id, expected field or None)
MALFORMED = [
    ("not JSON", [b"{not json"], "bad_request", None, None),
    ("not UTF-8", [b'{"v":1,"id":1,"cmd":"\xff\xfe"}'], "bad_request", None, None),
    ("a JSON array", [b'[1,2,3]'], "bad_request", None, None),
    ("a JSON string", [b'"status"'], "bad_request", None, None),
    ("a JSON number", [b'42'], "bad_request", None, None),
    ("empty", [b''], "bad_request", None, None),
    ("missing v", [j({"id": 11, "cmd": "hello"})], "bad_request", 11, None),
    ("v 2", [j({"v": 2, "id": 12, "cmd": "hello"})], "bad_request", 12, None),
    ("v a string", [j({"v": "1", "id": 13, "cmd": "hello"})], "bad_request", 13, None),
    ("missing cmd", [j({"v": 1, "id": 14})], "bad_request", 14, None),
    ("cmd not a string", [j({"v": 1, "id": 15, "cmd": 7})], "bad_request", 15, None),
    ("duplicate key", [b'{"v":1,"id":16,"cmd":"stop","cmd":"hello"}'], "bad_request",
     None, None),
    ("unknown cmd", [j({"v": 1, "id": "u-17", "cmd": "explode"})], "unknown_command",
     "u-17", None),
    ("start without device", [j({"v": 1, "id": 18, "cmd": "start", "profile": "wave"})],
     "bad_request", 18, "device"),
    ("device not a string", [j({"v": 1, "id": 19, "cmd": "stop", "device": 1})],
     "bad_request", 19, "device"),
    ("unknown device", [j({"v": 1, "id": 20, "cmd": "stop", "device": "nope"})],
     "unknown_device", 20, None),
    ("unknown device (status)", [j({"v": 1, "id": 21, "cmd": "status", "device": "nope"})],
     "unknown_device", 21, None),
    ("start, unknown profile",
     [j({"v": 1, "id": 22, "cmd": "start", "device": "sim", "profile": "nope"})],
     "unknown_profile", 22, None),
    ("start, profile not a string",
     [j({"v": 1, "id": 23, "cmd": "start", "device": "sim", "profile": 3})],
     "bad_request", 23, "profile"),
    ("profile.get unknown", [j({"v": 1, "id": [24], "cmd": "profile.get", "name": "nope"})],
     "unknown_profile", [24], None),
    ("profile.get without name", [j({"v": 1, "id": 25, "cmd": "profile.get"})],
     "bad_request", 25, "name"),
    ("profile.put over the ceiling",
     [j({"v": 1, "id": 26, "cmd": "profile.put", "profile": bad_profile(max_pressure_mmhg=90)})],
     "invalid_profile", 26, "max_pressure_mmhg"),
    ("profile.put max 80, over the device limit 60",
     [j({"v": 1, "id": 27, "cmd": "profile.put", "profile": bad_profile(max_pressure_mmhg=80)})],
     "invalid_profile", 27, "max_pressure_mmhg"),
    ("profile.put a pressure over the profile's maximum",
     [j({"v": 1, "id": 28, "cmd": "profile.put", "profile": bad_profile(
         steps=[{"set": {"1": 45}, "ramp_s": 5, "hold_s": 1}])})],
     "invalid_profile", 28, "steps[0].set.1"),
    ("profile.put a ramp too steep",
     [j({"v": 1, "id": 29, "cmd": "profile.put", "profile": bad_profile(
         steps=[{"set": {"1": 30}, "ramp_s": 1, "hold_s": 1}])})],
     "invalid_profile", 29, "steps[0].set.1"),
    ("profile.put an unknown field",
     [j({"v": 1, "id": 30, "cmd": "profile.put", "profile": bad_profile(colour="red")})],
     "invalid_profile", 30, "colour"),
    ("profile.put not an object",
     [j({"v": 1, "id": 31, "cmd": "profile.put", "profile": "wave"})],
     "bad_request", 31, "profile"),
    ("profile.put without profile", [j({"v": 1, "id": 32, "cmd": "profile.put"})],
     "bad_request", 32, "profile"),
    ("three frames", [j({"v": 1, "id": 33, "cmd": "hello"}), b"x", b"y"],
     "bad_request", None, None),
    ("two frames", [j({"v": 1, "id": 34, "cmd": "stop", "device": "sim"}), b""],
     "bad_request", None, None),
]


def test_malformed_requests_get_errors_and_the_session_goes_on(rig, start_daemon):
    d, sub = rig.d, rig.sub
    start_session(rig, "long")
    st0 = sub.wait_state(lambda m: m["state"] == "running" and
                         m["session"]["elapsed_s"] > 0.5, 3.0, what="running")
    mark = sub.mark()
    sock = d.socket(zmq.DEALER)
    failures = []
    try:
        for what, frames, code, rid, field in MALFORMED:
            rep = dealer_call(sock, frames)
            err = rep["error"]
            if err["code"] != code or rep.get("id") != rid or \
                    (field is not None and err.get("field") != field):
                failures.append("%s: expected %s id=%r field=%r, got %r"
                                % (what, code, rid, field, rep))
        # a frame over the size limit: the daemon drops that peer, answers
        # nobody, and goes on serving the others
        big = d.socket(zmq.DEALER)
        try:
            big.send(b'{"v":1,"id":99,"cmd":"hello","pad":"' + b"x" * (400 * 1024) + b'"}')
            assert not big.poll(500), "a 400 KiB request was answered: %r" % big.recv_multipart()
        finally:
            big.close(linger=0)
        # the first socket still works after all that
        sock.send(j({"v": 1, "id": "after", "cmd": "hello"}))
        assert sock.poll(3000), "no reply to hello after the malformed requests"
        rep = json.loads(sock.recv())
        assert rep["ok"] and rep["id"] == "after", rep
    finally:
        sock.close(linger=0)
    assert not failures, "\n".join(failures)

    # nothing changed: still running, the clock advancing, no alarms
    assert d.alive(), d.log()[-2000:]
    st = d.status()
    assert st["state"] == "running" and st["alarms"] == [], st
    assert st["session"]["id"] == st0["session"]["id"]
    t = st["session"]["elapsed_s"]
    sub.wait_state(lambda m: m["session"] and m["session"]["elapsed_s"] >= t + 0.3, 2.0,
                   what="elapsed_s advancing")
    after = [m for _, m, _ in sub.all(None, mark)]
    assert all(m["state"] == "running" and not m["alarms"]
               for m in after if "state" in m and "chambers" in m), \
        "the session was disturbed: %r" % [(m["seq"], m.get("state")) for m in after][:20]
    seqs = [m["seq"] for m in after]
    assert seqs and all(b == a + 1 for a, b in zip(seqs, seqs[1:])), \
        "seq gaps while the requests were handled"
    names = [p["name"] for p in d.ok("profiles")["profiles"]]
    assert "bad" not in names, names
    assert not os.path.exists(os.path.join(rig.profiles_dir, "bad.json"))
    d.ok("stop", device="sim")
