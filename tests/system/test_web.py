"""fascia-web without a browser (issue 15): its HTTP routes, as a browser
or a scraper would meet them, against real fasciad rooms with CURVE.

The rig (`wrig`): a fascia-sim and a curve = yes fasciad (room "a"), the
console's certificate made by `fasciactl keygen` with `gateway = "yes"`
in the daemon's clients directory, a users file of three (alice the
operator, olga the observer, adam the admin) written by `fascia-web
--add-user`, and fascia-web on 127.0.0.1 with a free port, whose pages are
a small static directory of the test's own (the real pages are the
browser tests').  The test's own connection to the daemon (rig.d, the
admin "tech") reads the journal to see what reached it.

Each scenario is named for what a user would see.  Processes are waited
for by retrying and stopped by pid.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import urllib.parse

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SLOW, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import IDLE_TIMEOUT_S, Rig, ack_until_idle
from daemon_rig import Daemon, Web, add_web_user, console_cert, run_web_check, \
    write_config, write_web_config
from test_journal import commands_since, last_seq
from test_security import CLIENTS, security_files, security_section

LIVE_TIMEOUT_S = 5.0 * SLOW
# A room silent for 2 s is not live; the console looks every 250 ms.
SILENT_TIMEOUT_S = 5.0 * SLOW
HTTP_TIMEOUT_S = 10.0 * SLOW
PASSWORDS = {"alice": "alice-pw-1", "olga": "olga-pw-1", "adam": "adam-pw-1"}
ROLES = {"alice": "operator", "olga": "observer", "adam": "admin"}

PAGES = {
    "index.html": "<!doctype html><title>clinic</title><div id=\"alarms\"></div>\n",
    "device.html": "<!doctype html><title>device</title>\n",
    "login.html": "<!doctype html><title>login</title><form id=\"login\"></form>"
                  "<div id=\"message\"></div>\n",
    "app.js": "\"use strict\";\n",
    "style.css": "body { margin: 0 }\n",
    "icon.svg": "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
}


# --------------------------------------------------------------------------
# A browser without a browser: cookies, the CSRF token, event streams

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        assert (self.header("Content-Type") or "").startswith("application/json"), \
            (self.status, self.headers, self.body[:300])
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:300])


class Browser:
    """HTTP(S) requests to the console with a cookie jar; .csrf once
    me() has run.  source: the local address to connect from (any of
    127/8), which the console's rate limit counts by."""

    def __init__(self, url, cafile=None, source="127.0.0.1"):
        u = urllib.parse.urlsplit(url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=cafile) if self.https else None
        self.source = source
        self.cookies = {}
        self.csrf = None

    def connection(self, timeout=HTTP_TIMEOUT_S):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ctx,
                                               source_address=(self.source, 0))
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                          source_address=(self.source, 0))

    def _headers(self, extra):
        h = dict(extra or {})
        if self.cookies:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        return h

    def _take_cookies(self, reply):
        for c in reply.all("Set-Cookie"):
            name, _, rest = c.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in c:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def request(self, method, path, body=None, headers=None):
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            r = conn.getresponse()
            reply = Reply(r.status, r.getheaders(), r.read())
        finally:
            conn.close()
        self._take_cookies(reply)
        return reply

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def login(self, name, password, json_reply=False):
        body = urllib.parse.urlencode({"name": name, "password": password})
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        if json_reply:
            h["Accept"] = "application/json"
        return self.request("POST", "/login", body=body, headers=h)

    def me(self):
        r = self.get("/api/me")
        assert r.status == 200, r
        me = r.json()
        self.csrf = me["csrf"]
        return me

    def post(self, path, obj=None, csrf=True, token=None):
        h = {"Content-Type": "application/json"}
        if csrf:
            h["X-CSRF-Token"] = token if token is not None else self.csrf
        return self.request("POST", path, body=json.dumps(obj or {}), headers=h)


def logged_in(url, name, **kw):
    b = Browser(url, **kw)
    r = b.login(name, PASSWORDS[name])
    assert r.status == 303 and r.header("Location") == "/", r
    b.me()
    return b


class EventStream:
    """GET /api/events read by a thread: .events, a list of (id, event,
    data as JSON, monotonic time of receipt), and .comments."""

    def __init__(self, browser):
        self.conn = browser.connection(timeout=60)
        self.conn.request("GET", "/api/events", headers=browser._headers(
            {"Accept": "text/event-stream"}))
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type")
        self.events, self.comments = [], []
        self.closed = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        if self.status == 200:
            self.thread.start()

    def _run(self):
        ev = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                if line == "":
                    if "data" in ev:
                        with self.lock:
                            self.events.append((ev.get("id"), ev.get("event", "message"),
                                                json.loads(ev["data"]), time.monotonic()))
                    ev = {}
                elif line.startswith(":"):
                    with self.lock:
                        self.comments.append(line)
                else:
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass
        self.closed = True

    def of(self, kind, since=0):
        with self.lock:
            return [e for e in self.events[since:] if e[1] == kind]

    def mark(self):
        with self.lock:
            return len(self.events)

    def wait(self, kind, pred, timeout, since=0, what=None):
        def find():
            for e in self.of(kind, since):
                if pred(e[2]):
                    return e
            return None
        return wait_until(find, timeout, interval=0.01,
                          what=what or "an event %s matching %s" % (kind, pred))

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()
        self.thread.join(timeout=2)


# --------------------------------------------------------------------------
# The rig

def make_static(directory):
    os.makedirs(directory, exist_ok=True)
    for name, text in PAGES.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    return directory


def make_users(path):
    for name, pw in PASSWORDS.items():
        r = add_web_user(path, name, ROLES[name], pw)
        assert r.returncode == 0, r
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fixed_ports(conf_path):
    """Give the daemon's control and publish fixed free ports (a restart
    comes back where the console looks)."""
    with open(conf_path) as f:
        text = f.read()
    text = text.replace("control = tcp://127.0.0.1:*",
                        "control = tcp://127.0.0.1:%d" % free_port(), 1)
    text = text.replace("publish = tcp://127.0.0.1:*",
                        "publish = tcp://127.0.0.1:%d" % free_port(), 1)
    with open(conf_path, "w") as f:
        f.write(text)


class WebRig(Rig):
    """Rig (sim, d, sub, dir) with the console: .web (Web), .url, .static,
    .users, .server (the daemon's Cert), .console (public, secret),
    .web_conf."""

    def room(self, name="a"):
        return (name, self.d.control, self.d.publish, self.server.public_file)

    def browser(self, **kw):
        return Browser(self.url, **kw)

    def commands_since(self, seq0):
        return commands_since(self.d, seq0)


def wait_live(url, room="a", device="sim", timeout=LIVE_TIMEOUT_S, browser=None,
              state="idle"):
    """/api/state once room is live with device in it (in state, unless
    that is None)."""
    b = browser or Browser(url)

    def ready():
        r = b.get("/api/state")
        if r.status != 200:
            return None
        for rm in r.json()["rooms"]:
            if rm["room"] == room and rm["live"] and \
                    any(d["device"] == device and state in (None, d["state"])
                        for d in rm["devices"]):
                return rm
        return None
    return wait_until(ready, timeout, interval=0.05,
                      what="room %s live with %s %s in /api/state" % (room, device, state))


@pytest.fixture
def start_web():
    started = []

    def start(conf_path, **kw):
        w = Web(conf_path, **kw)
        started.append(w)
        return w

    yield start
    errors = []
    for w in started:
        try:
            w.finish()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


def secure_daemon(start_sim, start_daemon, directory, restartable=False):
    """A sim and a curve = yes fasciad admitting CLIENTS and the console:
    (sim, daemon, server Cert, (console public, secret), conf path)."""
    sim = start_sim()
    server, clients_dir, keys_dir, certs = security_files(directory, CLIENTS)
    console = console_cert(os.path.join(directory, "console-keys"))
    shutil.copy(console[0], os.path.join(clients_dir, "console.key"))
    conf = write_config(directory, sim.port,
                        extra=security_section(server.secret_file, clients_dir))
    if restartable:
        fixed_ports(conf)
    d = start_daemon(conf, curve=certs["tech"].keys(server))
    d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S,
                  what="device sim idle after start-up")
    return sim, d, server, console, conf, certs


def build_rig(start_sim, start_daemon, start_web, tmp_path, restartable=False, users=True,
              web_extra=()):
    directory = str(tmp_path)
    # the hashes first: argon2id's work and memory would only load the box
    # while the daemon drives the simulator
    users_file = make_users(os.path.join(directory, "web-users")) if users else None
    sim, d, server, console, conf, certs = secure_daemon(start_sim, start_daemon, directory,
                                                         restartable)
    static = make_static(os.path.join(directory, "static"))
    rig = WebRig(sim, d, d.subscribe(), directory)
    rig.server, rig.console, rig.static, rig.users, rig.daemon_conf = \
        server, console, static, users_file, conf
    rig.web_conf = write_web_config(os.path.join(directory, "web.conf"), [rig.room()],
                                    users=users_file, cert=console[1], static=static,
                                    web_extra=web_extra)
    rig.web = start_web(rig.web_conf)
    rig.url = rig.web.url
    try:
        wait_live(rig.url, browser=logged_in(rig.url, "alice") if users else None, state=None)
    except AssertionError as e:
        raise AssertionError("%s; fascia-web's log:\n%s\nfasciad's log:\n%s"
                             % (e, rig.web.log()[-3000:], d.log()[-3000:]))
    settle(rig)
    return rig


def settle(rig):
    """The device idle: a loaded test box may stall the simulator for the
    three ticks that trip the comms interlock; its fault is acknowledged
    (by the test's own connection)."""
    if rig.d.status()["state"] != "idle":
        ack_until_idle(rig)



@pytest.fixture
def wrig(start_sim, start_daemon, start_web, tmp_path):
    return build_rig(start_sim, start_daemon, start_web, tmp_path)


def untouched(rig, mark):
    """No session began: not in status, not in what was published since
    mark (a loaded box may still trip comms: that is not a command)."""
    st = rig.d.status()
    assert st["state"] in ("idle", "fault") and st["session"] is None, st
    assert not [m for m in rig.sub.states(mark) if m["state"] == "running" or m["session"]]
    return st


def start_session(rig, browser, **body):
    """POST start through the console; its reply, which must be ok.  A
    device the loaded test box made trip (comms: the simulator stalled) is
    acknowledged once and the start tried again."""
    body.setdefault("profile", "long")
    for attempt in (1, 2):
        r = browser.post("/api/a/sim/start", body)
        assert r.status == 200, r
        rep = r.json()
        if rep["ok"] or attempt == 2 or rig.d.status()["state"] != "fault":
            break
        settle(rig)
    assert rep["ok"] is True and rep["result"]["state"] == "running", \
        (rep, rig.d.status()["alarms"])
    return rep


def stop_session(rig, browser):
    r = browser.post("/api/a/sim/stop")
    assert r.status == 200 and r.json()["ok"], r
    rig.d.wait_status(lambda st: st["state"] == "idle", 15.0 * SLOW, what="idle after stop")


# --------------------------------------------------------------------------
# Logging in

def test_a_login_opens_a_session_in_a_strict_httponly_cookie(wrig):
    b = wrig.browser()
    r = b.login("alice", PASSWORDS["alice"])
    assert r.status == 303 and r.header("Location") == "/", r
    cookie = r.header("Set-Cookie")
    assert cookie.startswith("fascia_session="), cookie
    attrs = [a.strip() for a in cookie.split(";")]
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs, cookie
    assert "Secure" not in attrs, "Secure on plain HTTP: the browser would never send it"
    assert re.fullmatch(r"[0-9a-f]{64}", b.cookies["fascia_session"]), b.cookies
    me = b.me()
    assert me["name"] == "alice" and me["role"] == "operator", me
    assert re.fullmatch(r"[0-9a-f]{64}", me["csrf"]) and me["csrf"] != b.cookies["fascia_session"]
    # every user is who the file says
    for name in ("olga", "adam"):
        assert logged_in(wrig.url, name).me()["role"] == ROLES[name]
    assert "login: alice (operator) from 127.0.0.1" in wrig.web.log()


def test_pages_and_the_api_need_a_session_but_the_login_page_does_not(wrig):
    b = wrig.browser()
    for path in ("/", "/index.html", "/device.html?room=a&device=sim"):
        r = b.get(path)
        assert r.status == 303 and r.header("Location") == "/login.html", (path, r)
    for path in ("/api/me", "/api/state", "/api/events", "/api/a/profiles",
                 "/api/a/history?device=sim"):
        r = b.get(path)
        assert r.status == 401 and r.json()["error"]["code"] == "unauthenticated", (path, r)
    for path, ctype in (("/login.html", "text/html"), ("/app.js", "text/javascript"),
                        ("/style.css", "text/css"), ("/icon.svg", "image/svg+xml")):
        r = b.get(path)
        assert r.status == 200 and r.header("Content-Type").startswith(ctype), (path, r)
        assert r.body.decode() == PAGES[path[1:]], path
        assert r.header("X-Content-Type-Options") == "nosniff", r
    assert b.get("/metrics").status == 200 and b.get("/healthz").status == 200
    b = logged_in(wrig.url, "olga")
    r = b.get("/")
    assert r.status == 200 and r.body.decode() == PAGES["index.html"], r
    assert "script-src 'self'" in r.header("Content-Security-Policy"), r
    assert r.header("X-Frame-Options") == "DENY", r


def test_static_paths_outside_the_directory_are_not_found(wrig, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web\n")
    os.symlink(str(secret), os.path.join(wrig.static, "link.txt"))
    with open(os.path.join(wrig.static, ".hidden"), "w") as f:
        f.write("hidden\n")
    b = logged_in(wrig.url, "alice")
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt",
                 "/static/../../secret.txt", "/link.txt", "/.hidden", "//etc/passwd",
                 "/%2fetc%2fpasswd", "/app.js%00.html", "/nothing.html", "/app.js/"):
        r = b.get(path)
        assert r.status in (400, 404), (path, r)
        assert b"not for the web" not in r.body and b"root:" not in r.body, (path, r)
    assert b.get("/app.js").status == 200


def test_a_wrong_password_is_refused_and_the_page_says_so(wrig):
    b = wrig.browser(source="127.0.0.9")
    r = b.login("alice", "not-the-password")
    assert r.status == 401, r
    assert r.header("Content-Type").startswith("text/html"), r
    assert b'<div id="message">Wrong name or password.</div>' in r.body, r
    assert "fascia_session" not in b.cookies
    assert b.get("/api/me").status == 401
    r = b.login("nobody", "whatever", json_reply=True)
    assert r.status == 401 and r.json()["error"]["code"] == "bad_login", r
    assert "login as alice from 127.0.0.9 refused: wrong name or password" in wrig.web.log()


def test_repeated_wrong_passwords_are_slowed_per_name_and_per_address(wrig):
    """After 3 failures, each attempt is refused 429 with Retry-After until
    the wait has passed, the right password too; the wait doubles."""
    url = wrig.url
    # per name: from three addresses, then a fourth
    for i in range(3):
        r = Browser(url, source="127.0.0.%d" % (20 + i)).login("alice", "wrong")
        assert r.status == 401, (i, r)
    t0 = time.monotonic()
    r = Browser(url, source="127.0.0.23").login("alice", PASSWORDS["alice"])
    assert r.status == 429 and r.header("Retry-After") == "1", r
    assert b"Too many failed logins" in r.body, r
    wait_until(lambda: "login as alice from 127.0.0.23 refused: too many failures"
               in wrig.web.log(), 2.0, what="the refusal in the log")
    # once the wait has passed, one more try; wrong again: 2 s
    time.sleep(max(0.0, 1.05 - (time.monotonic() - t0)))
    r = Browser(url, source="127.0.0.23").login("alice", "wrong")
    assert r.status == 401, r
    r = Browser(url, source="127.0.0.24").login("alice", "wrong")
    assert r.status == 429 and r.header("Retry-After") == "2", r
    # other names are not held up by alice's
    assert logged_in(url, "olga", source="127.0.0.25").me()["name"] == "olga"
    # per address: three names fail from one address, then a good login there
    for name in ("x", "y", "adam"):
        assert Browser(url, source="127.0.0.30").login(name, "wrong").status == 401
    r = Browser(url, source="127.0.0.30").login("olga", PASSWORDS["olga"], json_reply=True)
    assert r.status == 429 and r.json()["error"]["code"] == "rate_limited", r
    assert int(r.header("Retry-After")) >= 1
    # after the wait the right password gets in, and clears the count
    time.sleep(2.1)
    b = Browser(url, source="127.0.0.24")
    assert b.login("alice", PASSWORDS["alice"]).status == 303
    assert Browser(url, source="127.0.0.26").login("alice", "wrong").status == 401


def test_logout_ends_the_session_and_needs_the_csrf_token(wrig):
    b = logged_in(wrig.url, "alice")
    stream = EventStream(b)
    try:
        stream.wait("snapshot", lambda d: True, 2.0)
        r = b.request("POST", "/logout")
        assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
        assert b.get("/api/me").status == 200
        r = b.request("POST", "/logout", headers={"X-CSRF-Token": b.csrf})
        assert r.status == 303 and r.header("Location") == "/login.html", r
        assert "Max-Age=0" in r.header("Set-Cookie"), r
        wait_until(lambda: stream.closed, 3.0, what="the event stream ended at logout")
    finally:
        stream.close()
    assert "fascia_session" not in b.cookies
    assert b.get("/api/me").status == 401


# --------------------------------------------------------------------------
# Commands: refused before the daemon, or forwarded as the person

def test_a_post_without_the_csrf_token_or_a_session_is_refused_and_not_forwarded(wrig):
    seq0, mark = last_seq(wrig.d), wrig.sub.mark()
    start = {"profile": "long", "patient": "P-1"}
    b = logged_in(wrig.url, "alice")
    r = b.post("/api/a/sim/start", start, csrf=False)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
    r = b.post("/api/a/sim/start", start, token="0" * 64)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
    other = logged_in(wrig.url, "adam")
    r = b.post("/api/a/sim/vent", token=other.csrf)      # another session's token
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
    anon = wrig.browser()
    r = anon.post("/api/a/sim/start", start, token=b.csrf)
    assert r.status == 401 and r.json()["error"]["code"] == "unauthenticated", r
    r = anon.request("POST", "/api/a/sim/vent")
    assert r.status == 401, r
    # nothing reached the daemon: the journal's log has no command since
    time.sleep(0.3)
    assert wrig.commands_since(seq0) == [], wrig.commands_since(seq0)
    untouched(wrig, mark)


def test_a_command_is_forwarded_and_the_journal_names_the_console_and_the_person(wrig):
    seq0 = last_seq(wrig.d)
    b = logged_in(wrig.url, "alice")
    # members the route does not pass on: the device is the URL's, the
    # person the session's
    rep = start_session(wrig, b, patient="P-7", note="left leg", device="other",
                        **{"as": "mallory"})
    assert rep["v"] == 1 and "id" in rep, "the daemon's reply as it came"
    stop_session(wrig, b)
    entries = wait_until(lambda: (lambda es: es if len(es) >= 2 else None)(
        [e for e in wrig.commands_since(seq0) if e["outcome"] == "ok"]), 5.0 * SLOW,
        interval=0.05, what="two command entries")
    assert [(e["event"], e["by"], e["as"], e["device"]) for e in entries] == \
        [("start", "console", "alice", "sim"), ("stop", "console", "alice", "sim")], entries
    assert {(e["by"], e["as"]) for e in wrig.commands_since(seq0)} == {("console", "alice")}
    session = wrig.d.ok("history", device="sim", limit=1)["sessions"][0]
    assert session["operator"] == "alice" and session["patient"] == "P-7", session
    log = wrig.web.log()
    assert "alice (operator): start a/sim: ok" in log and "alice (operator): stop a/sim: ok" in log
    # the daemon's refusals come back as they came, HTTP 200
    r = b.post("/api/a/sim/pause")
    assert r.status == 200 and r.json()["error"]["code"] == "forbidden", r
    r = b.post("/api/a/sim/start", {"profile": "no-such"})
    assert r.status == 200 and r.json()["error"]["code"] == "unknown_profile", r
    r = b.post("/api/a/nodev/vent")
    assert r.status == 200 and r.json()["error"]["code"] == "unknown_device", r


def test_an_observer_may_vent_but_its_start_is_refused_without_reaching_the_daemon(wrig):
    seq0, mark = last_seq(wrig.d), wrig.sub.mark()
    b = logged_in(wrig.url, "olga")
    for action, body in (("start", {"profile": "long"}), ("pause", None), ("resume", None),
                         ("stop", None), ("ack", None)):
        r = b.post("/api/a/sim/" + action, body)
        assert r.status == 403, (action, r)
        err = r.json()["error"]
        assert err["code"] == "forbidden" and err["role"] == "operator", (action, err)
        assert err["message"] == "%s needs the operator role; olga has observer" % action
    time.sleep(0.3)
    assert wrig.commands_since(seq0) == []
    untouched(wrig, mark)
    r = b.post("/api/a/sim/vent")
    assert r.status == 200 and r.json()["ok"] is True, r
    entries = wait_until(lambda: wrig.commands_since(seq0), 5.0, interval=0.05,
                         what="the vent's command entry")
    assert [(e["event"], e["by"], e["as"]) for e in entries] == [("vent", "console", "olga")]
    assert "olga (observer): start a/sim: refused" in wrig.web.log()


def test_reads_pass_the_daemons_replies_through(wrig):
    b = logged_in(wrig.url, "olga")
    r = b.get("/api/a/profiles")
    assert r.status == 200 and sorted(p["name"] for p in r.json()["result"]["profiles"]) == \
        ["long", "wave"], r
    alice = logged_in(wrig.url, "alice")
    start_session(wrig, alice, patient="P-9")
    stop_session(wrig, alice)
    r = b.get("/api/a/history?device=sim&limit=5")
    sessions = r.json()["result"]["sessions"]
    assert r.status == 200 and len(sessions) == 1 and sessions[0]["patient"] == "P-9", r
    sid = sessions[0]["id"]
    r = b.get("/api/a/session?session=%s&trace=1" % urllib.parse.quote(sid))
    s = r.json()["result"]["session"]
    assert s["id"] == sid and "trace" in s and "log" in s, s
    r = b.get("/api/a/history?limit=banana")
    assert r.status == 200 and r.json()["error"]["code"] == "bad_request", r
    assert b.get("/api/zz/profiles").status == 404
    assert b.get("/api/a/nothing").status == 404
    assert b.post("/api/a/sim/explode").status == 404
    assert b.post("/api/zz/sim/vent").json()["error"]["code"] == "unknown_room"
    assert b.get("/api/a/sim/vent").status == 405


# --------------------------------------------------------------------------
# Metrics and health

def metrics(url):
    r = Browser(url).get("/metrics")
    assert r.status == 200 and r.header("Content-Type").startswith("text/plain"), r
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    return fams


def samples(fams, family, sample=None, **labels):
    f = fams[family]
    name = sample or f.name
    return [s for s in f.samples if s.name == name and
            all(s.labels.get(k) == v for k, v in labels.items())]


def value(fams, family, sample=None, **labels):
    got = samples(fams, family, sample, **labels)
    assert len(got) == 1, (family, labels, got)
    return got[0].value


def test_metrics_parse_and_match_the_daemons_status(wrig):
    """/metrics is the latest state message of each device: its values are
    those of one message the daemon published, and what does not change at
    rest (state, setpoints, timeouts, late ticks) is what status says."""
    before = wrig.d.status()
    fams = metrics(wrig.url)
    after = wrig.d.status()
    published = wrig.sub.states()
    dev = {"room": "a", "device": "sim"}
    assert value(fams, "fascia_room_up", room="a") == 1
    assert value(fams, "fascia_device_state", state="idle", **dev) == 1
    for s in ("offline", "running", "paused", "releasing", "venting", "fault"):
        assert value(fams, "fascia_device_state", state=s, **dev) == 0, s
    assert value(fams, "fascia_link_up", **dev) == 1
    assert len(samples(fams, "fascia_chamber_pressure_mmhg", **dev)) == len(after["chambers"])
    for i, ch in enumerate(after["chambers"]):
        c = str(i + 1)
        assert value(fams, "fascia_chamber_setpoint_mmhg", chamber=c, **dev) == \
            ch["setpoint"] == before["chambers"][i]["setpoint"]
    for fam, obj, key in (("fascia_link_timeouts", "link", "timeouts"),
                          ("fascia_ticks_late", "ticks", "late")):
        assert value(fams, fam, fam + "_total", **dev) == before[obj][key] == after[obj][key], \
            fam
    assert fams["fascia_link_timeouts"].type == "counter"
    # the message it was read from: every figure of one published message
    exchanges = value(fams, "fascia_link_exchanges", "fascia_link_exchanges_total", **dev)
    source = [m for m in published if m["link"]["exchanges"] == exchanges]
    assert len(source) == 1, (exchanges, [m["link"]["exchanges"] for m in published[-5:]])
    source = source[0]
    for i, ch in enumerate(source["chambers"]):
        assert value(fams, "fascia_chamber_pressure_mmhg", chamber=str(i + 1), **dev) == \
            ch["pressure"]
    assert before["link"]["exchanges"] - 20 <= exchanges <= after["link"]["exchanges"]
    # the round trips: cumulative buckets from the message's rtt_hist
    h = fams["fascia_link_rtt_seconds"]
    assert h.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in h.samples
               if s.name == "fascia_link_rtt_seconds_bucket"]
    hist = source["link"]["rtt_hist"]
    assert buckets[-1][0] == "+Inf" and [float(le) for le, _ in buckets[:-1]] == \
        [64e-6 * 2 ** i for i in range(len(hist) - 1)], buckets
    assert [v for _, v in buckets] == [sum(hist[:i + 1]) for i in range(len(hist))], \
        (buckets, hist)
    assert value(fams, "fascia_link_rtt_seconds", "fascia_link_rtt_seconds_count", **dev) == \
        sum(hist)
    # the record is counted once the room is heard: no sample until then
    fams = wait_until(lambda: (lambda f: f if samples(f, "fascia_sessions", "fascia_sessions_total",
                                                      **dev) else None)(metrics(wrig.url)),
                      5.0 * SLOW, interval=0.1, what="fascia_sessions_total for a/sim")
    assert value(fams, "fascia_sessions", "fascia_sessions_total", end_reason="stopped",
                 **dev) == 0
    # alarms as the state lists them, and sessions as the record counts them
    b = logged_in(wrig.url, "alice")
    start_session(wrig, b)
    stop_session(wrig, b)
    start_session(wrig, b)
    wrig.sim.inject("estop")
    wrig.d.wait_status(lambda st: st["state"] == "fault", 3.0 * SLOW, what="fault")
    fams = wait_until(lambda: (lambda f: f if samples(f, "fascia_alarm_present", **dev) else None)(
        metrics(wrig.url)), 3.0, what="an alarm in /metrics")
    assert value(fams, "fascia_alarm_present", alarm="estop", priority="high", chamber="0",
                 **dev) == 1
    assert value(fams, "fascia_alarm_cause_present", alarm="estop", **dev) == 1
    assert value(fams, "fascia_device_state", state="fault", **dev) == 1

    def ended(reason, n):
        def check():
            f = metrics(wrig.url)
            got = samples(f, "fascia_sessions", "fascia_sessions_total", end_reason=reason,
                          **dev)
            return f if got and got[0].value == n else None
        return check
    fams = wait_until(ended("fault", 1), 5.0, interval=0.1, what="one session ended in fault")
    assert value(fams, "fascia_sessions", "fascia_sessions_total", end_reason="stopped",
                 **dev) == 1
    history = wrig.d.ok("history", device="sim")["sessions"]
    assert sorted(s["end_reason"] for s in history) == ["fault", "stopped"], history
    wrig.sim.clear("estop")


def test_healthz_lists_the_rooms(wrig):
    r = wrig.browser().get("/healthz")
    assert r.status == 200 and r.body.decode().splitlines() == ["ok", "room a live"], r


# --------------------------------------------------------------------------
# Live events

def test_an_event_stream_gets_the_snapshot_at_once_then_state_events(wrig):
    b = logged_in(wrig.url, "olga")
    t0 = time.monotonic()
    stream = EventStream(b)
    try:
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        snap = stream.wait("snapshot", lambda d: True, 1.0, what="the snapshot")
        assert snap[3] - t0 < 1.0, "the snapshot came after %.2f s" % (snap[3] - t0)
        assert stream.events[0][1] == "snapshot", stream.events[:2]
        rooms = snap[2]["rooms"]
        assert [r["room"] for r in rooms] == ["a"] and rooms[0]["live"] is True, rooms
        assert isinstance(rooms[0]["last_heard_ms"], int)
        assert [d["device"] for d in rooms[0]["devices"]] == ["sim"], rooms
        # then every state message of the room, as published
        mark = stream.mark()
        ev = stream.wait("state", lambda d: d["room"] == "a", 1.0, since=mark)
        assert ev[2]["state"]["device"] == "sim" and ev[2]["state"]["v"] == 1, ev
        wait_until(lambda: len(stream.of("state", mark)) >= 5, 2.0, what="5 state events")
        ids = [int(e[0]) for e in stream.events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
        # a change is seen as it happens
        alice = logged_in(wrig.url, "alice")
        start_session(wrig, alice)
        stream.wait("state", lambda d: d["state"]["state"] == "running", 2.0)
        wrig.sim.inject("estop")
        ev = stream.wait("alarm", lambda d: d["alarm"]["alarm"] == "estop", 2.0)
        assert ev[2]["room"] == "a" and ev[2]["alarm"]["kind"] == "raised", ev
        stream.wait("state", lambda d: d["state"]["state"] == "fault", 2.0)
        wrig.sim.clear("estop")
        # a second stream (a reconnect) gets the whole state again
        again = EventStream(b)
        try:
            snap = again.wait("snapshot", lambda d: True, 1.0)
            dev = snap[2]["rooms"][0]["devices"][0]
            assert dev["state"] == "fault" and any(a["id"] == "estop" for a in dev["alarms"])
        finally:
            again.close()
    finally:
        stream.close()


def test_a_room_whose_daemon_is_killed_is_reported_not_live_and_live_again(
        start_sim, start_daemon, start_web, tmp_path):
    rig = build_rig(start_sim, start_daemon, start_web, tmp_path, restartable=True)
    b = logged_in(rig.url, "alice")
    stream = EventStream(b)
    try:
        stream.wait("snapshot", lambda d: d["rooms"][0]["live"], 1.0)
        mark = stream.mark()
        rig.d.kill()
        t_kill = time.monotonic()
        ev = stream.wait("room", lambda d: d["room"] == "a" and d["live"] is False,
                         SILENT_TIMEOUT_S, since=mark, what="room a not live")
        assert ev[3] - t_kill < 3.5 * SLOW, "told after %.1f s" % (ev[3] - t_kill)
        assert isinstance(ev[2]["last_heard_ms"], int)
        room = b.get("/api/state").json()["rooms"][0]
        assert room["live"] is False and room["devices"][0]["device"] == "sim", room
        assert "room a silent, last heard" in b.get("/healthz").body.decode()
        assert value(metrics(rig.url), "fascia_room_up", room="a") == 0
        t0 = time.monotonic()
        r = b.post("/api/a/sim/vent")
        assert r.status == 504, r
        assert r.json()["error"] == {"code": "unreachable", "message":
                                     "no reply from a: the daemon is down, or the server key "
                                     "is wrong"}, r
        assert time.monotonic() - t0 < 4.0 * SLOW
        # it comes back where it was: live again
        mark = stream.mark()
        d2 = start_daemon(rig.daemon_conf, curve=rig.d.curve)
        stream.wait("room", lambda d: d["room"] == "a" and d["live"] is True,
                    LIVE_TIMEOUT_S, since=mark, what="room a live again")
        wait_until(lambda: b.post("/api/a/sim/vent").status == 200, 5.0 * SLOW,
                   interval=0.2, what="a vent forwarded to the restarted daemon")
        assert d2.alive()
    finally:
        stream.close()


def test_a_stream_that_does_not_read_is_dropped_and_counted(start_sim, start_daemon, start_web,
                                                            tmp_path):
    # a small allowance, so that the test need not fill a megabyte
    rig = build_rig(start_sim, start_daemon, start_web, tmp_path,
                    web_extra=["sse_queue_kb = 16"])
    web = rig.web
    b = logged_in(web.url, "olga")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((b.host, b.port))
    sock.sendall(("GET /api/events HTTP/1.1\r\nHost: x\r\nCookie: fascia_session=%s\r\n\r\n"
                  % b.cookies["fascia_session"]).encode())
    try:
        fams = wait_until(lambda: (lambda f: f if value(f, "fascia_web_sse_dropped",
                                                          "fascia_web_sse_dropped_total") >= 1
                                   else None)(metrics(web.url)),
                          60.0 * SLOW, interval=0.5, what="the stream dropped")
        assert value(fams, "fascia_web_sse_clients") == 0
        assert "event stream of olga from 127.0.0.1 dropped" in web.log()
        # a reader keeps its stream
        stream = EventStream(b)
        try:
            stream.wait("state", lambda d: True, 2.0)
        finally:
            stream.close()
    finally:
        sock.close()


# --------------------------------------------------------------------------
# HTTPS

def make_tls(directory):
    crt, key = os.path.join(directory, "web.crt"), os.path.join(directory, "web.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", key, "-out", crt, "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    os.chmod(key, 0o600)
    return crt, key


def test_https_with_a_test_certificate(start_sim, start_daemon, start_web, tmp_path):
    directory = str(tmp_path)
    sim, d, server, console, conf, certs = secure_daemon(start_sim, start_daemon, directory)
    tls = make_tls(directory)
    users = make_users(os.path.join(directory, "web-users"))
    static = make_static(os.path.join(directory, "static"))
    web_conf = write_web_config(os.path.join(directory, "web.conf"),
                                [("a", d.control, d.publish, server.public_file)],
                                users=users, cert=console[1], tls=tls, static=static)
    web = start_web(web_conf)
    assert web.url.startswith("https://127.0.0.1:"), web.ready_line
    b = Browser(web.url, cafile=tls[0])
    r = b.login("alice", PASSWORDS["alice"])
    assert r.status == 303, r
    assert "Secure" in [a.strip() for a in r.header("Set-Cookie").split(";")], r
    assert r.header("Strict-Transport-Security").startswith("max-age="), r
    b.me()
    wait_live(web.url, browser=b)
    r = b.post("/api/a/sim/vent")
    assert r.status == 200 and r.json()["ok"], r
    stream = EventStream(b)
    try:
        stream.wait("state", lambda dd: dd["room"] == "a", 5.0 * SLOW)
    finally:
        stream.close()
    # no certificate the client trusts: no connection
    with pytest.raises(ssl.SSLError):
        Browser(web.url).get("/healthz")
    # plain HTTP on the HTTPS port gets no page
    u = urllib.parse.urlsplit(web.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        got = conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        got = b""
    finally:
        conn.close()
    assert b"room a" not in got


# --------------------------------------------------------------------------
# -n, --add-user, no users

def web_check(tmp_path, text):
    conf = tmp_path / "web.conf"
    conf.write_text(text)
    return run_web_check(str(conf)), str(conf)


def assert_refused(r, conf, errors):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    for line, words in errors:
        prefix = "%s:%d: " % (conf, line)
        assert [l for l in lines if l.startswith(prefix) and words in l], \
            "no error at line %d with %r in:\n%s" % (line, words, r.stderr)


def test_plain_http_off_loopback_is_refused_by_n_with_its_line(tmp_path):
    static = make_static(str(tmp_path / "static"))
    users = make_users(str(tmp_path / "users"))
    room = "[room a]\ncontrol = tcp://127.0.0.1:7410\npublish = tcp://127.0.0.1:7411\n"
    r, conf = web_check(tmp_path, "[web]\n"                                # 1
                                  "static = %s\n" % static +               # 2
                                  "users = %s\n" % users +                 # 3
                                  "listen = 0.0.0.0:8080\n" + room)        # 4
    assert_refused(r, conf, [(4, "listen: 0.0.0.0 is off loopback in plain HTTP")])
    r, conf = web_check(tmp_path, "[web]\nstatic = %s\n" % static +
                                  "listen = 192.168.1.5:8443\n" + room)    # 3
    assert_refused(r, conf, [(3, "off loopback in plain HTTP"),
                             (3, "off loopback without users")])
    # loopback in plain HTTP, and off loopback with TLS and users: accepted
    for listen in ("127.0.0.1:8080", "[::1]:8080", "localhost:0"):
        r, conf = web_check(tmp_path, "[web]\nstatic = %s\nlisten = %s\n" % (static, listen)
                            + room)
        assert r.returncode == 0 and "configuration OK, 1 room, no users" in r.stdout, r
    crt, key = make_tls(str(tmp_path))
    r, conf = web_check(tmp_path, "[web]\nstatic = %s\nusers = %s\nlisten = 0.0.0.0:8443\n"
                        "tls_cert = %s\ntls_key = %s\n" % (static, users, crt, key) + room)
    assert r.returncode == 0 and "configuration OK, 1 room, 3 users" in r.stdout, r


def test_n_names_each_mistake_with_its_line(tmp_path):
    static = make_static(str(tmp_path / "static"))
    keys = str(tmp_path / "keys")
    public, secret = console_cert(keys)
    r, conf = web_check(tmp_path, "[web]\n"                                # 1
                                  "static = %s\n" % static +               # 2
                                  "listen = 127.0.0.1:99999\n"             # 3
                                  "tls_cert = /nonexistent.crt\n"          # 4
                                  "colour = blue\n"                        # 5
                                  "cert = %s\n" % public +                 # 6
                                  "[room a b]\n"                           # 7
                                  "[room a]\n"                             # 8
                                  "control = 127.0.0.1:7410\n"             # 9
                                  "publish = tcp://127.0.0.1:7411\n"       # 10
                                  "publish = tcp://127.0.0.1:7412\n"       # 11
                                  "[room b]\n"                             # 12
                                  "control = tcp://127.0.0.1:7410\n"       # 13
                                  "publish = tcp://127.0.0.1:7411\n"       # 14
                                  "server_key = short\n"                   # 15
                                  "[room a]\n")                            # 16
    assert_refused(r, conf, [(3, "listen: port '99999' is not 0..65535"),
                             (4, "tls_cert and tls_key go together"),
                             (5, "unknown key 'colour' in [web]"),
                             (7, "room name 'a b'"),
                             (9, "control: '127.0.0.1:7410' is not a ZeroMQ endpoint"),
                             (11, "publish: given twice, first at line 10"),
                             (8, "[room a] needs server_key"),
                             (16, "room 'a' is defined twice, first at line 8")])
    # the files: the console's certificate must be a secret one (a public
    # one alone, without its secret beside it, is not), the server key a
    # key, the users file readable and private
    os.makedirs(str(tmp_path / "public-only"))
    public = shutil.copy(public, str(tmp_path / "public-only"))
    users = tmp_path / "users"
    users.write_text("alice:operator:$argon2id$v=19$m=65536,t=2,p=1$x$y\n"
                     "bob:nurse:$argon2id$v=19$m=65536,t=2,p=1$x$y\n"
                     "carol:admin:plaintext\n")
    os.chmod(str(users), 0o600)
    r, conf = web_check(tmp_path, "[web]\nstatic = %s\n" % static +        # 1, 2
                                  "users = %s\n" % users +                 # 3
                                  "cert = %s\n" % public +                 # 4
                                  "[room a]\ncontrol = tcp://127.0.0.1:7410\n"
                                  "publish = tcp://127.0.0.1:7411\n"       # 7
                                  "server_key = short\n")                  # 8
    assert_refused(r, conf, [(4, "cert: %s: not a CURVE secret certificate" % public)])
    assert_refused(r, str(users), [(2, "user bob: role 'nurse'"),
                                   (3, "user carol: the hash is not an argon2id string")])
    r, conf = web_check(tmp_path, "[web]\nstatic = %s\n" % static +
                                  "cert = %s\n" % secret +
                                  "[room a]\ncontrol = tcp://127.0.0.1:7410\n"
                                  "publish = tcp://127.0.0.1:7411\n"       # 6
                                  "server_key = short\n")                  # 7
    assert_refused(r, conf, [(7, "server_key: short: neither 40 characters of Z85")])
    os.chmod(str(users), 0o666)
    r, conf = web_check(tmp_path, "[web]\nstatic = %s\nusers = %s\n" % (static, users) +
                                  "[room a]\ncontrol = tcp://127.0.0.1:7410\n"
                                  "publish = tcp://127.0.0.1:7411\n")
    assert r.returncode == 1 and "%s: is writable by others" % users in r.stderr, r.stderr
    # plaintext to a daemon off loopback: it never listens there
    r, conf = web_check(tmp_path, "[web]\nstatic = %s\n" % static +
                                  "[room a]\ncontrol = tcp://10.0.0.5:7410\n"  # 3, 4
                                  "publish = tcp://127.0.0.1:7411\n")
    assert_refused(r, conf, [(4, "control: 'tcp://10.0.0.5:7410' is off loopback in plaintext")])
    r, conf = web_check(tmp_path, "[web]\nstatic = %s\n" % str(tmp_path / "none"))
    assert_refused(r, conf, [(2, "static: %s: No such file" % (tmp_path / "none"))])
    assert "no [room NAME] section" in r.stderr


def test_add_user_writes_a_private_file_and_replaces_a_user(wrig):
    users = wrig.users
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    lines = open(users).read().splitlines()
    assert [l.split(":")[:2] for l in lines] == [[n, ROLES[n]] for n in PASSWORDS], lines
    assert all(l.split(":", 2)[2].startswith("$argon2id$") for l in lines), lines
    assert not any(pw in open(users).read() for pw in PASSWORDS.values())
    r = add_web_user(users, "alice", "observer", "a-new-password")
    assert r.returncode == 0 and "replaced alice (observer)" in r.stdout, r
    lines = open(users).read().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("alice:observer:$argon2id$"), lines
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    old = logged_in(wrig.url, "alice")
    # SIGHUP reads the file again: the new password, the new role
    os.kill(wrig.web.pid, signal.SIGHUP)
    wait_until(lambda: "SIGHUP: 3 users" in wrig.web.log(), 3.0, what="the users read again")
    assert old.me()["role"] == "observer", "a session's role follows the file"
    assert wrig.browser(source="127.0.0.40").login("alice", PASSWORDS["alice"]).status == 401
    b = wrig.browser(source="127.0.0.41")
    assert b.login("alice", "a-new-password").status == 303
    assert b.me()["role"] == "observer"
    # a user taken out of the file is logged out
    with open(users) as f:
        kept = [l for l in f if not l.startswith("olga:")]
    with open(users, "w") as f:
        f.writelines(kept)
    olga = logged_in(wrig.url, "olga")
    os.kill(wrig.web.pid, signal.SIGHUP)
    wait_until(lambda: olga.get("/api/me").status == 401, 3.0, what="olga logged out")
    for bad in (("", "operator"), ("a:b", "operator"), ("eve", "root")):
        r = add_web_user(users, bad[0], bad[1], "pw")
        assert r.returncode == 2, (bad, r)


def test_without_users_on_loopback_every_visitor_is_admin_local_and_csrf_still_holds(
        start_sim, start_daemon, start_web, tmp_path):
    rig = build_rig(start_sim, start_daemon, start_web, tmp_path, users=False)
    b = rig.browser()
    assert b.get("/").status == 200
    me = b.me()
    assert me["name"] == "local" and me["role"] == "admin", me
    # a page of another site made to resolve to 127.0.0.1 is not served
    for path in ("/api/me", "/api/state"):
        r = Browser(rig.url).get(path, headers={"Host": "evil.example:%d" % b.port})
        assert r.status == 401, (path, r)
    assert Browser(rig.url).get("/", headers={"Host": "evil.example"}).status == 303
    seq0 = last_seq(rig.d)
    r = Browser(rig.url).post("/api/a/sim/vent", token=b.csrf)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", \
        "a request without the cookie has no token of its session"
    assert b.post("/api/a/sim/vent", csrf=False).status == 403
    r = b.post("/api/a/sim/vent")
    assert r.status == 200 and r.json()["ok"], r
    entries = wait_until(lambda: rig.commands_since(seq0), 5.0, interval=0.05,
                         what="the vent's entry")
    assert [(e["event"], e["by"], e["as"]) for e in entries] == [("vent", "console", "local")]
