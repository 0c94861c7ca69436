#!/usr/bin/python3
"""make demo: fascia-sim and fasciad on free loopback ports, a gentle-wave
session on the simulated device, shown live until it ends.

  1. fascia-sim -p 0 -c tcp://127.0.0.1:*      (its ready line: the ports)
  2. fasciad -f -c CONF, CONF a temporary file: control and publish on free
     ports with CURVE on (fasciactl keygen makes the daemon's certificate
     and an operator's, "demo", in the temporary directory), the
     repository's etc/profiles, device "sim" at the simulator
  3. waits for the device to be idle, starts gentle-wave
  3b. when build/fascia-web is built: the web console on a free loopback
     port (its own certificate, `gateway = yes`, admitted by fasciad; a
     demo user "demo" with a password made up for this run, printed with
     the address: a demo's only, gone with its temporary directory)
  4. shows it: on a terminal build/fascia-top (q quits), else build/fasciactl
     watch, else plain lines from the Python module's Monitor; when stdout
     is not a terminal, always plain lines (DEMO_VIEWER=plain|fasciactl|
     fascia-top overrides the choice)
  5. ends when the session ends (the device idle again), when the viewer is
     quit, on Ctrl-C, or after DEMO_SECONDS (environment) seconds; then stops
     the session, fasciad (SIGTERM) and the simulator (SIGTERM), by pid,
     SIGKILL after 5 s, and checks neither is left.

The simulator and the daemon run in their own sessions so that Ctrl-C on
the terminal reaches the demo (and the viewer) only: the demo stops them in
order.  Exit status 0 on a normal end, 1 when something failed (the device
faulted, a program would not start).
"""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "python"))

import fascia  # noqa: E402

BUILD = os.path.abspath(os.environ.get("FASCIA_BUILD", os.path.join(REPO, "build")))
PROFILE = "gentle-wave"
DEVICE = "sim"
START_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
RELEASE_TIMEOUT_S = 15.0
VIEWER_FAIL_S = 2.0      # a viewer that exits non-zero this soon did not work

CONFIG = """# written by clients/demo.py
[daemon]
control = tcp://127.0.0.1:*
publish = tcp://127.0.0.1:*
profiles = {profiles}
journal = {journal}
tick_hz = 50
publish_hz = 10

[security]
curve = yes
server_cert = {keys}/server.key_secret
clients = {clients}

[device {device}]
transport = tcp
address = 127.0.0.1:{port}
chambers = 8
limit_mmhg = 80
"""


# The console's configuration (docs/console.md): plain HTTP, as it listens
# on the loopback interface only.
WEB_CONFIG = """# written by clients/demo.py
[web]
listen = 127.0.0.1:0
users = {users}
cert = {keys}/console.key_secret
static = {static}

[room demo]
control = {control}
publish = {publish}
server_key = {keys}/server.key
"""
WEB_USER = "demo"


class DemoError(Exception):
    pass


class Stop(Exception):
    """SIGTERM to the demo: stop like Ctrl-C."""


def say(text):
    print("demo: " + text, flush=True)


def read_ready(proc, name, log_path, timeout=START_TIMEOUT_S):
    """The fields of proc's ready line ("ready k=v ...") once it is there."""
    try:
        return fascia.ready_fields(fascia.read_ready(proc, timeout))
    except fascia.NotReady as e:
        raise DemoError("%s: %s%s" % (name, e, tail(log_path)))


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            text = f.read().splitlines()[-lines:]
    except OSError:
        return ""
    return ("; its log:\n  " + "\n  ".join(text)) if text else ""


class Procs:
    """The programs the demo started, stopped in reverse order by pid."""

    def __init__(self):
        self.started = []      # (name, Popen)

    def start(self, name, argv, log_path):
        exe = argv[0]
        if not os.access(exe, os.X_OK):
            raise DemoError("no %s at %s: run make (or set FASCIA_BUILD)" % (name, exe))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append((name, proc))
        return proc

    def stop_all(self):
        """SIGTERM each (last started first), SIGKILL after STOP_TIMEOUT_S;
        returns the names of those that needed SIGKILL or are still there."""
        trouble = []
        for name, proc in reversed(self.started):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    say("%s (pid %d) ignored SIGTERM: SIGKILL" % (name, proc.pid))
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    trouble.append(name)
            if proc.stdout is not None:
                proc.stdout.close()
            if os.path.exists("/proc/%d" % proc.pid):
                trouble.append(name)
        return trouble


# --------------------------------------------------------------------------
# showing the session

def state_line(msg, t):
    d = msg.data
    parts = ["t=%5.1fs" % t, "%-9s" % d.get("state")]
    s = d.get("session")
    if s:
        parts.append("step %s cycle %s remaining %5.1fs" % (
            s.get("step"), s.get("cycle"), s.get("remaining_s") or 0.0))
    # before the first reading there are no chambers and no supply: that
    # is unknown, and never shown as 0
    chambers = d.get("chambers") or []
    if chambers:
        pressures = " ".join("%5.1f" % c["pressure"]
                             if isinstance(c.get("pressure"), (int, float))
                             else "  ?  " for c in chambers[:4])
        parts.append("chambers 1-4 %s mmHg" % pressures)
    else:
        parts.append("chambers: no reading yet")
    if isinstance(d.get("supply"), (int, float)):
        parts.append("supply %.0f" % d["supply"])
    alarms = d.get("alarms") or []
    if alarms:
        parts.append("ALARM " + ",".join(a.get("id", "?") for a in alarms))
    return "  ".join(parts)


class Watch:
    """Follows the device's state to decide when the demo ends."""

    def __init__(self, monitor, seconds):
        self.monitor = monitor
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds if seconds > 0 else None
        self.seen_running = False
        self.end = None          # why the demo ends; None while it goes on
        self.failed = False

    def elapsed(self):
        return time.monotonic() - self.t0

    def poll(self, timeout):
        """Read messages for up to timeout s; returns them (end set when the
        demo should end)."""
        out = []
        stop_at = time.monotonic() + timeout
        while self.end is None:
            left = stop_at - time.monotonic()
            if self.deadline is not None:
                left = min(left, self.deadline - time.monotonic())
            if left <= 0:
                break
            msg = self.monitor.next(left)
            if msg is None:
                break
            out.append(msg)
            self.note(msg)
        if self.end is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.end = "DEMO_SECONDS elapsed"
        return out

    def note(self, msg):
        if msg.kind != "state":
            return
        st = msg.data.get("state")
        if st in ("running", "paused", "releasing"):
            self.seen_running = True
        elif st == "idle" and self.seen_running:
            self.end = "the session ended"
        elif st in ("fault", "offline"):
            alarms = ", ".join("%s: %s" % (a.get("id"), a.get("message"))
                               for a in msg.data.get("alarms") or []) or "no alarm"
            self.end = "the device is %s (%s)" % (st, alarms)
            self.failed = True


def show_plain(watch):
    """Print the state (a line a second when not a terminal, a live line on
    one), events and alarms, until watch.end."""
    tty = sys.stdout.isatty()
    shown = -1.0
    last = None
    while watch.end is None:
        for msg in watch.poll(0.2):
            if msg.kind == "state":
                last = msg
                continue
            text = msg.data.get("text") or msg.data.get("message") or msg.data.get("kind")
            if msg.kind == "event" and msg.data.get("kind") == "link":
                text = "link " + str(text)
            elif msg.kind == "alarm":
                text = "%s %s: %s" % (msg.data.get("alarm"), msg.data.get("kind"), text)
            if tty:
                sys.stdout.write("\r\033[K")
            print("%s %s: %s" % (msg.kind, msg.device, text), flush=True)
        if last is not None and (tty or watch.elapsed() - shown >= 1.0 or watch.end):
            line = state_line(last, watch.elapsed())
            if tty:
                sys.stdout.write("\r\033[K" + line)
                sys.stdout.flush()
            else:
                print(line, flush=True)
            shown = watch.elapsed()
    if tty:
        print()


def show_external(argv, watch, env):
    """Run a viewer on the terminal until it exits (the operator quit) or
    watch.end.  Returns False when the viewer failed at once (show_plain
    then takes over)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env)
    try:
        while watch.end is None:
            watch.poll(0.2)
            rc = proc.poll()
            if rc is not None:
                if rc != 0 and time.monotonic() - started < VIEWER_FAIL_S:
                    say("%s exited %d at once: plain output instead" % (argv[0], rc))
                    return False
                watch.end = "the viewer was quit"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if sys.stdout.isatty():
                subprocess.run(["stty", "sane"], stdin=sys.stdin, check=False)
    return True


def viewers(control, publish):
    """The external viewers to try, best first."""
    choice = os.environ.get("DEMO_VIEWER")
    if choice is None:
        choice = "auto" if sys.stdout.isatty() and sys.stdin.isatty() else "plain"
    top = os.path.join(BUILD, "fascia-top")
    ctl = os.path.join(BUILD, "fasciactl")
    out = []
    if choice in ("auto", "fascia-top") and os.access(top, os.X_OK):
        out.append([top, "--endpoint", control, "--publish", publish, "--device", DEVICE])
    if choice in ("auto", "fasciactl") and os.access(ctl, os.X_OK):
        out.append([ctl, "--endpoint", control, "--publish", publish, "watch", DEVICE])
    return out


# --------------------------------------------------------------------------

def run(procs, workdir, seconds):
    sim_log = os.path.join(workdir, "fascia-sim.log")
    sim = procs.start("fascia-sim", [os.path.join(BUILD, "fascia-sim"), "-p", "0",
                                     "-c", "tcp://127.0.0.1:*"], sim_log)
    fields = read_ready(sim, "fascia-sim", sim_log)
    port = int(fields["modbus"].split(",")[0].rsplit(":", 1)[1])

    keys, clients = make_certificates(workdir)
    conf = os.path.join(workdir, "fasciad.conf")
    with open(conf, "w") as f:
        f.write(CONFIG.format(profiles=os.path.join(REPO, "etc", "profiles"),
                              journal=os.path.join(workdir, "journal.db"),
                              keys=keys, clients=clients,
                              device=DEVICE, port=port))
    cert = os.path.join(keys, "demo.key_secret")
    server_key = os.path.join(keys, "server.key")
    d_log = os.path.join(workdir, "fasciad.log")
    daemon = procs.start("fasciad", [os.path.join(BUILD, "fasciad"), "-f", "-c", conf], d_log)
    say("fascia-sim pid %d, fasciad pid %d" % (sim.pid, daemon.pid))
    fields = read_ready(daemon, "fasciad", d_log)
    control, publish = fields["control"], fields["publish"]
    say("device %s at 127.0.0.1:%d; fasciad control %s publish %s"
        % (DEVICE, port, control, publish))

    console = start_console(procs, workdir, keys, control, publish)

    ctl = os.path.join(BUILD, "fasciactl")
    say("CURVE on: the operator certificate %s, the daemon's public key %s"
        % (cert, server_key))
    if os.access(ctl, os.X_OK):
        say("in another terminal: FASCIA_CONTROL=%s FASCIA_PUBLISH=%s "
            "FASCIA_CERT=%s FASCIA_SERVER_KEY=%s %s status"
            % (control, publish, cert, server_key, ctl))
    client = fascia.Client(control, timeout=4.0, cert=cert, server_key=server_key)
    monitor = fascia.Monitor(publish, topics=("state." + DEVICE, "event." + DEVICE,
                                              "alarm." + DEVICE),
                             cert=cert, server_key=server_key)
    try:
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while client.status(DEVICE)["state"] != "idle":
            if time.monotonic() > deadline:
                raise DemoError("device %s not idle within %.0f s%s"
                                % (DEVICE, IDLE_TIMEOUT_S, tail(d_log)))
            time.sleep(0.05)
        res = client.start(DEVICE, PROFILE)
        say("started %s on %s: %s%s" % (PROFILE, DEVICE, res["state"],
                                        "" if seconds <= 0 else
                                        " (for %g s: DEMO_SECONDS)" % seconds))
        watch = Watch(monitor, seconds)
        try:
            env = dict(os.environ, FASCIA_CONTROL=control, FASCIA_PUBLISH=publish,
                       FASCIA_CERT=cert, FASCIA_SERVER_KEY=server_key)
            external = viewers(control, publish)
            if console and external and sys.stdin.isatty() and sys.stdout.isatty():
                # fascia-top takes the whole terminal: give the reader the
                # time to open the console's address first
                say("open %s in a browser, then press Enter for %s (the console stays "
                    "up until the demo ends)" % (console, os.path.basename(external[0][0])))
                input()
            for argv in external:
                if show_external(argv, watch, env):
                    break
            else:
                show_plain(watch)
            say("end: %s" % watch.end)
        except (KeyboardInterrupt, Stop):
            print()
            say("end: interrupted")
        finally:
            stop_session(client)
        return 1 if watch.failed else 0
    finally:
        monitor.close()
        client.close()


def make_certificates(workdir):
    """The daemon's certificate and the operator "demo"'s, made by
    fasciactl keygen in workdir/keys; demo's public one in workdir/clients,
    the directory fasciad admits from, and, when the console is built, the
    console's: an operator with gateway = yes, so that it may name the
    person it acts for."""
    keys = os.path.join(workdir, "keys")
    clients = os.path.join(workdir, "clients")
    os.mkdir(keys, 0o700)
    os.mkdir(clients)
    certs = [("server", "observer"), ("demo", "operator")]
    if os.access(os.path.join(BUILD, "fascia-web"), os.X_OK):
        certs.append(("console", "operator"))
    for name, role in certs:
        r = subprocess.run([os.path.join(BUILD, "fasciactl"), "keygen", name,
                            "--role", role, "-d", keys],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise DemoError("fasciactl keygen %s failed: %s" % (name, r.stderr.strip()))
        if name == "server":
            continue
        if name == "console":
            add_gateway(os.path.join(keys, "console.key"))
        shutil.copy(os.path.join(keys, name + ".key"), clients)
    return keys, clients


def add_gateway(public_file):
    """gateway = "yes" in a public certificate's metadata (fasciactl keygen
    has no option for it; docs/security.md)."""
    with open(public_file) as f:
        lines = f.read().splitlines()
    lines.insert(lines.index("metadata") + 1, '    gateway = "yes"')
    with open(public_file, "w") as f:
        f.write("\n".join(lines) + "\n")


def start_console(procs, workdir, keys, control, publish):
    """build/fascia-web on a free loopback port, a client of the demo's
    fasciad with the console certificate, and its one user, "demo", with a
    password made up for this run (stdin of --add-user, as a person would
    type it).  Prints the address, the name and the password.  A console
    that does not start is said and left out: the demo goes on without."""
    web = os.path.join(BUILD, "fascia-web")
    if not os.access(web, os.X_OK) or not os.path.exists(os.path.join(keys, "console.key")):
        return None
    users = os.path.join(workdir, "web-users")
    password = secrets.token_urlsafe(9)
    r = subprocess.run([web, "--add-user", WEB_USER, "--role", "operator", "-u", users],
                       input=password + "\n", capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        say("the web console is left out: fascia-web --add-user failed: %s" % r.stderr.strip())
        return None
    conf = os.path.join(workdir, "fascia-web.conf")
    with open(conf, "w") as f:
        f.write(WEB_CONFIG.format(users=users, keys=keys, control=control, publish=publish,
                                  static=os.path.join(REPO, "clients", "fascia-web", "static")))
    log = os.path.join(workdir, "fascia-web.log")
    proc = procs.start("fascia-web", [web, "-c", conf], log)
    try:
        fields = read_ready(proc, "fascia-web", log)
    except DemoError as e:
        say("the web console is left out: %s" % e)
        return None
    say("fascia-web pid %d" % proc.pid)
    say("the web console: %s (log in as %s, password %s: this demo's only)"
        % (fields["listen"], WEB_USER, password))
    return fields["listen"]


def stop_session(client):
    """Stop the session and let the chambers release before the daemon goes
    (it would vent on SIGTERM anyway)."""
    try:
        st = client.status(DEVICE)["state"]
        if st in ("running", "paused"):
            say("stop: %s" % client.stop(DEVICE)["state"])
        deadline = time.monotonic() + RELEASE_TIMEOUT_S
        while st not in ("idle", "fault", "offline") and time.monotonic() < deadline:
            time.sleep(0.1)
            st = client.status(DEVICE)["state"]
        say("device %s %s" % (DEVICE, st))
    except fascia.FasciaError as e:
        say("stopping the session: %s" % e)


def main():
    seconds = float(os.environ.get("DEMO_SECONDS") or 0)
    workdir = tempfile.mkdtemp(prefix="fascia-demo.")
    procs = Procs()

    def on_term(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_term)
    rc = 1
    try:
        rc = run(procs, workdir, seconds)
    except (KeyboardInterrupt, Stop):
        print()
        say("interrupted")
        rc = 0
    except (DemoError, fascia.FasciaError) as e:
        say("failed: %s" % e)
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        trouble = procs.stop_all()
        names = ", ".join("%s (pid %d)" % (n, p.pid) for n, p in procs.started)
        if trouble:
            say("had to kill: %s" % ", ".join(trouble))
            rc = 1
        if names:
            say("stopped %s; nothing left running" % names)
        shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
