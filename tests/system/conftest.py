"""System tests of fascia-sim: start the real binary, talk Modbus and the
control socket to it, stop it by its process id.

Run with the Debian interpreter (it has python3-pymodbus, python3-zmq):
    FASCIA_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system

Helpers here:
  Sim           one fascia-sim process (.port, .ports, .control, .ctl(),
                .status(), .stats(), .stop()); the `sim` fixture starts one
                with defaults, `start_sim(*args)` more with options.
  Device        a controller doing one FC23 per exchange (pymodbus):
                write block W 0..31, read block R 100..147.
  RawModbus     a plain socket for hand-made Modbus TCP frames.
  wait_until    poll a predicate instead of sleeping.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
import zmq

from pymodbus.client import ModbusTcpClient

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
# The project's own Python client: the tests speak the protocol through it.
sys.path.insert(0, os.path.join(REPO, "clients", "python"))
import fascia  # noqa: E402
BUILD = os.environ.get("FASCIA_BUILD", os.path.join(REPO, "build"))
SIM_BIN = os.path.join(BUILD, "fascia-sim")

# Register map v1 (include/fascia/regmap.h).
MAP_VERSION = 0x0100
R = 100  # first address of block R
REG_HEARTBEAT, REG_COMMAND, REG_WATCHDOG_MS, REG_LIMIT, REG_PUMP = 0, 1, 2, 3, 4
REG_SETPOINT = 16
REG_MAP_VERSION, REG_CHAMBERS, REG_STATUS, REG_FAULT = 100, 103, 104, 105
REG_HEARTBEAT_ECHO, REG_SAMPLE, REG_SUPPLY, REG_HW_RELIEF = 106, 107, 108, 109
REG_UPTIME_HI, REG_PRESSURE, REG_VALVE = 110, 116, 132

IDLE, RUN, VENT, RESET = 0, 1, 2, 3

ST_READY = 1 << 0
ST_RUNNING = 1 << 1
ST_VENTING = 1 << 2
ST_WATCHDOG_TRIPPED = 1 << 3
ST_ESTOP = 1 << 4
ST_GARMENT_CONNECTED = 1 << 5
ST_RELIEF_OPEN = 1 << 6
ST_SENSOR_FAULT = 1 << 7
ST_PUMP_FAULT = 1 << 8
ST_OVERLIMIT = 1 << 9

FAULT_WATCHDOG, FAULT_OVERLIMIT, FAULT_ESTOP = 1, 2, 3
FAULT_SENSOR, FAULT_PUMP, FAULT_RELIEF = 4, 5, 6

# make check-valgrind: FASCIA_VALGRIND names the programs to run under
# memcheck ("fascia-sim", "fasciad", or both, comma-separated).  An invalid
# access or a definite/indirect leak makes the program exit VALGRIND_EXIT,
# which the tests' "exited 0" checks report.  Start-up and stop take longer.
# One program at a time keeps the other at full speed, so the timing the
# tests rely on (a 50 Hz tick against a 1 kHz device) still holds.
VALGRIND = [p for p in os.environ.get("FASCIA_VALGRIND", "").split(",") if p]
VALGRIND_EXIT = 97
SLOW = 6.0 if VALGRIND else 1.0


def read_ready(proc, args, timeout, fields, log, error):
    """fascia.read_ready() with each of fields in the line; raises error
    (with log() in its message) when it is not so."""
    try:
        line = fascia.read_ready(proc, timeout)
    except fascia.NotReady as e:
        raise error("%s: %s; log:\n%s" % (" ".join(args), e, log()))
    if not all(f in line for f in fields):
        raise error("unexpected first line %r; log:\n%s" % (line, log()))
    return line


def under_valgrind(argv):
    """argv, prefixed with memcheck when its program is in FASCIA_VALGRIND."""
    if os.path.basename(argv[0]) not in VALGRIND:
        return argv
    # --fair-sched: memcheck runs one thread at a time; without a fair
    # lock the main loop can keep the control thread off for many ticks
    return ["valgrind", "--quiet", "--fair-sched=yes", "--error-exitcode=%d" % VALGRIND_EXIT,
            "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
            "--log-file=/tmp/fascia-valgrind.%p.log"] + argv


START_TIMEOUT_S = 5.0 * SLOW
STOP_TIMEOUT_S = 5.0 * SLOW
CTL_TIMEOUT_MS = 2000


def s16(v):
    return v - 65536 if v >= 32768 else v


def wait_until(predicate, timeout, interval=0.005, what=None):
    """Poll predicate() until it returns a true value (returned) or timeout
    seconds pass (AssertionError naming `what` and the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.2fs waiting for %s (last: %r)"
                                 % (timeout, what or predicate, last))
        time.sleep(interval)


# --------------------------------------------------------------------------
# The simulator process and its control socket

class SimStartError(AssertionError):
    pass


class Sim:
    """One fascia-sim process on ephemeral loopback ports."""

    _zctx = zmq.Context.instance()

    def __init__(self, *args, timeout=START_TIMEOUT_S, port_arg=True):
        if not os.access(SIM_BIN, os.X_OK):
            pytest.fail("no simulator binary at %s (set FASCIA_BUILD, run make)"
                        % SIM_BIN)
        self.args = [SIM_BIN] + (["-p", "0"] if port_arg else []) + \
            ["-c", "tcp://127.0.0.1:*"] + [str(a) for a in args]
        self.stderr_path = "/tmp/fascia-sim-test.%d.%d.err" % (os.getpid(), id(self))
        self._err = open(self.stderr_path, "w+b")
        self.proc = subprocess.Popen(under_valgrind(self.args), stdout=subprocess.PIPE,
                                     stderr=self._err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.killed = False
        self.sock = None
        self.next_id = 0
        self.started_at = time.monotonic()
        try:
            self.ready_line = self._read_ready(timeout)
        except BaseException:
            self.kill()
            self._drop_stderr()
            raise
        self.ready_at = time.monotonic()
        fields = fascia.ready_fields(self.ready_line)
        self.modbus = fields["modbus"].split(",")
        self.control = fields["control"]
        self.ports = []
        self.ptys = []
        for m in self.modbus:
            if m.startswith("tcp:"):
                self.ports.append(int(m.rsplit(":", 1)[1]))
            elif m.startswith("rtu:"):
                self.ptys.append(m[4:])
        self.port = self.ports[0] if self.ports else None

    def stderr(self):
        self._err.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _read_ready(self, timeout):
        return read_ready(self.proc, self.args, timeout, ("modbus=", "control="),
                          self.stderr, SimStartError)

    def alive(self):
        return self.proc.poll() is None

    def uptime_ms(self):
        """Milliseconds since the ready line (an upper bound on sim time)."""
        return (time.monotonic() - self.started_at) * 1000.0

    # ---- control socket
    def _socket(self):
        if self.sock is None:
            s = self._zctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, CTL_TIMEOUT_MS)
            s.setsockopt(zmq.SNDTIMEO, CTL_TIMEOUT_MS)
            s.connect(self.control)
            self.sock = s
        return self.sock

    def _drop_socket(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def ctl_raw(self, data):
        """Send raw bytes as one request; return the reply parsed as JSON.
        A REQ socket that timed out is recreated (its state is stuck)."""
        s = self._socket()
        try:
            s.send(data)
            reply = s.recv()
        except zmq.Again:
            self._drop_socket()
            raise AssertionError("no control reply within %d ms (sim alive: %s); stderr:\n%s"
                                 % (CTL_TIMEOUT_MS, self.alive(), self.stderr()[-2000:]))
        try:
            return json.loads(reply)
        except ValueError:
            raise AssertionError("control reply is not JSON: %r" % reply[:200])

    def ctl(self, cmd, **args):
        """One control request {"v":1,"id":N,"cmd":cmd, **args} -> reply dict
        (ok or not; see ok())."""
        self.next_id += 1
        req = {"v": 1, "id": self.next_id, "cmd": cmd}
        req.update(args)
        rep = self.ctl_raw(json.dumps(req).encode())
        assert rep.get("v") == 1, rep
        assert rep.get("id") == self.next_id, ("reply id does not match request", req, rep)
        return rep

    def ok(self, cmd, **args):
        """ctl() that must succeed; returns the result object."""
        rep = self.ctl(cmd, **args)
        assert rep.get("ok") is True, ("control %s %r refused" % (cmd, args), rep)
        assert isinstance(rep.get("result"), dict), rep
        return rep["result"]

    def inject(self, fault, **args):
        return self.ok("inject", fault=fault, **args)

    def clear(self, fault="all", **args):
        return self.ok("clear", fault=fault, **args)

    def status(self, **args):
        return self.ok("status", **args)

    def stats(self, **args):
        return self.ok("stats", **args)

    # ---- stopping
    def stop(self):
        """SIGTERM by pid, SIGKILL after 5 s; returns the exit status."""
        self._drop_socket()
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
                self.killed = True
                raise AssertionError("fascia-sim pid %d ignored SIGTERM for %.0fs"
                                     % (self.pid, STOP_TIMEOUT_S))
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        return self.proc.returncode

    def stop_checked(self):
        """stop(), then check stdout held nothing after the ready line."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        rest = b""
        if self.proc.poll() is not None and not self.proc.stdout.closed:
            rest = self.proc.stdout.read()
        rc = self.stop()
        assert rest.strip() == b"", \
            "stdout after the ready line (it must be the only line): %r" % rest[:300]
        return rc

    def kill(self):
        self.killed = True
        self._drop_socket()
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()

    def finish(self):
        """Stop and check it exited 0 (unless the test killed it)."""
        try:
            if self.killed:
                return
            rc = self.stop_checked()
            assert rc == 0, "fascia-sim exited %r; stderr:\n%s" % (rc, self.stderr()[-3000:])
        finally:
            self._drop_stderr()

    def _drop_stderr(self):
        self._err.close()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass


@pytest.fixture
def start_sim():
    """start_sim(*args) -> Sim; every one started is stopped at teardown and
    must exit 0."""
    started = []

    def start(*args, **kw):
        s = Sim(*args, **kw)
        started.append(s)
        return s

    yield start
    errors = []
    for s in started:
        try:
            s.finish()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def sim(start_sim):
    return start_sim()


# --------------------------------------------------------------------------
# Modbus: a controller doing FC23 exchanges (pymodbus)

class BlockR:
    """Block R (100..147) as read, with names."""

    def __init__(self, regs):
        assert len(regs) == 48, "block R read returned %d registers" % len(regs)
        self.regs = list(regs)
        self.at = time.monotonic()

    def reg(self, addr):
        return self.regs[addr - R]

    map_version = property(lambda s: s.reg(REG_MAP_VERSION))
    chambers = property(lambda s: s.reg(REG_CHAMBERS))
    status = property(lambda s: s.reg(REG_STATUS))
    fault = property(lambda s: s.reg(REG_FAULT))
    heartbeat_echo = property(lambda s: s.reg(REG_HEARTBEAT_ECHO))
    sample = property(lambda s: s.reg(REG_SAMPLE))
    supply = property(lambda s: s16(s.reg(REG_SUPPLY)) / 10.0)
    hw_relief = property(lambda s: s16(s.reg(REG_HW_RELIEF)) / 10.0)
    uptime_s = property(lambda s: (s.reg(REG_UPTIME_HI) << 16) | s.reg(REG_UPTIME_HI + 1))

    def pressure(self, chamber):
        """Chamber 1-based, mmHg."""
        return s16(self.reg(REG_PRESSURE + chamber - 1)) / 10.0

    def valve(self, chamber):
        return self.reg(REG_VALVE + chamber - 1)

    def has(self, bit):
        return bool(self.status & bit)

    def __repr__(self):
        return ("BlockR(status=0x%03x fault=%d sample=%d supply=%.1f p=%s valves=%s)"
                % (self.status, self.fault, self.sample, self.supply,
                   [self.pressure(i) for i in range(1, 9)],
                   [self.valve(i) for i in range(1, 9)]))


class ModbusError(AssertionError):
    pass


class Device:
    """A controller: one FC23 per exchange, write 0..31 then read 100..147.
    The heartbeat changes on every exchange unless told otherwise.
    WATCHDOG_MS defaults to 5000 so that a test's pauses (control requests)
    do not trip the watchdog; the watchdog test sets it."""

    def __init__(self, port, unit=1, timeout=1.0, host="127.0.0.1"):
        self.port, self.unit, self.host, self.timeout = port, unit, host, timeout
        self.client = None
        self.heartbeat = 0
        self.command = IDLE
        self.watchdog_ms = 5000
        self.limit = 100.0
        self.pump = 1
        self.setpoints = [0.0] * 16
        self.beat = True        # change HEARTBEAT on every exchange
        self.last = None
        self.connect()

    def connect(self):
        self.close()
        self.client = ModbusTcpClient(self.host, port=self.port, timeout=self.timeout,
                                      retries=0, retry_on_empty=False,
                                      close_comm_on_error=True, reconnect_delay=0)
        if not self.client.connect():
            raise ModbusError("cannot connect to 127.0.0.1:%d" % self.port)

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = None

    def block_w(self):
        w = [0] * 32
        w[REG_HEARTBEAT] = self.heartbeat
        w[REG_COMMAND] = self.command
        w[REG_WATCHDOG_MS] = self.watchdog_ms
        w[REG_LIMIT] = int(round(self.limit * 10))
        w[REG_PUMP] = self.pump
        for i, sp in enumerate(self.setpoints):
            w[REG_SETPOINT + i] = int(round(sp * 10)) & 0xFFFF
        return w

    def exchange(self, command=None, setpoints=None, **kw):
        """One FC23.  command/setpoints (list of mmHg, chamber 1 first, or a
        dict {chamber: mmHg}) and any other attribute given (beat=False stops
        the heartbeat, watchdog_ms=, limit=, heartbeat=) are remembered for
        the next exchanges.
        Returns BlockR; raises ModbusError on an error reply."""
        if command is not None:
            self.command = command
        if setpoints is not None:
            if isinstance(setpoints, dict):
                for ch, v in setpoints.items():
                    self.setpoints[ch - 1] = float(v)
            else:
                self.setpoints = [float(v) for v in setpoints] + [0.0] * (16 - len(setpoints))
        for k, v in kw.items():
            setattr(self, k, v)
        if self.beat:
            self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        if self.client is None:
            self.connect()
        try:
            # pymodbus 3.0.0 (Debian): this request takes write_registers=
            # and unit= (values=/slave= are silently ignored here).
            rr = self.client.readwrite_registers(read_address=R, read_count=48,
                                                 write_address=0,
                                                 write_registers=self.block_w(),
                                                 unit=self.unit)
        except Exception as e:  # pymodbus raises ConnectionException & co
            self.close()
            raise ModbusError("FC23 failed: %r" % e)
        if rr.isError():
            raise ModbusError("FC23 error reply: %r" % rr)
        self.last = BlockR(rr.registers)
        return self.last

    def run_until(self, pred, timeout, interval=0.01, what=None, **kw):
        """Exchange every `interval` s until pred(BlockR) is true: returns
        (BlockR, seconds it took).  kw as exchange() (applied once)."""
        t0 = time.monotonic()
        first = True
        while True:
            b = self.exchange(**kw) if first else self.exchange()
            first = False
            if pred(b):
                return b, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError("timed out after %.2fs: %s; last %r"
                                     % (timeout, what or pred, b))
            time.sleep(interval)

    def run_for(self, seconds, interval=0.01, **kw):
        """Exchange for `seconds`; returns every BlockR read."""
        out = []
        t0 = time.monotonic()
        first = True
        while time.monotonic() - t0 < seconds:
            out.append(self.exchange(**kw) if first else self.exchange())
            first = False
            time.sleep(interval)
        return out

    def vent_and_reset(self, timeout=5.0):
        """VENT until every chamber reads < 4 mmHg, then RESET; returns the
        BlockR of the RESET exchange."""
        self.setpoints = [0.0] * 16
        self.beat = True
        # The firmware judges RESET on its next (noisy, 0.1 mmHg sd) reading:
        # vent to a margin below its 5 mmHg rule so that reading is below too.
        self.run_until(lambda b: all(b.pressure(i) < 4.0 for i in range(1, b.chambers + 1)),
                       timeout, command=VENT, what="all chambers < 4 mmHg")
        b = self.exchange(command=RESET)
        self.command = IDLE
        return b


@pytest.fixture
def device_factory():
    made = []

    def make(port, **kw):
        d = Device(port, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture
def dev(sim, device_factory):
    return device_factory(sim.port)


# --------------------------------------------------------------------------
# Modbus TCP by hand

class RawModbus:
    """A socket for hand-made Modbus TCP frames."""

    def __init__(self, port, timeout=1.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tid = 0
        self.buf = b""

    def close(self):
        self.sock.close()

    @staticmethod
    def frame(pdu, unit=1, tid=1, proto=0, length=None):
        if length is None:
            length = len(pdu) + 1
        return struct.pack(">HHHB", tid, proto, length, unit) + pdu

    def send_pdu(self, pdu, unit=1):
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(self.frame(pdu, unit=unit, tid=self.tid))
        return self.tid

    def recv_frame(self, timeout=1.0):
        """One MBAP frame -> (tid, proto, unit, pdu).  Raises socket.timeout,
        ConnectionError (closed), or ValueError (not a sane MBAP frame)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 7:
                tid, proto, length, unit = struct.unpack(">HHHB", self.buf[:7])
                if proto != 0 or length < 2 or length > 254:
                    raise ValueError("bad MBAP header %r" % self.buf[:16])
                if len(self.buf) >= 6 + length:
                    pdu = self.buf[7:6 + length]
                    self.buf = self.buf[6 + length:]
                    return tid, proto, unit, pdu
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply within %.2fs (have %r)"
                                     % (timeout, self.buf[:32]))
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by the simulator (have %r)"
                                      % self.buf[:32])
            self.buf += chunk

    def request(self, pdu, unit=1, timeout=1.0):
        """Send a PDU, return the reply PDU (checked: same tid and unit)."""
        tid = self.send_pdu(pdu, unit=unit)
        rtid, _, runit, rpdu = self.recv_frame(timeout)
        if rtid != tid or runit != unit:
            raise ValueError("reply tid/unit %d/%d for request %d/%d: %r"
                             % (rtid, runit, tid, unit, rpdu))
        return rpdu


def pdu_read(addr, n, fc=3):
    return struct.pack(">BHH", fc, addr, n)


def pdu_fc23(write_addr, values, read_addr, read_n):
    return struct.pack(">BHHHHB", 0x17, read_addr, read_n, write_addr, len(values),
                       2 * len(values)) + struct.pack(">%dH" % len(values), *values)


def pdu_fc16(addr, values, byte_count=None):
    if byte_count is None:
        byte_count = 2 * len(values)
    return struct.pack(">BHHB", 0x10, addr, len(values), byte_count) + \
        struct.pack(">%dH" % len(values), *values)


def is_valid_fc23_reply(pdu, read_n=48):
    return (len(pdu) == 2 + 2 * read_n and pdu[0] == 0x17 and pdu[1] == 2 * read_n)


def exception_of(pdu, fc):
    """The exception code in a reply PDU, or None if it is not an exception."""
    if len(pdu) == 2 and pdu[0] == (fc | 0x80):
        return pdu[1]
    return None


def healthy_block_w(heartbeat=1):
    w = [0] * 32
    w[REG_HEARTBEAT] = heartbeat
    w[REG_WATCHDOG_MS] = 5000
    w[REG_LIMIT] = 1000
    w[REG_PUMP] = 1
    return w


def assert_serving(sim, what="after the abuse"):
    """A fresh client gets a normal FC23 answer and the control socket
    answers status: the simulator survived."""
    assert sim.alive(), "fascia-sim died %s; stderr:\n%s" % (what, sim.stderr()[-3000:])
    c = RawModbus(sim.port)
    try:
        rpdu = c.request(pdu_fc23(0, healthy_block_w(7), R, 48))
        assert is_valid_fc23_reply(rpdu), "FC23 %s answered %r" % (what, rpdu[:16])
        regs = struct.unpack(">48H", rpdu[2:])
        assert regs[0] == MAP_VERSION
    finally:
        c.close()
    st = sim.status()
    assert "chambers" in st
