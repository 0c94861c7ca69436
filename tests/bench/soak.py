#!/usr/bin/python3
"""tests/bench/soak.py: fasciad's RSS over a long run (make soak).

One fascia-sim device, one fasciad at 50 Hz, one subscriber reading
everything and a client asking `status` ten times a second, for
SOAK_SECONDS (default 600).  The device works meanwhile: a session of the
bench-hold profile starts, runs 4 s and is stopped, over and over, and
every 30 s an e-stop is injected into it, released and acknowledged, so
the paths of sessions, alarms and acks run hundreds of times.  RSS (VmRSS) is sampled every 10 s (every
SOAK_SECONDS/10 when shorter); the growth reported is the last sample
minus the one after the first minute (or the first sample, in a short
run), so start-up allocation does not count.  Exit status 0 unless
something broke: the growth is reported, not judged.
"""
import json
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def main():
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    every = min(10.0, max(1.0, seconds / 10))
    tmp = run.tempfile.mkdtemp(prefix="fascia-soak-")
    sim = run.start_sim(1)
    conf = run.write_conf(tmp, sim.ports)
    with open(os.path.join(tmp, "profiles", "bench-hold.json"), "w") as f:
        json.dump(run.HOLD_PROFILE, f)
    d = run.start_daemon(conf)
    simc = run.Req(sim.control)
    try:
        req = run.Req(d.control)
        sub = run.ZCTX.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(d.publish)
        run.wait_until(lambda: (run.status(req) or {}).get("state") == "idle", 10)
        t0 = time.monotonic()
        samples, nmsg, next_sample = [], 0, t0
        sessions, trips, started, next_trip = 0, 0, None, t0 + 30
        while True:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((round(now - t0, 1), d.rss_kib()))
                print("soak: %6.1f s  RSS %d KiB" % samples[-1], flush=True)
                next_sample += every
                if now - t0 >= seconds:
                    break
            st = run.status(req) or {}
            if st.get("state") == "idle":
                if req("start", device="sim", profile="bench-hold").get("ok"):
                    sessions, started = sessions + 1, now
            elif st.get("state") == "running" and now >= next_trip:
                simc("inject", fault="estop")
                run.wait_until(lambda: (run.status(req) or {}).get("state") == "fault", 2)
                simc("clear", fault="estop")
                run.wait_until(lambda: req("ack", device="sim").get("ok"), 6, 0.05)
                trips, next_trip = trips + 1, now + 30
            elif st.get("state") == "running" and started and now - started > 4:
                req("stop", device="sim")
                started = None
            while sub.poll(0):
                sub.recv_multipart()
                nmsg += 1
            time.sleep(0.1)
        base = next((s for s in samples if s[0] >= 60), samples[0]) \
            if seconds > 120 else samples[0]
        growth = samples[-1][1] - base[1]
        st = run.status(req)
        print(json.dumps({"seconds": seconds, "rss_kib_first": samples[0][1],
                          "rss_kib_base": base[1], "rss_kib_last": samples[-1][1],
                          "growth_kib": growth, "messages": nmsg,
                          "sessions": sessions, "estops": trips,
                          "ticks": st["ticks"]["count"], "late": st["ticks"]["late"],
                          "drift_ns": st["ticks"]["drift_ns"]}))
        print("soak: RSS growth %+d KiB over %.0f s (from %.0f s) -> %s"
              % (growth, samples[-1][0] - base[0], base[0],
                 "no growth" if growth <= 0 else "GROWTH"))
        req.close()
        sub.close(0)
    finally:
        simc.close()
        d.stop()
        sim.stop()
        run.shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
