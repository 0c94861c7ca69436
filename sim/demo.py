#!/usr/bin/python3
"""make demo, until the daemon exists: start fascia-sim on free loopback
ports, inflate chamber 1 gently to 40 mmHg, hold, vent, and show it live.

Stops the simulator it started by its process id, whatever happens.
DEMO_SECONDS=N shortens the hold (CI uses it).
"""
import os
import signal
import subprocess
import sys
import time

from pymodbus.client import ModbusTcpClient

BUILD = os.environ.get("FASCIA_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
HOLD_S = float(os.environ.get("DEMO_SECONDS", "20"))
TICK_S = 0.05
RAMP_MMHG_S = 10.0
TARGET = 40.0


def start_sim():
    proc = subprocess.Popen(
        [os.path.join(BUILD, "fascia-sim"), "-p", "0", "-c", "tcp://127.0.0.1:*"],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        sys.exit("fascia-sim did not start: %r" % line)
    fields = dict(f.split("=", 1) for f in line.split()[1:])
    port = int(fields["modbus"].split(",")[0].rsplit(":", 1)[1])
    return proc, port


def s16(v):
    return v - 65536 if v >= 32768 else v


class Device:
    """One FC23 exchange per tick: write block W, read block R."""

    def __init__(self, port):
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=1)
        if not self.client.connect():
            sys.exit("cannot connect to the simulator")
        self.heartbeat = 0

    def exchange(self, command, setpoint):
        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        w = [0] * 32
        w[0], w[1], w[2], w[3], w[4] = self.heartbeat, command, 500, 800, 1
        w[16] = int(round(setpoint * 10))
        # pymodbus 3.0 (Debian 12) takes write_registers= and unit= here.
        rr = self.client.readwrite_registers(read_address=100, read_count=48,
                                             write_address=0,
                                             write_registers=w, unit=1)
        if rr.isError():
            sys.exit("device error: %s" % rr)
        r = rr.registers
        return s16(r[16]) / 10.0, r[32], s16(r[8]) / 10.0


def show(phase, t, setpoint, pressure, valve, supply):
    bar = "#" * int(max(pressure, 0) / 2)
    valves = ("closed", "inflating", "deflating")[valve]
    line = "%-7s t=%5.1fs set %5.1f  chamber 1 %5.1f mmHg %-9s supply %5.1f |%-25s|" % (
        phase, t, setpoint, pressure, valves, supply, bar)
    if sys.stdout.isatty():
        sys.stdout.write("\r" + line)
    else:
        print(line)
    sys.stdout.flush()


def run(dev):
    t0 = time.monotonic()
    setpoint = 0.0
    phases = [("inflate", TARGET / RAMP_MMHG_S), ("hold", HOLD_S), ("vent", 2.0)]
    next_tick = t0
    shown = 0.0
    for phase, length in phases:
        end = time.monotonic() + length
        while time.monotonic() < end:
            if phase == "inflate":
                setpoint = min(TARGET, setpoint + RAMP_MMHG_S * TICK_S)
            command = 2 if phase == "vent" else 1
            pressure, valve, supply = dev.exchange(command, 0.0 if command == 2 else setpoint)
            now = time.monotonic()
            if sys.stdout.isatty() or now - shown >= 0.5:
                show(phase, now - t0, setpoint, pressure, valve, supply)
                shown = now
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
    print()


def main():
    proc, port = start_sim()
    try:
        print("fascia-sim running (pid %d) on 127.0.0.1:%d" % (proc.pid, port))
        run(Device(port))
    except KeyboardInterrupt:
        pass
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print("simulator stopped")


if __name__ == "__main__":
    main()
