"""The clients' side of CURVE (issue 13): fasciactl keygen, and --cert /
--server-key (FASCIA_CERT / FASCIA_SERVER_KEY) in fasciactl, fascia-top and
the Python module, against a CURVE server.

Two servers: CurveServer, a stand-in written here (a CURVE ROUTER and PUB
with pyzmq's ThreadAuthenticator admitting the public certificates of a
directory), for what must hold whatever the daemon does (a wrong server
key, a refused certificate, a forbidden reply); and the real fasciad with
[security] curve = yes, for certificates made by keygen being admitted
with the role they carry.  Every certificate is made in tmp_path; every
server listens on 127.0.0.1 on a port it picked.

Run: FASCIA_BUILD=/path/to/build /usr/bin/python3 -m pytest -q \\
         tests/system/test_security_clients.py
"""
import json
import os
import shutil
import stat
import subprocess
import threading
import time

import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from conftest import BUILD, SLOW, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures: start_sim, start_daemon)
from daemon_rig import write_profiles
from test_fasciactl import answer_never_read, never_read_state
import fascia

CTL_BIN = os.path.join(BUILD, "fasciactl")
TOP_BIN = os.path.join(BUILD, "fascia-top")
RUN_TIMEOUT_S = 15 * SLOW
NO_REPLY_MS = 500          # --timeout of the calls that are to get no reply
IDLE_TIMEOUT_S = 5.0 * SLOW
NO_REPLY_WHY = "the daemon is down, or the server key is wrong"
CURVE_ENV = ("FASCIA_CONTROL", "FASCIA_PUBLISH", "FASCIA_CERT", "FASCIA_SERVER_KEY")


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in CURVE_ENV}
    env.update(extra or {})
    return env


def run(binary, *args, env_extra=None, umask=None, timeout=RUN_TIMEOUT_S):
    if not os.access(binary, os.X_OK):
        pytest.fail("no %s (set FASCIA_BUILD, run make)" % binary)
    return subprocess.run([binary] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=clean_env(env_extra),
                          stdin=subprocess.DEVNULL,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None
                          else None)


def run_ctl(*args, **kw):
    return run(CTL_BIN, *args, **kw)


def run_top(*args, **kw):
    """fascia-top with stdout on a pipe: its plain mode."""
    return run(TOP_BIN, *args, **kw)


def zpl_metadata(path):
    """The metadata section of a ZPL certificate file, {key: value}: what
    zmq.auth.load_certificate() leaves out (it reads the keys alone)."""
    meta, section = {}, None
    with open(path) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace():
                section = line.strip()
            elif section == "metadata":
                k, _, v = line.strip().partition("=")
                meta[k.strip()] = v.strip().strip('"')
    return meta


class Keys:
    """Certificates in one directory: keygen's for clients, pyzmq's for the
    server; .admitted is the server's clients directory."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.admitted = os.path.join(self.dir, "clients")
        os.makedirs(self.admitted)
        self.server_public, self.server_secret = zmq.auth.create_certificates(
            self.dir, "server")
        self.server_key = zmq.auth.load_certificate(self.server_public)[0].decode()

    def client(self, name, role="observer", admit=True):
        """NAME.key_secret by fasciactl keygen, NAME.key admitted (copied
        into the clients directory) unless admit is false."""
        r = run_ctl("keygen", name, "--role", role, "-d", self.dir)
        assert r.returncode == 0, r.stderr
        if admit:
            shutil.copy(self.public(name), self.admitted)
        return self.secret(name)

    def public(self, name):
        return os.path.join(self.dir, name + ".key")

    def secret(self, name):
        return os.path.join(self.dir, name + ".key_secret")

    def other_key(self):
        """A public key that is not the server's."""
        return zmq.curve_keypair()[0].decode()


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path)


# --------------------------------------------------------------------------
# A CURVE server written here

def answer_forbidding_start(req):
    """The never-read device's answers (test_fasciactl), and start refused
    for the role, as fasciad refuses an observer's."""
    if isinstance(req, dict) and req.get("cmd") == "start":
        return {"ok": False, "error": {
            "code": "forbidden", "role": "operator",
            "message": "start needs the operator role; alice has observer"}}
    return answer_never_read(req)


class Admitted:
    """The ZAP handler's question: is the key in a *.key file of the
    directory, at the time of the handshake (as fasciad re-reads its
    clients directory)."""

    def __init__(self, directory):
        self.dir = directory

    def callback(self, domain, key):
        return key in zmq.auth.load_certificates(self.dir)


class CurveServer:
    """A CURVE ROUTER (answers from answer(request)) and PUB (a state.sim
    every 100 ms) with the keys' server certificate; its ZAP handler (pyzmq's
    ThreadAuthenticator) admits the certificates in keys.admitted.  Its own
    context, so that no other test's socket meets its ZAP handler."""

    def __init__(self, keys, answer=answer_forbidding_start):
        self.ctx = zmq.Context()
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_curve_callback("*", Admitted(keys.admitted))
        public, secret = zmq.auth.load_certificate(keys.server_secret)
        self.router = self._socket(zmq.ROUTER, public, secret)
        self.pub = self._socket(zmq.PUB, public, secret)
        self.control = self._bind(self.router)
        self.publish = self._bind(self.pub)
        self.answer = answer
        self.requests = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def _bind(sock):
        """Bound to a port the system picks; its endpoint."""
        sock.bind("tcp://127.0.0.1:*")
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def _socket(self, kind, public, secret):
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_secretkey, s.curve_publickey, s.curve_server = secret, public, True
        return s

    def run(self):
        seq, next_pub = 0, 0.0
        while not self.stop:
            if time.monotonic() >= next_pub:
                seq += 1
                self.pub.send_multipart([b"state.sim",
                                         json.dumps(never_read_state(seq)).encode()])
                next_pub = time.monotonic() + 0.1
            if not self.router.poll(20):
                continue
            frames = self.router.recv_multipart()
            req = json.loads(frames[-1])
            self.requests.append(req)
            reply = dict(self.answer(req), v=1, id=req.get("id"))
            self.router.send_multipart(frames[:-1] + [json.dumps(reply).encode()])

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.router.close(linger=0)
        self.pub.close(linger=0)
        self.auth.stop()
        self.ctx.term()


@pytest.fixture
def server(keys):
    s = CurveServer(keys)
    yield s
    s.close()


def curve_args(cert, key):
    return ["--cert", cert, "--server-key", key]


# --------------------------------------------------------------------------
# fasciactl keygen

@pytest.mark.parametrize("role", [None, "operator", "admin"])
def test_keygen_writes_a_public_and_a_secret_certificate_with_name_and_role(tmp_path, role):
    args = ["keygen", "alice", "-d", tmp_path] + (["--role", role] if role else [])
    r = run_ctl(*args)
    assert r.returncode == 0, r.stderr
    public, secret = str(tmp_path / "alice.key"), str(tmp_path / "alice.key_secret")
    assert sorted(os.listdir(tmp_path)) == ["alice.key", "alice.key_secret"]
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(public).st_mode) & 0o022 == 0
    pub_only, none = zmq.auth.load_certificate(public)
    pub, sec = zmq.auth.load_certificate(secret)
    assert none is None and pub == pub_only and zmq.curve_public(sec) == pub
    for path in (public, secret):
        assert zpl_metadata(path) == {"name": "alice", "role": role or "observer"}, path
    # both paths and the public key are printed
    assert public in r.stdout and secret in r.stdout, r.stdout
    assert pub.decode() in r.stdout, r.stdout


def test_keygen_secret_certificate_is_0600_whatever_the_umask(tmp_path):
    r = run_ctl("keygen", "bob", "-d", tmp_path, umask=0)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "bob.key_secret").st_mode) == 0o600


def test_keygen_json_names_the_files_and_the_key(tmp_path):
    r = run_ctl("--json", "keygen", "carol", "--role", "operator", "-d", tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["public"] == str(tmp_path / "carol.key") and out["role"] == "operator"
    assert out["public_key"] == zmq.auth.load_certificate(out["secret"])[0].decode()


@pytest.mark.parametrize("existing", ["dave.key", "dave.key_secret"])
def test_keygen_refuses_to_overwrite_a_certificate(tmp_path, existing):
    (tmp_path / existing).write_text("keep me\n")
    r = run_ctl("keygen", "dave", "-d", tmp_path)
    assert r.returncode == 1, r
    assert "exists" in r.stderr and "not overwritten" in r.stderr, r.stderr
    assert os.listdir(tmp_path) == [existing]       # nothing else left behind
    assert (tmp_path / existing).read_text() == "keep me\n"


def test_keygen_twice_keeps_the_first_certificate(tmp_path):
    assert run_ctl("keygen", "erin", "-d", tmp_path).returncode == 0
    first = zmq.auth.load_certificate(str(tmp_path / "erin.key_secret"))
    r = run_ctl("keygen", "erin", "--role", "admin", "-d", tmp_path)
    assert r.returncode == 1, r
    assert zmq.auth.load_certificate(str(tmp_path / "erin.key_secret")) == first
    assert zpl_metadata(tmp_path / "erin.key")["role"] == "observer"


@pytest.mark.parametrize("args,words", [
    (["keygen", "frank", "--role", "root"], ["--role", "root", "observer"]),
    (["keygen", "frank", "--role", "Operator"], ["--role"]),
    (["keygen", "a/b"], ["NAME", "a/b"]),
    (["keygen", "al ice"], ["NAME"]),
    (["keygen", "x" * 65], ["NAME"]),
    (["keygen", ""], ["NAME"]),
    (["keygen"], ["usage"]),
    (["keygen", "a", "b"], ["usage"]),
    (["--role", "admin", "devices"], ["--role is an option of keygen"]),
])
def test_keygen_refuses_a_bad_name_or_role(tmp_path, args, words):
    r = run_ctl(*(args + ["-d", tmp_path] if args[0] == "keygen" else args))
    assert r.returncode == 2, r
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert os.listdir(tmp_path) == []


def test_keygen_takes_the_longest_name_and_every_allowed_character(tmp_path):
    name = "A-z_0.9" + "x" * 57
    assert len(name) == 64
    r = run_ctl("keygen", name, "-d", tmp_path)
    assert r.returncode == 0, r.stderr
    assert zpl_metadata(tmp_path / (name + ".key"))["name"] == name


# --------------------------------------------------------------------------
# The options: both or neither

@pytest.mark.parametrize("given,missing", [
    ({"args": ["--cert", "CERT"]}, "--server-key"),
    ({"env": {"FASCIA_CERT": "CERT"}}, "--server-key"),
    ({"args": ["--server-key", "KEY"]}, "--cert"),
    ({"env": {"FASCIA_SERVER_KEY": "KEY"}}, "--cert"),
])
@pytest.mark.parametrize("command", [["devices"], ["watch"], ["start", "sim", "wave"]])
def test_fasciactl_one_without_the_other_is_a_usage_error_naming_it(keys, given, missing,
                                                                     command):
    cert = keys.client("alice")
    fill = {"CERT": cert, "KEY": keys.server_key}
    args = [fill.get(a, a) for a in given.get("args", [])]
    env = {k: fill[v] for k, v in given.get("env", {}).items()}
    r = run_ctl("--timeout", NO_REPLY_MS, *(args + command), env_extra=env)
    assert r.returncode == 2, r
    assert missing in r.stderr and "no reply" not in r.stderr, r.stderr


@pytest.mark.parametrize("args,missing", [(["--cert", "CERT"], "--server-key"),
                                          (["--server-key", "KEY"], "--cert")])
def test_fascia_top_one_without_the_other_is_a_usage_error_naming_it(keys, args, missing):
    fill = {"CERT": keys.client("alice"), "KEY": keys.server_key}
    r = run_top("--count", "1", *[fill.get(a, a) for a in args])
    assert r.returncode == 2, r
    assert missing in r.stderr, r.stderr


def test_python_one_without_the_other_is_a_value_error_naming_it(keys, monkeypatch):
    for var in CURVE_ENV[2:]:
        monkeypatch.delenv(var, raising=False)
    cert = keys.client("alice")
    with pytest.raises(ValueError, match="server_key"):
        fascia.Client("tcp://127.0.0.1:1", cert=cert)
    monkeypatch.setenv("FASCIA_SERVER_KEY", keys.server_key)
    with pytest.raises(ValueError, match="cert"):
        fascia.Monitor("tcp://127.0.0.1:1")


def bad_security(keys):
    """(cert, server key, words of the message) that are not a certificate
    and a key."""
    cert = keys.client("alice")
    lonely = os.path.join(keys.dir, "lonely")
    os.makedirs(lonely)
    shutil.copy(keys.public("alice"), lonely)          # no secret one beside
    return [
        (os.path.join(keys.dir, "absent.key_secret"), keys.server_key,
         ["absent.key_secret", "No such file"]),
        (os.path.join(lonely, "alice.key"), keys.server_key,
         ["alice.key", "not a CURVE secret certificate"]),
        (cert, "not-a-key", ["not-a-key", "40 characters"]),
        (cert, "~" * 40, ["~~~~", "40 characters"]),
        (cert, keys.server_key[:39], ["40 characters"]),
        (cert, os.path.join(keys.dir, "absent.key"), ["absent.key", "No such file"]),
    ]


def test_a_bad_certificate_or_key_is_a_usage_error_naming_it(keys, server):
    for cert, key, words in bad_security(keys):
        for binary, args in ((CTL_BIN, ["--endpoint", server.control, "devices"]),
                             (TOP_BIN, ["--endpoint", server.control,
                                        "--publish", server.publish, "--count", "1"])):
            r = run(binary, *(curve_args(cert, key) + args))
            assert r.returncode == 2, (binary, cert, key, r)
            for w in words:
                assert w in r.stderr, (binary, w, r.stderr)
    assert server.requests == []


def test_python_refuses_a_bad_certificate_or_key(keys):
    for cert, key, words in bad_security(keys):
        with pytest.raises((ValueError, OSError)) as e:
            fascia.Client("tcp://127.0.0.1:1", cert=cert, server_key=key)
        if "No such file" in words:
            assert isinstance(e.value, FileNotFoundError), (cert, key, e.value)
        else:
            assert isinstance(e.value, ValueError), (cert, key, e.value)


# --------------------------------------------------------------------------
# Against the CURVE server written here

def test_fasciactl_over_curve_with_the_key_as_text_or_as_its_certificate(keys, server):
    cert = keys.client("alice")
    for key in (keys.server_key, keys.server_public):
        r = run_ctl("--endpoint", server.control, *curve_args(cert, key), "devices")
        assert r.returncode == 0, (key, r.stderr)
        assert "sim" in r.stdout and "offline" in r.stdout, r.stdout
    assert [q["cmd"] for q in server.requests] == ["devices", "devices"]


def test_fasciactl_takes_the_certificate_and_key_from_the_environment(keys, server):
    env = {"FASCIA_CERT": keys.client("alice"), "FASCIA_SERVER_KEY": keys.server_key,
           "FASCIA_CONTROL": server.control}
    r = run_ctl("status", "sim", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sim: offline"), r.stdout
    # the options win over the environment
    r = run_ctl("--timeout", NO_REPLY_MS, "--server-key", keys.other_key(), "devices",
                env_extra=env)
    assert r.returncode == 3, r


def test_fasciactl_with_a_wrong_server_key_says_so_and_exits_3(keys, server):
    cert = keys.client("alice")
    for command in (["devices"], ["watch", "--count", "1"], ["stop", "sim"]):
        r = run_ctl("--endpoint", server.control, "--publish", server.publish,
                    "--timeout", NO_REPLY_MS, *curve_args(cert, keys.other_key()),
                    *command)
        assert r.returncode == 3, (command, r)
        assert "no reply from %s within %d ms: %s" % (server.control, NO_REPLY_MS,
                                                      NO_REPLY_WHY) in r.stderr, r.stderr
    assert server.requests == []


def test_fasciactl_plaintext_keeps_its_no_reply_words(server):
    r = run_ctl("--endpoint", server.control, "--timeout", NO_REPLY_MS, "devices")
    assert r.returncode == 3, r
    assert "no reply from %s within %d ms (is fasciad running?)" % (
        server.control, NO_REPLY_MS) in r.stderr, r.stderr


def test_fasciactl_with_a_certificate_the_server_does_not_admit_is_told_so(keys, server):
    cert = keys.client("mallory", admit=False)
    r = run_ctl("--endpoint", server.control, "--timeout", 2000,
                *curve_args(cert, keys.server_key), "devices")
    assert r.returncode == 1, r
    assert "refused the certificate %s" % cert in r.stderr, r.stderr
    assert "not among the daemon's clients" in r.stderr, r.stderr
    assert server.requests == []


def test_fasciactl_forbidden_names_the_role_needed(keys, server):
    r = run_ctl("--endpoint", server.control, *curve_args(keys.client("alice"),
                                                           keys.server_key),
                "start", "sim", "wave")
    assert r.returncode == 1, r
    assert "forbidden: start needs the operator role; alice has observer" in r.stderr
    assert "needs the operator role or above" in r.stderr, r.stderr
    assert "--role operator" in r.stderr, r.stderr


def test_fasciactl_watch_over_curve(keys, server):
    r = run_ctl("--endpoint", server.control, "--publish", server.publish,
                *curve_args(keys.client("alice"), keys.server_key),
                "--json", "watch", "--count", "3")
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(msgs) == 3 and all(m["topic"] == "state.sim" for m in msgs), msgs


def test_fascia_top_plain_over_curve(keys, server):
    args = ["--endpoint", server.control, "--publish", server.publish, "--count", "1"]
    r = run_top(*args, env_extra={"FASCIA_CERT": keys.client("alice"),
                                  "FASCIA_SERVER_KEY": keys.server_public})
    assert r.returncode == 0, r
    assert "sim state=offline" in r.stdout, r.stdout


def test_fascia_top_with_a_wrong_server_key_says_so_and_exits_3(keys, server):
    r = run_top("--endpoint", server.control, "--publish", server.publish,
                "--count", "1", *curve_args(keys.client("alice"), keys.other_key()))
    assert r.returncode == 3, r
    assert NO_REPLY_WHY in r.stderr and r.stdout == "", r


def test_fascia_top_with_a_certificate_not_admitted_is_told_so(keys, server):
    r = run_top("--endpoint", server.control, "--publish", server.publish,
                "--count", "1", *curve_args(keys.client("mallory", admit=False),
                                            keys.server_key))
    assert r.returncode == 3, r
    assert "refused the certificate" in r.stderr, r.stderr


def test_python_client_and_monitor_over_curve(keys, server):
    cert = keys.client("alice")
    with fascia.Client(server.control, timeout=5, cert=cert,
                       server_key=keys.server_key) as c:
        assert c.secure and c.hello()["devices"] == ["sim"]
        with pytest.raises(fascia.Forbidden) as e:
            c.start("sim", "wave")
        assert e.value.role == "operator", e.value
    with fascia.Monitor(server.publish, timeout=5, cert=cert,
                        server_key=keys.server_public) as m:
        msg = m.next()
        assert msg is not None and msg.topic == "state.sim", msg


def test_python_defaults_to_the_environment(keys, server, monkeypatch):
    monkeypatch.setenv("FASCIA_CERT", keys.client("alice"))
    monkeypatch.setenv("FASCIA_SERVER_KEY", keys.server_key)
    with fascia.Client(server.control, timeout=5) as c:
        assert c.secure and c.devices()[0]["name"] == "sim"
    with fascia.Monitor(server.publish, timeout=5) as m:
        assert m.secure and m.next() is not None


def test_python_unreachable_says_the_server_key_may_be_wrong(keys, server):
    cert = keys.client("alice")
    with fascia.Client(server.control, timeout=NO_REPLY_MS / 1000, cert=cert,
                       server_key=keys.other_key()) as c:
        with pytest.raises(fascia.Unreachable) as e:
            c.hello()
    assert NO_REPLY_WHY in str(e.value), e.value
    with fascia.Client(server.control, timeout=2, cert=keys.client("mallory", admit=False),
                       server_key=keys.server_key) as c:
        with pytest.raises(fascia.Unreachable) as e:
            c.hello()
    assert "refused this client's certificate" in str(e.value), e.value
    assert server.requests == []


# --------------------------------------------------------------------------
# Against fasciad with [security] curve = yes

SECURE_CONFIG = """[daemon]
control = tcp://127.0.0.1:*
publish = tcp://127.0.0.1:*
profiles = {profiles}
journal = {journal}
tick_hz = 50

[security]
curve = yes
server_cert = {server_cert}
clients = {clients}

[device sim]
address = 127.0.0.1:{port}
chambers = 8
limit_mmhg = 60
"""


class SecureDaemon:
    """fascia-sim and a curve = yes fasciad whose clients are keygen's
    observer, operator and admin; .cert[role], .key (the server's)."""

    def __init__(self, keys, start_sim, start_daemon):
        self.keys = keys
        self.cert = {role: keys.client(role, role) for role in
                     ("observer", "operator", "admin")}
        self.key = keys.server_key
        profiles = os.path.join(keys.dir, "profiles")
        write_profiles(profiles)
        self.sim = start_sim()
        conf = os.path.join(keys.dir, "fasciad.conf")
        with open(conf, "w") as f:
            f.write(SECURE_CONFIG.format(
                profiles=profiles, journal=os.path.join(keys.dir, "journal.db"),
                server_cert=keys.server_secret, clients=keys.admitted,
                port=self.sim.port))
        self.d = start_daemon(conf)
        self.control, self.publish = self.d.control, self.d.publish
        with self.client("admin") as c:
            wait_until(lambda: c.status("sim")["state"] == "idle", IDLE_TIMEOUT_S,
                       interval=0.05, what="device sim idle over CURVE")

    def client(self, role, **kw):
        return fascia.Client(self.control, timeout=5, cert=self.cert[role],
                             server_key=self.key, **kw)

    def ctl(self, role, *args, **kw):
        return run_ctl("--endpoint", self.control, "--publish", self.publish,
                       *curve_args(self.cert[role], self.key), *args, **kw)


@pytest.fixture
def secure(keys, start_sim, start_daemon):
    return SecureDaemon(keys, start_sim, start_daemon)


def test_fasciad_admits_keygen_certificates_with_their_role(secure):
    r = secure.ctl("observer", "status", "sim")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sim: idle"), r.stdout
    r = secure.ctl("observer", "start", "sim", "wave")
    assert r.returncode == 1, r
    assert "forbidden" in r.stderr and "needs the operator role" in r.stderr, r.stderr
    r = secure.ctl("operator", "start", "sim", "wave")
    assert r.returncode == 0, r.stderr
    r = secure.ctl("operator", "stop", "sim")
    assert r.returncode == 0, r.stderr


def test_fasciad_with_a_wrong_server_key_gets_the_no_reply_message(secure):
    r = run_ctl("--endpoint", secure.control, "--timeout", NO_REPLY_MS,
                *curve_args(secure.cert["admin"], secure.keys.other_key()), "devices")
    assert r.returncode == 3, r
    assert "no reply from %s within %d ms: %s" % (secure.control, NO_REPLY_MS,
                                                  NO_REPLY_WHY) in r.stderr, r.stderr


def test_fasciad_refuses_a_certificate_not_in_its_clients_directory(secure):
    cert = secure.keys.client("mallory", admit=False)
    r = run_ctl("--endpoint", secure.control, "--timeout", 2000,
                *curve_args(cert, secure.key), "devices")
    assert r.returncode == 1, r
    assert "refused the certificate" in r.stderr, r.stderr


def test_fasciad_watch_and_fascia_top_over_curve(secure):
    r = secure.ctl("observer", "watch", "--count", "2", "sim")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(" sim state idle" in l for l in lines), lines
    r = run_top("--endpoint", secure.control, "--publish", secure.publish,
                "--count", "1", *curve_args(secure.cert["observer"], secure.keys.server_public))
    assert r.returncode == 0, r
    assert "sim state=idle" in r.stdout, r.stdout


def test_fasciad_python_client_and_monitor_over_curve(secure):
    with secure.client("observer") as c:
        assert c.hello()["devices"] == ["sim"]
        with pytest.raises(fascia.Forbidden) as e:
            c.start("sim", "wave")
        assert e.value.role == "operator", e.value.reply
    with fascia.Monitor(secure.publish, topics=("state.sim",), timeout=5,
                        cert=secure.cert["observer"], server_key=secure.key) as m:
        msg = m.next()
        assert msg is not None and msg.data["state"] == "idle", msg
