"""fascia-sim under abuse: malformed Modbus frames, stuck and greedy
clients, bad control requests.  Each test checks that the simulator keeps
serving everyone else and still answers a normal FC23 and `status`."""
import json
import os
import socket
import struct
import time

import pytest

from conftest import (R, RawModbus, assert_serving, exception_of,
                      healthy_block_w, is_valid_fc23_reply, pdu_fc16,
                      pdu_fc23, pdu_read, wait_until)


def fc23_pdu(heartbeat=1):
    return pdu_fc23(0, healthy_block_w(heartbeat), R, 48)


def no_valid_reply(raw, timeout=0.3):
    """What came back on a connection within timeout: 'closed', 'nothing',
    or the raw bytes."""
    raw.sock.settimeout(timeout)
    try:
        data = raw.sock.recv(4096)
    except socket.timeout:
        return "nothing"
    except OSError:
        return "closed"
    return data if data else "closed"


def latencies(sim, n=50):
    """n FC23 exchanges on a fresh connection: each round trip in seconds."""
    c = RawModbus(sim.port, timeout=1.0)
    out = []
    try:
        for i in range(n):
            t0 = time.monotonic()
            pdu = c.request(fc23_pdu(i + 1), timeout=1.0)
            out.append(time.monotonic() - t0)
            assert is_valid_fc23_reply(pdu), pdu[:8]
    finally:
        c.close()
    return sorted(out)


# ------------------------------------------------------------ Modbus TCP

def test_garbage_bytes_do_not_hurt_other_clients(sim):
    bad = RawModbus(sim.port)
    try:
        bad.sock.sendall(os.urandom(64) + b"\xff" * 300)
        res = no_valid_reply(bad)
        # whatever it answers, it is not a successful FC23
        assert res in ("closed", "nothing") or b"\x17\x60" not in res
    finally:
        bad.close()
    assert_serving(sim, "after garbage bytes")


def test_wrong_protocol_id_is_not_answered_as_modbus(sim):
    bad = RawModbus(sim.port)
    try:
        bad.sock.sendall(RawModbus.frame(fc23_pdu(), proto=1, tid=9))
        res = no_valid_reply(bad)
        assert res in ("closed", "nothing"), \
            "a frame with protocol id 1 was answered: %r" % (res[:16],)
    finally:
        bad.close()
    assert_serving(sim, "after a wrong protocol id")


def test_truncated_frame_does_not_stall_other_clients(sim):
    stuck = RawModbus(sim.port)
    try:
        frame = RawModbus.frame(fc23_pdu(), tid=3)
        stuck.sock.sendall(frame[:10])      # header and part of the PDU, then silence
        time.sleep(0.05)
        lat = latencies(sim, 100)
        p99 = lat[int(len(lat) * 0.99) - 1]
        assert lat[-1] < 0.1, "another client waited %.1f ms while one frame hung" % (lat[-1] * 1000)
        assert p99 < 0.05, p99
        # the stuck client can still finish its frame and get its answer
        stuck.sock.sendall(frame[10:])
        tid, _, _, pdu = stuck.recv_frame(timeout=1.0)
        assert tid == 3 and is_valid_fc23_reply(pdu)
    finally:
        stuck.close()
    assert_serving(sim)


@pytest.mark.parametrize("length", [0, 1, 300, 65535])
def test_bad_mbap_length_is_refused(sim, length):
    bad = RawModbus(sim.port)
    other_ok = None
    try:
        bad.sock.sendall(RawModbus.frame(pdu_read(100, 1), length=length, tid=4))
        # others are served meanwhile, even if the server waits for more bytes
        other_ok = latencies(sim, 10)[-1]
        res = no_valid_reply(bad)
        assert res in ("closed", "nothing"), \
            "length %d was answered: %r" % (length, res[:16])
    finally:
        bad.close()
    assert other_ok < 0.1, other_ok
    assert_serving(sim, "after MBAP length %d" % length)


def test_fc16_byte_count_mismatch_gives_exception_03(sim):
    c = RawModbus(sim.port)
    try:
        rpdu = c.request(pdu_fc16(16, [100, 200], byte_count=6))
        assert exception_of(rpdu, 0x10) == 3, rpdu
        # quantity 3 with only 2 registers of data and byte count 6
        pdu = struct.pack(">BHHB", 0x10, 16, 3, 6) + struct.pack(">2H", 1, 2)
        try:
            rpdu = c.request(pdu, timeout=0.5)
            assert exception_of(rpdu, 0x10) == 3, rpdu
        except (ConnectionError, socket.timeout):
            pass  # a frame shorter than it claims may also be dropped
    finally:
        c.close()
    st = sim.status()
    assert [ch["setpoint"] for ch in st["chambers"][:3]] == [0, 0, 0], "a refused write landed"
    assert_serving(sim)


def test_fc23_with_bad_counts_gives_exception_03(sim):
    c = RawModbus(sim.port)
    try:
        # write count 32 but byte count 10
        pdu = struct.pack(">BHHHHB", 0x17, R, 48, 0, 32, 10) + bytes(10)
        assert exception_of(c.request(pdu), 0x17) == 3
        # read count 0 and read count 126
        w = healthy_block_w()
        assert exception_of(c.request(pdu_fc23(0, w, R, 0)), 0x17) == 3
        assert exception_of(c.request(pdu_fc23(0, w, R, 126)), 0x17) in (2, 3)
    finally:
        c.close()
    assert_serving(sim)


def test_hundred_connections_at_once(sim):
    socks = []
    try:
        for _ in range(100):
            socks.append(RawModbus(sim.port, timeout=2.0))
        for i, c in enumerate(socks):
            c.sock.sendall(RawModbus.frame(pdu_read(100, 4), tid=i + 1))
        t0 = time.monotonic()
        for i, c in enumerate(socks):
            tid, _, _, pdu = c.recv_frame(timeout=max(0.1, 3.0 - (time.monotonic() - t0)))
            assert tid == i + 1 and pdu[:2] == b"\x03\x08", pdu
            assert struct.unpack(">H", pdu[2:4])[0] == 0x0100
        assert time.monotonic() - t0 < 2.0
        assert sim.status()["link"]["clients"] >= 100
    finally:
        for c in socks:
            c.close()
    assert_serving(sim, "after 100 connections")
    # they were all released
    deadline = time.monotonic() + 2.0
    while sim.status()["link"]["clients"] > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.status()["link"]["clients"] <= 1


def test_pipelined_frames_are_answered_in_order(sim):
    c = RawModbus(sim.port)
    try:
        frames = b"".join(RawModbus.frame(pdu_read(100 + i, 1), tid=100 + i) for i in range(10))
        frames += RawModbus.frame(fc23_pdu(77), tid=200)
        c.sock.sendall(frames)
        got = [c.recv_frame(timeout=1.0) for _ in range(11)]
        assert [g[0] for g in got] == list(range(100, 110)) + [200]
        assert struct.unpack(">H", got[0][3][2:4])[0] == 0x0100
        assert struct.unpack(">H", got[3][3][2:4])[0] == 8     # CHAMBERS
        assert is_valid_fc23_reply(got[10][3])
        assert struct.unpack(">H", got[10][3][2 + 12:2 + 14])[0] == 77  # HEARTBEAT_ECHO
    finally:
        c.close()
    assert_serving(sim)


def test_client_that_never_reads_does_not_stall_others(sim):
    hog = RawModbus(sim.port)
    try:
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frame = RawModbus.frame(pdu_read(100, 48), tid=1)
        hog.sock.setblocking(False)
        sent = 0
        t0 = time.monotonic()
        while sent < 20000 and time.monotonic() - t0 < 1.0:
            try:
                hog.sock.send(frame)
                sent += 1
            except BlockingIOError:
                time.sleep(0.001)
        lat = latencies(sim, 20)
        assert lat[-1] < 0.2, "others waited %.0f ms behind a client that never reads" % (lat[-1] * 1000)
    finally:
        hog.close()
    assert_serving(sim)


# ------------------------------------------------------------ control socket

def error_code(rep):
    assert rep.get("ok") is False, rep
    assert isinstance(rep.get("error"), dict) and rep["error"].get("message"), rep
    return rep["error"]["code"]


@pytest.mark.parametrize("data,code", [
    (b"this is not json", "bad_request"),
    (b"{\"v\":1,\"id\":1,\"cmd\":", "bad_request"),
    (b"[1,2,3]", "bad_request"),
    (b"\"status\"", "bad_request"),
    (b"{\"v\":1,\"id\":7}", "bad_request"),
    (b"{\"v\":1,\"id\":7,\"cmd\":42}", "bad_request"),
    (b"{\"v\":1,\"id\":7,\"cmd\":\"launch\"}", "unknown_command"),
    (b"\xff\xfe\x00garbage", "bad_request"),
])
def test_control_rejects_malformed_requests(sim, data, code):
    rep = sim.ctl_raw(data)
    assert error_code(rep) == code, rep
    assert_serving(sim)


@pytest.mark.parametrize("args,code", [
    ({"fault": "meltdown"}, "unknown_fault"),
    ({"fault": "estop", "device": 99}, "unknown_device"),
    ({"fault": "estop", "device": 0}, None),
    ({"fault": "leak", "chamber": 0, "mmhg_s": 1}, "bad_request"),
    ({"fault": "leak", "chamber": 17, "mmhg_s": 1}, "bad_request"),
    ({"fault": "leak", "chamber": "x", "mmhg_s": 1}, "bad_request"),
    ({"fault": "leak", "chamber": 1.5, "mmhg_s": 1}, "bad_request"),
    ({"fault": "leak", "chamber": 1}, "bad_request"),
    ({"fault": "leak", "chamber": 1, "mmhg_s": -3}, "bad_request"),
    ({"fault": "valve_stuck", "chamber": 1, "state": "ajar"}, "bad_request"),
    ({"fault": "sensor", "chamber": 1, "mode": "haunted", "value": 1}, "bad_request"),
    ({"fault": "link", "mode": "psychic"}, "bad_request"),
    ({"fault": "link"}, "bad_request"),
    ({}, "bad_request"),
    ({"fault": 5}, "bad_request"),
])
def test_control_rejects_bad_inject(sim, args, code):
    rep = sim.ctl("inject", **args)
    if code is None:      # device 0 is not a device (1-based)
        assert rep["ok"] is False, rep
    else:
        assert error_code(rep) == code, rep
    assert sim.status()["faults"] == [], "a refused inject left a fault behind"
    assert_serving(sim)


def test_control_rejects_bad_clear(sim):
    assert error_code(sim.ctl("clear", fault="meltdown")) == "unknown_fault"
    assert error_code(sim.ctl("clear")) == "bad_request"
    assert error_code(sim.ctl("clear", fault="estop", chamber=1)) == "bad_request"
    assert error_code(sim.ctl("status", device=99)) == "unknown_device"
    assert error_code(sim.ctl("stats", device="one")) == "bad_request"


def test_control_survives_a_huge_message(sim):
    # Below the control socket's message limit (64 KiB, ZMQ_MAXMSGSIZE): a
    # reply.  Above it the peer is dropped (no reply), and the next client
    # is served.
    rep = sim.ctl_raw(b"{" * 60000)
    assert rep.get("ok") is False and rep["error"]["code"] == "bad_request", rep
    rep = sim.ctl_raw(json.dumps({"v": 1, "id": 1, "cmd": "status",
                                  "pad": "x" * 60000}).encode())
    assert rep.get("ok") in (True, False) and rep.get("id") == 1, rep
    huge = json.dumps({"v": 1, "id": 1, "cmd": "status", "pad": "x" * (4 << 20)}).encode()
    try:
        rep = sim.ctl_raw(huge)
        assert isinstance(rep, dict) and "ok" in rep, rep
    except AssertionError as e:
        assert "no control reply" in str(e), e
        assert sim.alive()
    assert_serving(sim, "after huge control messages")


def test_control_id_is_echoed(sim):
    for rid in ["abc", 0, 123456789, None, {"x": 1}]:
        rep = sim.ctl_raw(json.dumps({"v": 1, "id": rid, "cmd": "status"}).encode())
        assert rep["ok"] is True and rep["id"] == rid, rep


def test_still_serving_after_everything(start_sim):
    """All of the above against one simulator, then a normal exchange."""
    sim = start_sim()
    for data in [b"nope", b"[]", b"{}", b"{\"cmd\":\"inject\",\"fault\":\"x\"}"]:
        assert sim.ctl_raw(data)["ok"] is False
    for payload in [os.urandom(200), RawModbus.frame(pdu_read(100, 1), length=0),
                    RawModbus.frame(pdu_read(100, 1), proto=7),
                    RawModbus.frame(fc23_pdu())[:9]]:
        c = RawModbus(sim.port)
        c.sock.sendall(payload)
        c.close()
    conns = [RawModbus(sim.port) for _ in range(50)]
    for c in conns:
        c.close()
    assert_serving(sim)
    assert sim.alive()


def test_sigterm_with_clients_connected_exits_0(start_sim):
    sim = start_sim()
    clients = [RawModbus(sim.port) for _ in range(5)]
    clients[0].sock.sendall(RawModbus.frame(fc23_pdu())[:9])   # mid-frame
    assert is_valid_fc23_reply(clients[1].request(fc23_pdu()))
    t0 = time.monotonic()
    rc = sim.stop_checked()
    assert rc == 0, "exit status %r on SIGTERM; stderr:\n%s" % (rc, sim.stderr()[-2000:])
    assert time.monotonic() - t0 < 2.0
    for c in clients:
        c.close()


def test_sigterm_with_delayed_replies_pending_exits_0(start_sim):
    sim = start_sim()
    sim.inject("link", mode="slow", delay_ms=2000)
    clients = [RawModbus(sim.port) for _ in range(3)]
    for c in clients:
        for i in range(5):
            c.sock.sendall(RawModbus.frame(fc23_pdu(i), tid=i + 1))
    time.sleep(0.05)
    t0 = time.monotonic()
    rc = sim.stop_checked()
    assert rc == 0, "exit status %r; stderr:\n%s" % (rc, sim.stderr()[-2000:])
    assert time.monotonic() - t0 < 1.5, "SIGTERM waited for delayed replies"
    for c in clients:
        c.close()


# ------------------------------------------------------------ Modbus RTU

def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def rtu_request(port, adu, timeout=0.3):
    """Write one RTU frame, return what came back within timeout."""
    port.reset_input_buffer()
    port.write(adu)
    port.flush()
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        chunk = port.read(256)
        got += chunk
        if got and not chunk:
            break
    return got


def test_rtu_survives_garbage_and_bad_crc(start_sim):
    serial = pytest.importorskip("serial")
    try:
        m, s = os.openpty()
        os.close(m)
        os.close(s)
    except OSError as e:
        pytest.skip("no pseudo-terminal support here: %s" % e)
    sim = start_sim("--pty", port_arg=False)
    path = sim.ptys[0]
    port = serial.Serial(path, 115200, timeout=0.05)
    try:
        good = bytes([1]) + pdu_read(100, 4)
        good += crc16(good)
        reply = rtu_request(port, good)
        assert reply[:3] == b"\x01\x03\x08" and reply[3:5] == b"\x01\x00", reply
        assert crc16(reply[:-2]) == reply[-2:], reply

        bad = good[:-2] + bytes([good[-2] ^ 0xFF, good[-1]])
        assert rtu_request(port, bad) == b"", "a frame with a bad CRC was answered"

        port.write(os.urandom(300))
        port.flush()

        def answered():
            r = rtu_request(port, good, timeout=0.2)
            return r[:3] == b"\x01\x03\x08" and r
        wait_until(answered, 2.0, interval=0.02, what="RTU answers again after garbage")

        other_unit = bytes([7]) + pdu_read(100, 4)
        other_unit += crc16(other_unit)
        assert rtu_request(port, other_unit) == b"", "unit 7 answered on a unit 1 bus"
    finally:
        port.close()
    assert sim.status()["chambers"]


def test_client_gone_before_its_delayed_reply(start_sim):
    sim = start_sim("--reboot-ms", "100")
    sim.inject("link", mode="slow", delay_ms=150)
    for _ in range(5):
        c = RawModbus(sim.port)
        c.sock.sendall(RawModbus.frame(fc23_pdu(), tid=1) + RawModbus.frame(fc23_pdu(), tid=2))
        c.close()                         # gone before the replies are due
    # and links closed by a reboot while replies are pending
    c = RawModbus(sim.port)
    c.sock.sendall(RawModbus.frame(fc23_pdu(), tid=3))
    sim.inject("reboot")
    assert no_valid_reply(c, timeout=0.4) in ("closed", "nothing")
    c.close()
    wait_until(lambda: not sim.status()["booting"], 2.0, what="reboot over")
    sim.clear("link")
    wait_until(lambda: sim.alive() and latencies(sim, 3), 1.0, what="served again")
    assert_serving(sim, "after replies to vanished clients")
