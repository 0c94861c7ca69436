"""The journal where it cannot be written (docs/records.md, "Durability"):
a filesystem that fills mid-session; a journal path that is a directory,
in a directory that does not exist, a file of garbage, another program's
SQLite file or a journal of a newer version; and journal = off.  What a user must see: the `journal` alarm (medium, on the
device's alarm topic and in its state), `start` and `ack` refused with
`interlock` while journal_required = yes, a running session going on and
ending safely, the devices vented, fasciad alive; once the disk has room
again the alarm clears and what was queued meanwhile is written.
"""
import errno
import os
import random
import re
import sqlite3
import subprocess

import pytest

from conftest import SLOW, wait_until
from conftest_daemon import *  # noqa: F401,F403  (fixtures)
from conftest_daemon import Rig, sim_max_pressure
from daemon_rig import run_check, write_config
from test_journal import (begin, end_with, inflated, log_all, query, seq_gaps,
                          session_get_reply, session_if_recorded, wait_ended)

FS_SIZE = "2m"
# The writer retries every second (JOURNAL_RETRY_MS); waited for generously.
RECOVER_TIMEOUT_S = 10.0 * SLOW
# After the filesystem is full, the next commit that must grow the WAL
# fails: the 1 Hz trace sample commits within a second or two.
TROUBLE_TIMEOUT_S = 20.0 * SLOW
IDLE_TIMEOUT_S = 5.0 * SLOW


def config_with_journal(directory, sim_port, journal, extra=""):
    """daemon_rig's configuration (in directory) with journal = journal."""
    conf = write_config(directory, sim_port, extra=extra)
    default = "journal = %s\n" % os.path.join(directory, "journal.db")
    with open(conf) as f:
        text = f.read()
    assert default in text, text
    with open(conf, "w") as f:
        f.write(text.replace(default, "journal = %s\n" % journal))
    return conf


def journal_alarm(st):
    return [a for a in st["alarms"] if a["id"] == "journal"]


def assert_journal_alarm_shown(st):
    """The state lists the journal alarm first: medium, not latched,
    present, chamber 0 (docs/protocol.md)."""
    assert st["alarms"] and st["alarms"][0]["id"] == "journal", st["alarms"]
    a = st["alarms"][0]
    assert a["priority"] == "medium" and a["latched"] is False and a["present"] is True \
        and a["chamber"] == 0, a
    return a


def assert_refused_for_the_journal(d, cmd, **args):
    rep = d.call(cmd, device="sim", **args)
    assert not rep["ok"] and rep["error"]["code"] == "interlock", (
        "%s while the journal cannot be written" % cmd, rep)
    assert "journal" in rep["error"]["message"] or "record" in rep["error"]["message"], rep
    return rep


# --------------------------------------------------------------------------
# A filesystem that fills

@pytest.fixture
def small_fs(tmp_path):
    """A FS_SIZE tmpfs (root only), unmounted at teardown: requested before
    start_daemon, it is torn down after the daemon has stopped."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the system tests as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % FS_SIZE,
                        "tmpfs", str(mnt)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs on %s: %s" % (mnt, (r.stderr or r.stdout).strip()))
    try:
        yield str(mnt)
    finally:
        r = subprocess.run(["umount", str(mnt)], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def fill(directory):
    """Write a filler file until the filesystem says ENOSPC; its path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 16, 4096, 512, 1):
            buf = b"\xa5" * size
            while True:
                try:
                    if f.write(buf) < size:
                        continue   # short: the next write says ENOSPC
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    st = os.statvfs(directory)
    assert st.f_bavail == 0, "the filesystem still has %d blocks free" % st.f_bavail
    return path


def test_a_full_disk_raises_the_journal_alarm_and_the_record_catches_up(
        small_fs, start_sim, start_daemon, tmp_path):
    sim = start_sim()
    journal = os.path.join(small_fs, "journal.db")
    conf = config_with_journal(str(tmp_path), sim.port, journal)
    d = start_daemon(conf)
    sub = d.subscribe()
    d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S, what="idle")
    rig = Rig(sim, d, sub, str(tmp_path))
    assert query(d, "history")["sessions"] == []
    sid = begin(rig, "long", patient="DISK-1")
    inflated(rig)
    wait_until(lambda: session_if_recorded(d, sid), 5.0 * SLOW, interval=0.05,
               what="the session in the record before the disk fills")

    mark = sub.mark()
    filler = fill(small_fs)
    raised = sub.wait_for("alarm.sim", lambda m: m["alarm"] == "journal", TROUBLE_TIMEOUT_S,
                          since=mark, what="the journal alarm once the disk is full")
    print("\njournal alarm: %r" % raised)
    assert raised["kind"] == "raised" and raised["priority"] == "medium" and \
        raised["chamber"] == 0, raised
    st = sub.wait_state(lambda m: journal_alarm(m), 2.0 * SLOW, since=mark,
                        what="a state listing the journal alarm")
    assert_journal_alarm_shown(st)
    assert_journal_alarm_shown(d.status())
    assert re.search(r"ALARM journal: .*", d.log()), d.log()[-2000:]

    # the running session goes on: no fault, still running, still inflated
    trouble = sub.mark()
    inflated(rig, 20.0)
    assert d.status()["state"] == "running"
    assert not [m for m in sub.states(mark) if m["state"] == "fault"]
    # stop always works; the session ends safely, vented
    end_with(rig, "stop")
    assert sim_max_pressure(sim.status()) < 5.0
    refused_start = assert_refused_for_the_journal(d, "start", profile="long")
    assert_refused_for_the_journal(d, "ack")
    assert d.status()["state"] == "idle" and d.alive()
    assert not [m for m in sub.states(trouble) if m["state"] == "fault"]

    # room again: the alarm clears, what was queued is written
    mark = sub.mark()
    os.unlink(filler)
    cleared = sub.wait_for("alarm.sim", lambda m: m["alarm"] == "journal" and
                           m["kind"] == "cleared", RECOVER_TIMEOUT_S, since=mark,
                           what="the journal alarm cleared once the disk has room")
    assert cleared["priority"] == "medium", cleared
    st = d.wait_status(lambda st: not journal_alarm(st), 2.0 * SLOW, what="no journal alarm")
    assert st["alarms"] == [], st
    s = wait_ended(d, sid)
    assert s["end_reason"] == "stopped" and s["patient"] == "DISK-1", s
    entries = log_all(d)
    assert not seq_gaps(entries), "log seq holes %r" % seq_gaps(entries)[:10]
    mine = sorted((e for e in entries if e["kind"] == "journal"), key=lambda e: e["seq"])
    events = [e["event"] for e in mine]
    print("journal entries: %r" % mine)
    assert "trouble" in events and "recovered" in events and \
        events.index("trouble") < events.index("recovered"), mine
    assert "lost" not in events, mine   # nothing near the 8192 records the queue holds
    refusals = [e for e in entries if e["kind"] == "command" and e["event"] == "start"
                and e["outcome"] == "interlock"]
    assert refusals and refusals[-1]["message"] == refused_start["error"]["message"], refusals
    stop = [e for e in entries if e["kind"] == "command" and e["event"] == "stop"]
    assert stop and stop[-1]["outcome"] == "ok", stop
    # and a session starts again
    sid2 = begin(rig, "long")
    end_with(rig, "stop")
    assert wait_ended(d, sid2)["end_reason"] == "stopped"
    # docs/protocol.md: a raised alarm carries value and threshold, null
    # for one that measures nothing
    assert "value" in raised and raised["value"] is None and \
        "threshold" in raised and raised["threshold"] is None, raised


# --------------------------------------------------------------------------
# A journal path that cannot be used

# An unreadable file is not among the cases: the tests run as root, for
# whom a chmod 000 file is still readable; a file of garbage stands for a
# journal that cannot be read.
BAD = {
    "directory": r"director",
    "missing_directory": r"does not exist|no such file|not exist|missing",
    "garbage": r"not an sqlite database|not a fascia journal|not a database",
    "foreign_sqlite": r"not a fascia journal",
    "newer_version": r"newer fasciad",
}
FILES = ("garbage", "foreign_sqlite", "newer_version")
FASC = 0x46415343   # docs/records.md: PRAGMA application_id


def make_bad_journal(tmp_path, case):
    if case == "directory":
        path = tmp_path / "journal.d"
        path.mkdir()
    elif case == "missing_directory":
        path = tmp_path / "nowhere" / "journal.db"
    elif case == "garbage":
        path = tmp_path / "garbage.db"
        path.write_bytes(random.Random(7).randbytes(8192))
    else:
        # another program's SQLite file; a journal of a later version
        path = tmp_path / ("%s.db" % case)
        con = sqlite3.connect(str(path))
        if case == "newer_version":
            con.execute("PRAGMA application_id = %d" % FASC)
            con.execute("PRAGMA user_version = 2")
        con.execute("CREATE TABLE notes (t TEXT)")
        con.execute("INSERT INTO notes VALUES ('not fasciad''s')")
        con.commit()
        con.close()
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_journal_that_cannot_be_used_keeps_the_device_vented_and_refuses_start(
        case, start_sim, start_daemon, tmp_path):
    sim = start_sim()
    journal = make_bad_journal(tmp_path, case)
    before = open(journal, "rb").read() if case in FILES else None
    conf = config_with_journal(str(tmp_path), sim.port, journal)

    r = run_check(conf)
    out = r.stdout + r.stderr
    print("\nfasciad -n (%s): rc %d: %s" % (case, r.returncode, out.strip()))
    assert r.returncode != 0, ("fasciad -n accepts a journal at %s (%s)" % (journal, case), out)
    assert "journal" in out and re.search(BAD[case], out, re.I), out

    d = start_daemon(conf)
    st = d.wait_status(lambda st: journal_alarm(st), 3.0 * SLOW,
                       what="the journal alarm at start (%s)" % case)
    assert_journal_alarm_shown(st)
    st = d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S, what="idle")
    assert sim_max_pressure(sim.status()) < 5.0
    log = d.log()
    print("fasciad's log: %s" % [line for line in log.splitlines() if "journal" in line][:4])
    assert journal in log and re.search(BAD[case], log, re.I), log[-2000:]
    assert_refused_for_the_journal(d, "start", profile="long")
    assert sim.status()["command"] in ("idle", "vent"), sim.status()
    assert d.status()["state"] == "idle" and d.alive()
    if case in FILES:
        assert open(journal, "rb").read() == before, "fasciad changed a file it cannot use"
    if case == "missing_directory":
        # the writer retries every second: once the directory is there the
        # journal is made, the alarm clears and a session starts
        os.mkdir(os.path.dirname(journal))
        d.wait_status(lambda st: not journal_alarm(st), RECOVER_TIMEOUT_S,
                      what="the journal alarm cleared once its directory exists")
        rig = Rig(sim, d, d.subscribe(), str(tmp_path))
        sid = begin(rig, "long")
        end_with(rig, "stop")
        assert wait_ended(d, sid)["end_reason"] == "stopped"
    d.stop()
    if case in FILES:
        assert open(journal, "rb").read() == before, "fasciad changed a file it cannot use"


def test_journal_off_refuses_the_record_queries_and_sessions_still_start(
        start_sim, start_daemon, tmp_path):
    sim = start_sim()
    conf = config_with_journal(str(tmp_path), sim.port, "off")
    r = run_check(conf)
    assert r.returncode == 0, (r.stdout, r.stderr)
    d = start_daemon(conf)
    sub = d.subscribe()
    d.wait_status(lambda st: st["state"] == "idle", IDLE_TIMEOUT_S, what="idle")
    for cmd in ("history", "log"):
        rep = d.call(cmd)
        assert not rep["ok"] and rep["error"]["code"] == "internal", rep
        assert "journal = off" in rep["error"]["message"], rep
    rep = session_get_reply(d, "sim-0000000000000-0000")
    assert not rep["ok"] and "journal = off" in rep["error"]["message"], rep
    rig = Rig(sim, d, sub, str(tmp_path))
    begin(rig, "long", patient="OFF-1")
    end_with(rig, "stop")
    assert d.status()["alarms"] == []
    assert not os.path.exists(os.path.join(str(tmp_path), "journal.db"))
