"""The README's Quick start and the Python module's README, run as written.

Their code blocks are read from the files themselves (nothing here keeps a
copy of a command or an example), then:

- test_quick_start_runs_as_written runs every command and example of the
  Quick start in order, literally, in a directory laid out like a fresh
  clone after `make` (every other entry a link to the repository's, build/
  a link to FASCIA_BUILD).  The Quick start names fixed ports (1502..1504,
  7410..7414); on a shared machine those may be anyone's, so the run has a
  private network namespace of its own (unshare(1): as root, or in a user
  namespace), where they are free by construction.  That run is this file
  executed as a script inside the namespace (`--quick-start DIR`); it exits
  0 or prints what went wrong.  `make` is not run: the test runs against
  the build it is given.  Background commands (`... &`) are started with
  their output on pipes, waited for by their ready line, and stopped by pid
  at the end.  What the text says happens between commands (an interlock
  trips, the e-stop is pressed while the script waits) the run makes happen
  through the simulator's control socket.
- The Quick start's session example (test_the_session_example_...) and the
  module README's example run against a simulator and a daemon on free
  ports, their endpoints given through FASCIA_CONTROL and FASCIA_PUBLISH.
"""
import fcntl
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("FASCIA_BUILD", os.path.join(REPO, "build")))
README = os.path.join(REPO, "README.md")
PY_README = os.path.join(REPO, "clients", "python", "README.md")
sys.path.insert(0, os.path.join(REPO, "clients", "python"))
import fascia  # noqa: E402

READY_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 20.0
SCRIPT_TIMEOUT_S = 90.0        # the session example waits up to 60 s
QUICK_START_TIMEOUT_S = 240.0
SIM_CONTROL = "tcp://127.0.0.1:7412"   # fascia-sim's default control socket


# --------------------------------------------------------------------------
# reading the blocks

def code_blocks(path, section=None):
    """[(language, text)] of the fenced blocks of a Markdown file, only those
    under the "## section" heading when one is given."""
    with open(path) as f:
        text = f.read()
    if section is not None:
        m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(section), text, re.S | re.M)
        assert m, "no section %r in %s" % (section, path)
        text = m.group(1)
    return [(lang, body) for lang, body in
            re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)]


def shell_commands(block):
    """The commands of an sh block: one a line, comments and blank lines
    dropped (a line that is only a comment continues the one above)."""
    out = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def quick_start():
    return code_blocks(README, "Quick start")


# --------------------------------------------------------------------------
# helpers shared by the tests and the run in the namespace

def wait_until(predicate, timeout, interval=0.05, what=None):
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s (last: %r)"
                                 % (timeout, what or predicate, last))
        time.sleep(interval)


def die_with_parent():
    """preexec_fn: SIGTERM when the process that started us goes, so that
    nothing outlives a run that was killed."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_python(code, cwd, env=None, timeout=SCRIPT_TIMEOUT_S):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_python(code, cwd, env=None):
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def stop_pid(proc):
    """SIGTERM by pid, SIGKILL after 5 s; returns the exit status."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def session_example():
    """The Quick start's session example: the Python block that starts one."""
    blocks = [b for lang, b in quick_start() if lang == "python" and "c.start(" in b]
    assert len(blocks) == 1, "expected one session example in the Quick start"
    return blocks[0]


def assert_alarm_handled(out, err, rc):
    """What the session example prints when the e-stop is pressed during
    the session and still held at the ack."""
    assert rc == 0, "the example exited %r:\n%s\n%s" % (rc, out, err)
    assert re.search(r"^alarm: estop ", out, re.M), out
    assert "ack refused: " in out and "estop" in out.split("ack refused: ")[1], out
    assert "stopped:" not in out, out


# --------------------------------------------------------------------------
# the Quick start, literally, in a private network namespace

def bring_loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, ifr))[1]   # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS, IFF_UP
    finally:
        s.close()


class QuickStart:
    """One run of the Quick start in directory `root` (the fresh clone)."""

    def __init__(self, root):
        self.root = root
        self.background = []            # (argv, Popen, stderr file)
        self.acks = 0

    def say(self, text):
        print("quick start: " + text, flush=True)

    # ---- the programs
    def env_of(self, argv):
        """A command's leading NAME=value words (as sh takes them, $PWD the
        root) as its environment, and the command without them."""
        env = dict(os.environ)
        while argv and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
            name, value = argv[0].split("=", 1)
            env[name] = value.replace("$PWD", self.root)
            argv = argv[1:]
        return env, argv

    def start_background(self, argv):
        err = tempfile.TemporaryFile(mode="w+")
        env, argv = self.env_of(argv)
        proc = subprocess.Popen(argv, cwd=self.root, stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
                                env=env)
        self.background.append((argv, proc, err))
        try:
            line = fascia.read_ready(proc, READY_TIMEOUT_S)
        except fascia.NotReady as e:
            err.seek(0)
            raise AssertionError("%s & : %s; stderr:\n%s" % (" ".join(argv), e, err.read()))
        self.say("%s &  (pid %d): %s" % (" ".join(argv), proc.pid, line))

    def stop_background(self):
        trouble = []
        for argv, proc, err in reversed(self.background):
            rc = stop_pid(proc)
            proc.stdout.close()
            if rc != 0:
                err.seek(0)
                trouble.append("%s exited %r; stderr:\n%s" % (argv[0], rc, err.read()[-2000:]))
            err.close()
        self.background = []
        return trouble

    def run(self, argv):
        r = subprocess.run(argv, cwd=self.root, capture_output=True, text=True,
                           timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
        self.say("%s -> %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    # ---- the daemon and the simulator, as the test sees them
    def status(self):
        with fascia.Client(timeout=4.0) as c:       # the default endpoint, as written
            return c.status("sim")

    def wait_state(self, states, timeout=15.0):
        return wait_until(lambda: (lambda st: st if st["state"] in states else None)(
            self.status()), timeout, what="sim in %s" % (states,))

    def sim(self, cmd, **args):
        with fascia.Client(SIM_CONTROL, timeout=4.0) as s:
            return s.call(cmd, **args)

    # ---- the commands
    def command(self, argv):
        name = " ".join(argv)
        if argv == ["make"]:
            self.say("make: not run (the build under test is %s)" % BUILD)
            return
        if argv[-1] == "&":
            self.start_background(argv[:-1])
            return
        if argv[1:] == ["devices"]:
            # "idle?": the daemon vents and checks the device first
            wait_until(lambda: (lambda r: r if r.returncode == 0 and " idle " in r.stdout
                                else None)(self.run(argv)), 15.0, interval=0.2,
                       what="%s to show sim idle" % name)
            return
        if argv[1:] == ["ack", "sim"]:
            self.acks += 1
            if self.acks == 1:
                # an interlock trips: the e-stop, held
                self.sim("inject", fault="estop")
                self.wait_state(("fault",))
                r = self.run(argv)
                assert r.returncode == 1, (name, r.returncode, r.stderr)
                assert r.stderr.startswith("fasciactl: interlock: "), r.stderr
            else:
                # the cause gone; accepted once the chambers are vented
                self.sim("clear", fault="estop")
                r = wait_until(lambda: (lambda r: r if r.returncode == 0 else None)(
                    self.run(argv)), 15.0, interval=0.3, what="%s accepted" % name)
                assert r.stdout.strip() == "sim: idle", r.stdout
            return
        r = self.run(argv)
        assert r.returncode == 0, "%s exited %d:\n%s%s" % (name, r.returncode, r.stdout,
                                                         r.stderr)
        if argv[1:] == ["start", "sim", "gentle-wave"]:
            assert r.stdout.strip() == "sim: running", r.stdout
        if argv[1:] == ["pause", "sim"]:
            assert r.stdout.strip() == "sim: paused", r.stdout

    def python_blocks(self, blocks):
        """The session example, and the block that presses the e-stop while
        it waits."""
        session = [b for b in blocks if "c.start(" in b]
        press = [b for b in blocks if "inject" in b]
        assert len(session) == 1 and len(press) == 1 and len(blocks) == 2, blocks
        self.wait_state(("idle",))
        proc = start_python(session[0], self.root)
        try:
            wait_until(lambda: proc.poll() is not None or
                       self.status()["state"] == "running", 10.0, what="the session")
            r = run_python(press[0], self.root)
            self.say("the e-stop block -> %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
            assert r.returncode == 0 and "'fault': 'estop'" in r.stdout, r
            out, err = proc.communicate(timeout=SCRIPT_TIMEOUT_S)
        finally:
            stop_pid(proc)
        self.say("the session example -> %d\n%s%s" % (proc.returncode, out, err))
        assert_alarm_handled(out, err, proc.returncode)
        # leave as the text says: released, then acknowledged
        self.sim("clear", fault="estop")
        wait_until(lambda: self.run(["build/fasciactl", "ack", "sim"]).returncode == 0,
                   15.0, interval=0.3, what="ack after the release")

    def all(self):
        blocks = quick_start()
        python = [b for lang, b in blocks if lang == "python"]
        try:
            for lang, block in blocks:
                if lang == "sh":
                    for argv in shell_commands(block):
                        self.command(argv)
            assert self.acks == 2, "the two acks of the Quick start: %d" % self.acks
            self.python_blocks(python)
        finally:
            trouble = self.stop_background()
        assert not trouble, "\n".join(trouble)


def quick_start_main(root):
    bring_loopback_up()
    QuickStart(root).all()
    print("quick start: every command ran as written")
    return 0


# --------------------------------------------------------------------------
# the tests (pytest imports this file; the namespace run executes it)

if __name__ != "__main__":
    import pytest

    from conftest_daemon import *  # noqa: F401,F403  (fixtures: rig, start_sim, ...)

    def namespace_prefix():
        """The command that runs a program in a network namespace of its
        own, or None when this machine does not allow one."""
        prefix = ["unshare", "--net"] if os.geteuid() == 0 else \
            ["unshare", "--map-root-user", "--net"]
        try:
            r = subprocess.run(prefix + ["true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return prefix if r.returncode == 0 else None

    def fresh_clone(directory):
        """directory laid out as a clone after make: every entry of the
        repository but build/ a link to it, build/ the build under test."""
        for name in os.listdir(REPO):
            if name not in ("build", ".git"):
                os.symlink(os.path.join(REPO, name), os.path.join(directory, name))
        os.symlink(BUILD, os.path.join(directory, "build"))
        return directory

    def tracked(path):
        r = subprocess.run(["git", "-C", REPO, "ls-files", "--error-unmatch", path],
                           capture_output=True)
        return r.returncode == 0

    def test_the_quick_start_names_only_files_a_clone_has():
        """A file a command names (other than the build's) is in the
        repository: no my.conf that exists nowhere."""
        if subprocess.run(["git", "-C", REPO, "rev-parse"], capture_output=True).returncode:
            pytest.skip("not a git checkout")
        named = set()
        for lang, block in quick_start():
            if lang == "sh":
                for argv in shell_commands(block):
                    named.update(w for w in argv[1:] if not w.startswith("-")
                                 and "://" not in w and not w.startswith("build/")
                                 and ("/" in w or re.search(r"\.[a-z]+$", w)))
            elif lang == "python":
                named.update(re.findall(r'sys\.path\.insert\(0, "([^"]+)"\)', block))
        assert named, "no file named in the Quick start?"
        missing = sorted(p for p in named if not tracked(p))
        assert not missing, "named by the Quick start, not in the repository: %s" % missing
        programs = set()
        for lang, block in quick_start():
            if lang == "sh":
                # NAME=value before a command is its environment
                programs.update(next(w for w in argv if "=" not in w)
                                for argv in shell_commands(block))
        assert programs <= {"make", "build/fascia-sim", "build/fasciad",
                            "build/fasciactl"}, programs

    def test_quick_start_runs_as_written(tmp_path):
        for prog in ("fascia-sim", "fasciad", "fasciactl"):
            assert os.access(os.path.join(BUILD, prog), os.X_OK), \
                "no %s in %s (set FASCIA_BUILD, run make)" % (prog, BUILD)
        prefix = namespace_prefix()
        if prefix is None:
            pytest.skip("no private network namespace here (unshare --net): the Quick "
                        "start's fixed ports cannot be used on a shared machine")
        root = fresh_clone(str(tmp_path))
        env = dict(os.environ, FASCIA_BUILD=BUILD)
        env.pop("FASCIA_CONTROL", None)
        env.pop("FASCIA_PUBLISH", None)
        proc = subprocess.Popen(prefix + [sys.executable, os.path.abspath(__file__),
                                          "--quick-start", root],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, stdin=subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=QUICK_START_TIMEOUT_S)
        finally:
            stop_pid(proc)
        assert proc.returncode == 0, "the Quick start failed:\n" + out[-12000:]
        assert "every command ran as written" in out, out[-4000:]

    # ---- the examples on free ports

    @pytest.fixture
    def rig(start_sim, start_daemon, tmp_path):
        """conftest_daemon's rig, with the shipped profiles the examples
        name (gentle-wave): a daemon and a simulator on free ports."""
        from conftest_daemon import IDLE_TIMEOUT_S, Rig
        from daemon_rig import write_config
        sim = start_sim()
        conf = write_config(str(tmp_path), sim.port,
                            profiles_dir=os.path.join(REPO, "etc", "profiles"))
        d = start_daemon(conf)
        sub = d.subscribe()
        d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S,
                      what="device sim idle after start-up")
        return Rig(sim, d, sub, str(tmp_path))

    def example_env(rig):
        return dict(os.environ, FASCIA_CONTROL=rig.d.control, FASCIA_PUBLISH=rig.d.publish)

    def test_the_session_example_acknowledges_instead_of_stopping_a_faulted_device(rig):
        """The e-stop comes while it waits: the device has vented and is in
        fault, the example does not stop it (refused there) but tries the
        ack, which the held e-stop refuses; it exits 0."""
        proc = start_python(session_example(), REPO, env=example_env(rig))
        try:
            wait_until(lambda: proc.poll() is not None or
                       rig.d.status()["state"] == "running", 10.0, what="the session")
            rig.sim.inject("estop")
            out, err = proc.communicate(timeout=SCRIPT_TIMEOUT_S)
        finally:
            stop_pid(proc)
        assert_alarm_handled(out, err, proc.returncode)
        assert rig.d.status()["state"] == "fault"
        rig.sim.clear("estop")

    def test_the_session_example_does_not_start_on_a_faulted_device(rig):
        rig.sim.inject("estop")
        rig.d.wait_status(lambda st: st["state"] == "fault", 5.0, what="fault")
        r = run_python(session_example(), REPO, env=example_env(rig), timeout=30)
        assert r.returncode == 1, r
        assert r.stderr.startswith("not started: "), r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        rig.sim.clear("estop")

    def test_the_python_modules_readme_example_runs_as_written(rig):
        blocks = [b for lang, b in code_blocks(PY_README) if lang == "python"]
        assert len(blocks) == 1, blocks
        r = run_python(blocks[0], REPO, env=example_env(rig), timeout=60)
        assert r.returncode == 0, r
        lines = r.stdout.splitlines()
        assert lines[0] == "['sim']", r.stdout
        assert lines[1].startswith("forbidden "), r.stdout
        assert "'state': 'releasing'" in lines[2] or "'state': 'idle'" in lines[2], r.stdout
        assert lines[-1] == "lost messages: 0 gaps: 0 {}", r.stdout
        assert rig.d.status()["state"] == "idle"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--quick-start":
        sys.exit(quick_start_main(sys.argv[2]))
    sys.exit("usage: test_readme.py --quick-start DIR (pytest runs the tests)")
