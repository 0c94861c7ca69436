"""CURVE security (issue 13): with [security] curve = yes, only clients
whose public certificate is in the clients directory are answered or
published to, each may do what its certificate's role allows, the record
names who did what, the directory is re-read when it changes and on
SIGHUP, fasciad -n refuses what cannot be secure, and the plaintext
`local` endpoint has the role local_role gives it.

The certificates are made here, in tmp_path, with pyzmq's
zmq.auth.create_certificates(); only NAME.key files go into the clients
directory.  pyzmq writes a certificate's metadata into NAME.key_secret
alone (its NAME.key has an empty metadata section), so make_cert()
writes the public file again with the metadata: a role is what the
daemon reads from it.

Helpers at the top: make_cert (a certificate pair), admit (into the
clients directory), security_files / security_section (the files and the
[security] lines), Peer (a client with a certificate, or none, on an
endpoint), and the `srig` fixture: a fascia-sim and a curve = yes fasciad
whose rig.d is the admin's connection.
"""
import copy
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time

import pytest
import zmq
import zmq.auth

from conftest import SLOW, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import IDLE_TIMEOUT_S, Rig, ack_until_idle, start_session, \
    wait_sim_vented
from daemon_rig import CALL_TIMEOUT_MS, FASCIAD_BIN, PROFILES, CurveKeys, Sub, \
    curve_context, daemon_env, write_config
from test_config_check import assert_accepted, assert_refused, check
from test_journal import commands_since, last_seq, wait_ended

# How long a request waits before it counts as unanswered: a client the
# daemon does not admit never gets a reply, so this bounds each such check.
NO_REPLY_S = 1.0 * SLOW
# The clients directory is polled every second: a change is seen well
# within this.
RELOAD_TIMEOUT_S = 5.0 * SLOW
RECORD_TIMEOUT_S = 5.0 * SLOW
RELEASE_TIMEOUT_S = 10.0 * SLOW

ROLES = ("observer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
# The role each command needs.
NEEDS = {
    "hello": "observer", "devices": "observer", "status": "observer",
    "profiles": "observer", "profile.get": "observer", "history": "observer",
    "session.get": "observer", "log": "observer", "vent": "observer",
    "start": "operator", "pause": "operator", "resume": "operator",
    "stop": "operator", "ack": "operator",
    "profile.put": "admin",
}
# The commands the journal's log records (docs/records.md, kind command).
LOGGED = ("start", "pause", "resume", "stop", "vent", "ack", "profile.put")


def may(role, cmd):
    return RANK[role] >= RANK[NEEDS[cmd]]


# --------------------------------------------------------------------------
# Certificates

class Cert:
    """A certificate pair made by pyzmq: .stem (the files' name),
    .public, .secret (Z85 bytes), .public_file (STEM.key), .secret_file
    (STEM.key_secret), .metadata."""

    def __init__(self, stem, public_file, secret_file, metadata):
        self.stem, self.public_file, self.secret_file = stem, public_file, secret_file
        self.metadata = dict(metadata)
        self.public, self.secret = zmq.auth.load_certificate(secret_file)

    def keys(self, server):
        """The CurveKeys of a client with this certificate, for the server
        whose Cert (or public key) is given."""
        return CurveKeys(self.public, self.secret,
                         server.public if isinstance(server, Cert) else server)

    @property
    def name(self):
        """The name the daemon knows it by: its metadata's name, else the
        file's stem."""
        return self.metadata.get("name", self.stem)


def write_public_cert(path, public, metadata):
    """A public certificate (ZPL, as CZMQ's zcert_save_public writes one)
    with metadata; nothing in it but the key and the metadata, so two
    with the same metadata are the same size."""
    lines = ["#   ZeroMQ CURVE Public Certificate (fascia's system tests)", "",
             "metadata"]
    lines += ['    %s = "%s"' % (k, v) for k, v in metadata.items()]
    lines += ["curve", '    public-key = "%s"' % public.decode()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make_cert(keys_dir, stem, **metadata):
    """STEM.key and STEM.key_secret in keys_dir, by
    zmq.auth.create_certificates() with metadata (role=, name=,
    gateway=); the public file is written again with the metadata (pyzmq
    puts it in the secret file only).  -> Cert"""
    os.makedirs(keys_dir, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(keys_dir, stem,
                                                            metadata=metadata or None)
    cert = Cert(stem, public_file, secret_file, metadata)
    if metadata:
        write_public_cert(public_file, cert.public, metadata)
    return cert


def admit(cert, clients_dir):
    """Copy the certificate's public file into the clients directory;
    its path there."""
    path = os.path.join(clients_dir, cert.stem + ".key")
    shutil.copyfile(cert.public_file, path)
    return path


# The rig's clients: the file's stem -> its metadata.
CLIENTS = {
    "watcher": {"role": "observer"},                        # named "watcher"
    "nurse": {"role": "operator", "name": "nurse.joy"},      # named by its metadata
    "tech": {"role": "admin"},
    "portal": {"role": "operator", "gateway": "yes"},        # acts for people ("as")
}
BY_ROLE = {"observer": "watcher", "operator": "nurse", "admin": "tech"}


def security_files(directory, clients=None):
    """DIR/keys/server.key{,_secret}, and DIR/clients with the public
    certificate of each of clients ({stem: metadata}; default one
    operator): (server Cert, clients dir, keys dir, {stem: Cert})."""
    keys_dir = os.path.join(directory, "keys")
    clients_dir = os.path.join(directory, "clients")
    os.makedirs(clients_dir, exist_ok=True)
    server = make_cert(keys_dir, "server")
    certs = {}
    for stem, meta in (clients if clients is not None else {"op": {"role": "operator"}}).items():
        certs[stem] = make_cert(keys_dir, stem, **meta)
        admit(certs[stem], clients_dir)
    return server, clients_dir, keys_dir, certs


def security_section(server_cert, clients_dir, curve="yes", more=""):
    """The [security] section, 5 lines and `more` (server_cert: a path)."""
    return ("\n[security]\ncurve = %s\nserver_cert = %s\nclients = %s\n%s"
            % (curve, server_cert, clients_dir, more))


# --------------------------------------------------------------------------
# Clients

class Peer:
    """A DEALER on endpoint: a CURVE client with keys (CurveKeys), or
    plaintext without; a context of its own.  request() -> the reply, or
    None when none comes within the wait."""

    def __init__(self, endpoint, keys=None):
        self.endpoint = endpoint
        self.ctx = curve_context(keys)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.next_id = 1

    def request(self, cmd, wait=CALL_TIMEOUT_MS / 1000.0, **args):
        rid = self.next_id
        self.next_id += 1
        req = dict(v=1, id=rid, cmd=cmd, **args)
        self.sock.send_multipart([b"", json.dumps(req).encode()])
        deadline = time.monotonic() + wait
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not self.sock.poll(left):
                return None
            frames = self.sock.recv_multipart()
            rep = json.loads(frames[-1])
            if rep.get("id") == rid:
                return rep

    def call(self, cmd, **args):
        """The reply, which must come (a normal call's wait)."""
        rep = self.request(cmd, **args)
        assert rep is not None, "no reply from %s to %s %r" % (self.endpoint, cmd, args)
        assert rep.get("v") == 1 and isinstance(rep.get("ok"), bool), rep
        return rep

    def unanswered(self, cmd="hello", **args):
        """Whether a request gets no reply within NO_REPLY_S."""
        return self.request(cmd, wait=NO_REPLY_S, **args) is None

    def close(self):
        self.sock.close(linger=0)
        self.ctx.destroy(linger=0)


def fresh_unanswered(endpoint, keys):
    """A new connection with keys gets no reply to hello."""
    p = Peer(endpoint, keys)
    try:
        return p.unanswered()
    finally:
        p.close()


def fresh_answered(endpoint, keys):
    p = Peer(endpoint, keys)
    try:
        rep = p.request("hello", wait=NO_REPLY_S)
        return rep is not None and rep["ok"]
    finally:
        p.close()


class SecureRig(Rig):
    """Rig (sim, d, sub, dir, profiles_dir) of a curve = yes daemon, and
    server (its Cert), certs ({stem: Cert}, each admitted), keys_dir,
    clients_dir; rig.d and rig.sub are the admin's ("tech")."""

    def __init__(self, sim, d, sub, directory, server, clients_dir, keys_dir, certs):
        super().__init__(sim, d, sub, directory)
        self.server, self.clients_dir, self.keys_dir = server, clients_dir, keys_dir
        self.certs = certs
        self._peers, self._subs = [], []

    def keys(self, who):
        """CurveKeys of a stem of certs, or a Cert."""
        cert = who if isinstance(who, Cert) else self.certs[who]
        return cert.keys(self.server)

    def peer(self, who=None):
        """A Peer on the control endpoint with who's keys (a stem of
        certs or a Cert; None: plaintext)."""
        p = Peer(self.d.control, None if who is None else self.keys(who))
        self._peers.append(p)
        return p

    def subscriber(self, keys=None):
        """A Sub on the publisher with keys (None: plaintext), every topic."""
        ctx = curve_context(keys)
        s = Sub(ctx, self.d.publish, topics=("",))
        self._subs.append((s, ctx))
        return s

    def security(self):
        """status's security block (asked as the admin)."""
        res = self.d.ok("status")
        assert "security" in res, ("status has no security block", res)
        return res["security"]

    def stranger(self, stem="stranger", **metadata):
        """A certificate that is not in the clients directory."""
        return make_cert(self.keys_dir, stem, **(metadata or {"role": "admin"}))

    def close(self):
        for s, ctx in self._subs:
            s.close()
            ctx.destroy(linger=0)
        for p in self._peers:
            p.close()


@pytest.fixture
def srig(start_sim, start_daemon, tmp_path):
    sim = start_sim()
    server, clients_dir, keys_dir, certs = security_files(str(tmp_path), CLIENTS)
    conf = write_config(str(tmp_path), sim.port,
                        extra=security_section(server.secret_file, clients_dir))
    d = start_daemon(conf, curve=certs["tech"].keys(server))
    sub = d.subscribe()
    d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S,
                  what="device sim idle after start-up")
    rig = SecureRig(sim, d, sub, str(tmp_path), server, clients_dir, keys_dir, certs)
    yield rig
    rig.close()


# --------------------------------------------------------------------------
# Checks

def assert_forbidden(rep, cmd, name, role):
    """A refusal for the role: forbidden, error.role the role cmd needs,
    the message naming the role needed and who has which."""
    needed = NEEDS[cmd]
    err = rep.get("error") or {}
    assert rep["ok"] is False and err.get("code") == "forbidden" and \
        err.get("role") == needed, \
        ("%s by %s (%s) should be forbidden, needing %s" % (cmd, name, role, needed), rep)
    msg = err["message"]
    assert "%s needs the %s role" % (cmd, needed) in msg and "%s has %s" % (name, role) in msg, \
        ("the refusal should say '%s needs the %s role; %s has %s'" % (cmd, needed, name, role),
         msg)


def assert_unchanged(rig, state, sid, mark):
    """The device still in state with session sid (None: none), as its
    status says and as every state message since mark said."""
    st = rig.d.status()
    assert st["state"] == state and (st.get("session") or {}).get("id") == sid, \
        ("a refused command changed the device: expected %s, session %s" % (state, sid), st)
    seen = {(m["state"], (m.get("session") or {}).get("id")) for m in rig.sub.states(mark)}
    assert seen <= {(state, sid)}, ("published while refused", seen)


def wait_running(rig, mark):
    """The session id of the running state published after mark."""
    m = rig.sub.wait_state(lambda m: m["state"] == "running" and m.get("session"), 2.0 * SLOW,
                           since=mark, what="state running")
    return m["session"]["id"]


def wait_idle(rig):
    return rig.d.wait_status(lambda st: st["state"] == "idle", RELEASE_TIMEOUT_S,
                             what="device sim idle")


def profile_names(d):
    return [p["name"] for p in d.ok("profiles")["profiles"]]


def history_ids(d):
    return [s["id"] for s in d.ok("history", limit=1000)["sessions"]]


def fault_with_estop(rig):
    """An e-stop pressed and released: the device in fault, the cause
    gone, the chambers vented; an ack would take it to idle."""
    mark = rig.sub.mark()
    rig.sim.inject("estop")
    rig.sub.wait_state(lambda m: m["state"] == "fault", 2.0 * SLOW, since=mark,
                       what="fault after the e-stop")
    wait_sim_vented(rig.sim, 5.0 * SLOW)
    rig.sim.clear("estop")
    rig.d.wait_status(lambda st: not any(a["present"] for a in st["alarms"]), 2.0 * SLOW,
                      what="the estop alarm no longer present")


def outcome(rep):
    return "ok" if rep["ok"] else rep["error"]["code"]


def commands_by(d, name, seq0, count):
    """The command entries by name after seq0, oldest first, once there
    are count of them."""
    return wait_until(lambda: (lambda es: es if len(es) >= count else None)(
        [e for e in commands_since(d, seq0) if e.get("by") == name]),
        RECORD_TIMEOUT_S, interval=0.05, what="%d command entries by %s" % (count, name))


# --------------------------------------------------------------------------
# Who is admitted

def test_a_client_without_an_admitted_certificate_gets_no_reply_and_is_counted(srig):
    """No certificate, one that is not in the directory, the right
    certificate with a wrong server key: no reply, each counted in status
    and named in the log; the admitted clients are served all along."""
    r = srig
    sec = r.security()
    assert sec["curve"] is True and sec["clients"] == len(CLIENTS), sec
    assert sec["handshakes_failed"] == 0 and sec["last_failure"] is None, sec
    other_server = make_cert(r.keys_dir, "other-server")
    cases = [
        ("no certificate (plaintext)", None),
        ("a certificate not in the directory", r.keys(r.stranger())),
        ("an admitted certificate with a wrong server key",
         r.certs["tech"].keys(other_server)),
    ]
    peers = []
    for what, keys in cases:
        failed = r.security()["handshakes_failed"]
        bad = Peer(r.d.control, keys)
        try:
            # start would be obeyed from anyone admitted: nothing happens
            assert bad.unanswered("start", device="sim", profile="long"), \
                "%s was answered" % what
            sec = wait_until(lambda: (lambda s: s if s["handshakes_failed"] > failed else None)(
                r.security()), RELOAD_TIMEOUT_S, interval=0.05,
                what="handshakes_failed above %d after %s" % (failed, what))
        finally:
            bad.close()
        last = sec["last_failure"]
        assert isinstance(last, dict), (what, sec)
        assert isinstance(last.get("time"), int) and last["time"] > 1.6e12, (what, last)
        # the peer's address is taken when the connection is accepted; one
        # closed before the daemon could ask is "unknown" (docs/security.md)
        assert last.get("peer") == "unknown" or last["peer"].startswith("tcp://127.0.0.1:"), \
            (what, last)
        peers.append(last["peer"])
        assert isinstance(last.get("reason"), str) and last["reason"], (what, last)
        assert r.peer("watcher").call("hello")["ok"], "an admitted client is not served"
    assert any(p.startswith("tcp://127.0.0.1:") for p in peers), peers
    assert r.d.status()["state"] == "idle"
    assert history_ids(r.d) == [], "a session was started"
    wait_until(lambda: "handshake" in r.d.log().lower(), RECORD_TIMEOUT_S, interval=0.05,
               what="fasciad's log naming a failed handshake (log:\n%s)" % r.d.log()[-2000:])


def test_a_subscriber_needs_an_admitted_certificate(srig):
    """While an observer receives the state messages, subscribers with no
    certificate, an unknown one, or a wrong server key receive nothing."""
    r = srig
    other_server = make_cert(r.keys_dir, "other-server")
    bad = {
        "plaintext": r.subscriber(None),
        "unknown certificate": r.subscriber(r.keys(r.stranger())),
        "wrong server key": r.subscriber(r.certs["watcher"].keys(other_server)),
    }
    observer = r.subscriber(r.keys("watcher"))
    wait_until(lambda: len(observer.states()) >= 10, 5.0 * SLOW, interval=0.02,
               what="10 state messages to the observer")
    assert all(m["device"] == "sim" and m["state"] == "idle" for m in observer.states())
    for what, s in bad.items():
        assert s.all() == [] and s.bad == [], \
            "a subscriber with %s received %d messages" % (what, len(s.all()) + len(s.bad))


# --------------------------------------------------------------------------
# Roles

@pytest.mark.parametrize("role", ROLES)
def test_every_command_is_allowed_or_forbidden_by_role(srig, role):
    """Each command from a client of the role: what the role allows is
    done; the rest is forbidden, naming the role needed, and changes
    nothing (the device's state and session, the profiles on disk and
    listed); vent is every role's; each command is logged by the
    client's name with its outcome."""
    r = srig
    d = r.d
    stem = BY_ROLE[role]
    name = r.certs[stem].name
    me = r.peer(stem)
    sent = []      # (cmd, reply) of what the journal logs

    def do(cmd, **args):
        rep = me.call(cmd, **args)
        if cmd in LOGGED:
            sent.append((cmd, rep))
        if may(role, cmd):
            assert rep["ok"], ("%s by %s (%s) refused" % (cmd, name, role), rep)
        else:
            assert_forbidden(rep, cmd, name, role)
        return rep

    # a past session, for session.get: the admin's
    start_session(r, "long")
    past = d.status()["session"]["id"]
    d.ok("stop", device="sim")
    wait_idle(r)
    wait_ended(d, past)
    seq0 = last_seq(d)

    # the queries: every role's
    for cmd, args in (("hello", {}), ("devices", {}), ("status", {}),
                      ("status", {"device": "sim"}), ("profiles", {}),
                      ("profile.get", {"name": "wave"}), ("history", {}),
                      ("session.get", {"session": past}), ("log", {"kinds": ["command"]})):
        do(cmd, **args)

    # profile.put: the admin's
    names = profile_names(d)
    doc = copy.deepcopy(PROFILES["wave"])
    doc["name"] = "put-by-" + role
    path = os.path.join(r.profiles_dir, doc["name"] + ".json")
    do("profile.put", profile=doc)
    if may(role, "profile.put"):
        assert os.path.exists(path) and profile_names(d) == sorted(names + [doc["name"]])
    else:
        assert not os.path.exists(path), "a refused profile.put wrote %s" % path
        assert profile_names(d) == names

    # start: the operator's; an observer's leaves the device idle, and the
    # admin starts the session the next commands are tried on
    sessions = history_ids(d)
    mark = r.sub.mark()
    do("start", device="sim", profile="long")
    if may(role, "start"):
        sid = wait_running(r, mark)
    else:
        assert_unchanged(r, "idle", None, mark)
        assert history_ids(d) == sessions, "a refused start opened a session"
        start_session(r, "long")
        sid = d.status()["session"]["id"]

    # pause, resume, stop on the running session
    for cmd, after in (("pause", "paused"), ("resume", "running"), ("stop", None)):
        mark = r.sub.mark()
        do(cmd, device="sim")
        if not may(role, cmd):
            assert_unchanged(r, "running", sid, mark)
        elif after is not None:
            r.sub.wait_state(lambda m: m["state"] == after, 2.0 * SLOW, since=mark,
                             what="%s after %s" % (after, cmd))
    if may(role, "stop"):
        wait_idle(r)

    # vent: every role's (the observer's ends the session it could not stop)
    do("vent", device="sim")
    wait_idle(r)
    if not may(role, "stop"):
        assert wait_ended(d, sid)["end_reason"] == "vented"

    # ack: the operator's, after a fault
    fault_with_estop(r)
    if may(role, "ack"):
        def acked():
            rep = me.call("ack", device="sim")
            sent.append(("ack", rep))
            assert rep["ok"] or rep["error"]["code"] == "interlock", rep
            return rep["ok"]
        wait_until(acked, 6.0 * SLOW, interval=0.1, what="ack by %s accepted" % name)
        wait_idle(r)
    else:
        mark = r.sub.mark()
        do("ack", device="sim")
        assert_unchanged(r, "fault", None, mark)
        ack_until_idle(r)

    # the log: each of these commands by my name, with its outcome and
    # (a refusal's) message
    got = commands_by(d, name, seq0, len(sent))
    assert [(e["event"], e["outcome"]) for e in got] == \
        [(cmd, outcome(rep)) for cmd, rep in sent], got
    for e, (cmd, rep) in zip(got, sent):
        assert e["message"] == ("" if rep["ok"] else rep["error"]["message"]), (e, rep)


# --------------------------------------------------------------------------
# The clients directory, re-read

def test_a_removed_certificate_admits_no_new_connection(srig):
    """Once the daemon has re-read the directory: a new connection with
    the removed certificate gets no reply, a request on its connection
    made before is dropped (its start is not obeyed), a new subscriber
    with it receives nothing; the others are served."""
    r = srig
    old = r.peer("nurse")
    assert old.call("hello")["ok"]
    os.remove(os.path.join(r.clients_dir, "nurse.key"))
    wait_until(lambda: fresh_unanswered(r.d.control, r.keys("nurse")), RELOAD_TIMEOUT_S,
               interval=0.1, what="a new connection with the removed certificate unanswered")
    mark = r.sub.mark()
    assert old.unanswered("start", device="sim", profile="long"), \
        "a request on a connection of a removed certificate was answered"
    sub = r.subscriber(r.keys("nurse"))
    wait_until(lambda: len(r.sub.states(mark)) >= 10, 5.0 * SLOW, interval=0.02,
               what="10 state messages to the admin")
    assert_unchanged(r, "idle", None, mark)
    assert sub.all() == [], "a new subscriber with a removed certificate received"
    assert r.security()["clients"] == len(CLIENTS) - 1
    assert r.peer("watcher").call("hello")["ok"]


def test_an_added_certificate_is_admitted_unless_its_role_is_not_valid(srig):
    """Certificates copied into the directory while the daemon runs: once
    it has re-read it, one with a role is admitted with that role, one
    with role = superuser is not, and the daemon goes on."""
    r = srig
    frank = make_cert(r.keys_dir, "frank", role="operator")
    bogus = make_cert(r.keys_dir, "bogus", role="superuser")
    assert fresh_unanswered(r.d.control, r.keys(frank)), "frank answered before being added"
    admit(frank, r.clients_dir)
    admit(bogus, r.clients_dir)
    wait_until(lambda: fresh_answered(r.d.control, r.keys(frank)), RELOAD_TIMEOUT_S,
               interval=0.1, what="the added certificate admitted")
    doc = copy.deepcopy(PROFILES["wave"])
    doc["name"] = "by-frank"
    assert_forbidden(r.peer(frank).call("profile.put", profile=doc), "profile.put",
                     "frank", "operator")
    assert fresh_unanswered(r.d.control, r.keys(bogus)), \
        "a certificate with role = superuser was admitted"
    assert r.security()["clients"] == len(CLIENTS) + 1
    assert r.d.alive()


def test_sighup_rereads_the_clients_directory(srig):
    """nurse.key rewritten in place with another key, the same size, its
    times put back: the once-a-second poll of the directory cannot tell
    (nothing it can stat changed), only a re-read can.  After SIGHUP the
    new key is admitted and the old one is not."""
    r = srig
    path = os.path.join(r.clients_dir, "nurse.key")
    assert r.peer("nurse").call("hello")["ok"]
    new = make_cert(r.keys_dir, "nurse-new", **CLIENTS["nurse"])
    before = os.stat(path)
    with open(new.public_file, "rb") as f:
        text = f.read()
    assert len(text) == before.st_size
    with open(path, "r+b") as f:
        f.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (before.st_ino, before.st_size, before.st_mtime_ns)
    r.d.signal(signal.SIGHUP)
    wait_until(lambda: fresh_answered(r.d.control, r.keys(new)), RELOAD_TIMEOUT_S,
               interval=0.1, what="the new key admitted after SIGHUP")
    assert fresh_unanswered(r.d.control, r.keys("nurse")), \
        "the replaced key is still admitted after SIGHUP"
    assert r.security()["clients"] == len(CLIENTS)


# --------------------------------------------------------------------------
# fasciad -n

# check() writes "[daemon]" and "profiles = ..." on lines 1 and 2.
def endpoints_and_security(control, publish, security):
    return ("control = %s\n"          # 3
            "publish = %s\n"          # 4
            "[device sim]\n"          # 5
            "%s" % (control, publish, security))   # 6: [security], 7: curve,
    #                                                8: server_cert, 9: clients


def assert_refused_at(r, conf, lines, *words):
    """Exit 1, and a line "CONF:LINE: ..." on stderr, LINE one of lines
    (or the one given), with one of words."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "configuration OK" not in r.stdout, r.stdout
    lines = (lines,) if isinstance(lines, int) else lines
    prefixes = tuple("%s:%d: " % (conf, line) for line in lines)
    assert [ln for ln in r.stderr.splitlines()
            if ln.startswith(prefixes) and any(w in ln for w in words)], \
        "no error at line %s naming any of %r in:\n%s" % (lines, words, r.stderr)


def test_check_refuses_plaintext_off_loopback_and_curve_allows_it(tmp_path):
    server, clients, _, _ = security_files(str(tmp_path))
    sec_no = "[security]\ncurve = no\n"
    r, conf = check(tmp_path, endpoints_and_security("tcp://0.0.0.0:7410", "tcp://0.0.0.0:7411",
                                                     sec_no))
    assert_refused(r, conf, [(3, "control: 'tcp://0.0.0.0:7410' would listen off loopback "
                                 "in plaintext"),
                             (4, "publish: 'tcp://0.0.0.0:7411' would listen off loopback")])
    for control, publish in (("tcp://0.0.0.0:7410", "tcp://0.0.0.0:7411"),
                             ("tcp://*:7410", "tcp://192.168.1.20:7411")):
        r, _ = check(tmp_path, endpoints_and_security(
            control, publish, security_section(server.secret_file, clients).lstrip("\n")))
        assert_accepted(r)


def test_check_refuses_a_server_certificate_it_cannot_use(tmp_path):
    """server_cert missing, a directory, not a certificate, a public one:
    refused at its line, and fasciad -f does not start; curve = yes
    without server_cert is refused too."""
    server, clients, keys, _ = security_files(str(tmp_path))
    garbage = os.path.join(keys, "garbage.key_secret")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    # the public file alone (CZMQ would read a STEM.key_secret beside it)
    public_only = str(tmp_path / "public-only" / "server.key")
    os.makedirs(os.path.dirname(public_only))
    shutil.copyfile(server.public_file, public_only)
    for what, path in (("missing", os.path.join(keys, "nothing-here.key_secret")),
                       ("a directory", keys),
                       ("not a certificate", garbage),
                       ("a public certificate (no secret key)", public_only)):
        r, conf = check(tmp_path, endpoints_and_security(
            "tcp://0.0.0.0:7410", "tcp://0.0.0.0:7411",
            security_section(path, clients).lstrip("\n")))
        try:
            assert_refused_at(r, conf, 8, "server_cert", path)
        except AssertionError as e:
            raise AssertionError("server_cert %s: %s" % (what, e))
    # the daemon does not start with it either (in plaintext least of all)
    try:
        p = subprocess.run([FASCIAD_BIN, "-f", "-c", conf], capture_output=True, text=True,
                           timeout=10 * SLOW, stdin=subprocess.DEVNULL, env=daemon_env(conf))
    except subprocess.TimeoutExpired as e:
        raise AssertionError("fasciad -f ran with a public certificate as server_cert: %r"
                             % (e.stdout,))
    assert p.returncode != 0 and "ready" not in p.stdout, (p.returncode, p.stdout, p.stderr)
    assert "server_cert" in p.stderr or public_only in p.stderr, p.stderr
    # curve = yes without a server_cert: at the [security] lines
    r, no_cert = check(tmp_path, endpoints_and_security(
        "tcp://0.0.0.0:7410", "tcp://0.0.0.0:7411",
        "[security]\ncurve = yes\nclients = %s\n" % clients))
    assert_refused_at(r, no_cert, (6, 7), "server_cert")


def names_cert(stderr, conf, conf_line, cert_path, *words):
    """Whether a line of stderr names the certificate and one of words,
    with a line: the configuration's "CONF:LINE: ..." (clients =) or the
    file's own "PATH:N: ..."."""
    for ln in stderr.splitlines():
        if not any(w in ln for w in words):
            continue
        if ln.startswith("%s:%d: " % (conf, conf_line)) and os.path.basename(cert_path) in ln:
            return True
        if re.search(re.escape(cert_path) + r":\d+: ", ln):
            return True
    return False


def test_check_refuses_a_client_certificate_without_a_valid_role(tmp_path):
    """An unknown role, no role (a public file as pyzmq writes it), and a
    secret certificate in the clients directory: -n names the file and a
    line (the configuration's clients = line, or the certificate's own)."""
    server, _, keys, _ = security_files(str(tmp_path))
    fine = make_cert(keys, "fine", role="observer")
    bad_role = make_cert(keys, "bob", role="superuser")
    no_role = make_cert(keys, "carl")             # pyzmq's public file: empty metadata
    secret = make_cert(keys, "dora", role="operator")
    for what, install, words in (
            ("role-superuser", lambda c: admit(bad_role, c), ("superuser",)),
            ("no-role", lambda c: admit(no_role, c), ("role",)),
            ("secret-cert", lambda c: shutil.copy(secret.secret_file, c),
             ("secret", "key_secret"))):
        clients = str(tmp_path / ("clients-" + what))
        os.makedirs(clients)
        admit(fine, clients)
        installed = install(clients)
        r, conf = check(tmp_path, endpoints_and_security(
            "tcp://127.0.0.1:7410", "tcp://127.0.0.1:7411",
            security_section(server.secret_file, clients).lstrip("\n")))
        assert r.returncode == 1 and "configuration OK" not in r.stdout, \
            (what, r.returncode, r.stdout, r.stderr)
        assert names_cert(r.stderr, conf, 9, installed, *words), \
            "%s: no error naming %s, %r and a line in:\n%s" % (what, installed, words, r.stderr)


def test_check_refuses_a_bad_local_endpoint_or_role(tmp_path):
    server, clients, _, _ = security_files(str(tmp_path))
    for more, line, words in (("local = tcp://127.0.0.1:7412\n", 10, "local"),
                              ("local = ipc://%s/ctl\nlocal_role = boss\n" % tmp_path, 11,
                               "local_role")):
        r, conf = check(tmp_path, endpoints_and_security(
            "tcp://127.0.0.1:7410", "tcp://127.0.0.1:7411",
            security_section(server.secret_file, clients, more=more).lstrip("\n")))
        assert_refused_at(r, conf, line, words)
    r, _ = check(tmp_path, endpoints_and_security(
        "tcp://127.0.0.1:7410", "tcp://127.0.0.1:7411",
        security_section(server.secret_file, clients,
                         more="local = ipc://%s/ctl\nlocal_role = observer\n" % tmp_path
                         ).lstrip("\n")))
    assert_accepted(r)


# --------------------------------------------------------------------------
# Who did what, in the record

def test_the_record_names_the_client_behind_each_command(srig):
    """A command's log entry names its certificate (`by`) and, from a
    gateway, the person it acts for (`as`); a session's operator is that
    person, else the certificate's name.  `as` from another certificate
    is forbidden, a bad name is a bad request; refusals are logged by
    name too."""
    r = srig
    d = r.d
    nurse, portal, watcher = r.peer("nurse"), r.peer("portal"), r.peer("watcher")
    ruth = {"as": "Dr. Ruth Smith"}
    seq0 = last_seq(d)

    def session_by(peer, **args):
        mark = r.sub.mark()
        rep = peer.call("start", device="sim", profile="long", **args)
        assert rep["ok"], rep
        sid = wait_running(r, mark)
        rep = peer.call("stop", device="sim", **args)
        assert rep["ok"], rep
        wait_idle(r)
        return sid

    by_ruth = session_by(portal, **ruth)
    by_portal = session_by(portal)
    by_nurse = session_by(nurse)

    mark = r.sub.mark()
    rep = nurse.call("start", device="sim", profile="long", **ruth)
    assert rep["ok"] is False and rep["error"]["code"] == "forbidden", rep
    assert '"as"' in rep["error"]["message"] or "as" in rep["error"]["message"].split(), rep
    assert "gateway" in rep["error"]["message"], rep
    refused_as = rep
    for bad in ("", "x" * 65, "Ruth/Smith", "Ruth\nSmith", 7):
        rep = portal.call("start", device="sim", profile="long", **{"as": bad})
        assert rep["ok"] is False and rep["error"]["code"] == "bad_request" and \
            rep["error"].get("field") == "as", (bad, rep)
    rep = watcher.call("start", device="sim", profile="long")
    assert_forbidden(rep, "start", "watcher", "observer")
    refused_role = rep
    assert_unchanged(r, "idle", None, mark)

    for sid, operator in ((by_ruth, "Dr. Ruth Smith"), (by_portal, "portal"),
                          (by_nurse, "nurse.joy")):
        assert wait_ended(d, sid)["operator"] == operator, sid
        [s] = [s for s in d.ok("history", limit=1000)["sessions"] if s["id"] == sid]
        assert s["operator"] == operator, s

    # (event, by, outcome, as) of each entry, oldest first; what an entry
    # keeps of a refused `as` is not the contract's
    unchecked = object()
    want = [("start", "portal", "ok", "Dr. Ruth Smith"),
            ("stop", "portal", "ok", "Dr. Ruth Smith"),
            ("start", "portal", "ok", None), ("stop", "portal", "ok", None),
            ("start", "nurse.joy", "ok", None), ("stop", "nurse.joy", "ok", None),
            ("start", "nurse.joy", "forbidden", unchecked),
            ("start", "watcher", "forbidden", None)]
    got = wait_until(lambda: (lambda es: es if len(es) >= len(want) else None)(
        [e for e in commands_since(d, seq0) if e["outcome"] != "bad_request"]),
        RECORD_TIMEOUT_S, interval=0.05, what="%d command entries" % len(want))
    assert [(e["event"], e.get("by"), e.get("outcome")) for e in got] == \
        [w[:3] for w in want], got
    for e, w in zip(got, want):
        if w[3] is not unchecked:
            assert e.get("as") == w[3], (w, e)
    assert got[-2]["message"] == refused_as["error"]["message"], got[-2]
    assert got[-1]["message"] == refused_role["error"]["message"], got[-1]


# --------------------------------------------------------------------------
# The local endpoint

@pytest.mark.parametrize("local_role", ["operator", "observer"])
def test_the_local_endpoint_answers_plaintext_with_its_role(start_sim, start_daemon, tmp_path,
                                                            local_role):
    """local = ipc://PATH: the socket file is the daemon's group's, mode
    0660; a plaintext client there is answered with local_role (default
    operator) and its commands are logged by "local"."""
    sim = start_sim()
    server, clients, _, certs = security_files(str(tmp_path), {"tech": {"role": "admin"}})
    sock_path = str(tmp_path / "control")
    more = "local = ipc://%s\n" % sock_path
    if local_role != "operator":
        more += "local_role = %s\n" % local_role
    conf = write_config(str(tmp_path), sim.port,
                        extra=security_section(server.secret_file, clients, more=more))
    d = start_daemon(conf, curve=certs["tech"].keys(server))
    assert d.local == "ipc://" + sock_path, d.ready_line
    st = os.stat(sock_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == os.getegid(), (st.st_gid, os.getegid())
    d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S, what="idle")
    sub = d.subscribe()
    local = Peer(d.local)
    try:
        assert local.call("hello")["ok"] and local.call("status", device="sim")["ok"]
        seq0 = last_seq(d)
        rep = local.call("start", device="sim", profile="long")
        if local_role == "observer":
            assert_forbidden(rep, "start", "local", "observer")
            assert d.status()["state"] == "idle"
        else:
            assert rep["ok"], rep
            sub.wait_state(lambda m: m["state"] == "running", 2.0 * SLOW, what="running")
        assert local.call("vent", device="sim")["ok"]
        d.wait_status(lambda st: st["state"] == "idle", RELEASE_TIMEOUT_S, what="idle")
        doc = copy.deepcopy(PROFILES["wave"])
        doc["name"] = "by-local"
        assert_forbidden(local.call("profile.put", profile=doc), "profile.put", "local",
                         local_role)
        assert not os.path.exists(os.path.join(str(tmp_path), "profiles", "by-local.json"))
        got = wait_until(lambda: (lambda es: es if len(es) >= 3 else None)(
            commands_since(d, seq0)), RECORD_TIMEOUT_S, interval=0.05,
            what="3 command entries")
        assert [(e["event"], e.get("by")) for e in got] == \
            [("start", "local"), ("vent", "local"), ("profile.put", "local")], got
    finally:
        local.close()
