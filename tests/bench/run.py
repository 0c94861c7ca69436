#!/usr/bin/python3
"""tests/bench/run.py: every benchmark in one run (issues 6, 12, 13 and 15).

    FASCIA_BUILD=build /usr/bin/python3 tests/bench/run.py [--json FILE] [--quick]

Starts fascia-sim, fasciad, fascia-web (the web phase: tests/bench/web.py),
the helper programs (build/bench/: bare_tick,
plain_client, pubsub, load, journal_query) and the pymodbus peer (tests/bench/peer.py) on
free loopback ports, stops each by its pid, prints one table and writes it
as JSON (the CURVE phase makes its certificates in the run's temporary
directory).  Method and meaning: docs/performance.md.  Timings are reported,
never judged by the exit status: it is 0 unless something broke.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
import fascia  # noqa: E402
# the certificates' files and the table's cells, as web.py writes them
from web import fmt, write_cert  # noqa: E402
BUILD = os.path.abspath(os.environ.get("FASCIA_BUILD", os.path.join(HERE, "..", "..", "build")))
BENCH = os.path.join(BUILD, "bench")
PY = "/usr/bin/python3"
CLK = os.sysconf("SC_CLK_TCK")
ZCTX = zmq.Context.instance()
PROCS = []


# ---- processes --------------------------------------------------------

class Proc:
    """A child; its ready line (if asked for) parsed into .ready."""

    def __init__(self, args, ready=None, timeout=10.0, cpus=None):
        self.args = args
        self.err = tempfile.TemporaryFile()
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err,
                                  stdin=subprocess.DEVNULL, preexec_fn=pin)
        self.pid = self.p.pid
        PROCS.append(self)
        self.ready = {}
        if ready:
            try:
                self.ready = fascia.ready_fields(fascia.read_ready(self.p, timeout))
            except fascia.NotReady as e:
                raise RuntimeError("%s: %s: %s" % (args[0], e, self.stderr()))

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-2000:]

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal by pid, wait; returns stdout after the ready line."""
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            out, _ = self.p.communicate()
        if self in PROCS:
            PROCS.remove(self)
        return out.decode(errors="replace")

    def wait_json(self, timeout):
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            out = self.stop().encode()
        if self in PROCS:
            PROCS.remove(self)
        out = out.decode(errors="replace").strip().splitlines()
        if not out:
            raise RuntimeError("%s: no output: %s" % (self.args, self.stderr()))
        return json.loads(out[-1])

    def cpu_s(self):
        u, s = self.cpu_us_s()
        return u + s

    def cpu_us_s(self):
        """(user, system) CPU seconds, at the clock tick's resolution."""
        with open("/proc/%d/stat" % self.pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return int(st[11]) / CLK, int(st[12]) / CLK

    def cpu_ns(self):
        """CPU time of every thread in ns (schedstat: ns resolution)."""
        tot = 0
        for t in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (self.pid, t)) as f:
                    tot += int(f.read().split()[0])
            except OSError:
                pass        # a thread that just ended
        return tot

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def start_sim(ndev, cpus=None):
    s = Proc([os.path.join(BUILD, "fascia-sim"), "-p", "0", "-c", "tcp://127.0.0.1:*",
              "--devices", str(ndev), "--seed", "7"], ready=True, cpus=cpus)
    s.ports = [int(x.rsplit(":", 1)[1]) for x in s.ready["modbus"].split(",")]
    s.control = s.ready["control"]
    return s


def write_conf(tmp, ports, hz=50, names=None, limit=60, journal="off", trace_hz=1,
               curve=None):
    """curve: make_certs()'s keys, for a daemon with curve = yes."""
    prof = os.path.join(tmp, "profiles")
    os.makedirs(prof, exist_ok=True)
    path = os.path.join(tmp, "fasciad-%d.conf" % random.randrange(1 << 30))
    with open(path, "w") as f:
        f.write("[daemon]\ncontrol = tcp://127.0.0.1:*\npublish = tcp://127.0.0.1:*\n"
                "profiles = %s\ntick_hz = %d\npublish_hz = 10\njournal = %s\n"
                "trace_hz = %d\n\n" % (prof, hz, journal, trace_hz))
        if curve:
            f.write("[security]\ncurve = yes\nserver_cert = %s\nclients = %s\n\n"
                    % (curve["server_cert"], curve["clients"]))
        for i, port in enumerate(ports):
            name = names[i] if names else ("sim" if i == 0 else "d%d" % i)
            f.write("[device %s]\naddress = 127.0.0.1:%d\nchambers = 8\nlimit_mmhg = %d\n\n"
                    % (name, port, limit))
    return path


def make_certs(tmp):
    """The daemon's certificate and one client's, role operator (the
    publish phase starts and acknowledges), in tmp/curve: the client's
    public half alone in the clients directory."""
    top = os.path.join(tmp, "curve")
    clients = os.path.join(top, "clients")
    os.makedirs(clients)
    spub, ssec = zmq.curve_keypair()
    cpub, csec = zmq.curve_keypair()
    c = {"server_cert": os.path.join(top, "server.key_secret"),
         "server_key": os.path.join(top, "server.key"), "clients": clients,
         "cert": os.path.join(top, "bench.key_secret"),
         "keys": (cpub, csec, spub)}
    write_cert(c["server_cert"], spub, ssec, {"name": "fasciad"})
    write_cert(c["server_key"], spub, None, {"name": "fasciad"})
    meta = {"name": "bench", "role": "operator"}
    write_cert(c["cert"], cpub, csec, meta)
    write_cert(os.path.join(clients, "bench.key"), cpub, None, meta)
    return c


def curve_args(curve):
    """The helpers' (pubsub, load) CURVE options: tests/bench/bench_opt.h."""
    return ["--cert", curve["cert"], "--server-key", curve["server_key"]] if curve else []


def start_daemon(conf, extra=(), cpus=None):
    d = Proc([os.path.join(BUILD, "fasciad"), "-f", "-c", conf] + list(extra), ready=True,
             cpus=cpus)
    d.control, d.publish = d.ready["control"], d.ready["publish"]
    return d


class Req:
    """A REQ client (one per thread); a CURVE client with curve
    (make_certs()'s keys)."""

    def __init__(self, ep, timeout_ms=4000, curve=None):
        self.ep, self.t, self.curve = ep, timeout_ms, curve
        self._open()

    def _open(self):
        self.s = ZCTX.socket(zmq.REQ)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.setsockopt(zmq.RCVTIMEO, self.t)
        if self.curve:
            pub, sec, server = self.curve["keys"]
            self.s.curve_publickey, self.s.curve_secretkey = pub, sec
            self.s.curve_serverkey = server
        self.s.connect(self.ep)

    def __call__(self, cmd, **kw):
        kw.update(v=1, id=1, cmd=cmd)
        self.s.send(json.dumps(kw).encode())
        try:
            return json.loads(self.s.recv())
        except zmq.Again:
            self.s.close(0)
            self._open()
            return {"ok": False, "error": {"code": "timeout"}}

    def close(self):
        self.s.close(0)


def wait_until(f, timeout, interval=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = f()
        if v:
            return v
        time.sleep(interval)
    return None


def status(req, dev="sim"):
    r = req("status", device=dev)
    return r["result"] if r.get("ok") else None


# ---- statistics -------------------------------------------------------

def hist_of(sparse):
    return {lo: n for lo, n in sparse}


def hist_sub(a, b):
    return {k: a.get(k, 0) - b.get(k, 0) for k in a if a.get(k, 0) - b.get(k, 0) > 0}


def hist_add(a, b):
    for k, v in b.items():
        a[k] = a.get(k, 0) + v
    return a


def hist_q(h):
    n = sum(h.values())
    if not n:
        return None
    out, acc, keys = {}, 0, sorted(h)
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        want, acc = q * n, 0
        for k in keys:
            acc += h[k]
            if acc >= want:
                out[name] = float(k)
                break
    out["max"] = float(keys[-1])
    out["n"] = n
    return out


def list_q(v):
    if not v:
        return None
    v = sorted(v)
    return {"p50": v[len(v) // 2], "p99": v[min(len(v) - 1, int(len(v) * 0.99))],
            "max": v[-1], "n": len(v)}


def median(v):
    return statistics.median(v) if v else None


# ---- the rows ---------------------------------------------------------

ROWS = []


def row(name, fig, unit, ref=None, ref_name="", ratio=None, target="", met=None, note=""):
    ROWS.append({"row": name, "unit": unit, "median": fig and fig.get("p50"),
                 "p99": fig and fig.get("p99"), "max": fig and fig.get("max"),
                 "n": fig and fig.get("n"), "ref": ref, "ref_name": ref_name,
                 "ratio": ratio, "target": target, "met": met, "note": note})


def single(v):
    return {"p50": v, "p99": v, "max": v, "n": 1}


# ---- 1 and 5: tick timing, footprint ----------------------------------

def tick_daemon(tmp, hz, curve=None):
    """The tick phase's set-up: a simulator of two devices (the peer's on
    the second), fasciad on the first, idle."""
    sim = start_sim(2)
    d = start_daemon(write_conf(tmp, sim.ports[:1], hz=hz, curve=curve))
    req = Req(d.control, curve=curve)
    wait_until(lambda: (status(req) or {}).get("state") == "idle", 10)
    time.sleep(0.5)
    return sim, d, req


def tick_condition(sim, d, req, hz, cond, a, out, curve=None):
    """a.rounds windows of a.tick_s of one condition (idle, or under
    `load`, a CURVE client of a CURVE daemon with curve), with bare_tick
    (and at 50 Hz the peer) in the same windows."""
    fh, bh, peer_late = {}, {}, []
    cpu, drift, rates = [], [], []
    for _ in range(a.rounds):
        s0 = status(req)
        c0, t0 = d.cpu_s(), time.monotonic()
        load = None
        if cond == "load":
            load = Proc([os.path.join(BENCH, "load"), d.control, d.publish, "50", "20",
                         str(a.tick_s + 1)] + curve_args(curve))
            time.sleep(0.5)
            s0, c0, t0 = status(req), d.cpu_s(), time.monotonic()
        bare = Proc([os.path.join(BENCH, "bare_tick"), str(hz), str(a.tick_s)])
        peer = None
        if hz == 50:
            peer = Proc([PY, os.path.join(HERE, "peer.py"), "--port", str(sim.ports[1]),
                         "--seconds", str(a.tick_s)], ready=True)
        time.sleep(a.tick_s)
        b = bare.wait_json(a.tick_s + 10)
        s1, c1, t1 = status(req), d.cpu_s(), time.monotonic()
        if peer:
            pj = peer.wait_json(20)
            peer_late += [max(0, x) for x in pj["late_us"]]
        if load:
            lj = load.wait_json(10)
            if not lj["requests"]:
                raise RuntimeError("load: no reply from %s%s" % (
                    d.control, " (CURVE)" if curve else ""))
            rates.append(lj["rate"])
            if not curve:
                out.setdefault("load_rate", []).append(lj["rate"])
        hist_add(fh, hist_sub(hist_of(s1["ticks"]["late_hist"]),
                              hist_of(s0["ticks"]["late_hist"])))
        hist_add(bh, hist_of(b["late_hist"]))
        drift += [s1["ticks"]["drift_ns"], b["drift_ns"]]
        cpu.append((c1 - c0) / (t1 - t0))
    return {"fascia": hist_q(fh), "bare": hist_q(bh),
            "peer": list_q(peer_late), "drift_ns": drift,
            "cpu_frac": cpu, "late_ticks": s1["ticks"]["late"],
            "rss_kib": d.rss_kib(), "load_rate": rates}


def phase_tick(tmp, a, out):
    for hz in (50, 200):
        sim, d, req = tick_daemon(tmp, hz)
        for cond in ("idle", "load"):
            out["tick_%d_%s" % (hz, cond)] = tick_condition(sim, d, req, hz, cond, a, out)
        req.close()
        d.stop()
        sim.stop()


# ---- 2 and 3: reaction, publish latency -------------------------------

FAULTS = {"overpressure": {"fault": "overpressure", "chamber": 1, "mmhg": 70},
          "estop": {"fault": "estop"},
          "stale": {"fault": "freeze"}}


# A session that holds 25 mmHg (below hold_time's 30) for ten minutes: the
# injections land in a running session, as in the clinic.  The peer runs the
# same hold.  overpressure trips above 40 + 5 mmHg on both.
HOLD_PROFILE = {
    "name": "bench-hold", "description": "hold 25 mmHg",
    "chambers": 8, "max_pressure_mmhg": 40, "max_ramp_mmhg_s": 10,
    "gradient": "none", "repeat": 1,
    "steps": [{"set": {"all": 25}, "ramp_s": 2.5, "hold_s": 600},
              {"set": {"all": 0}, "ramp_s": 2.5, "hold_s": 1}],
}


def injector(sim_ep, dev_no, kind, n, period, daemon_ep, dev_name, until, res):
    """n injections of kind (or until the time `until`), each at a random
    phase into a running session; each waits for the simulator's record,
    clears the fault, and has the controller acknowledge and run again."""
    sim = Req(sim_ep)
    dq = Req(daemon_ep) if daemon_ep else None
    recs, fails, recov = [], 0, 0

    def running():
        # the simulator says when the session runs; the daemon is only
        # asked to start (refused while it is not idle), so that this loop
        # does not load the main thread whose publishing is measured
        if sim("status", device=dev_no).get("result", {}).get("command") == "run":
            return True
        if dq:
            dq("start", device=dev_name, profile="bench-hold")
        return False

    while len(recs) + fails < n and time.monotonic() < until:
        if not wait_until(running, 6.0, 0.02):
            recov += 1
            continue
        time.sleep(random.uniform(0, period))          # a random phase
        r = sim("inject", device=dev_no, **FAULTS[kind])
        if not r.get("ok"):
            fails += 1
            continue
        inj = r["result"]["injected_ms"]

        def rec():
            st = sim("stats", device=dev_no)
            for x in st.get("result", {}).get("reactions", []):
                if x["injected_ms"] == inj and x["fault"] == FAULTS[kind]["fault"] \
                        and x["vented_ms"] is not None:
                    return x
            return None
        x = wait_until(rec, 3.0, 0.005)
        sim("clear", device=dev_no, fault=FAULTS[kind]["fault"])
        if x is None:
            fails += 1
        else:
            recs.append(x)
        if dq:
            wait_until(lambda: dq("ack", device=dev_name).get("ok"), 6.0, 0.02)
    res[(daemon_ep is not None, kind)] = {"records": recs, "fails": fails, "recov": recov}
    sim.close()
    if dq:
        dq.close()


def phase_reaction(tmp, a, out):
    kinds = list(FAULTS)
    sim = start_sim(2 * len(kinds))
    names = ["r_" + k for k in kinds]
    conf = write_conf(tmp, sim.ports[:len(kinds)], names=names)
    with open(os.path.join(tmp, "profiles", "bench-hold.json"), "w") as f:
        json.dump(HOLD_PROFILE, f)
    d = start_daemon(conf)
    req = Req(d.control)
    for nm in names:
        wait_until(lambda: (status(req, nm) or {}).get("state") == "idle", 10)
    peers = [Proc([PY, os.path.join(HERE, "peer.py"), "--port", str(p)], ready=True)
             for p in sim.ports[len(kinds):]]
    subs = Proc([os.path.join(BENCH, "pubsub"), "sub", d.publish, "10", "100000"])
    bare = Proc([os.path.join(BENCH, "pubsub"), "bare", "10", "100000", "50"])
    hop = Proc([os.path.join(BENCH, "pubsub"), "bare", "10", "100000", "50", "hop"])
    time.sleep(1.0)
    res, th = {}, []
    until = time.monotonic() + a.react_s
    for i, k in enumerate(kinds):
        th.append(threading.Thread(target=injector, args=(
            sim.control, i + 1, k, a.injections, 0.02, d.control, names[i], until, res)))
        th.append(threading.Thread(target=injector, args=(
            sim.control, len(kinds) + i + 1, k, a.injections, 0.02, None, None, until, res)))
    t0 = time.monotonic()
    for t in th:
        t.start()
    for t in th:
        t.join()
    out["reaction_s"] = time.monotonic() - t0
    out["pub_fascia"] = json.loads(subs.stop().strip().splitlines()[-1])
    out["pub_bare"] = json.loads(bare.stop().strip().splitlines()[-1])
    out["pub_hop"] = json.loads(hop.stop().strip().splitlines()[-1])
    out["rtt_hist_fascia"] = (status(req, names[0]) or {}).get("link", {}).get("rtt_hist")
    for p in peers:
        p.stop()
    req.close()
    d.stop()
    sim.stop()
    for (is_fascia, k), v in res.items():
        who = "fascia" if is_fascia else "peer"
        lat = [x["latency_ms"] * 1000 for x in v["records"] if x["latency_ms"] is not None]
        cause = [x["cause_to_vent_ms"] * 1000 for x in v["records"]]
        out["react_%s_%s" % (who, k)] = {"read_to_vent": list_q(lat),
                                          "cause_to_vent": list_q(cause),
                                          "exchanges": list_q([x["exchanges"] for x in v["records"]]),
                                          "fails": v["fails"], "recov": v["recov"]}


# ---- 5: the journal ----------------------------------------------------

def phase_journal(tmp, a, out):
    """Tick lateness under load, 4 devices each in a session, with the
    journal writing (trace at 10 Hz: the most it is asked to write) against
    the same run with journal = off, alternated; then the query and write
    figures of build/bench/journal_query."""
    os.makedirs(os.path.join(tmp, "profiles"), exist_ok=True)
    with open(os.path.join(tmp, "profiles", "bench-hold.json"), "w") as f:
        json.dump(HOLD_PROFILE, f)
    names = ["j%d" % i for i in range(4)]
    for rnd in range(a.rounds):
        for mode in ("off", "on"):
            sim = start_sim(len(names))
            jpath = os.path.join(tmp, "journal-%d.db" % rnd) if mode == "on" else "off"
            d = start_daemon(write_conf(tmp, sim.ports, names=names, journal=jpath,
                                        trace_hz=10))
            req = Req(d.control)
            for nm in names:
                wait_until(lambda: (status(req, nm) or {}).get("state") == "idle", 10)
                r = req("start", device=nm, profile="bench-hold", patient="BENCH-1")
                assert r.get("ok"), r
            load = Proc([os.path.join(BENCH, "load"), d.control, d.publish, "50", "20",
                         str(a.tick_s + 1)])
            time.sleep(1.5)  # past the ramp: the trace and dose of a held session
            s0 = [status(req, nm) for nm in names]
            time.sleep(a.tick_s)
            s1 = [status(req, nm) for nm in names]
            load.wait_json(20)
            h = out.setdefault("jtick_" + mode, {})
            for x0, x1 in zip(s0, s1):
                hist_add(h, hist_sub(hist_of(x1["ticks"]["late_hist"]),
                                     hist_of(x0["ticks"]["late_hist"])))
            if mode == "on":
                out.setdefault("jalarm", []).append(
                    [al["id"] for x in s1 for al in x["alarms"] if al["id"] == "journal"])
            req.close()
            d.stop()
            sim.stop()
    for mode in ("off", "on"):
        out["jtick_" + mode] = hist_q(out["jtick_" + mode])
    big = os.path.join(tmp, "big.db")
    jq = Proc([os.path.join(BENCH, "journal_query"), "--json", "--sessions",
               str(a.jsessions), "--keep", big])
    out["jquery"] = jq.wait_json(600)
    # The same queries as a client sees them: through fasciad's control
    # socket and its reader thread, on that journal (devices dev0..dev3).
    sim = start_sim(4)
    d = start_daemon(write_conf(tmp, sim.ports, names=["dev%d" % i for i in range(4)],
                               journal=big))
    req = Req(d.control)
    wait_until(lambda: (status(req, "dev0") or {}).get("state") == "idle", 10)
    asks = {"history": {}, "history device": {"device": "dev1"},
            "history patient": {"patient": "MRN-0042"},
            "log": {}, "log kinds": {"kinds": ["alarm"]}, "log device": {"device": "dev2"}}
    rt = {}
    for name, args in asks.items():
        cmd = name.split()[0]
        times = []
        for _ in range(a.jqueries):
            t0 = time.perf_counter()
            r = req(cmd, **args)
            times.append((time.perf_counter() - t0) * 1e6)
            assert r.get("ok"), r
        rt[name] = list_q(times)
    out["jround"] = rt
    req.close()
    d.stop()
    sim.stop()


# ---- 4: scale, unthrottled rate ---------------------------------------

def scale_step(sim, tmp, a, n):
    """fasciad with n devices at 50 Hz for a.scale_s, and n bare loops in
    the same window; returns the figures and whether the step passed."""
    d = start_daemon(write_conf(tmp, sim.ports[:n]))
    req = Req(d.control)
    names = ["sim"] + ["d%d" % i for i in range(1, n)]
    wait_until(lambda: all((status(req, nm) or {}).get("link", {}).get("up")
                           for nm in names), 15, 0.2)
    time.sleep(1.0)
    s0 = [status(req, nm) for nm in names]
    c0, t0 = d.cpu_s(), time.monotonic()
    # the machine's own stalls in the same window: as many bare loops
    bare = Proc([os.path.join(BENCH, "bare_tick"), "50", str(a.scale_s), str(n)])
    time.sleep(a.scale_s)
    s1 = [status(req, nm) for nm in names]
    c1, t1 = d.cpu_s(), time.monotonic()
    b = bare.wait_json(a.scale_s + 10)
    late = sum(y["ticks"]["late"] - x["ticks"]["late"] for x, y in zip(s0, s1))
    to = sum(y["link"]["timeouts"] - x["link"]["timeouts"] for x, y in zip(s0, s1))
    ex = sum(y["link"]["exchanges"] - x["link"]["exchanges"] for x, y in zip(s0, s1))
    t = {"late_ticks": late, "timeouts": to, "exchanges": ex,
         "expected": n * 50 * (t1 - t0), "cpu_frac": (c1 - c0) / (t1 - t0),
         "worst_device_p99_us": max(y["ticks"]["late_p99_us"] for y in s1),
         "rss_kib": d.rss_kib(), "bare_late_ticks": b["late_ticks"],
         "bare_ticks": b["ticks"], "bare_max_us": b["max_us"]}
    req.close()
    d.stop()
    return t, late == 0 and to == 0 and ex >= 0.98 * t["expected"]


def phase_scale(tmp, a, out):
    """The most devices with no missed deadline.  A step that fails is run
    again, up to a.scale_tries times in all: on this machine a stall of
    several ms, which the bare loops see in the same window, can make one
    tick late whatever the load; the failed runs are kept and shown."""
    sim = start_sim(max(a.scale))
    best, tried = 0, {}
    for n in a.scale:
        failed = []
        for _ in range(a.scale_tries):
            t, ok = scale_step(sim, tmp, a, n)
            if ok:
                break
            failed.append(t)
        if not ok:
            failed.pop()  # the last run is the one shown: not its own past
        t["failed_runs"] = failed
        tried[n] = t
        if not ok:
            break
        best = n
    out["scale"] = {"best": best, "tried": tried}
    sim.stop()


def phase_unthrottled(tmp, a, out):
    sim = start_sim(1)
    conf = write_conf(tmp, sim.ports[:1])
    fr, fc, pr, pc, rtt = [], [], [], [], []
    for rnd in range(a.rate_rounds + 1):         # round 0 warms both up
        d = start_daemon(conf, ["-B"])
        req = Req(d.control)
        wait_until(lambda: (status(req) or {}).get("link", {}).get("up"), 10)
        time.sleep(0.3)
        s0, c0, t0 = status(req), d.cpu_s(), time.monotonic()
        time.sleep(a.rate_s)
        s1, c1, t1 = status(req), d.cpu_s(), time.monotonic()
        dx = s1["link"]["exchanges"] - s0["link"]["exchanges"]
        fr.append(dx / (t1 - t0))
        fc.append((c1 - c0) * 1e6 / max(1, dx))
        req.close()
        d.stop()
        p = Proc([os.path.join(BENCH, "plain_client"), str(sim.ports[0]), str(a.rate_s)])
        j = p.wait_json(a.rate_s + 10)
        pr.append(j["rate"])
        pc.append(j["cpu_us_per_exchange"])
        rtt.append(j["rtt_p50_us"])
        if rnd == 0:
            fr, fc, pr, pc, rtt = [], [], [], [], []
    out["rate"] = {"round_ratio": [x / y for x, y in zip(fr, pr)], "fascia": fr, "plain": pr, "fascia_cpu_us": fc, "plain_cpu_us": pc,
                   "rtt_p50_us": median(rtt)}
    # start to the first exchange
    st = []
    for _ in range(3):
        sreq = Req(sim.control)
        e0 = sreq("status")["result"]["exchanges"]
        t0 = time.monotonic()
        d = Proc([os.path.join(BUILD, "fasciad"), "-f", "-c", conf])
        got = wait_until(lambda: sreq("status")["result"]["exchanges"] > e0, 10, 0.0005)
        if got:
            st.append((time.monotonic() - t0) * 1e3)
        d.stop()
        sreq.close()
        time.sleep(0.2)
    out["start_ms"] = st
    sim.stop()


# ---- 5 and 6: footprint, CPU against the peer -------------------------

def phase_foot(tmp, a, out):
    """fasciad with one device at 50 Hz and the peer on another device of
    the same simulator, nothing else: CPU per window (schedstat, every
    thread), user and system time over all windows.  All three run on one
    CPU: on a virtual machine a wake-up sent to another CPU costs the
    sender up to milliseconds of system time (an IPI through the
    hypervisor), which would measure where the simulator happened to be
    scheduled, not the controller."""
    one = {min(os.sched_getaffinity(0))}
    sim = start_sim(3, cpus=one)
    d = start_daemon(write_conf(tmp, sim.ports[:1]), cpus=one)
    req = Req(d.control)
    wait_until(lambda: (status(req) or {}).get("state") == "idle", 10)
    peer = Proc([PY, os.path.join(HERE, "peer.py"), "--port", str(sim.ports[1])], ready=True,
                cpus=one)
    floor = Proc([os.path.join(BENCH, "plain_client"), str(sim.ports[2]),
                  str(1.0 + a.foot_windows * a.foot_s + 5.0), "50"], cpus=one)
    time.sleep(1.0)
    fw, pw, lw = [], [], []
    fu0, pu0, t00 = d.cpu_us_s(), peer.cpu_us_s(), time.monotonic()
    for _ in range(a.foot_windows):
        f0, p0, l0, t0 = d.cpu_ns(), peer.cpu_ns(), floor.cpu_ns(), time.monotonic()
        time.sleep(a.foot_s)
        f1, p1, l1, t1 = d.cpu_ns(), peer.cpu_ns(), floor.cpu_ns(), time.monotonic()
        fw.append((f1 - f0) / 1e9 / (t1 - t0))
        pw.append((p1 - p0) / 1e9 / (t1 - t0))
        lw.append((l1 - l0) / 1e9 / (t1 - t0))
    fu1, pu1, t11 = d.cpu_us_s(), peer.cpu_us_s(), time.monotonic()
    dt = t11 - t00
    out["foot"] = {"fascia_cpu": fw, "peer_cpu": pw, "floor_cpu": lw,
                   "fascia_user": (fu1[0] - fu0[0]) / dt, "fascia_sys": (fu1[1] - fu0[1]) / dt,
                   "peer_user": (pu1[0] - pu0[0]) / dt, "peer_sys": (pu1[1] - pu0[1]) / dt,
                   "rss_kib": d.rss_kib(), "peer_rss_kib": peer.rss_kib()}
    floor.stop()
    peer.stop()
    req.close()
    d.stop()
    sim.stop()


# ---- 7: CURVE against plaintext ----------------------------------------

def curve_changes(simreq, devs, until):
    """State changes until `until`, on each device of devs in turn
    (ABBA: each goes first as often as second), three a cycle: start the
    hold (idle -> running), an e-stop from the simulator (running -> fault,
    seen by a read), cleared, acknowledged (fault -> idle).  devs: (the
    device's number in the simulator, its daemon's Req).  Returns the
    cycles done on each."""
    cycles = [0] * len(devs)
    turn = 0
    while time.monotonic() < until:
        k = (turn ^ (turn >> 1)) & 1 if len(devs) == 2 else turn % len(devs)
        turn += 1
        dev_no, dq = devs[k]
        if not wait_until(lambda: dq("start", device="sim", profile="bench-hold").get("ok"),
                          3.0, 0.02):
            continue
        time.sleep(random.uniform(0, 0.02))     # a random phase against the tick
        simreq("inject", device=dev_no, fault="estop")
        time.sleep(0.06)               # three ticks: seen, fault
        simreq("clear", device=dev_no, fault="estop")
        if wait_until(lambda: dq("ack", device="sim").get("ok"), 3.0, 0.02):
            cycles[k] += 1
    return cycles


def phase_curve(tmp, a, out):
    """CURVE against plaintext in the same run (issue 13).  One simulator,
    two daemons on a device each, one plaintext and one with curve = yes
    (certificates made here, in tmp), both running throughout, measured at
    the same moments: on this machine a round trip moves by a third from
    one window of a second to the next, more than CURVE costs.
    1. Command round trip: `load CURVE_CONTROL ... 1 0 S --pair
       PLAIN_CONTROL`: a CURVE and a plaintext DEALER take turns, one
       `status` outstanding in all, for a.curve_rtt_s.
    2. Publish latency: `pubsub sub CURVE_PUBLISH 10 ... --pair
       PLAIN_PUBLISH`, 10 CURVE and 10 plaintext subscribers in one loop,
       while curve_changes() moves the two devices in turn for
       a.curve_pub_s.
    3. Tick timing: phase_tick's 50 Hz `load` condition (the same load, now
       CURVE clients, bare_tick and the peer in the same windows) on a
       CURVE daemon, against phase_tick's plaintext figure of this run
       (measured here first when the tick phase did not run)."""
    certs = make_certs(tmp)
    os.makedirs(os.path.join(tmp, "profiles"), exist_ok=True)
    with open(os.path.join(tmp, "profiles", "bench-hold.json"), "w") as f:
        json.dump(HOLD_PROFILE, f)
    sim = start_sim(2)
    simreq = Req(sim.control)
    d, req = {}, {}
    for i, mode in enumerate(("plain", "curve")):
        c = certs if mode == "curve" else None
        d[mode] = start_daemon(write_conf(tmp, sim.ports[i:i + 1], curve=c))
        req[mode] = Req(d[mode].control, curve=c)
    for mode in d:
        if not wait_until(lambda: (status(req[mode]) or {}).get("state") == "idle", 10):
            raise RuntimeError("curve: the %s daemon is not idle: %s"
                               % (mode, d[mode].stderr()))
    time.sleep(0.3)
    res = {"plain": {}, "curve": {}}
    j = Proc([os.path.join(BENCH, "load"), d["curve"].control, d["curve"].publish, "1", "0",
              str(a.curve_rtt_s), "--pair", d["plain"].control] + curve_args(certs)
             ).wait_json(a.curve_rtt_s + 15)
    res["curve"]["rtt"], res["plain"]["rtt"] = j["rtt"], j["pair"]["rtt"]
    res["rtt_rate"] = j["rate"]
    subs = Proc([os.path.join(BENCH, "pubsub"), "sub", d["curve"].publish, "10", "100000",
                 "--pair", d["plain"].publish] + curve_args(certs))
    time.sleep(0.5)                    # the subscribers join (and shake hands)
    cyc = curve_changes(simreq, [(1, req["plain"]), (2, req["curve"])],
                        time.monotonic() + a.curve_pub_s)
    time.sleep(0.1)                    # the last change's messages
    j = json.loads(subs.stop().strip().splitlines()[-1])
    for mode, got in (("curve", j), ("plain", j["pair"])):
        for k in ("change", "all", "inside"):
            res[mode][k] = got.get(k)
    res["plain"]["cycles"], res["curve"]["cycles"] = cyc
    for mode in d:
        res[mode]["security"] = req[mode]("status").get("result", {}).get("security")
        res[mode]["rss_kib"] = d[mode].rss_kib()
        req[mode].close()
        d[mode].stop()
    simreq.close()
    sim.stop()
    if "tick_50_load" not in out:
        sim, dt, rq = tick_daemon(tmp, 50)
        out["tick_50_load"] = tick_condition(sim, dt, rq, 50, "load", a, out)
        rq.close()
        dt.stop()
        sim.stop()
    sim, dt, rq = tick_daemon(tmp, 50, certs)
    res["tick_50_load"] = tick_condition(sim, dt, rq, 50, "load", a, out, certs)
    res["security"] = rq("status").get("result", {}).get("security")
    rq.close()
    dt.stop()
    sim.stop()
    out["curve"] = res


# ---- 8: the web console (issue 15) --------------------------------------

def phase_web(tmp, a, out):
    """tests/bench/web.py's run: 4 CURVE daemons (publish_hz 10) as the
    rooms of one fascia-web, a.web_streams event streams and a direct SUB
    per daemon read by one poll loop, a.web_s with the console and a.web_s
    without it.  Its processes are its own to start and stop."""
    import web
    d = os.path.join(tmp, "web")
    os.makedirs(d)
    out["web"] = web.measure(BUILD, d, a.web_s, a.web_streams)


def web_rows(out):
    import web
    for r in web.rows(out.get("web")):
        row(r["name"], r["fig"], r["unit"], r["ref"], r["ref_name"], r["ratio"], r["target"],
            r["met"], r["note"])


# ---- the table ----------------------------------------------------------

def build_rows(out, period_ms=20.0):
    def rr(x, y):
        return round(x / y, 3) if (x is not None and y) else None

    for hz in (50, 200):
        for cond in ("idle", "load"):
            t = out.get("tick_%d_%s" % (hz, cond))
            if not t:
                continue
            f, b = t["fascia"], t["bare"]
            r = rr(f["p99"], b["p99"])
            row("tick lateness %d Hz %s" % (hz, cond), f, "us", b["p99"], "bare p99", r,
                "p99 <= 1.2x bare" if cond == "load" else "",
                (r is not None and r <= 1.2) if cond == "load" else None)
            row("  bare abs-sleep loop %d Hz %s" % (hz, cond), b, "us")
            if t["peer"]:
                row("  pymodbus peer %d Hz %s" % (hz, cond), t["peer"], "us", None, "",
                    rr(f["p99"], t["peer"]["p99"]), "fascia p99 < peer",
                    f["p99"] < t["peer"]["p99"])
            dr = max(abs(x) for x in t["drift_ns"])
            row("  cumulative drift %d Hz %s" % (hz, cond), single(dr), "ns", None, "", None,
                "0", dr == 0)
    rtt = out.get("rate", {}).get("rtt_p50_us") or 100.0
    for k in FAULTS:
        f = out.get("react_fascia_" + k)
        p = out.get("react_peer_" + k)
        if not f:
            continue
        # a frozen firmware is stale data once HEARTBEAT_ECHO lags by
        # heartbeat_ticks (3) writes: two ticks after its first lagging read
        extra = 2 * period_ms * 1000 if k == "stale" else 0.0
        bound = period_ms * 1000 + 2 * rtt + extra
        c = f["cause_to_vent"]
        r = rr(c and c["p99"], bound)
        row("reaction %s cause->VENT (n=%d, fails %d)" % (k, c["n"] if c else 0, f["fails"]),
            c, "us", round(bound), "bound" + (" (+2 ticks: echo lag 3)" if extra else ""), r,
            "p99 <= 1.1x bound", r is not None and r <= 1.1)
        row("  %s sim latency_ms (us)" % k, f["read_to_vent"], "us")
        if p and p["cause_to_vent"]:
            row("  peer %s cause->VENT (n=%d)" % (k, p["cause_to_vent"]["n"]), p["cause_to_vent"],
                "us", None, "", rr(c["p99"], p["cause_to_vent"]["p99"]), "fascia p99 < peer",
                c["p99"] < p["cause_to_vent"]["p99"])
            row("  peer %s sim latency_ms (us)" % k, p["read_to_vent"], "us")
    pf, pb = out.get("pub_fascia"), out.get("pub_bare")
    if pf and pb:
        ch, ba = pf["change"], pb["change"]
        fig = {"p50": ch["p50_us"], "p99": ch["p99_us"], "max": ch["max_us"], "n": ch["n"]}
        row("publish latency, on change, 10 subs", fig, "us", ba["p50_us"], "bare p50",
            round(ch["p50_us"] - ba["p50_us"], 1), "p50 <= bare + 50 us",
            ch["p50_us"] - ba["p50_us"] <= 50, "ratio column: difference, us")
        row("  bare PUB/SUB, 10 subs", {"p50": ba["p50_us"], "p99": ba["p99_us"],
                                        "max": ba["max_us"], "n": ba["n"]}, "us")
        ho = (out.get("pub_hop") or {}).get("change")
        if ho:
            row("  bare PUB/SUB + one eventfd hop", {"p50": ho["p50_us"], "p99": ho["p99_us"],
                                                     "max": ho["max_us"], "n": ho["n"]}, "us",
                ho["p50_us"], "hop p50", round(ch["p50_us"] - ho["p50_us"], 1),
                "", None, "ratio column: fascia p50 - this p50, us")
        ins = pf.get("inside")
        if ins:
            row("  of which inside fasciad (read -> built)", {
                "p50": ins["p50_us"], "p99": ins["p99_us"], "max": ins["max_us"],
                "n": ins["n"]}, "us")
        al = pf["all"]
        row("  all state messages (10 Hz timer)", {"p50": al["p50_us"], "p99": al["p99_us"],
                                                   "max": al["max_us"], "n": al["n"]}, "us")
    sc = out.get("scale")
    if sc:
        row("devices at 50 Hz, no missed deadline", single(sc["best"]), "dev", 64, "target",
            None, ">= 64", sc["best"] >= 64, "tried %s" % sorted(sc["tried"], key=int))
        for n, t in sorted(sc["tried"].items(), key=lambda x: int(x[0])):
            runs = len(t.get("failed_runs", [])) + 1
            row("  %s devices%s: late ticks / timeouts; bare loops' late"
                % (n, ", run %d" % runs if runs > 1 else ""),
                single(t["late_ticks"]), "ticks", t.get("bare_late_ticks"), "bare late",
                None, "", None, "timeouts %d, exchanges %d of %.0f, CPU %.1f %%, RSS %.1f MiB%s"
                % (t["timeouts"], t["exchanges"], t["expected"], t["cpu_frac"] * 100,
                   t["rss_kib"] / 1024, "".join(
                       "; a failed run before: %d late (bare loops %d), %d timeouts"
                       % (f["late_ticks"], f["bare_late_ticks"], f["timeouts"])
                       for f in t.get("failed_runs", []))))
    ra = out.get("rate")
    if ra:
        f, p = median(ra["fascia"]), median(ra["plain"])
        r = round(median(ra["round_ratio"]), 3)
        row("unthrottled exchanges/s (fasciad -B)", {"p50": f, "p99": min(ra["fascia"]),
            "max": max(ra["fascia"]), "n": len(ra["fascia"])}, "/s", p, "plain libmodbus",
            r, ">= 0.9x plain", r >= 0.9,
            "p99 column: the slowest round; ratio: the median of the rounds' ratios")
        fc, pc = median(ra["fascia_cpu_us"]), median(ra["plain_cpu_us"])
        row("  CPU per exchange, unthrottled", single(round(fc, 2)), "us", round(pc, 2),
            "plain libmodbus", rr(fc, pc))
    ft = out.get("foot")
    if ft:
        rss = ft["rss_kib"] / 1024
        row("footprint: RSS, 1 device 50 Hz", single(round(rss, 2)), "MiB", None, "", None,
            "< 10 MiB", rss < 10, "peer: %.1f MiB" % (ft["peer_rss_kib"] / 1024))
        fq = list_q([x * 100 for x in ft["fascia_cpu"]])
        pq = list_q([x * 100 for x in ft["peer_cpu"]])
        cpu, pcpu = median(ft["fascia_cpu"]) * 100, median(ft["peer_cpu"]) * 100
        row("footprint: CPU, 1 device 50 Hz", fq, "% core", None, "", None, "< 1 %", cpu < 1,
            "median of %d windows, every thread" % len(ft["fascia_cpu"]))
        row("  peer CPU, 1 device 50 Hz", pq, "% core", None, "", rr(pcpu, cpu),
            "peer/fascia >= 10", pcpu >= 10 * cpu, "ratio column: peer / fascia")
        if ft.get("floor_cpu"):
            lcpu = median(ft["floor_cpu"]) * 100
            row("  floor: plain libmodbus loop, 50 Hz", list_q([x * 100 for x in ft["floor_cpu"]]),
                "% core", None, "", rr(pcpu, lcpu), "", None,
                "one exchange and one absolute sleep per tick, nothing else; ratio column: "
                "peer / floor, the most any libmodbus controller could reach here")
        fu, pu = ft["fascia_user"] * 100, ft["peer_user"] * 100
        row("  user-space CPU only: fascia", single(round(fu, 3)), "% core", round(pu, 3),
            "peer", rr(pu, fu) if fu else None, "", None,
            "ratio column: peer / fascia; system: fascia %.2f %%, peer %.2f %%"
            % (ft["fascia_sys"] * 100, ft["peer_sys"] * 100))
    if out.get("start_ms"):
        row("start to first exchange", list_q(out["start_ms"]), "ms", None, "", None, "",
            None, "includes the first period (20 ms) by design")


def journal_rows(out):
    on, off = out.get("jtick_on"), out.get("jtick_off")
    if on and off:
        r = round(on["p99"] / off["p99"], 3) if off["p99"] else None
        row("tick lateness under load, journal writing (4 dev, 10 Hz trace)", on, "us",
            off["p99"], "journal off p99", r, "<= 1.05x", r is not None and r <= 1.05)
        row("  the same, journal = off", off, "us")
        alarms = sum(len(x) for x in out.get("jalarm", []))
        row("  journal alarms raised meanwhile", single(alarms), "n", None, "", None, "0",
            alarms == 0)
    jq = out.get("jquery")
    if jq:
        row("journal: entries committed per second", single(jq["writer_entries_per_s"]),
            "1/s", None, "", None, "", None, "fd_journal_put -> commit, one writer thread")
        row("journal: one 30-min session, 8 ch, 1 Hz trace", single(jq["session_30min_8ch_bytes"]),
            "B", None, "", None, "", None, "")
        row("journal: a year at 20 sessions a day", single(round(jq["year_20_a_day_bytes"] / 1e6)),
            "MB", None, "", None, "", None, "")
        for name in ("history", "history device", "history patient", "log", "log kinds"):
            q = jq["queries"].get(name)
            if q:
                row("  %s on %d sessions, in process" % (name, jq["sessions"]),
                    {"p50": q["p50_ms"] * 1000, "p99": q["p99_ms"] * 1000}, "us")
    for name, q in (out.get("jround") or {}).items():
        row("%s on %d sessions, round trip via fasciad" % (name, jq["sessions"] if jq else 0),
            q, "us", None, "", None, "p99 < 20 ms", q["p99"] is not None and q["p99"] < 20000)


def curve_rows(out):
    """CURVE against plaintext, same run.  The ratio column is CURVE over
    plaintext (1: CURVE costs nothing measurable); the target column says
    what is expected, nothing is judged."""
    cv = out.get("curve")
    if not cv:
        return

    def rr(x, y):
        return round(x / y, 3) if (x is not None and y) else None

    def fig(h):
        return h and h.get("n") and {"p50": h["p50_us"], "p99": h["p99_us"],
                                     "max": h["max_us"], "n": h["n"]}

    pl, cu = cv["plain"], cv["curve"]
    for key, name, target, note in (
            ("rtt", "CURVE: command round trip (status, 1 client)", "~1x: + 2 messages' crypto",
             "a CURVE and a plaintext DEALER taking turns, one request outstanding"),
            ("change", "CURVE: publish latency, on change, 10 subs", "> 1x: crypto per copy",
             "read -> subscriber, 10 CURVE and 10 plaintext subscribers in one loop; "
             "%d + %d start/e-stop/ack cycles" % (pl["cycles"], cu["cycles"]))):
        p, c = fig(pl.get(key)), fig(cu.get(key))
        if not (p and c):
            continue
        row(name, c, "us", p["p50"], "plain p50", rr(c["p50"], p["p50"]),
            target, None, "ratio: CURVE p50 / plaintext p50; " + note)
        row("  the same, plaintext", p, "us")
        row("  at p99: CURVE / plaintext", None, "x", p["p99"], "plain p99",
            rr(c["p99"], p["p99"]))
    ins_p, ins_c = fig(pl.get("inside")), fig(cu.get("inside"))
    if ins_p and ins_c:
        row("  of which inside fasciad (read -> built), CURVE", ins_c, "us", ins_p["p50"],
            "plain p50", rr(ins_c["p50"], ins_p["p50"]), "~1x: crypto is after", None,
            "ratio: p50 CURVE / plaintext")
    tc, tp = cv.get("tick_50_load"), out.get("tick_50_load")
    if tc and tp:
        f, p = tc["fascia"], tp["fascia"]
        row("CURVE: tick lateness 50 Hz load", f, "us", p["p99"], "plain p99",
            rr(f["p99"], p["p99"]), "~1x (crypto off the tick)", None,
            "ratio: p99 CURVE / plaintext (the tick phase's 50 Hz load, this run)")
        row("  bare abs-sleep loop, CURVE windows", tc["bare"], "us", tp["bare"]["p99"],
            "plain windows p99", rr(tc["bare"]["p99"], tp["bare"]["p99"]), "", None,
            "the machine itself in the two sets of windows: read the ratio above "
            "against this one")
        lc, lp = median(tc.get("load_rate") or []), median(tp.get("load_rate") or [])
        if lc and lp:
            row("  load: status replies per second, CURVE", single(round(lc)), "1/s",
                round(lp), "plain", rr(lc, lp), "", None,
                "the same load program: 50 clients as fast as the daemon answers "
                "(median of the windows), 20 subscribers, one deaf")
        dr = max(abs(x) for x in tc["drift_ns"])
        row("  cumulative drift 50 Hz load, CURVE", single(dr), "ns", None, "", None, "0")


def print_table():
    hdr = ("row", "unit", "median", "p99", "max", "ref", "ratio", "target", "met")
    lines = [[r["row"], r["unit"], fmt(r["median"]), fmt(r["p99"]), fmt(r["max"]),
              (fmt(r["ref"]) + " " + r["ref_name"]).strip() if r["ref"] is not None else "-",
              fmt(r["ratio"]), r["target"] or "", fmt(r["met"]) if r["met"] is not None else ""]
             for r in ROWS]
    w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(hdr)]
    print(" | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    print("-|-".join("-" * x for x in w))
    for l in lines:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(l)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--only", default="foot,tick,curve,react,scale,rate,journal,web")
    a = ap.parse_args()
    a.rounds, a.tick_s, a.injections, a.scale_s, a.rate_s = 2, 10.0, 200, 6.0, 3.0
    a.react_s, a.rate_rounds, a.foot_windows, a.foot_s = 300.0, 5, 6, 5.0
    a.scale, a.scale_tries = [16, 32, 48, 64, 96, 128], 3
    a.jsessions, a.jqueries = 100000, 300
    a.curve_rtt_s, a.curve_pub_s = 3.0, 6.0
    a.web_s, a.web_streams = 20.0, 50
    if a.quick:
        a.rounds, a.tick_s, a.injections, a.scale_s, a.rate_s = 1, 3.0, 10, 2.0, 1.0
        a.react_s, a.rate_rounds, a.foot_windows, a.foot_s = 60.0, 1, 2, 2.0
        a.scale = [8, 64]
        a.jsessions, a.jqueries = 5000, 50
        a.curve_rtt_s, a.curve_pub_s = 1.0, 3.0
        a.web_s = 3.0
    for b in ("fasciad", "fascia-sim", "fascia-web", "bench/bare_tick", "bench/plain_client",
              "bench/pubsub", "bench/load", "bench/journal_query"):
        if not os.access(os.path.join(BUILD, b), os.X_OK):
            sys.exit("run.py: no %s in %s (make first)" % (b, BUILD))
    tmp = tempfile.mkdtemp(prefix="fascia-bench-")
    out = {"machine": {"cpus": os.cpu_count(), "load1": os.getloadavg()[0]},
           "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.monotonic()
    try:
        only = a.only.split(",")
        if "rate" in only:
            print("bench: unthrottled rate and start time ...", file=sys.stderr, flush=True)
            phase_unthrottled(tmp, a, out)
        if "foot" in only:
            print("bench: footprint ...", file=sys.stderr, flush=True)
            phase_foot(tmp, a, out)
        if "tick" in only:
            print("bench: tick timing ...", file=sys.stderr, flush=True)
            phase_tick(tmp, a, out)
        if "curve" in only:
            print("bench: CURVE against plaintext ...", file=sys.stderr, flush=True)
            t1 = time.monotonic()
            phase_curve(tmp, a, out)
            out["curve"]["seconds"] = round(time.monotonic() - t1, 1)
        if "react" in only:
            print("bench: reaction and publish latency ...", file=sys.stderr, flush=True)
            phase_reaction(tmp, a, out)
        if "scale" in only:
            print("bench: scale ...", file=sys.stderr, flush=True)
            phase_scale(tmp, a, out)
        if "journal" in only:
            print("bench: journal ...", file=sys.stderr, flush=True)
            phase_journal(tmp, a, out)
        if "web" in only:
            print("bench: the web console ...", file=sys.stderr, flush=True)
            t1 = time.monotonic()
            phase_web(tmp, a, out)
            out["web"]["phase_seconds"] = round(time.monotonic() - t1, 1)
    finally:
        for p in list(PROCS):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out["seconds"] = round(time.monotonic() - t0, 1)
    out["machine"]["load1_end"] = os.getloadavg()[0]
    build_rows(out)
    journal_rows(out)
    curve_rows(out)
    web_rows(out)
    print_table()
    print("(%d CPUs, load %.2f -> %.2f, %.0f s; a shared machine: other work may run)"
          % (out["machine"]["cpus"], out["machine"]["load1"], out["machine"]["load1_end"],
             out["seconds"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": ROWS, "raw": out}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
