"""fascia-sim as a Modbus device: register map v1, exceptions, options,
pneumatics and the firmware watchdog, seen through mbpoll, pymodbus and
hand-made frames."""
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from conftest import (FAULT_WATCHDOG, IDLE, MAP_VERSION, R, RESET, RUN,
                      ST_GARMENT_CONNECTED, ST_READY, ST_RUNNING, ST_VENTING,
                      ST_WATCHDOG_TRIPPED, VENT, ModbusError, RawModbus, exception_of,
                      healthy_block_w, pdu_fc23, pdu_read, VALGRIND)

from pymodbus.client import ModbusSerialClient

MBPOLL = shutil.which("mbpoll")
needs_mbpoll = pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed")


def mbpoll(*args, timeout=10):
    """Run mbpoll once (-1) with PDU addressing (-0); returns (rc, output)."""
    cmd = [MBPOLL, "-1", "-0", "-o", "1"] + [str(a) for a in args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout


def mbpoll_values(out):
    """{reference: value} from mbpoll's '[ref]: value' lines."""
    return {int(a): int(b) for a, b in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out, re.M)}


# ---------------------------------------------------------------- mbpoll

@needs_mbpoll
def test_mbpoll_reads_block_r_as_holding_registers(sim):
    rc, out = mbpoll("-p", sim.port, "-t", "4", "-r", 100, "-c", 48, "127.0.0.1")
    assert rc == 0, out
    v = mbpoll_values(out)
    assert v.get(100) == MAP_VERSION == 256, out
    assert v.get(103) == 8, out
    assert v.get(109) == 2000, out
    assert set(v) == set(range(100, 148)), out


@needs_mbpoll
def test_mbpoll_reads_block_r_as_input_registers(sim):
    rc, out = mbpoll("-p", sim.port, "-t", "3", "-r", 100, "-c", 4, "127.0.0.1")
    assert rc == 0, out
    v = mbpoll_values(out)
    assert v.get(100) == 256 and v.get(103) == 8, out


@needs_mbpoll
def test_mbpoll_writes_a_setpoint_and_reads_it_back(sim):
    rc, out = mbpoll("-p", sim.port, "-t", "4", "-r", 16, "127.0.0.1", 400)
    assert rc == 0, out
    rc, out = mbpoll("-p", sim.port, "-t", "4", "-r", 16, "-c", 2, "127.0.0.1")
    assert rc == 0, out
    assert mbpoll_values(out) == {16: 400, 17: 0}, out
    assert sim.status()["chambers"][0]["setpoint"] == pytest.approx(40.0)


@needs_mbpoll
def test_mbpoll_write_to_block_r_is_refused_with_illegal_data_address(sim):
    rc, out = mbpoll("-p", sim.port, "-t", "4", "-r", 104, "127.0.0.1", 1)
    assert rc != 0 or re.search(r"(?i)illegal data address", out), out
    assert re.search(r"(?i)illegal data address", out), out
    # and nothing changed
    rc, out = mbpoll("-p", sim.port, "-t", "4", "-r", 100, "127.0.0.1")
    assert mbpoll_values(out).get(100) == 256, out


# ---------------------------------------------------------------- pymodbus

def test_fc23_exchange_writes_block_w_and_reads_block_r(sim, dev):
    b = dev.exchange(command=IDLE, setpoints={1: 12.5}, heartbeat=0x1233)
    assert b.map_version == MAP_VERSION
    assert b.chambers == 8
    assert b.heartbeat_echo == 0x1234, "FC23 must apply the write before the read"
    assert b.has(ST_READY) and b.has(ST_GARMENT_CONNECTED), b
    assert b.fault == 0
    assert b.hw_relief == pytest.approx(200.0)
    assert b.supply > 200.0, b
    assert all(b.valve(i) == 0 for i in range(1, 9)), b
    st = sim.status()
    assert st["chambers"][0]["setpoint"] == pytest.approx(12.5)
    assert st["heartbeat"] == 0x1234
    # SAMPLE counts firmware samples, ~1 per ms
    s0, t0 = b.sample, time.monotonic()
    time.sleep(0.2)
    b2 = dev.exchange()
    dt_ms = (time.monotonic() - t0) * 1000
    delta = (b2.sample - s0) & 0xFFFF
    assert delta >= 150, (delta, dt_ms)
    if not VALGRIND:  # under memcheck the model catches up in bursts
        assert delta <= dt_ms + 50, (delta, dt_ms)


def test_fc06_and_fc16_writes_are_read_back(sim, dev):
    c = dev.client
    rr = c.write_register(3, 800, slave=1)
    assert not rr.isError(), rr
    rr = c.write_registers(16, [100, 200, 300], slave=1)
    assert not rr.isError(), rr
    rr = c.read_holding_registers(0, 32, slave=1)
    assert not rr.isError(), rr
    assert rr.registers[3] == 800
    assert rr.registers[16:20] == [100, 200, 300, 0]
    st = sim.status()
    assert st["limit"] == pytest.approx(80.0)
    assert [ch["setpoint"] for ch in st["chambers"][:3]] == pytest.approx([10, 20, 30])


def _exc(rr):
    assert rr.isError(), "expected an exception reply, got %r" % rr
    return getattr(rr, "exception_code", None)


@pytest.mark.parametrize("fc", [0x2B, 0x14, 0x01, 0x05, 0x16])
def test_unsupported_function_gives_exception_01(sim, fc):
    c = RawModbus(sim.port)
    try:
        if fc == 0x2B:
            pdu = bytes([0x2B, 0x0E, 0x01, 0x00])
        elif fc == 0x14:
            pdu = bytes([0x14, 0x07, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02])
        elif fc == 0x16:
            pdu = struct.pack(">BHHH", 0x16, 1, 0xFFFF, 0)
        else:
            pdu = struct.pack(">BHH", fc, 0, 1)
        rpdu = c.request(pdu)
        assert exception_of(rpdu, fc) == 1, "FC 0x%02x answered %r" % (fc, rpdu)
    finally:
        c.close()


def test_illegal_address_gives_exception_02(sim, dev):
    c = dev.client
    assert _exc(c.write_register(100, 1, slave=1)) == 2
    assert _exc(c.write_register(40, 1, slave=1)) == 2
    assert _exc(c.write_registers(30, [0, 0, 0], slave=1)) == 2  # runs past 31
    assert _exc(c.read_holding_registers(200, 1, slave=1)) == 2
    assert _exc(c.read_holding_registers(60, 1, slave=1)) == 2
    assert _exc(c.read_holding_registers(140, 10, slave=1)) == 2  # past 147
    assert _exc(c.read_input_registers(0, 1, slave=1)) == 2
    rr = c.read_input_registers(100, 48, slave=1)
    assert not rr.isError() and rr.registers[0] == MAP_VERSION, rr
    raw = RawModbus(sim.port)
    try:
        # FC23 writing block R, FC23 reading an unmapped address
        assert exception_of(raw.request(pdu_fc23(100, [1], R, 48)), 0x17) == 2
        assert exception_of(raw.request(pdu_fc23(0, healthy_block_w(), 200, 4)), 0x17) == 2
        # a read across the gap 32..99
        assert exception_of(raw.request(pdu_read(0, 125)), 0x03) == 2
        # FC04 on block W
        assert exception_of(raw.request(pdu_read(16, 1, fc=4)), 0x04) == 2
    finally:
        raw.close()
    assert sim.status()["heartbeat"] == 0, "a refused FC23 wrote block W"


def test_bad_quantity_gives_exception_03(sim):
    raw = RawModbus(sim.port)
    try:
        assert exception_of(raw.request(pdu_read(100, 0)), 0x03) == 3
        assert exception_of(raw.request(pdu_read(100, 126)), 0x03) == 3
        assert exception_of(raw.request(pdu_read(100, 0, fc=4)), 0x04) == 3
        assert exception_of(raw.request(bytes([0x06, 0x00, 0x10])), 0x06) == 3  # short FC06
    finally:
        raw.close()


def test_illegal_value_gives_exception_03_and_changes_nothing(sim, dev):
    c = dev.client
    # default LIMIT 100 mmHg: a setpoint of 100.1 is refused
    assert _exc(c.write_register(16, 1001, slave=1)) == 3
    assert _exc(c.write_register(2, 10, slave=1)) == 3       # WATCHDOG_MS 10
    assert _exc(c.write_register(2, 5001, slave=1)) == 3
    assert _exc(c.write_register(1, 7, slave=1)) == 3        # COMMAND 7
    # checked whole before applied: nothing of a refused FC16 lands
    assert _exc(c.write_registers(16, [100, 2000], slave=1)) == 3
    # and an FC23 with a bad value is refused whole
    w = healthy_block_w(5)
    w[16] = 1500
    raw = RawModbus(sim.port)
    try:
        assert exception_of(raw.request(pdu_fc23(0, w, R, 48)), 0x17) == 3
    finally:
        raw.close()
    # the LIMIT written in the same request counts
    w = healthy_block_w(6)
    w[3], w[16] = 500, 600          # LIMIT 50, setpoint 60
    raw = RawModbus(sim.port)
    try:
        assert exception_of(raw.request(pdu_fc23(0, w, R, 48)), 0x17) == 3
        w[3], w[16] = 1500, 1200    # LIMIT 150, setpoint 120: fine
        w[0] = 8
        rpdu = raw.request(pdu_fc23(0, w, R, 48))
        assert rpdu[0] == 0x17, rpdu
        assert sim.status()["chambers"][0]["setpoint"] == pytest.approx(120.0)
        w[3], w[16], w[0] = 1000, 0, 9   # back to LIMIT 100, setpoint 0
        assert raw.request(pdu_fc23(0, w, R, 48))[0] == 0x17
        w[1], w[0] = 1, 10               # COMMAND RUN: fine; then IDLE again
        assert raw.request(pdu_fc23(0, w, R, 48))[0] == 0x17
        w[1], w[0], w[2] = 0, 11, 500
        assert raw.request(pdu_fc23(0, w, R, 48))[0] == 0x17
    finally:
        raw.close()
    st = sim.status()
    assert st["chambers"][0]["setpoint"] == 0
    assert st["watchdog_ms"] == 500
    assert st["command"] == "idle"
    assert st["heartbeat"] == 11
    # a setpoint at LIMIT is fine
    assert not c.write_register(16, 1000, slave=1).isError()


def test_unit_id_option(start_sim, device_factory):
    sim = start_sim("-u", "5")
    d = device_factory(sim.port, unit=5)
    assert d.exchange().map_version == MAP_VERSION
    raw = RawModbus(sim.port)
    try:
        raw.send_pdu(pdu_read(100, 1), unit=1)
        try:
            tid, _, unit, pdu = raw.recv_frame(timeout=0.5)
            answered = (unit, pdu)
        except Exception:
            answered = None
        # Another unit id: no normal answer (ignored, or an exception).
        assert answered is None or answered[1][0] & 0x80, answered
    finally:
        raw.close()


def test_sixteen_chambers(start_sim, device_factory):
    sim = start_sim("-n", "16")
    d = device_factory(sim.port)
    b = d.exchange(setpoints={16: 20.0})
    assert b.chambers == 16
    assert len(sim.status()["chambers"]) == 16
    assert sim.status()["chambers"][15]["setpoint"] == pytest.approx(20.0)
    # chamber 16 exists for faults too, 17 does not
    assert sim.ctl("inject", fault="leak", chamber=16, mmhg_s=1)["ok"] is True
    assert sim.ctl("inject", fault="leak", chamber=17, mmhg_s=1)["ok"] is False


def test_eight_chambers_by_default_has_no_chamber_9(sim):
    assert len(sim.status()["chambers"]) == 8
    rep = sim.ctl("inject", fault="blocked", chamber=9)
    assert rep["ok"] is False and rep["error"]["code"] == "bad_request", rep


def test_devices_are_independent(start_sim, device_factory):
    sim = start_sim("--devices", "3")
    assert len(sim.ports) == 3 and len(set(sim.ports)) == 3, sim.ready_line
    devs = [device_factory(p) for p in sim.ports]
    for i, d in enumerate(devs):
        d.exchange(setpoints={1: 10.0 * (i + 1)})
    sim.inject("estop", device=2)
    b = [d.exchange() for d in devs]
    assert not b[0].has(1 << 4) and b[1].has(1 << 4) and not b[2].has(1 << 4), b
    for i in range(3):
        st = sim.status(device=i + 1)
        assert st["chambers"][0]["setpoint"] == pytest.approx(10.0 * (i + 1))
    rep = sim.ctl("status", device=4)
    assert rep["ok"] is False and rep["error"]["code"] == "unknown_device", rep


# ---------------------------------------------------------------- pneumatics

def test_chamber_inflates_holds_and_vents(sim, dev):
    dev.exchange(command=IDLE)
    # the firmware opens the inflate valve at its next 1 ms sample
    b, _ = dev.run_until(lambda b: b.valve(1) == 1, 0.05, interval=0.001, command=RUN,
                         setpoints={1: 40.0}, what="inflate valve of chamber 1 opens")
    assert b.valve(2) == 0 and b.has(ST_RUNNING), b
    b, t_reach = dev.run_until(lambda b: b.pressure(1) >= 39.5, 4.0,
                               what="chamber 1 reaches 40 mmHg")
    assert 0.8 <= t_reach <= 3.2, "reached 40 mmHg in %.2fs (expected 1-3 s)" % t_reach
    assert b.has(ST_RUNNING), b
    assert all(b.pressure(i) < 1.0 for i in range(2, 9)), "other chambers moved: %r" % b
    held = dev.run_for(1.5)
    readings = [x.pressure(1) for x in held]
    assert min(readings) >= 39.0 and max(readings) <= 41.0, \
        "did not hold 40 +-1 mmHg: min %.1f max %.1f" % (min(readings), max(readings))
    true_p = sim.status()["chambers"][0]["pressure"]
    assert 39.0 <= true_p <= 41.0
    b, t_vent = dev.run_until(lambda b: b.pressure(1) < 5.0, 2.0, command=VENT,
                              what="chamber 1 below 5 mmHg")
    assert b.has(ST_VENTING) and not b.has(ST_RUNNING)
    assert all(b.valve(i) == 2 for i in range(1, 9)), b
    assert t_vent < 1.0, "VENT took %.2fs from 40 to < 5 mmHg" % t_vent


def test_watchdog_trips_when_heartbeat_stops(sim, dev):
    dev.exchange(command=IDLE, watchdog_ms=200)
    # A live heartbeat for longer than WATCHDOG_MS does not trip it.
    for b in dev.run_for(0.5):
        assert not b.has(ST_WATCHDOG_TRIPPED) and b.fault == 0, b
    b, t = dev.run_until(lambda b: b.has(ST_WATCHDOG_TRIPPED), 1.5, beat=False,
                         what="WATCHDOG_TRIPPED after the heartbeat stops")
    assert t >= 0.15, "tripped after %.3fs, WATCHDOG_MS is 200" % t
    assert t <= 0.45, "tripped only after %.3fs, WATCHDOG_MS is 200" % t
    assert b.fault == FAULT_WATCHDOG and b.has(ST_VENTING) and not b.has(ST_READY), b
    # latched: a live heartbeat again does not clear it
    for b in dev.run_for(0.3, beat=True):
        assert b.has(ST_WATCHDOG_TRIPPED) and b.fault == FAULT_WATCHDOG, b


def test_watchdog_arms_on_first_run_without_heartbeat(sim, dev):
    # The heartbeat never changes; writing WATCHDOG_MS in IDLE does not arm.
    for b in dev.run_for(0.4, command=IDLE, watchdog_ms=200, beat=False):
        assert not b.has(ST_WATCHDOG_TRIPPED) and b.fault == 0, b
    # The first RUN arms it.
    b, t = dev.run_until(lambda b: b.has(ST_WATCHDOG_TRIPPED), 1.5, command=RUN,
                         what="WATCHDOG_TRIPPED after RUN with a dead heartbeat")
    assert 0.15 <= t <= 0.45, "tripped %.3fs after RUN, WATCHDOG_MS is 200" % t
    assert b.fault == FAULT_WATCHDOG and not b.has(ST_RUNNING), b


def test_lowering_limit_below_a_chamber_latches_overlimit(sim, dev):
    dev.run_until(lambda b: b.pressure(1) >= 39.0, 4.0, command=RUN, setpoints={1: 40.0})
    b, _ = dev.run_until(lambda b: b.fault != 0, 0.5, setpoints={1: 30.0}, limit=30.0,
                         what="FAULT after LIMIT 30 with a chamber at 40")
    assert b.fault == 2 and b.has(1 << 9) and b.has(ST_VENTING), b
    dev.limit = 100.0
    b = dev.vent_and_reset()
    assert b.fault == 0 and not b.has(1 << 9), b


def test_reset_refused_while_pressurised_and_accepted_after_vent(sim, dev):
    dev.exchange(command=IDLE, watchdog_ms=200)
    dev.run_until(lambda b: b.pressure(1) >= 39.0, 4.0, command=RUN, setpoints={1: 40.0})
    # stop the heartbeat: the watchdog trips and the firmware vents
    b, _ = dev.run_until(lambda b: b.fault == FAULT_WATCHDOG, 1.5, interval=0.002,
                         beat=False)
    # RESET at once, with a live heartbeat, while the chamber is still high
    b = dev.exchange(command=RESET, setpoints={1: 0.0}, beat=True)
    assert b.pressure(1) > 5.0, "too late to test a refused RESET: %r" % b
    assert b.fault == FAULT_WATCHDOG and b.has(ST_WATCHDOG_TRIPPED), \
        "RESET accepted at %.1f mmHg: %r" % (b.pressure(1), b)
    b = dev.exchange(command=IDLE)
    assert b.fault == FAULT_WATCHDOG, b
    b = dev.vent_and_reset()
    assert b.fault == 0 and not b.has(ST_WATCHDOG_TRIPPED), "RESET after venting: %r" % b
    b = dev.exchange(command=IDLE)
    assert b.fault == 0 and b.has(ST_READY) and not b.has(ST_VENTING), b


# ---------------------------------------------------------------- RTU

def need_pty():
    try:
        m, s = os.openpty()
        os.close(m)
        os.close(s)
    except OSError as e:
        pytest.skip("no pseudo-terminal support here: %s" % e)


def test_pty_with_the_documented_command_line(start_sim):
    # The contract's command line: -p 0 -c tcp://127.0.0.1:* --pty
    need_pty()
    sim = start_sim("--pty")
    assert sim.ptys and sim.ready_line.split()[1].startswith("modbus=rtu:/dev/pts/"), \
        sim.ready_line


def test_rtu_over_pty(start_sim):
    need_pty()
    sim = start_sim("--pty", port_arg=False)
    assert sim.ready_line.split()[1].startswith("modbus=rtu:/dev/pts/"), sim.ready_line
    assert sim.ptys and os.path.exists(sim.ptys[0]), sim.ready_line
    path = sim.ptys[0]
    c = ModbusSerialClient(port=path, baudrate=115200, timeout=1,
                           retries=1)
    if not c.connect():
        pytest.skip("cannot open %s" % path)
    try:
        rr = c.read_holding_registers(100, 48, slave=1)
        assert not rr.isError(), rr
        assert rr.registers[0] == MAP_VERSION and rr.registers[3] == 8
        rr = c.write_register(16, 250, slave=1)
        assert not rr.isError(), rr
        assert sim.status()["chambers"][0]["setpoint"] == pytest.approx(25.0)
        rr = c.write_register(104, 1, slave=1)
        assert rr.isError() and rr.exception_code == 2, rr
    finally:
        c.close()
    if MBPOLL:
        rc, out = mbpoll("-m", "rtu", "-b", "115200", "-P", "none", "-t", "4",
                         "-r", 100, "-c", 4, path)
        assert rc == 0 and mbpoll_values(out).get(100) == 256, out


# ---------------------------------------------------------------- options

def test_relief_option_sets_hw_relief_and_bounds_limit(start_sim, device_factory):
    sim = start_sim("--relief", "150")
    d = device_factory(sim.port)
    assert d.exchange().hw_relief == pytest.approx(150.0)
    with pytest.raises(ModbusError, match="(?i)exception|value"):
        d.exchange(limit=160.0)          # LIMIT above HW_RELIEF: 03
    d.limit = 100.0
    assert d.exchange().fault == 0


@pytest.mark.parametrize("args", [("-n", "17"), ("-n", "0"), ("-u", "0"), ("-u", "248"),
                                  ("--devices", "0"), ("--reboot-ms", "-1"),
                                  ("--bogus",), ("-n", "eight")])
def test_bad_option_exits_2(start_sim, args):
    with pytest.raises(AssertionError, match=r"exited \(2\)"):
        start_sim(*args)


def test_busy_port_exits_1(start_sim):
    first = start_sim()
    with pytest.raises(AssertionError, match=r"exited \(1\)"):
        start_sim("-p", str(first.port), port_arg=False)
    with pytest.raises(AssertionError, match=r"exited \(1\)"):
        start_sim("-c", first.control)
    assert first.status()["chambers"]
