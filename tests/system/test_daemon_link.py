"""fasciad's link to a device without FC23: the first FC23 is answered with
exception 01, the daemon falls back to FC16 + FC03, and everything else
(a session, a trip vented in the next exchange) works the same."""
from conftest import wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import IDLE_TIMEOUT_S, Rig, start_session, wait_sim_vented
from daemon_rig import write_config


def test_a_device_without_fc23_is_driven_with_fc16_and_fc03(start_sim, start_daemon,
                                                           tmp_path):
    sim = start_sim("--no-fc23")
    d = start_daemon(write_config(str(tmp_path), sim.port))
    sub = d.subscribe()
    st = d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S,
                       what="device idle over FC16 + FC03")
    assert st["link"]["up"] and st["link"]["fc23"] is False, st["link"]
    # the one refused FC23 is the only exception
    assert st["link"]["exceptions"] <= 1, st["link"]

    start_session(Rig(sim, d, sub, str(tmp_path)), "long")
    sub.wait_state(lambda m: m["chambers"] and m["chambers"][0]["pressure"] > 20, 5.0,
                   what="chamber 1 inflating over FC16 + FC03")
    mark = sub.mark()
    res = sim.inject("estop")
    sub.wait_state(lambda m: m["state"] == "fault", 2.0, since=mark, what="fault")

    def vented_record():
        for r in sim.stats()["reactions"]:
            if r["fault"] == "estop" and r["injected_ms"] == res["injected_ms"] \
                    and r["vented_ms"] is not None:
                return r
    rec = wait_until(vented_record, 2.0, interval=0.02, what="estop reaction")
    # the cause showed in an FC03; the VENT is the FC16 right after it
    assert rec["exchanges"] <= 1, rec
    sim.clear("estop")
    wait_sim_vented(sim, 5.0)
    wait_until(lambda: d.call("ack", device="sim")["ok"], 5.0, interval=0.1,
               what="ack accepted")
    st = d.wait_status(lambda st: st["state"] == "idle", 2.0, what="idle after ack")
    assert st["link"]["fc23"] is False and st["link"]["reconnects"] == 0, st["link"]
