"""The daemon side of the system tests: one fasciad process with a generated
configuration, its control socket and its publisher.

  Daemon        fasciad -f -c FILE (.control, .publish, .local, .call(),
                .ok(), .subscribe(), .stop(), .kill(), .log()); with
                curve=CurveKeys(...) every socket it makes is a CURVE client
  Sub           a SUB socket whose messages a background thread collects
  CurveKeys     a client's CURVE keys and the server's public key (Z85);
                curve_context(keys) a zmq.Context whose sockets use them
  PROFILES      the short test profiles (name -> document)

Readiness is always polled (the ready line, wait_until on a state), never
slept for; every process is stopped by its pid.
"""
import collections
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import zmq

from conftest import BUILD, SLOW, VALGRIND, read_ready, under_valgrind, wait_until
import fascia  # noqa: E402  (on the path conftest set)

FASCIAD_BIN = os.path.join(BUILD, "fasciad")
DAEMON_START_TIMEOUT_S = 5.0 * SLOW
DAEMON_STOP_TIMEOUT_S = 5.0 * SLOW
CALL_TIMEOUT_MS = 4000   # a device command waits up to 2 s for its verdict

# Short profiles for the tests: 4 chambers, max 40 mmHg, ramps at 10 mmHg/s
# at most (docs/profiles.md).  "wave" completes in 12 s; "long" holds 25 mmHg
# (below the hold_time interlock's 30) for a minute and is stopped by the
# tests that use it.
PROFILES = {
    "wave": {
        "name": "wave", "description": "two short cycles",
        "chambers": 4, "max_pressure_mmhg": 40, "max_ramp_mmhg_s": 10,
        "gradient": "none", "repeat": 2,
        "steps": [
            {"set": {"1": 25, "2": 25, "3": 20, "4": 15}, "ramp_s": 2.5, "hold_s": 1.5},
            {"set": {"all": 0}, "ramp_s": 2.5, "hold_s": 0.5},
        ],
    },
    "long": {
        "name": "long", "description": "hold 25 mmHg",
        "chambers": 4, "max_pressure_mmhg": 40, "max_ramp_mmhg_s": 10,
        "gradient": "none", "repeat": 1,
        "steps": [
            {"set": {"all": 25}, "ramp_s": 2.5, "hold_s": 60},
            {"set": {"all": 0}, "ramp_s": 2.5, "hold_s": 1},
        ],
    },
}

CONFIG = """[daemon]
control = tcp://127.0.0.1:*
publish = tcp://127.0.0.1:*
profiles = {profiles}
journal = {journal}
tick_hz = 50
{valgrind}
[device sim]
address = 127.0.0.1:{port}
chambers = 8
limit_mmhg = 60
"""


def write_profiles(directory, profiles=None):
    os.makedirs(directory, exist_ok=True)
    for name, doc in (PROFILES if profiles is None else profiles).items():
        with open(os.path.join(directory, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)


# Under memcheck (make check-valgrind) fasciad cannot keep a 50 Hz tick:
# its deadline interlock, there to catch an overloaded daemon, is set to its
# widest bound so the run checks memory, not time (the timing is the plain
# run's to check).
VALGRIND_CONFIG = "deadline_ticks = 10\n" if "fasciad" in VALGRIND else ""


def write_config(directory, sim_port, profiles_dir=None, extra=""):
    if profiles_dir is None:
        profiles_dir = os.path.join(directory, "profiles")
        write_profiles(profiles_dir)
    path = os.path.join(directory, "fasciad.conf")
    with open(path, "w") as f:
        f.write(CONFIG.format(profiles=profiles_dir, port=sim_port,
                              journal=os.path.join(directory, "journal.db"),
                              valgrind=VALGRIND_CONFIG) + extra)
    return path


def daemon_env(conf_path):
    """The daemon's environment: a configuration without `journal =` has
    its default journal beside it, as systemd's StateDirectory= would put
    it (/var/lib/fascia is not a test's to write)."""
    return dict(os.environ, STATE_DIRECTORY=os.path.dirname(os.path.abspath(conf_path)))


def run_check(conf_path, timeout=10):
    """fasciad -n -c FILE -> CompletedProcess (text)."""
    return subprocess.run([FASCIAD_BIN, "-n", "-c", conf_path], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=daemon_env(conf_path))


class DaemonStartError(AssertionError):
    pass


# A CURVE client's keys: its own public and secret key and the server's
# public key, each 40 characters of Z85 (bytes, as zmq.auth.load_certificate
# gives them).
CurveKeys = collections.namedtuple("CurveKeys", "public secret server")


def curve_context(keys=None):
    """A new zmq.Context whose every socket is a CURVE client with keys
    (pyzmq applies a context's options to each socket it makes, before the
    caller can connect it); plaintext with keys None.  The caller
    destroys it."""
    ctx = zmq.Context()
    if keys is not None:
        ctx.setsockopt(zmq.CURVE_SERVERKEY, keys.server)
        ctx.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
        ctx.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    return ctx


class Sub:
    """A SUB socket on the daemon's publisher; a thread collects every
    message as (topic, dict, monotonic time of receipt)."""

    def __init__(self, ctx, endpoint, topics=("state.sim", "event.sim", "alarm.sim")):
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.sock.connect(endpoint)
        self.lock = threading.Lock()
        self.msgs = []
        self.bad = []          # frames that were not (topic, JSON object)
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop:
            if not poller.poll(50):
                continue
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                now = time.monotonic()
                try:
                    assert len(frames) == 2
                    msg = json.loads(frames[1])
                    assert isinstance(msg, dict)
                    item = (frames[0].decode(), msg, now)
                except (AssertionError, ValueError, UnicodeDecodeError):
                    with self.lock:
                        self.bad.append(frames)
                    continue
                with self.lock:
                    self.msgs.append(item)

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close(linger=0)

    # ---- reading what was collected
    def all(self, topic=None, since=0):
        with self.lock:
            out = self.msgs[since:]
        if topic is not None:
            out = [m for m in out if m[0] == topic]
        return out

    def mark(self):
        """An index to pass as since= to see only later messages."""
        with self.lock:
            return len(self.msgs)

    def states(self, since=0):
        return [m for _, m, _ in self.all("state.sim", since)]

    def events(self, since=0):
        return [m for _, m, _ in self.all("event.sim", since)]

    def alarms(self, since=0):
        return [m for _, m, _ in self.all("alarm.sim", since)]

    def last_state(self):
        s = self.states()
        return s[-1] if s else None

    def wait_state(self, pred, timeout, since=0, what=None):
        """Wait for a state.sim message (after since) for which pred(msg)
        holds; returns it."""
        def find():
            for m in self.states(since):
                if pred(m):
                    return m
            return None
        return wait_until(find, timeout, interval=0.01,
                          what=what or "a state.sim message matching %s" % pred)

    def wait_for(self, topic, pred, timeout, since=0, what=None):
        def find():
            for _, m, _ in self.all(topic, since):
                if pred(m):
                    return m
            return None
        return wait_until(find, timeout, interval=0.01,
                          what=what or "a %s message matching %s" % (topic, pred))

    def seqs(self, since=0):
        return [m.get("seq") for _, m, _ in self.all(None, since)]


class Daemon:
    """One fasciad -f -c FILE process.  With curve (CurveKeys: a
    [security] curve = yes daemon), its control and SUB sockets are CURVE
    clients with those keys, from a context of its own."""

    _zctx = zmq.Context.instance()

    def __init__(self, conf_path, timeout=DAEMON_START_TIMEOUT_S, args=(), curve=None,
                 env=None):
        if not os.access(FASCIAD_BIN, os.X_OK):
            pytest.fail("no daemon binary at %s (set FASCIA_BUILD, run make)" % FASCIAD_BIN)
        self.curve = curve
        self._own_ctx = None
        if curve is not None:
            self._own_ctx = self._zctx = curve_context(curve)
        self.conf_path = conf_path
        self.args = [FASCIAD_BIN, "-f", "-c", conf_path] + list(args)
        self.stderr_path = conf_path + ".%d.err" % id(self)
        self._err = open(self.stderr_path, "w+b")
        self.proc = subprocess.Popen(under_valgrind(self.args), stdout=subprocess.PIPE,
                                     stderr=self._err, stdin=subprocess.DEVNULL,
                                     env=dict(daemon_env(conf_path), **(env or {})))
        self.pid = self.proc.pid
        self.killed = False
        self.sock = None
        self.client = None
        self.subs = []
        self.next_id = 1000
        try:
            self.ready_line = self._read_ready(timeout)
        except BaseException:
            self.kill()
            self._destroy_ctx()
            raise
        fields = fascia.ready_fields(self.ready_line)
        self.control = fields["control"]
        self.publish = fields["publish"]
        self.local = fields.get("local")      # [security] local = ipc://...

    def log(self):
        self._err.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _read_ready(self, timeout):
        return read_ready(self.proc, self.args, timeout, ("control=", "publish="), self.log,
                          DaemonStartError)

    def alive(self):
        return self.proc.poll() is None

    # ---- control
    def socket(self, kind=zmq.REQ, timeout_ms=CALL_TIMEOUT_MS):
        """A fresh client socket on the control endpoint (the caller closes it)."""
        s = self._zctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, timeout_ms)
        s.setsockopt(zmq.SNDTIMEO, timeout_ms)
        s.connect(self.control)
        return s

    def _socket(self):
        if self.sock is None:
            self.sock = self.socket()
        return self.sock

    def _drop_socket(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def call_raw(self, data):
        """Send bytes as one request on the REQ socket; the reply as JSON."""
        s = self._socket()
        try:
            s.send(data)
            reply = s.recv()
        except zmq.Again:
            self._drop_socket()
            raise AssertionError("no reply from fasciad within %d ms to %r (alive: %s); log:\n%s"
                                 % (CALL_TIMEOUT_MS, data[:200], self.alive(),
                                    self.log()[-3000:]))
        try:
            rep = json.loads(reply)
        except ValueError:
            raise AssertionError("reply is not JSON: %r" % reply[:300])
        assert isinstance(rep, dict) and rep.get("v") == 1, rep
        return rep

    def call(self, cmd, **args):
        """{"v":1,"id":N,"cmd":cmd,**args} through the fascia module's
        Client -> the reply dict (ok or not)."""
        if self.client is None:
            self.client = fascia.Client(self.control, timeout=CALL_TIMEOUT_MS / 1000.0,
                                        context=self._zctx)
        req = {"cmd": cmd}
        req.update(args)
        try:
            rep = self.client.request(req)
        except fascia.Unreachable:
            self.client.close()
            self.client = None
            raise AssertionError("no reply from fasciad within %d ms to %r (alive: %s); log:\n%s"
                                 % (CALL_TIMEOUT_MS, req, self.alive(), self.log()[-3000:]))
        assert rep.get("v") == 1 and isinstance(rep.get("ok"), bool), rep
        if rep["ok"]:
            assert isinstance(rep.get("result"), dict), rep
        else:
            err = rep.get("error")
            assert isinstance(err, dict) and isinstance(err.get("code"), str) \
                and isinstance(err.get("message"), str), rep
        return rep

    def ok(self, cmd, **args):
        rep = self.call(cmd, **args)
        assert rep["ok"] is True, ("fasciad refused %s %r" % (cmd, args), rep)
        return rep["result"]

    def status(self):
        return self.ok("status", device="sim")

    def wait_status(self, pred, timeout, what=None):
        return wait_until(lambda: (lambda st: st if pred(st) else None)(self.status()),
                          timeout, interval=0.02, what=what or pred)

    def subscribe(self, topics=("state.sim", "event.sim", "alarm.sim"), timeout=3.0):
        """A Sub, returned once it receives (the SUB join is asynchronous:
        wait for the first periodic state message)."""
        sub = Sub(self._zctx, self.publish, topics)
        self.subs.append(sub)
        wait_until(lambda: sub.all(), timeout, interval=0.01,
                   what="a first published message")
        return sub

    # ---- stopping
    def signal(self, sig):
        assert self.alive(), "fasciad already exited (%r); log:\n%s" % (
            self.proc.returncode, self.log()[-3000:])
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=DAEMON_STOP_TIMEOUT_S):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()
            self.killed = True
            raise AssertionError("fasciad pid %d did not exit within %.0fs; log:\n%s"
                                 % (self.pid, timeout, self.log()[-3000:]))

    def stop(self):
        """SIGTERM by pid; returns the exit status (SIGKILL after 5 s is a
        failure)."""
        self._drop_socket()
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            self.wait_exit()
        return self.proc.returncode

    def kill(self):
        """SIGKILL by pid (the test's choice: no exit status is checked)."""
        self.killed = True
        self._drop_socket()
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def finish(self):
        """Stop it and check it exited 0, unless the test killed it."""
        try:
            for s in self.subs:
                s.close()
            self.subs = []
            if self.killed:
                self.kill()
                return
            rc = self.stop()
            assert rc == 0, "fasciad exited %r; log:\n%s" % (rc, self.log()[-3000:])
        finally:
            if not self.proc.stdout.closed:
                self.proc.stdout.close()
            self._err.close()
            self._destroy_ctx()

    def _destroy_ctx(self):
        """The context of a curve= daemon, with any socket left on it."""
        if self._own_ctx is not None:
            self._drop_socket()
            self._own_ctx.destroy(linger=0)
            self._own_ctx = None


# --------------------------------------------------------------------------
# fascia-web (issue 15): the console's certificate, its users, its
# configuration and its process.  A room is a Daemon; the console is a
# CURVE client of each with a certificate of its own (gateway = yes).

WEB_BIN = os.path.join(BUILD, "fascia-web")
FASCIACTL_BIN = os.path.join(BUILD, "fasciactl")
WEB_START_TIMEOUT_S = 5.0 * SLOW
WEB_STOP_TIMEOUT_S = 5.0 * SLOW
WEB_STATIC_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                              "clients", "fascia-web", "static"))


def console_cert(keys_dir, name="console", role="operator"):
    """The console's certificate, made by `fasciactl keygen NAME --role
    ROLE -d keys_dir`, its public file given `gateway = "yes"` (keygen
    writes name and role only): (public file, secret file).  Copy the
    public file into each daemon's clients directory."""
    os.makedirs(keys_dir, exist_ok=True)
    subprocess.run([FASCIACTL_BIN, "keygen", name, "--role", role, "-d", keys_dir],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    public = os.path.join(keys_dir, name + ".key")
    with open(public) as f:
        text = f.read()
    assert "metadata\n" in text, text
    with open(public, "w") as f:
        f.write(text.replace("metadata\n", 'metadata\n    gateway = "yes"\n', 1))
    return public, os.path.join(keys_dir, name + ".key_secret")


def add_web_user(users_file, name, role, password):
    """fascia-web --add-user NAME --role ROLE -u users_file, the password
    on stdin -> CompletedProcess (text)."""
    return subprocess.run([WEB_BIN, "--add-user", name, "--role", role, "-u", users_file],
                          input=password + "\n", capture_output=True, text=True, timeout=30)


def write_web_config(path, rooms, users=None, cert=None, tls=None, listen="127.0.0.1:0",
                     static=WEB_STATIC_DIR, extra="", web_extra=()):
    """A fascia-web configuration at path.  rooms: [(name, control,
    publish, server_key or None)] (a Daemon's .control and .publish);
    users: the users file or None; cert: the console's secret
    certificate; tls: (cert file, key file) or None; web_extra: more
    lines of [web]; extra: text after the rooms.  Returns path."""
    lines = ["[web]", "listen = %s" % listen] + list(web_extra)
    if static:
        lines.append("static = %s" % static)
    if users:
        lines.append("users = %s" % users)
    if cert:
        lines.append("cert = %s" % cert)
    if tls:
        lines += ["tls_cert = %s" % tls[0], "tls_key = %s" % tls[1]]
    for name, control, publish, server_key in rooms:
        lines += ["", "[room %s]" % name, "control = %s" % control,
                  "publish = %s" % publish]
        if server_key:
            lines.append("server_key = %s" % server_key)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)
    return path


def run_web_check(conf_path, timeout=20):
    """fascia-web -n -c FILE -> CompletedProcess (text)."""
    return subprocess.run([WEB_BIN, "-n", "-c", conf_path], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class WebStartError(AssertionError):
    pass


class Web:
    """One `fascia-web -c FILE` process: .url (from its ready line,
    `ready listen=URL`), .stop() by pid (SIGTERM, must exit 0), .kill(),
    .log() (its stderr)."""

    def __init__(self, conf_path, timeout=WEB_START_TIMEOUT_S, args=()):
        if not os.access(WEB_BIN, os.X_OK):
            pytest.fail("no fascia-web binary at %s (set FASCIA_BUILD, run make)" % WEB_BIN)
        self.conf_path = conf_path
        self.args = [WEB_BIN, "-c", conf_path] + list(args)
        self.stderr_path = conf_path + ".%d.err" % id(self)
        self._err = open(self.stderr_path, "w+b")
        self.proc = subprocess.Popen(under_valgrind(self.args), stdout=subprocess.PIPE,
                                     stderr=self._err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        try:
            self.ready_line = read_ready(self.proc, self.args, timeout, ("listen=",),
                                         self.log, WebStartError)
        except BaseException:
            self.kill()
            self._err.close()
            raise
        self.url = fascia.ready_fields(self.ready_line)["listen"]

    def log(self):
        self._err.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM by pid; its exit status (SIGKILL after the wait is a
        failure)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=WEB_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("fascia-web pid %d did not stop; log:\n%s"
                                     % (self.pid, self.log()[-3000:]))
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def finish(self):
        """Stop it and check it exited 0."""
        try:
            rc = self.stop()
            assert rc == 0, "fascia-web exited %r; log:\n%s" % (rc, self.log()[-3000:])
        finally:
            if not self.proc.stdout.closed:
                self.proc.stdout.close()
            self._err.close()
