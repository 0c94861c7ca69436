"""fasciad never says something is true when it does not know, and says
why when it cannot do what it is asked: a vent that cannot reach the
device is refused; a device that has never answered shows no pressures;
the log says once why a device cannot be reached; after a restart the
device's fault is said in words and a start is an interlock refusal."""
import re
import socket
import time

from conftest import wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import ack_until_idle, start_session
from daemon_rig import write_config


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_vent_that_cannot_reach_the_device_is_refused_and_says_why(rig):
    d, sim, sub = rig.d, rig.sim, rig.sub
    start_session(rig, "long")
    mark = sub.mark()
    sim.inject("link", mode="silent")
    sub.wait_state(lambda m: not m["link"]["up"], 3.0, since=mark, what="link down")
    rep = d.call("vent", device="sim")
    assert not rep["ok"], ("a vent nobody could deliver was accepted", rep)
    assert rep["error"]["code"] == "interlock", rep
    msg = rep["error"]["message"]
    assert "link to the device is down" in msg and "watchdog vents it 500 ms" in msg, msg
    sim.clear("link")
    d.wait_status(lambda st: st["link"]["up"], 5.0, what="link up again")
    ack_until_idle(rig)


def test_a_device_that_never_answered_shows_no_reading_and_the_log_says_why_once(
        start_sim, start_daemon, tmp_path):
    port = free_port()  # nobody listens there
    d = start_daemon(write_config(str(tmp_path), port))
    st = d.wait_status(lambda st: st["link"]["last_error"], 3.0, what="a last error")
    assert st["state"] == "offline", st
    assert st["chambers"] == [] and st["supply"] is None, st
    assert st["device_status"] is None, st
    assert "Connection refused" in st["link"]["last_error"], st["link"]
    # several retries (the backoff reaches 2 s), one line
    want = "device sim: cannot reach it at 127.0.0.1:%d: connect: Connection refused; " \
           "retrying" % port
    wait_until(lambda: want in d.log(), 3.0, what="the reason in the log")
    t0 = time.monotonic()
    wait_until(lambda: d.status()["link"]["reconnects"] >= 0 and time.monotonic() - t0 > 3.5,
               5.0, interval=0.2, what="a few retries")
    assert d.log().count("cannot reach it") == 1, d.log()[-3000:]

    # the device appears: up, and the last error is over
    sim = start_sim("-p", str(port), port_arg=False)
    st = d.wait_status(lambda st: st["state"] == "idle", 8.0, what="idle once it answers")
    assert st["link"]["last_error"] == "", st["link"]
    assert len(st["chambers"]) == 8 and st["supply"] is not None, st
    wait_until(lambda: "device sim: link up (FC23)" in d.log(), 2.0, what="link up logged")
    sim.stop()


def test_after_a_restart_the_fault_is_said_in_words_and_start_is_an_interlock(
        start_sim, start_daemon, tmp_path):
    sim = start_sim()
    conf = write_config(str(tmp_path), sim.port)
    d = start_daemon(conf)
    d.wait_status(lambda st: st["state"] == "idle", 5.0, what="idle")
    rep = d.call("start", device="sim", profile="long")
    assert rep["ok"], rep
    d.kill()  # kill -9: nothing vents, the device's watchdog will
    wait_until(lambda: sim.status()["fault"] == 1, 3.0, what="the device's watchdog trips")

    d = start_daemon(conf)
    st = d.wait_status(lambda st: st["state"] == "fault" and st["alarms"], 5.0,
                       what="fault after the restart")
    alarm = st["alarms"][0]
    assert alarm["id"] == "device_fault", alarm
    assert re.match(r"the device's watchdog tripped: it stopped hearing from the daemon "
                    r"\(a restart, a lost link\) and vented the garment; an ack clears it "
                    r"\(FAULT 1, STATUS 0x[0-9a-f]{3}\)$", alarm["message"]), alarm
    rep = d.call("start", device="sim", profile="long")
    assert not rep["ok"] and rep["error"]["code"] == "interlock", rep
    assert "acknowledge it (ack)" in rep["error"]["message"], rep
    # and the ack clears it, with the device's RESET
    wait_until(lambda: d.call("ack", device="sim")["ok"], 6.0, interval=0.1,
               what="ack accepted")
    d.wait_status(lambda st: st["state"] == "idle" and st["alarms"] == [], 2.0, what="idle")
    assert sim.status()["fault"] == 0
