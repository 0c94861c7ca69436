#!/usr/bin/python3
"""make safety-report: run the fault matrix (and the kill -9 test), collect
what each row measured, and rewrite the hazard table of docs/safety.md
between its BEGIN/END markers.

    FASCIA_BUILD=build /usr/bin/python3 tests/system/safety_report.py docs/safety.md

The hazards, causes, interlocks, thresholds and reactions below are the
table's fixed columns; the "measured" column comes from the run.  A row the
run did not measure says so instead of keeping an old figure.
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN = "<!-- BEGIN safety-report -->"
END = "<!-- END safety-report -->"

# (row, hazard, cause injected, interlock or protection, threshold (bounds),
#  reaction; latched, test)
HAZARDS = [
    ("overpressure", "tissue injury from excess pressure",
     "surge: chamber held at 55 mmHg (profile max 40)",
     "overpressure", "profile max + 5 mmHg (margin 0..10)", "vent; latched"),
    ("surge", "tissue injury from a sudden rise", "surge to 44 mmHg (under the ceiling)",
     "rate", "max_ramp + 20 mmHg/s (margin 5..40) over 100 ms, every tick",
     "vent; latched"),
    ("hold_time", "ischaemia: a chamber held up too long",
     "the profile holds 25 mmHg; thresholds at their lowest, 20 mmHg for 10 s",
     "hold_time", "30 mmHg (10..50) for 120 s (10..600)", "vent; latched"),
    ("valve_stuck_open", "tissue injury: a chamber fills uncontrolled",
     "valve stuck in the inflate position", "overpressure (or deviation, rate)",
     "max + 5 mmHg; 15 mmHg for 2 s; max_ramp + 20 mmHg/s", "vent; latched"),
    ("valve_stuck_closed", "no therapy, undetected",
     "valve stuck closed before the session", "deviation",
     "15 mmHg (5..30) for 2 s (0.5..10)", "vent; latched"),
    ("leak", "no therapy; a hose off the limb",
     "leak of 40 mmHg/s", "deviation", "15 mmHg for 2 s", "vent; latched"),
    ("blocked", "pressure trapped on the limb after the session",
     "hose blocked at ~12 mmHg, then stop", "deviation (told to vent)",
     "above 5 mmHg 5 s after set to 0", "vent; latched"),
    ("sensor_range", "regulation on a failed sensor",
     "reading out of range (400 mmHg)", "sensor",
     "reading < -5 or > 300 mmHg (-20..0, 100..300)", "vent; latched"),
    ("sensor_stuck", "hidden overpressure: the firmware inflates on a stuck reading",
     "reading stuck at 10 mmHg", "stale (stuck sensor)",
     "reading unchanged 1000 ms (200..5000) while the valve moves air", "vent; latched"),
    ("sensor_noise", "erratic regulation", "sensor noise 8 mmHg sd",
     "rate / device_fault (firmware SENSOR_FAULT)", "max_ramp + 20 mmHg/s over 100 ms",
     "vent; latched"),
    ("sensor_offset", "hidden overpressure (reading 20 mmHg low)",
     "offset -20 mmHg on the hold, then stop", "sensor, once vented",
     "reading < -5 mmHg", "vent; latched. Mid-session: a residual risk"),
    ("freeze", "regulation stops; writes ignored", "firmware frozen",
     "heartbeat (stale behind it)", "echo lagging 3 writes (2..10); SAMPLE 200 ms",
     "vent; latched"),
    ("estop", "the operator's emergency stop", "e-stop pressed", "estop",
     "STATUS.ESTOP", "vent; latched; ack only after release"),
    ("garment_off", "hoses open to the room, session unattended", "garment disconnected",
     "garment", "STATUS.GARMENT_CONNECTED clear", "vent; latched"),
    ("pump_fail", "supply lost mid-session", "pump dead", "device_fault",
     "STATUS.PUMP_FAULT / FAULT 5", "vent; latched"),
    ("reboot", "device restarts mid-session", "device reboot (1 s silent)",
     "comms; the device vents on power loss", "3 ticks without a good exchange",
     "offline, fault; latched"),
    ("link_silent", "commands do not reach the device", "link silent",
     "comms; device watchdog", "3 ticks (2..10); WATCHDOG_MS 500", "offline, fault; latched"),
    ("link_slow", "stale control", "replies 200 ms late", "comms; device watchdog",
     "response timeout 3/4 tick, 3 ticks", "offline, fault; latched"),
    ("link_garbage", "corrupted replies", "garbage replies", "comms",
     "3 ticks", "offline, fault; latched"),
    ("link_exception", "the device refuses every request", "exception 04 replies",
     "comms; device watchdog", "3 ticks; WATCHDOG_MS", "offline, fault; latched"),
    ("link_disconnect", "link cut", "connections closed", "comms; device watchdog",
     "3 ticks; WATCHDOG_MS", "offline, fault; latched"),
    ("kill9", "the daemon dies mid-session", "kill -9 of fasciad",
     "device watchdog (firmware)", "HEARTBEAT unchanged for WATCHDOG_MS (50..5000)",
     "device vents; FAULT 1 latched until an ack"),
    ("sigstop", "the daemon hangs mid-session", "SIGSTOP of fasciad",
     "device watchdog; device_fault on SIGCONT", "WATCHDOG_MS", "device vents; latched"),
]

TESTS = {
    "hold_time": "test_fault_matrix.py::test_a_chamber_held_too_long_trips_hold_time",
    "kill9": "test_daemon_faults.py::test_kill_9_of_the_daemon_mid_session_the_device_watchdog_vents",
    "sigstop": "test_fault_matrix.py::test_sigstop_and_sigcont_of_the_daemon",
}


def measured(fig):
    if fig is None:
        return "not measured in the last run"
    if fig.get("reaction") == "held":
        return "hold_time tripped %.1f s after the start (20 mmHg reached at ~2 s)" % (
            fig["held_s"])
    if fig.get("reaction") == "watchdog":
        out = "watchdog %d ms after the last heartbeat" % fig["latency_ms"]
        if fig.get("vented_ms") is not None:
            out += "; vented (< 5 mmHg) %d ms after the kill" % fig["vented_ms"]
        return out
    if fig.get("since_start_ms") is not None:
        return ("%s: tripped %.0f ms after the start (injected at rest, where the "
                "device is held vented)" % (fig["alarm"], fig["since_start_ms"]))
    ex = fig["exchanges"]
    lat = fig["latency_ms"]
    if fig["reaction"] == "prompt" or fig["reaction"] == "heartbeat":
        return "%s: VENT %d exchange%s after the cause showed, %.2f ms" % (
            fig["alarm"], ex, "" if ex == 1 else "s", lat)
    if fig["reaction"] == "link":
        return "%s: vented %.0f ms after the fault" % (fig["alarm"], lat)
    return "%s: vented %.0f ms after the fault (the cause takes time to show)" % (
        fig["alarm"], lat)


def table(figs):
    lines = ["| # | hazard | cause (injected) | interlock / protection | threshold "
             "(bounds) | reaction; latching | test (`tests/system/`) | measured, last run |",
             "|---|---|---|---|---|---|---|---|"]
    for i, (row, hazard, cause, ilk, thr, react) in enumerate(HAZARDS, 1):
        test = TESTS.get(row, "test_fault_matrix.py::test_fault_matrix[%s]" % row)
        lines.append("| %d | %s | %s | %s | %s | %s | `%s` | %s |" % (
            i, hazard, cause, ilk, thr, react, test, measured(figs.get(row))))
    return "\n".join(lines)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: safety_report.py docs/safety.md")
    doc = sys.argv[1]
    with tempfile.NamedTemporaryFile(prefix="fascia-safety-", suffix=".jsonl",
                                     delete=False) as f:
        path = f.name
    env = dict(os.environ, FASCIA_SAFETY_REPORT=path)
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q",
                          os.path.join(HERE, "test_fault_matrix.py"),
                          os.path.join(HERE, "test_daemon_faults.py") + "::" +
                          TESTS["kill9"].split("::")[1]], env=env)
    figs = {}
    with open(path) as f:
        for line in f:
            fig = json.loads(line)
            figs[fig["row"]] = fig
    os.unlink(path)
    with open(doc) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        sys.exit("%s has no %s ... %s markers" % (doc, BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    stamp = "Measured by `make safety-report` on %s, %d CPUs%s." % (
        datetime.date.today().isoformat(), os.cpu_count() or 0,
        "" if rc == 0 else " (SOME TESTS FAILED: see the run)")
    with open(doc, "w") as f:
        f.write(head + BEGIN + "\n" + stamp + "\n\n" + table(figs) + "\n" + END + tail)
    print("%s: %d rows measured" % (doc, len(figs)))
    sys.exit(rc)


if __name__ == "__main__":
    main()
