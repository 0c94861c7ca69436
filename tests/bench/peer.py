#!/usr/bin/python3
"""peer.py: the comparison controller for tests/bench/run.py.

A small controller built only from Debian's python3-pymodbus (3.0) and
python3-zmq, doing per tick what fasciad does for the benchmarked paths:
one FC23 (write block W with the heartbeat, RUN and the setpoints of a
session holding --hold mmHg; read block R), the overpressure (above --max),
e-stop and stale checks (HEARTBEAT_ECHO lagging 3 writes, as fasciad's
default heartbeat_ticks; SAMPLE unchanged 200 ms), a VENT written at once
(a second exchange) when one trips, and a state message on a PUB socket (at
10 Hz and on every change, carrying t_read_us like fasciad's).  It ticks to
absolute deadlines (time.sleep to the next one: Python has no
clock_nanosleep with TIMER_ABSTIME) and records how late each tick began.

After a trip it holds VENT; once the cause has been gone for 100 ms and
every chamber is below 5 mmHg it writes RESET and runs again (it acks
itself and starts a new session, for the benchmark's injection loop).

    peer.py --port PORT [--hz 50] [--seconds S] [--limit 60] [--max 45]
            [--hold 25] [--pub EP]

Runs until SIGTERM (or S seconds), then prints one JSON object on stdout:
ticks, trips, the lateness of every tick in us.
"""
import argparse
import json
import signal
import sys
import time

import zmq
from pymodbus.client import ModbusTcpClient

W_ADDR, W_LEN, R_ADDR, R_LEN = 0, 32, 100, 48
IDLE, RUN, VENT, RESET = 0, 1, 2, 3
ST_ESTOP = 1 << 4
STALE_S = 0.2
HEARTBEAT_TICKS = 3
R_ECHO, R_STATUS, R_SAMPLE, R_PRESSURE = 6, 4, 7, 16


def s16(v):
    return v - 65536 if v >= 32768 else v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hz", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--limit", type=float, default=60.0)
    ap.add_argument("--max", type=float, default=45.0,
                    help="overpressure: the profile's maximum + margin, as fasciad")
    ap.add_argument("--hold", type=float, default=25.0)
    ap.add_argument("--chambers", type=int, default=8)
    ap.add_argument("--pub", default="tcp://127.0.0.1:*")
    a = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(a.pub)
    cl = ModbusTcpClient("127.0.0.1", port=a.port, timeout=2)
    if not cl.connect():
        print("peer: cannot connect", file=sys.stderr)
        return 1
    cl.params.timeout = 0.015           # 3/4 of a tick, as fasciad
    print("ready publish=%s" % pub.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)

    period = 1.0 / a.hz
    hb = 0
    state, cause, clear_since = "running", None, None
    last_sample, sample_at = None, time.monotonic()
    late_us, trips, errors = [], 0, 0
    t_read_us = 0
    next_pub = 0.0
    seq = 0
    regs = None
    start = time.monotonic()
    deadline = start

    def exchange(command):
        nonlocal hb, t_read_us, errors
        hb = (hb + 1) & 0xFFFF
        w = [0] * W_LEN
        w[0], w[1], w[2], w[3], w[4] = hb, command, 500, int(a.limit * 10), 1
        if command == RUN:
            w[16:16 + a.chambers] = [int(a.hold * 10)] * a.chambers
        rr = cl.readwrite_registers(read_address=R_ADDR, read_count=R_LEN,
                                    write_address=W_ADDR, write_registers=w,
                                    slave=1, unit=1)
        if rr is None or rr.isError() or len(getattr(rr, "registers", [])) < R_LEN:
            errors += 1
            return None
        t_read_us = time.monotonic_ns() // 1000
        return rr.registers

    while not stop and (a.seconds <= 0 or time.monotonic() - start < a.seconds):
        deadline += period
        d = deadline - time.monotonic()
        if d > 0:
            time.sleep(d)
        now = time.monotonic()
        late_us.append(int((now - deadline) * 1e6))
        while now - deadline > period:      # far behind: keep the phase
            deadline += period
        command = VENT if state == "fault" else RUN
        regs = exchange(command)
        prev_state = state
        if regs is not None:
            p = [s16(regs[R_PRESSURE + i]) / 10.0 for i in range(a.chambers)]
            status, sample = regs[R_STATUS], regs[R_SAMPLE]
            lag = (hb - regs[R_ECHO]) & 0xFFFF
            if sample != last_sample:
                last_sample, sample_at = sample, now
            why = None
            if max(p) > a.max:
                why = "overpressure"
            elif status & ST_ESTOP:
                why = "estop"
            elif HEARTBEAT_TICKS <= lag < 0x8000 or now - sample_at > STALE_S:
                why = "stale"
            if why and state != "fault":
                state, cause, clear_since = "fault", why, None
                trips += 1
                exchange(VENT)               # the vent, at once
            elif state == "fault":
                if why is None and max(p) < 5.0:
                    clear_since = clear_since or now
                    if now - clear_since > 0.1:
                        exchange(RESET)
                        state, cause = "running", None
                else:
                    clear_since = None
        if state != prev_state or now >= next_pub:
            next_pub = now + 0.1
            seq += 1
            msg = {"v": 1, "device": "peer", "seq": seq, "time": int(time.time() * 1000),
                   "state": state, "cause": cause,
                   "chambers": [{"pressure": s16(regs[16 + i]) / 10.0} for i in range(a.chambers)]
                   if regs else [],
                   "link": {"t_read_us": t_read_us}}
            pub.send_multipart([b"state.peer", json.dumps(msg).encode()], zmq.DONTWAIT)
    cl.close()
    print(json.dumps({"ticks": len(late_us), "trips": trips, "errors": errors,
                      "late_us": late_us}), flush=True)
    pub.close(0)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
