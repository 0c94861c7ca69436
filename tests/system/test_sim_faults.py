"""Every fault fascia-sim injects, seen where a controller sees it: in block
R during a running FC23 loop; then cleared (latched device faults need VENT
and RESET) and gone.  Plus the reaction statistics, --inject and
--scenario."""
import json
import socket
import statistics
import struct
import time

import pytest

from conftest import (BlockR, FAULT_ESTOP, FAULT_OVERLIMIT, FAULT_PUMP, FAULT_SENSOR,
                      IDLE, MAP_VERSION, R, RUN, ST_ESTOP, ST_GARMENT_CONNECTED,
                      ST_OVERLIMIT, ST_PUMP_FAULT, ST_READY, ST_RELIEF_OPEN,
                      ST_SENSOR_FAULT, ST_VENTING, VENT, ModbusError, RawModbus,
                      exception_of, healthy_block_w, is_valid_fc23_reply,
                      pdu_fc23, wait_until)


def warm_up(dev, n=5, **kw):
    """A running exchange loop before the injection."""
    for _ in range(n):
        b = dev.exchange(**kw)
        time.sleep(0.005)
    return b


def inflate(dev, chamber=1, mmhg=40.0, timeout=4.0):
    b, _ = dev.run_until(lambda b: b.pressure(chamber) >= mmhg - 1.0, timeout, command=RUN,
                         setpoints={chamber: mmhg},
                         what="chamber %d reaches %.0f mmHg" % (chamber, mmhg))
    return b


def recover(sim, dev, fault, bit=None):
    """Clear the cause, VENT, RESET: FAULT reads 0 and `bit` is gone."""
    sim.clear(fault)
    assert not [f for f in sim.status()["faults"] if f["fault"] == fault]
    b = dev.vent_and_reset()
    assert b.fault == 0, "RESET after clearing %s and venting: %r" % (fault, b)
    if bit is not None:
        assert not b.has(bit), b
    b = dev.exchange(command=IDLE)
    assert b.fault == 0 and b.has(ST_READY) and not b.has(ST_VENTING), b
    return b


# ------------------------------------------------------------ pneumatic faults

def test_overpressure_below_limit_shows_the_surge(sim, dev):
    warm_up(dev, command=RUN)
    sim.inject("overpressure", chamber=2, mmhg=60)
    b, _ = dev.run_until(lambda b: b.pressure(2) >= 59.5, 1.0,
                         what="chamber 2 reads >= 60 mmHg")
    assert b.pressure(1) < 2.0, b
    assert not b.has(ST_OVERLIMIT) and b.fault == 0, "60 mmHg is below LIMIT 100: %r" % b
    # held while active, even while the controller vents
    for b in dev.run_for(0.3, command=VENT):
        assert b.pressure(2) >= 59.5, b
    sim.clear("overpressure", chamber=2)
    b, _ = dev.run_until(lambda b: b.pressure(2) < 5.0, 1.5, what="vented after clear")
    assert b.fault == 0


def test_overpressure_above_limit_latches_overlimit_and_vents(sim, dev):
    warm_up(dev, command=RUN)
    sim.inject("overpressure", chamber=1, mmhg=120)
    b, _ = dev.run_until(lambda b: b.has(ST_OVERLIMIT), 1.0, what="OVERLIMIT bit")
    assert b.pressure(1) >= 119.5, b
    assert b.fault == FAULT_OVERLIMIT, b
    assert b.has(ST_VENTING) and not b.has(ST_READY), b
    assert all(b.valve(i) == 2 for i in range(1, 9)), "firmware vents: %r" % b
    # RESET refused while the surge holds the chamber up
    b = dev.exchange(command=3)
    assert b.fault == FAULT_OVERLIMIT, b
    recover(sim, dev, "overpressure", ST_OVERLIMIT)


def test_overpressure_above_hw_relief_opens_the_relief_valve(sim, dev):
    warm_up(dev, command=RUN)
    sim.inject("overpressure", chamber=3, mmhg=220)
    b, _ = dev.run_until(lambda b: b.has(ST_RELIEF_OPEN), 1.0, what="RELIEF_OPEN bit")
    assert b.pressure(3) >= 200.0
    assert b.fault != 0 and b.has(ST_VENTING), b
    assert sim.status()["chambers"][2]["relief_open"] is True
    recover(sim, dev, "overpressure", ST_RELIEF_OPEN)


def test_valve_stuck_open_inflates_with_setpoint_zero(sim, dev):
    warm_up(dev, command=RUN, setpoints=[0.0] * 8)
    sim.inject("valve_stuck", chamber=1, state="open")
    b, _ = dev.run_until(lambda b: b.pressure(1) > 20.0, 2.0,
                         what="chamber 1 rises with its inflate valve stuck open")
    assert b.pressure(2) < 2.0, b
    recover(sim, dev, "valve_stuck")
    for b in dev.run_for(0.5, command=RUN):
        assert b.pressure(1) < 5.0, "still inflating after clear: %r" % b


def test_valve_stuck_closed_cannot_inflate(sim, dev):
    warm_up(dev, command=RUN)
    sim.inject("valve_stuck", chamber=1, state="closed")
    b, _ = dev.run_until(lambda b: b.pressure(2) >= 35.0, 4.0, command=RUN,
                         setpoints={1: 40.0, 2: 40.0}, what="chamber 2 inflates")
    assert b.pressure(1) < 2.0, "chamber 1 inflated with its valve stuck closed: %r" % b
    sim.clear("valve_stuck", chamber=1)
    b, _ = dev.run_until(lambda b: b.pressure(1) >= 35.0, 4.0, what="chamber 1 inflates")


def test_leak_decays_pressure_in_idle(sim, dev):
    inflate(dev, 1, 40.0)
    p0 = dev.exchange(command=IDLE).pressure(1)
    held = dev.run_for(0.3)
    assert abs(held[-1].pressure(1) - p0) < 1.0, "IDLE did not hold: %r" % held[-1]
    sim.inject("leak", chamber=1, mmhg_s=20)
    t0 = time.monotonic()
    b, t = dev.run_until(lambda b: b.pressure(1) < p0 - 5.0, 1.5,
                         what="pressure decays with a 20 mmHg/s leak")
    assert 0.1 < t < 0.6, "lost 5 mmHg in %.2fs at 20 mmHg/s" % t
    assert b.pressure(2) < 1.0
    sim.clear("leak", chamber=1)
    p1 = dev.exchange().pressure(1)
    held = dev.run_for(0.3)
    assert abs(held[-1].pressure(1) - p1) < 1.0, "still leaking after clear: %r" % held[-1]
    del t0


def test_blocked_chamber_does_not_follow_setpoint(sim, dev):
    warm_up(dev, command=RUN)
    sim.inject("blocked", chamber=1)
    b, _ = dev.run_until(lambda b: b.pressure(2) >= 35.0, 4.0, command=RUN,
                         setpoints={1: 40.0, 2: 40.0}, what="chamber 2 inflates")
    assert b.pressure(1) < 2.0, "a blocked chamber followed its setpoint: %r" % b
    sim.clear("blocked")
    dev.run_until(lambda b: b.pressure(1) >= 35.0, 4.0, what="chamber 1 inflates after clear")


# ------------------------------------------------------------ sensor faults

def test_sensor_out_of_range_latches_sensor_fault(sim, dev):
    warm_up(dev, command=RUN)
    sim.inject("sensor", chamber=1, mode="range", value=400)
    b, _ = dev.run_until(lambda b: b.has(ST_SENSOR_FAULT), 1.0, what="SENSOR_FAULT bit")
    assert b.fault == FAULT_SENSOR, b
    assert b.pressure(1) == pytest.approx(400.0, abs=0.2), b
    assert b.has(ST_VENTING)
    sim.clear("sensor")
    b, _ = dev.run_until(lambda b: not b.has(ST_SENSOR_FAULT), 1.0,
                         what="SENSOR_FAULT clears with the cause")
    assert b.fault == FAULT_SENSOR, "FAULT is latched until RESET: %r" % b
    recover(sim, dev, "sensor")


def test_sensor_offset_reads_off_by_value(sim, dev):
    warm_up(dev, command=IDLE)
    sim.inject("sensor", chamber=2, mode="offset", value=10)
    b = dev.run_for(0.05)[-1]
    true_p = sim.status()["chambers"][1]["pressure"]
    assert b.pressure(2) - true_p == pytest.approx(10.0, abs=1.0), (b, true_p)
    assert sim.status()["chambers"][1]["reading"] == pytest.approx(true_p + 10, abs=1.0)
    assert b.fault == 0
    sim.clear("sensor", chamber=2)
    b = dev.run_for(0.05)[-1]
    assert abs(b.pressure(2) - sim.status()["chambers"][1]["pressure"]) < 1.0, b


def test_sensor_stuck_reading_does_not_move(sim, dev):
    warm_up(dev, command=IDLE)
    sim.inject("sensor", chamber=1, mode="stuck", value=25)
    readings = [b.pressure(1) for b in dev.run_for(0.3)]
    assert all(r == pytest.approx(25.0, abs=0.05) for r in readings), readings
    assert sim.status()["chambers"][0]["pressure"] < 2.0
    sim.clear("sensor")
    b = dev.run_for(0.05)[-1]
    assert b.pressure(1) < 2.0, b


def test_sensor_noise_makes_readings_scatter(sim, dev):
    warm_up(dev, command=IDLE)
    quiet = [b.pressure(1) for b in dev.run_for(0.3, interval=0.003)]
    sim.inject("sensor", chamber=1, mode="noise", value=5)
    noisy = [b.pressure(1) for b in dev.run_for(0.3, interval=0.003)]
    assert statistics.pstdev(noisy) > 2.0, noisy
    assert statistics.pstdev(quiet) < 0.5, quiet
    sim.clear("sensor")
    dev.run_for(0.01)       # the reading of the sample before the clear
    quiet = [b.pressure(1) for b in dev.run_for(0.3, interval=0.003)]
    assert statistics.pstdev(quiet) < 0.5, quiet


# ------------------------------------------------------------ device faults

def test_freeze_stops_sample(sim, dev):
    warm_up(dev, command=IDLE)
    sim.inject("freeze")
    assert sim.status()["frozen"] is True
    frozen = dev.run_for(0.2)
    samples = [b.sample for b in frozen]
    assert len(set(samples)) == 1, "SAMPLE moved while frozen: %r" % samples
    echoes = [b.heartbeat_echo for b in frozen]
    assert len(set(echoes)) == 1, "HEARTBEAT_ECHO moved while frozen: %r" % echoes
    sim.clear("freeze")
    s0 = dev.exchange().sample
    b, _ = dev.run_until(lambda b: (b.sample - s0) & 0xFFFF >= 50, 0.5,
                         what="SAMPLE advances after the freeze clears")


def test_estop_vents_and_latches_until_reset(sim, dev):
    inflate(dev, 1, 30.0)
    sim.inject("estop")
    b = dev.exchange()
    assert b.has(ST_ESTOP) and not b.has(ST_READY), b
    # FAULT latches at the firmware's next 1 ms sample
    b, _ = dev.run_until(lambda b: b.fault == FAULT_ESTOP, 0.05, interval=0.001,
                         what="FAULT 3 latched")
    assert b.has(ST_ESTOP) and b.has(ST_VENTING), b
    b, _ = dev.run_until(lambda b: b.pressure(1) < 5.0, 1.5, what="e-stop vents")
    # RESET refused while the e-stop is pressed, even vented
    b = dev.exchange(command=3)
    assert b.fault == FAULT_ESTOP and b.has(ST_ESTOP), b
    b = dev.exchange(command=RUN)
    assert b.has(ST_VENTING) and b.valve(1) == 2, "RUN while e-stop pressed: %r" % b
    sim.clear("estop")
    b = dev.exchange()
    assert not b.has(ST_ESTOP) and b.fault == FAULT_ESTOP, b
    recover(sim, dev, "estop", ST_ESTOP)


def test_garment_off_clears_garment_connected(sim, dev):
    b = warm_up(dev, command=IDLE)
    assert b.has(ST_GARMENT_CONNECTED)
    sim.inject("garment_off")
    b = dev.exchange()
    assert not b.has(ST_GARMENT_CONNECTED) and not b.has(ST_READY), b
    sim.clear("garment_off")
    b = dev.exchange()
    assert b.has(ST_GARMENT_CONNECTED) and b.has(ST_READY), b


def test_pump_fail_latches_and_supply_falls_as_air_is_used(sim, dev):
    b = warm_up(dev, command=RUN)
    supply0 = b.supply
    sim.inject("pump_fail")
    b, _ = dev.run_until(lambda b: b.fault == FAULT_PUMP, 0.05, interval=0.001,
                         what="FAULT 5 latched")
    assert b.has(ST_PUMP_FAULT) and b.has(ST_VENTING), b
    # use air: an inflate valve stuck open draws from the reservoir
    sim.inject("valve_stuck", chamber=1, state="open")
    dev.run_until(lambda b: b.supply < supply0 - 3.0, 3.0,
                  what="supply falls with the pump dead")
    sim.clear("valve_stuck")
    low = dev.exchange().supply
    for b in dev.run_for(0.3):
        assert b.supply <= low + 0.5, "supply recovered with the pump dead: %r" % b
    sim.clear("pump_fail")
    dev.run_until(lambda b: b.supply > low + 2.0, 3.0, what="the pump refills the supply")
    recover(sim, dev, "pump_fail", ST_PUMP_FAULT)


def test_reboot_drops_links_and_restarts_uptime(start_sim, device_factory):
    sim = start_sim("--reboot-ms", "300")
    dev = device_factory(sim.port)
    dev.exchange(command=IDLE, limit=80.0)
    b, _ = dev.run_until(lambda b: b.uptime_s >= 1, 2.5, what="UPTIME reaches 1 s")
    sample_before = b.sample
    assert sample_before >= 900, b
    t_inj = time.monotonic()
    sim.inject("reboot")
    assert sim.status()["booting"] is True
    with pytest.raises(ModbusError):
        dev.exchange()
    dev.close()

    def answers():
        # read only: a write would hide what the reboot reset
        try:
            raw = RawModbus(sim.port, timeout=0.2)
        except OSError:
            return None
        try:
            pdu = raw.request(struct.pack(">BHH", 3, 0, 32), timeout=0.2)
            pdu_r = raw.request(struct.pack(">BHH", 3, R, 48), timeout=0.2)
        except (OSError, ValueError):
            return None
        finally:
            raw.close()
        return pdu, pdu_r
    pdu_w, pdu_r = wait_until(answers, 3.0, interval=0.02,
                              what="the device answers after the reboot")
    assert time.monotonic() - t_inj >= 0.28, "answered during the 300 ms reboot"
    assert sim.status()["booting"] is False
    assert pdu_w[0] == 3 and pdu_r[0] == 3, (pdu_w, pdu_r)
    w = struct.unpack(">32H", pdu_w[2:])
    b = BlockR(struct.unpack(">48H", pdu_r[2:]))
    assert b.uptime_s == 0, b
    assert b.sample < sample_before and b.sample < 800, b
    assert w[3] == 1000 and w[2] == 500, "block W not back to power-on defaults: %r" % (w[:5],)
    dev.connect()
    assert dev.exchange().map_version == MAP_VERSION


# ------------------------------------------------------------ link faults

def fc23(raw, heartbeat=1, timeout=1.0):
    return raw.request(pdu_fc23(0, healthy_block_w(heartbeat), R, 48), timeout=timeout)


def link_fault(sim, dev, mode, **args):
    warm_up(dev, command=IDLE)
    sim.inject("link", mode=mode, **args)
    link = sim.status()["link"]
    assert link["mode"] == mode, link


def link_cleared(sim):
    sim.clear("link")
    assert sim.status()["link"]["mode"] == "ok"
    raw = RawModbus(sim.port)
    try:
        t0 = time.monotonic()
        assert is_valid_fc23_reply(fc23(raw))
        assert time.monotonic() - t0 < 0.2
    finally:
        raw.close()


def test_link_silent_requests_time_out(sim, dev):
    link_fault(sim, dev, "silent")
    raw = RawModbus(sim.port)
    try:
        with pytest.raises(socket.timeout):
            fc23(raw, timeout=0.5)
    finally:
        raw.close()
    link_cleared(sim)


def test_link_slow_replies_after_delay(sim, dev):
    link_fault(sim, dev, "slow", delay_ms=300)
    raw = RawModbus(sim.port)
    try:
        t0 = time.monotonic()
        assert is_valid_fc23_reply(fc23(raw, timeout=2.0))
        dt = time.monotonic() - t0
        assert 0.28 <= dt <= 1.0, "reply after %.3fs with delay_ms 300" % dt
    finally:
        raw.close()
    link_cleared(sim)


def test_link_garbage_is_not_a_valid_reply(sim, dev):
    link_fault(sim, dev, "garbage")
    raw = RawModbus(sim.port)
    try:
        raw.send_pdu(pdu_fc23(0, healthy_block_w(3), R, 48))
        got = b""
        deadline = time.monotonic() + 0.5
        raw.sock.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                chunk = raw.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        # A valid reply: MBAP tid 1, proto 0, length 99, unit 1, then 0x17,
        # 96 and 96 bytes of data.
        valid = (len(got) == 6 + 99 and got[:7] == bytes([0, 1, 0, 0, 0, 99, 1])
                 and is_valid_fc23_reply(got[7:]))
        assert not valid, "garbage mode sent a valid reply: %r" % got[:16]
        assert got, "garbage mode sent nothing (that is silent, not garbage)"
    finally:
        raw.close()
    link_cleared(sim)


def test_link_exception_answers_04(sim, dev):
    link_fault(sim, dev, "exception")
    with pytest.raises(ModbusError, match="(?i)exception|04|failure"):
        dev.exchange()
    raw = RawModbus(sim.port)
    try:
        assert exception_of(fc23(raw), 0x17) == 4
    finally:
        raw.close()
    link_cleared(sim)


def test_link_disconnect_closes_connections(sim, dev):
    link_fault(sim, dev, "disconnect")
    with pytest.raises(ModbusError):
        dev.exchange()

    def closed():
        try:
            raw = RawModbus(sim.port)
        except OSError:
            return "refused"
        try:
            fc23(raw, timeout=1.0)
            return None
        except (ConnectionError, OSError) as e:
            return "closed: %r" % e
        finally:
            raw.close()
    assert closed() is not None, "a new connection was served in disconnect mode"
    link_cleared(sim)
    dev.connect()
    assert dev.exchange().map_version == MAP_VERSION


# ------------------------------------------------------------ clear all

def test_clear_all_removes_every_cause(sim, dev):
    warm_up(dev, command=IDLE)
    sim.inject("leak", chamber=1, mmhg_s=5)
    sim.inject("garment_off")
    sim.inject("sensor", chamber=2, mode="offset", value=3)
    assert len(sim.status()["faults"]) == 3, sim.status()["faults"]
    sim.clear("all")
    assert sim.status()["faults"] == []
    assert dev.exchange().has(ST_GARMENT_CONNECTED)


# ------------------------------------------------------------ reaction stats

def _record(sim, fault):
    recs = [r for r in sim.stats()["reactions"] if r["fault"] == fault]
    assert recs, sim.stats()
    return recs[-1]


def test_stats_count_one_exchange_when_vent_follows_at_once(sim, dev):
    warm_up(dev, command=RUN, setpoints={1: 20.0})
    vent_writes = sim.status()["vent_writes"]
    sim.inject("estop")
    b = dev.exchange()                  # reads the cause
    assert b.has(ST_ESTOP)
    dev.exchange(command=VENT, setpoints=[0.0] * 16)  # answers it
    dev.exchange()
    rec = _record(sim, "estop")
    assert rec["exchanges"] == 1, rec
    assert rec["shown_ms"] is not None and rec["vented_ms"] is not None, rec
    assert rec["injected_ms"] <= rec["shown_ms"] <= rec["vented_ms"], rec
    assert rec["latency_ms"] is not None and rec["latency_ms"] >= 0, rec
    assert rec["latency_ms"] == pytest.approx(rec["vented_ms"] - rec["shown_ms"], abs=1.5)
    assert sim.status()["vent_writes"] == vent_writes + 2


def test_stats_count_late_vent(sim, dev):
    warm_up(dev, command=RUN, setpoints={1: 20.0})
    sim.inject("garment_off")
    for _ in range(3):                  # read it three times, then vent
        assert not dev.exchange().has(ST_GARMENT_CONNECTED)
    dev.exchange(command=VENT, setpoints=[0.0] * 16)
    rec = _record(sim, "garment_off")
    assert rec["exchanges"] == 3, rec


# ------------------------------------------------------------ scheduled faults

def test_inject_option_fires_at_its_time(start_sim, device_factory):
    sim = start_sim("--inject", "estop@300")
    dev = device_factory(sim.port)
    b = dev.exchange(command=IDLE)
    t_first = sim.uptime_ms()
    if t_first < 250:
        assert not b.has(ST_ESTOP), "e-stop before 300 ms (at most %.0f ms): %r" % (t_first, b)
    b, _ = dev.run_until(lambda b: b.has(ST_ESTOP), 2.0, what="e-stop from --inject")
    assert sim.uptime_ms() >= 290, "e-stop seen %.0f ms after start" % sim.uptime_ms()
    # STATUS shows the button at once; the firmware latches FAULT at its
    # next sample, which a read between the two comes before
    b, _ = dev.run_until(lambda b: b.fault == FAULT_ESTOP, 0.1, interval=0.001,
                         what="FAULT latched at the next sample")
    assert [f["fault"] for f in sim.status()["faults"]] == ["estop"]


def test_inject_option_with_arguments(start_sim, device_factory):
    sim = start_sim("--inject", "sensor,chamber=2,mode=offset,value=10")
    dev = device_factory(sim.port)
    assert sim.status()["faults"][0]["fault"] == "sensor"
    # in place from the first firmware sample on
    b, _ = dev.run_until(lambda b: b.sample > 0, 0.05, interval=0.001)
    assert b.pressure(2) == pytest.approx(10.0, abs=1.0), b
    assert b.pressure(1) == pytest.approx(0.0, abs=1.0), b


def test_bad_inject_option_is_refused_at_start(start_sim):
    with pytest.raises(AssertionError, match="exited"):
        start_sim("--inject", "no_such_fault@100")


def test_scenario_file_fires_at_its_times(start_sim, device_factory, tmp_path):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps([
        {"at_ms": 200, "cmd": "inject", "fault": "leak", "chamber": 1, "mmhg_s": 20},
        {"at_ms": 400, "cmd": "inject", "fault": "garment_off"},
    ]))
    sim = start_sim("--scenario", str(path))
    dev = device_factory(sim.port)
    if sim.uptime_ms() < 150:
        assert sim.status()["faults"] == []
    wait_until(lambda: any(f["fault"] == "leak" and f.get("chamber") == 1
                           and f.get("mmhg_s") == pytest.approx(20)
                           for f in sim.status()["faults"]), 2.0, what="leak from the scenario")
    assert sim.uptime_ms() >= 190
    b, _ = dev.run_until(lambda b: not b.has(ST_GARMENT_CONNECTED), 2.0,
                         what="garment_off from the scenario")
    assert sim.uptime_ms() >= 390


def test_bad_scenario_file_is_refused_at_start(start_sim, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"at_ms": 100, "cmd": "inject", "fault": "nonsense"}]')
    with pytest.raises(AssertionError, match="exited"):
        start_sim("--scenario", str(path))


# ------------------------------------------------------------ more reaction/link

def test_link_fault_of_one_device_spares_the_others(start_sim, device_factory):
    sim = start_sim("--devices", "2")
    d1 = device_factory(sim.ports[0])
    d1.exchange(command=IDLE)
    sim.inject("link", mode="silent", device=2)
    raw = RawModbus(sim.ports[1])
    try:
        with pytest.raises(socket.timeout):
            fc23(raw, timeout=0.3)
    finally:
        raw.close()
    for _ in range(20):
        assert d1.exchange().map_version == MAP_VERSION
    assert sim.status(device=1)["link"]["mode"] == "ok"
    assert sim.status(device=2)["link"]["mode"] == "silent"


def test_reboot_of_one_device_spares_the_others(start_sim, device_factory):
    sim = start_sim("--devices", "2", "--reboot-ms", "200")
    d1 = device_factory(sim.ports[0])
    d2 = device_factory(sim.ports[1])
    d2.exchange(command=IDLE)
    before = d1.run_for(0.2, command=IDLE)[-1].sample
    sim.inject("reboot", device=2)
    with pytest.raises(ModbusError):
        d2.exchange()
    after = [b.sample for b in d1.run_for(0.3)]
    assert all((a - before) & 0xFFFF < 5000 for a in after), \
        "device 1's SAMPLE restarted with device 2's reboot: %d then %r" % (before, after)
    assert after == sorted(after) and after[-1] > before
    assert sim.status(device=1)["booting"] is False


def test_link_record_ends_when_the_device_vents_by_itself(sim, dev):
    dev.run_for(0.1, command=IDLE, watchdog_ms=200)
    sim.inject("link", mode="silent")
    raw = RawModbus(sim.port)
    try:
        with pytest.raises(socket.timeout):
            fc23(raw, timeout=0.3)        # the controller cannot reach it
    finally:
        raw.close()

    def link_record():
        recs = [r for r in sim.stats()["reactions"] if r["fault"] == "link"]
        return recs and recs[-1]["vented_ms"] is not None and recs[-1]
    rec = wait_until(link_record, 1.0, interval=0.02,
                     what="the link record ends at the watchdog's vent")
    assert rec["shown_ms"] is None and rec["exchanges"] == 0, rec
    st = sim.status()
    assert st["fault"] == 1
    # the watchdog's own 200 ms, from the last heartbeat (before the
    # injection: the injection itself may come late on a loaded machine)
    own = st["watchdog_tripped_ms"] - st["heartbeat_changed_ms"]
    assert 200 <= own <= 202, st
    assert rec["injected_ms"] <= rec["vented_ms"], rec
    assert abs(rec["vented_ms"] - st["watchdog_tripped_ms"]) <= 1, (rec, st)


def test_garbled_read_does_not_count_as_shown(sim, dev):
    warm_up(dev, command=RUN)
    sim.inject("link", mode="garbage")
    sim.inject("garment_off")
    raw = RawModbus(sim.port)
    try:
        raw.send_pdu(pdu_fc23(0, healthy_block_w(50), R, 48))
        try:
            raw.recv_frame(timeout=0.3)
        except (ValueError, socket.timeout, ConnectionError):
            pass
    finally:
        raw.close()
    rec = _record(sim, "garment_off")
    assert rec["shown_ms"] is None, "a garbled reply counted as showing block R: %r" % rec
    sim.clear("link")
    dev.connect()
    assert not dev.exchange().has(ST_GARMENT_CONNECTED)     # shows it
    dev.exchange(command=VENT, setpoints=[0.0] * 16)          # answers it
    rec = _record(sim, "garment_off")
    assert rec["exchanges"] == 1 and rec["shown_ms"] is not None, rec


def test_clear_one_chamber_leaves_the_others(sim):
    sim.inject("leak", chamber=1, mmhg_s=2)
    sim.inject("leak", chamber=3, mmhg_s=4)
    sim.clear("leak", chamber=1)
    faults = sim.status()["faults"]
    assert [(f["fault"], f["chamber"]) for f in faults] == [("leak", 3)], faults
    assert faults[0]["mmhg_s"] == pytest.approx(4)


def test_reaction_records_are_bounded(sim):
    for _ in range(300):
        sim.inject("garment_off")
    recs = sim.stats()["reactions"]
    assert len(recs) == 256, len(recs)
    assert all(r["fault"] == "garment_off" for r in recs)
    assert sim.alive()


def test_slow_link_keeps_pipelined_replies_in_order(sim, dev):
    link_fault(sim, dev, "slow", delay_ms=100)
    raw = RawModbus(sim.port)
    try:
        t0 = time.monotonic()
        raw.sock.sendall(b"".join(RawModbus.frame(pdu_fc23(0, healthy_block_w(i), R, 48),
                                                  tid=10 + i) for i in range(3)))
        tids = []
        for _ in range(3):
            tid, _, _, pdu = raw.recv_frame(timeout=2.0)
            assert is_valid_fc23_reply(pdu)
            tids.append(tid)
        assert tids == [10, 11, 12]
        assert time.monotonic() - t0 >= 0.095
    finally:
        raw.close()
    link_cleared(sim)
