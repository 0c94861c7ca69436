#!/usr/bin/python3
"""tests/bench/web.py: fascia-web under 50 event streams (issue 15).

    FASCIA_BUILD=build /usr/bin/python3 tests/bench/web.py [--seconds S] [--streams N]
                                                          [--quick Q] [--json FILE]

One fascia-sim of 4 devices, 4 fasciad (one device each, curve = yes,
tick_hz 50, publish_hz 10, journal off) and one fascia-web with the 4 as
its rooms (its own certificate, gateway = yes) and one user (observer).
The measuring process opens N (50) event streams on /api/events, logged
in as that user, and one CURVE ZeroMQ SUB on each daemon, all read by one
poll loop in one thread that only stamps and scans what arrives (a regex
for room and seq, no JSON parsing), so that it is not the bottleneck (its
own CPU is a row).

Latency: every state message carries `link.t_built_us`, CLOCK_MONOTONIC µs
of when fasciad built it, the clock of time.monotonic_ns() here.  The same
message (room, seq) is stamped where the direct subscriber reads it and
where each stream reads its `event: state`:
  - direct: arrival at the SUB - t_built_us (the daemon's own publish
    latency to a subscriber, CURVE);
  - SSE: arrival on a stream - t_built_us;
  - fascia-web's own: SSE arrival - direct arrival of the same message.
Q (10) of the N streams set TCP_QUICKACK after every read, the others ACK
as a browser's would (delayed): a diagnostic, in the same windows, of
Nagle on the console's sockets.

Windows: S (20) seconds with the console attached and S without, in 4
alternating windows (with, without, with, without), the daemons and the
direct subscribers running throughout; the console is started (login,
rooms live, every stream past its snapshot) before each "with" window and
stopped by its pid after it.  CPU: /proc/PID/stat utime+stime over the
"with" windows; RSS: VmRSS and VmHWM at the last one's end.  Tick timing:
the 4 daemons' `status` ticks.late_hist, summed over each kind of window:
late-tick p99 with and without the console, and the ratio.

Figures and ratios only: the exit status is 0 unless something broke.
Importable: measure(build, tmp, seconds, streams) -> raw dict,
rows(raw) -> [row() keyword dicts] (tests/bench/run.py's `web` phase).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
import fascia  # noqa: E402

STATIC = os.path.abspath(os.path.join(HERE, "..", "..", "clients", "fascia-web", "static"))
CLK = os.sysconf("SC_CLK_TCK")
ROOMS = 4
USER, PASSWORD = "bench", "bench-web-pw-1"
GRACE_S = 1.0
# Of the streams, QUICK ACK at once (TCP_QUICKACK after every read), the
# others as a browser does (Linux delays an ACK up to 40 ms): a diagnostic
# in the same windows, of what Nagle on the console's sockets costs
# against a delayed ACK.
QUICK = 10

RE_ROOM = re.compile(rb'"room":"([^"]+)"')
RE_SEQ = re.compile(rb'"seq":(\d+)')
RE_BUILT = re.compile(rb'"t_built_us":(\d+)')


# ---- processes ----------------------------------------------------------

class Proc:
    """A child with a ready line (parsed into .ready), stopped by its pid."""

    def __init__(self, args, procs, timeout=15.0, env=None):
        self.args = args
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err,
                                  stdin=subprocess.DEVNULL, env=env)
        self.pid = self.p.pid
        self.procs = procs
        procs.append(self)
        try:
            self.ready = fascia.ready_fields(fascia.read_ready(self.p, timeout))
        except fascia.NotReady as e:
            self.stop()
            raise RuntimeError("%s: %s: %s" % (args[0], e, self.stderr()))

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-2000:]

    def stop(self, timeout=10.0):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.p.communicate()
        if self in self.procs:
            self.procs.remove(self)
        return self.p.returncode

    def cpu_s(self):
        with open("/proc/%d/stat" % self.pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / CLK

    def mem_kib(self):
        m = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in ("VmRSS", "VmHWM"):
                    m[k] = int(line.split()[1])
        return m


def self_cpu_s():
    t = os.times()
    return t.user + t.system


# ---- certificates, configuration ------------------------------------------

def write_cert(path, public, secret=None, meta=None):
    """A ZPL certificate as zcert_save writes it (the public file with its
    metadata too)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write("#   ZeroMQ CURVE %s Certificate (tests/bench/web.py)\n\nmetadata\n"
                % ("**Secret**" if secret else "Public"))
        for k, v in (meta or {}).items():
            f.write('    %s = "%s"\n' % (k, v))
        f.write('curve\n    public-key = "%s"\n' % public.decode())
        if secret:
            f.write('    secret-key = "%s"\n' % secret.decode())
    if not secret:
        os.chmod(path, 0o644)


def make_certs(tmp):
    """The daemons' certificate, the bench's (operator: it reads status)
    and the console's (operator, gateway = yes), the two public halves in
    the daemons' clients directory."""
    top = os.path.join(tmp, "curve")
    clients = os.path.join(top, "clients")
    os.makedirs(clients)
    c = {"clients": clients}
    for name, meta in (("server", {"name": "fasciad"}),
                       ("bench", {"name": "bench", "role": "operator"}),
                       ("console", {"gateway": "yes", "name": "console", "role": "operator"})):
        pub, sec = zmq.curve_keypair()
        write_cert(os.path.join(top, name + ".key_secret"), pub, sec, meta)
        write_cert(os.path.join(top, name + ".key"), pub, None, meta)
        if name != "server":
            write_cert(os.path.join(clients, name + ".key"), pub, None, meta)
        c[name] = (pub, sec, os.path.join(top, name + ".key"),
                   os.path.join(top, name + ".key_secret"))
    return c


def write_daemon_conf(tmp, i, port, certs):
    prof = os.path.join(tmp, "profiles")
    os.makedirs(prof, exist_ok=True)
    path = os.path.join(tmp, "fasciad-r%d.conf" % i)
    with open(path, "w") as f:
        f.write("[daemon]\ncontrol = tcp://127.0.0.1:*\npublish = tcp://127.0.0.1:*\n"
                "profiles = %s\ntick_hz = 50\npublish_hz = 10\njournal = off\n\n"
                "[security]\ncurve = yes\nserver_cert = %s\nclients = %s\n\n"
                "[device sim]\naddress = 127.0.0.1:%d\nchambers = 8\nlimit_mmhg = 60\n"
                % (prof, certs["server"][3], certs["clients"], port))
    return path


def write_web_conf(tmp, daemons, certs, users):
    path = os.path.join(tmp, "web.conf")
    lines = ["[web]", "listen = 127.0.0.1:0", "static = %s" % STATIC, "users = %s" % users,
             "cert = %s" % certs["console"][3]]
    for i, d in enumerate(daemons):
        lines += ["", "[room r%d]" % (i + 1), "control = %s" % d.ready["control"],
                  "publish = %s" % d.ready["publish"], "server_key = %s" % certs["server"][2]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---- ZeroMQ -------------------------------------------------------------

def curve_socket(ctx, kind, certs):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey, s.curve_secretkey = certs["bench"][0], certs["bench"][1]
    s.curve_serverkey = certs["server"][0]
    return s


class Req:
    def __init__(self, ctx, ep, certs):
        self.s = curve_socket(ctx, zmq.REQ, certs)
        self.s.setsockopt(zmq.RCVTIMEO, 4000)
        self.s.connect(ep)

    def status(self):
        self.s.send(json.dumps({"v": 1, "id": 1, "cmd": "status", "device": "sim"}).encode())
        r = json.loads(self.s.recv())
        return r["result"] if r.get("ok") else None

    def close(self):
        self.s.close(0)


def wait_until(f, timeout, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = f()
        except (OSError, zmq.ZMQError, ValueError, KeyError):
            v = None
        if v:
            return v
        time.sleep(interval)
    return None


# ---- HTTP ---------------------------------------------------------------

def http(host, port, method, path, body=b"", headers=None, timeout=10.0):
    """One request on a fresh connection (HTTP/1.0, read to the end):
    (status, headers list, body)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        h = dict(headers or {})
        if body:
            h["Content-Length"] = str(len(body))
        req = "%s %s HTTP/1.0\r\nHost: %s:%d\r\n%s\r\n" % (
            method, path, host, port, "".join("%s: %s\r\n" % kv for kv in h.items()))
        s.sendall(req.encode() + body)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    hdrs = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
    return int(lines[0].split()[1]), hdrs, rest


def login(host, port):
    st, hdrs, body = http(host, port, "POST", "/login",
                          urllib.parse.urlencode({"name": USER, "password": PASSWORD}).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"})
    for k, v in hdrs:
        if k.lower() == "set-cookie" and v.startswith("fascia_session="):
            return v.split(";", 1)[0]
    raise RuntimeError("login: %d %r %r" % (st, hdrs, body[:200]))


class Stream:
    """One GET /api/events, read by the poll loop: its buffer, and the
    complete events cut from it."""

    def __init__(self, host, port, cookie, quick=False):
        self.quick = quick
        self.s = socket.create_connection((host, port), timeout=10)
        self.s.sendall(("GET /api/events HTTP/1.0\r\nHost: %s:%d\r\nAccept: text/event-stream"
                        "\r\nCookie: %s\r\n\r\n" % (host, port, cookie)).encode())
        self.s.setblocking(False)
        self.buf = b""
        self.head = None          # the reply's status line and headers, once read
        self.snapshots = 0
        self.closed = False


# ---- the poll loop ------------------------------------------------------

class Loop:
    """Every stream and direct SUB in one zmq.Poller, one thread.  While
    .recording: direct[(room, seq)] = (arrival µs, t_built_us) and
    sse[(room, seq)] = [arrival µs, …], CLOCK_MONOTONIC."""

    def __init__(self, subs):
        self.poller = zmq.Poller()
        self.subs = {}
        for room, s in subs:
            self.poller.register(s, zmq.POLLIN)
            self.subs[s] = room
        self.streams = {}
        self.lock = threading.Lock()
        self.recording = False
        self.direct, self.sse = {}, {}
        self.bad = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def add(self, st):
        with self.lock:
            self.streams[st.s.fileno()] = st
            self.poller.register(st.s.fileno(), zmq.POLLIN)

    def snapshots(self):
        with self.lock:
            return [s.snapshots for s in self.streams.values()]

    def drop_streams(self):
        with self.lock:
            for fd, st in list(self.streams.items()):
                if not st.closed:
                    self.poller.unregister(fd)
                st.s.close()
            self.streams.clear()

    def run(self):
        while not self.stop:
            ready = self.poller.poll(100)
            with self.lock:
                for what, _ in ready:
                    now = time.monotonic_ns() // 1000
                    if not isinstance(what, int):
                        self.read_sub(what, now)
                    elif what in self.streams and not self.streams[what].closed:
                        self.read_stream(self.streams[what], now)

    def read_sub(self, s, now):
        room = self.subs[s]
        while True:
            try:
                frames = s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not self.recording or not frames[0].startswith(b"state."):
                continue
            m, b = RE_SEQ.search(frames[1]), RE_BUILT.search(frames[1])
            if m and b:
                self.direct[(room, int(m.group(1)))] = (now, int(b.group(1)))
            else:
                self.bad += 1

    def read_stream(self, st, now):
        try:
            data = st.s.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            st.closed = True
            self.poller.unregister(st.s.fileno())
            return
        if st.quick:
            st.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        buf = st.buf + data
        if st.head is None:
            if b"\r\n\r\n" not in buf:
                st.buf = buf
                return
            st.head, _, buf = buf.partition(b"\r\n\r\n")
        *events, st.buf = buf.split(b"\n\n")
        for ev in events:
            if b"event: state\n" in ev:
                if not self.recording:
                    continue
                r, m = RE_ROOM.search(ev), RE_SEQ.search(ev)
                if r and m:
                    self.sse.setdefault((r.group(1).decode(), int(m.group(1))), []).append(
                        (now, st.quick))
                else:
                    self.bad += 1
            elif b"event: snapshot\n" in ev:
                st.snapshots += 1


# ---- statistics -----------------------------------------------------------

def list_q(v):
    if not v:
        return None
    v = sorted(v)
    return {"p50": v[len(v) // 2], "p99": v[min(len(v) - 1, int(len(v) * 0.99))],
            "max": v[-1], "n": len(v)}


def hist_of(sparse):
    return {lo: n for lo, n in sparse}


def hist_sub(a, b):
    return {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0) > 0}


def hist_q(h):
    n = sum(h.values())
    if not n:
        return None
    out, keys = {}, sorted(h)
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        acc = 0
        for k in keys:
            acc += h[k]
            if acc >= q * n:
                out[name] = float(k)
                break
    out.update(max=float(keys[-1]), n=n)
    return out


def late_hists(reqs):
    return [hist_of(r.status()["ticks"]["late_hist"]) for r in reqs]


def window_hist(h0, h1):
    tot = {}
    for a, b in zip(h1, h0):
        for k, v in hist_sub(a, b).items():
            tot[k] = tot.get(k, 0) + v
    return tot


# ---- the measurement ------------------------------------------------------

def start_console(build, tmp, daemons, certs, users, procs, loop, streams, quick):
    """fascia-web, logged in, its rooms live, `streams` event streams open
    in the loop, each past its snapshot: (Proc, host, port)."""
    web = Proc([os.path.join(build, "fascia-web"), "-c",
                write_web_conf(tmp, daemons, certs, users)], procs)
    u = urllib.parse.urlsplit(web.ready["listen"])
    host, port = u.hostname, u.port
    cookie = login(host, port)

    def all_live():
        st, _, body = http(host, port, "GET", "/api/state", headers={"Cookie": cookie})
        rooms = json.loads(body)["rooms"]
        return st == 200 and len(rooms) == ROOMS and all(
            x["live"] and x["devices"] for x in rooms)
    if not wait_until(all_live, 15, 0.1):
        raise RuntimeError("the console's rooms are not live: %s" % web.stderr())
    for i in range(streams):
        loop.add(Stream(host, port, cookie, i < quick))
    if not wait_until(lambda: all(loop.snapshots()), 10, 0.05):
        raise RuntimeError("not every stream had its snapshot: %d of %d" % (
            sum(1 for x in loop.snapshots() if x), streams))
    with loop.lock:
        bad = [s.head[:80] for s in loop.streams.values() if b" 200 " not in s.head[:16]]
    if bad:
        raise RuntimeError("event streams refused: %r" % bad[:3])
    return web, host, port


def measure(build, tmp, seconds=20.0, streams=50, log=None, windows=4, quick=QUICK):
    """The whole run -> raw figures (a dict of plain values).  `windows`
    windows of seconds * 2 / windows each, the console attached and
    stopped in turn (with, without, with, ...): `seconds` of each in all,
    so that a change in the machine's load falls on both."""
    log = log or (lambda m: print("web: " + m, file=sys.stderr, flush=True))
    procs, ctx = [], zmq.Context()
    reqs, subs, loop = [], [], None
    w_s = seconds * 2 / windows
    quick = min(quick, streams)
    res = {"streams": streams, "quick": quick, "rooms": ROOMS, "seconds": seconds,
           "windows": windows, "tick_hz": 50, "publish_hz": 10}
    try:
        users = os.path.join(tmp, "web-users")
        # the hash first: argon2id's work would only load the box later
        r = subprocess.run([os.path.join(build, "fascia-web"), "--add-user", USER, "--role",
                            "observer", "-u", users], input=PASSWORD + "\n",
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError("fascia-web --add-user: %s" % r.stderr)
        certs = make_certs(tmp)
        sim = Proc([os.path.join(build, "fascia-sim"), "-p", "0", "-c", "tcp://127.0.0.1:*",
                    "--devices", str(ROOMS), "--seed", "7"], procs)
        ports = [int(x.rsplit(":", 1)[1]) for x in sim.ready["modbus"].split(",")]
        daemons = [Proc([os.path.join(build, "fasciad"), "-f", "-c",
                         write_daemon_conf(tmp, i, ports[i], certs)], procs)
                   for i in range(ROOMS)]
        for i, d in enumerate(daemons):
            q = Req(ctx, d.ready["control"], certs)
            reqs.append(q)
            if not wait_until(lambda: (q.status() or {}).get("state") == "idle", 10):
                raise RuntimeError("room r%d: not idle: %s" % (i + 1, d.stderr()))
            s = curve_socket(ctx, zmq.SUB, certs)
            s.setsockopt(zmq.RCVHWM, 100000)
            s.setsockopt(zmq.SUBSCRIBE, b"state.")
            s.connect(d.ready["publish"])
            subs.append(("r%d" % (i + 1), s))
        loop = Loop(subs)
        loop.thread.start()

        acc = {True: {"hist": {}, "direct": [], "dcpu": 0.0, "t": 0.0},
               False: {"hist": {}, "direct": [], "dcpu": 0.0, "t": 0.0}}
        lat_sse, own, lat_quick, lat_slow, first = [], [], [], [], []
        web_cpu = self_cpu = 0.0
        n_msgs = n_sse = closed = 0
        res["metrics"] = {}
        for k in range(windows):
            attached = k % 2 == 0
            if attached:
                web, host, port = start_console(build, tmp, daemons, certs, users, procs,
                                                loop, streams, quick)
            time.sleep(1.0)
            log("window %d of %d, %.0f s, %s" % (k + 1, windows, w_s,
                "console and %d streams attached" % streams if attached else "no console"))
            with loop.lock:
                loop.direct, loop.sse = {}, {}
            h0, d0 = late_hists(reqs), [d.cpu_s() for d in daemons]
            w0, me0 = (web.cpu_s() if attached else 0), self_cpu_s()
            t0 = time.monotonic()
            loop.recording = True
            time.sleep(w_s)
            t1 = time.monotonic()
            h1, d1 = late_hists(reqs), [d.cpu_s() for d in daemons]
            w1, me1 = (web.cpu_s() if attached else 0), self_cpu_s()
            time.sleep(GRACE_S if attached else 0)   # the streams' copies of the last messages
            loop.recording = False
            a = acc[attached]
            for lo, n in window_hist(h0, h1).items():
                a["hist"][lo] = a["hist"].get(lo, 0) + n
            a["dcpu"] += sum(d1) - sum(d0)
            a["t"] += t1 - t0
            lo_us, hi_us = int(t0 * 1e6), int(t1 * 1e6)
            with loop.lock:
                # the messages the direct SUBs read within the window, and
                # every stream's copy of each
                direct = {key: v for key, v in loop.direct.items() if lo_us <= v[0] <= hi_us}
                sse = loop.sse
                loop.direct, loop.sse = {}, {}
            a["direct"] += [x - b for x, b in direct.values()]
            if attached:
                web_cpu += w1 - w0
                self_cpu += me1 - me0
                n_msgs += len(direct)
                for key, (x, b) in direct.items():
                    if sse.get(key):
                        first.append(min(y for y, _ in sse[key]) - x)
                    for y, q in sse.get(key, ()):
                        lat_sse.append(y - b)
                        own.append(y - x)
                        (lat_quick if q else lat_slow).append(y - b)
                        n_sse += 1
                res["web_mem_kib"] = web.mem_kib()
                with loop.lock:
                    closed += sum(1 for s in loop.streams.values() if s.closed)
                try:
                    body = http(host, port, "GET", "/metrics")[2]
                    res["metrics"] = {m.group(1).decode(): float(m.group(2)) for m in re.finditer(
                        rb"^(fascia_web_sse_\w+) (\S+)$", body, re.M)}
                except OSError:
                    pass
                loop.drop_streams()
                res["web_rc"] = web.stop()
        res["bad"] = loop.bad
        t_with = acc[True]["t"]
        res["web_cpu"] = web_cpu / t_with
        res["self_cpu"] = self_cpu / t_with
        res["daemon_cpu_with"] = acc[True]["dcpu"] / t_with / ROOMS
        res["daemon_cpu_without"] = acc[False]["dcpu"] / acc[False]["t"] / ROOMS
        res["late_with"] = hist_q(acc[True]["hist"])
        res["late_without"] = hist_q(acc[False]["hist"])
        res["streams_closed"] = closed
        res["sse_events"] = n_sse
        res["state_messages"] = n_msgs
        res["sse_expected"] = n_msgs * streams
        res["lat_direct"] = list_q(acc[True]["direct"])
        res["lat_direct_without"] = list_q(acc[False]["direct"])
        res["lat_sse"] = list_q(lat_sse)
        res["lat_own"] = list_q(own)
        res["lat_own_first"] = list_q(first)
        res["lat_sse_quickack"] = list_q(lat_quick)
        res["lat_sse_delayed_ack"] = list_q(lat_slow)
        return res
    finally:
        if loop is not None:
            loop.stop = True
            loop.thread.join(timeout=2)
            loop.drop_streams()
        for s in subs:
            s[1].close(0)
        for q in reqs:
            q.close()
        for p in reversed(list(procs)):
            p.stop()
        ctx.term()


# ---- the rows -------------------------------------------------------------

def rows(raw):
    """row() keyword dicts (tests/bench/run.py's columns: median is p50)."""
    out = []

    def rr(x, y):
        return round(x / y, 3) if (x is not None and y) else None

    def row(name, fig, unit, ref=None, ref_name="", ratio=None, target="", met=None, note=""):
        out.append(dict(name=name, fig=fig, unit=unit, ref=ref, ref_name=ref_name,
                        ratio=ratio, target=target, met=met, note=note))

    def single(v):
        return {"p50": v, "p99": v, "max": v, "n": 1}

    if not raw:
        return out
    n, k = raw["streams"], raw["rooms"]
    sse, dr, own = raw.get("lat_sse"), raw.get("lat_direct"), raw.get("lat_own")
    if sse and dr:
        row("web: state message -> SSE event, %d streams, %d rooms" % (n, k), sse, "us",
            dr["p50"], "direct p50", rr(sse["p50"], dr["p50"]), "", None,
            "t_built_us -> read on a stream; ratio: p50 SSE / p50 of a direct CURVE SUB "
            "of the same daemons, same messages")
        row("  direct ZeroMQ SUB, same daemons (built -> read)", dr, "us")
        row("  at p99: SSE / direct", None, "x", dr["p99"], "direct p99",
            rr(sse["p99"], dr["p99"]))
    qa, da = raw.get("lat_sse_quickack"), raw.get("lat_sse_delayed_ack")
    if qa and da:
        row("  the %d streams that ACK as a browser does (delayed)" % (n - raw["quick"]), da,
            "us")
        row("  the %d streams that ACK at once (TCP_QUICKACK)" % raw["quick"], qa, "us",
            da["p99"], "delayed p99", rr(qa["p99"], da["p99"]), "", None,
            "a diagnostic, same windows: Nagle on the console's sockets (no TCP_NODELAY) "
            "waits for the client's ACK; ratio: p99 quick / delayed")
    dw = raw.get("lat_direct_without")
    if dr and dw:
        row("  direct ZeroMQ SUB, console stopped", dw, "us", dr["p99"], "attached p99",
            rr(dw["p99"], dr["p99"]), "", None, "the windows without fascia-web's "
            "subscription and its streams")
    if own:
        row("  fascia-web's own: SSE read - direct read, same message", own, "us", None, "",
            None, "", None, "its SUB hop, JSON in and out, the %d-way copy, and this "
            "process reading the %d streams one after another" % (n, n))
    of = raw.get("lat_own_first")
    if of:
        row("  the same, each message's first copy read", of, "us", None, "", None, "", None,
            "the earliest of the %d streams: the console's path without the fan-out" % n)
    if raw.get("sse_expected"):
        row("  SSE events read / state messages x streams", single(raw["sse_events"]), "n",
            raw["sse_expected"], "expected", rr(raw["sse_events"], raw["sse_expected"]), "1",
            None, "%d streams closed, dropped (metrics) %s"
            % (raw.get("streams_closed", 0),
               fmt_m(raw.get("metrics", {}).get("fascia_web_sse_dropped_total"))))
    if raw.get("web_cpu") is not None:
        row("web: fascia-web CPU, %d streams at %d Hz x %d rooms" % (n, raw["publish_hz"], k),
            single(round(raw["web_cpu"] * 100, 2)), "% core", None, "", None, "", None,
            "utime+stime over the %.0f s attached; %d state events/s written"
            % (raw["seconds"], raw["sse_events"] / raw["seconds"]))
        m = raw.get("web_mem_kib", {})
        if m.get("VmRSS"):
            row("web: fascia-web RSS", single(round(m["VmRSS"] / 1024, 2)), "MiB",
                round(m.get("VmHWM", 0) / 1024, 2), "VmHWM", None, "", None,
                "VmRSS at the window's end; VmHWM includes the login's argon2id (64 MiB)")
    lw, lo = raw.get("late_with"), raw.get("late_without")
    if lw and lo:
        row("web: tick lateness 50 Hz, console attached", lw, "us", lo["p99"],
            "no console p99", rr(lw["p99"], lo["p99"]), "~1x", None,
            "ticks.late_hist of the %d daemons summed, %.0f s each way in %d alternating "
            "windows; ratio: p99 with / without" % (k, raw["seconds"], raw["windows"]))
        row("  the same, console stopped", lo, "us")
    if raw.get("daemon_cpu_with") is not None and raw.get("daemon_cpu_without"):
        row("  fasciad CPU per daemon, console attached",
            single(round(raw["daemon_cpu_with"] * 100, 2)), "% core",
            round(raw["daemon_cpu_without"] * 100, 2), "no console",
            rr(raw["daemon_cpu_with"], raw["daemon_cpu_without"]))
    if raw.get("self_cpu") is not None:
        row("  the measuring process's CPU (%d streams, %d SUBs)" % (n, k),
            single(round(raw["self_cpu"] * 100, 1)), "% core", None, "", None, "< 100 %",
            raw["self_cpu"] < 1.0, "one poll loop: not the bottleneck while well below 100")
    return out


def fmt_m(v):
    return "-" if v is None else "%d" % v


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 10 else "%.0f" % v
    return str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--json")
    ap.add_argument("--quick", type=int, default=QUICK,
                    help="how many streams ACK at once (TCP_QUICKACK), a diagnostic")
    a = ap.parse_args()
    build = os.path.abspath(os.environ.get("FASCIA_BUILD",
                                           os.path.join(HERE, "..", "..", "build")))
    for b in ("fasciad", "fascia-sim", "fascia-web"):
        if not os.access(os.path.join(build, b), os.X_OK):
            sys.exit("web.py: no %s in %s (make first)" % (b, build))
    tmp = tempfile.mkdtemp(prefix="fascia-bench-web-")
    load0 = os.getloadavg()[0]
    try:
        raw = measure(build, tmp, a.seconds, a.streams, quick=a.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw["load1"], raw["load1_end"] = load0, os.getloadavg()[0]
    rs = rows(raw)
    hdr = ("row", "unit", "median", "p99", "max", "ref", "ratio", "target")
    lines = [[r["name"], r["unit"], fmt(r["fig"] and r["fig"]["p50"]),
              fmt(r["fig"] and r["fig"]["p99"]), fmt(r["fig"] and r["fig"]["max"]),
              (fmt(r["ref"]) + " " + r["ref_name"]).strip() if r["ref"] is not None else "-",
              fmt(r["ratio"]), r["target"]] for r in rs]
    w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(hdr)]
    print(" | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    print("-|-".join("-" * x for x in w))
    for l in lines:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(l)))
    print("(load %.2f -> %.2f)" % (raw["load1"], raw["load1_end"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rs, "raw": raw}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
