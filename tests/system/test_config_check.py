"""fasciad -n as an operator uses it before a session: a configuration that
cannot work is refused with the line to change and why, and the example
the repository ships passes."""
import glob
import os
import subprocess


from conftest import REPO
from daemon_rig import FASCIAD_BIN, run_check, write_profiles


def check(tmp_path, text):
    """fasciad -n -c on text (a profiles directory of the rig's): the run
    and the file's path."""
    profiles = str(tmp_path / "profiles")
    write_profiles(profiles)
    conf = tmp_path / "fasciad.conf"
    conf.write_text("[daemon]\nprofiles = %s\n" % profiles + text)
    return run_check(str(conf)), str(conf)


def assert_refused(r, conf, errors):
    """Exit 1, nothing on stdout, and for each (line, words) a line of
    stderr "FILE:LINE: ..." that holds the words."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "configuration OK" not in r.stdout, r.stdout
    lines = r.stderr.splitlines()
    for line, words in errors:
        prefix = "%s:%d: " % (conf, line)
        assert [l for l in lines if l.startswith(prefix) and words in l], \
            "no error at line %d with %r in:\n%s" % (line, words, r.stderr)


def assert_accepted(r):
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "configuration OK" in r.stdout, r.stdout


# The [daemon] section of check() takes lines 1 and 2: text starts at 3.

def test_a_limit_given_twice_in_a_device_is_refused_not_the_last_taken(tmp_path):
    r, conf = check(tmp_path, "[device sim]\n"          # 3
                              "limit_mmhg = 40\n"       # 4
                              "limit_mmhg = 80\n")      # 5
    assert_refused(r, conf, [(5, "limit_mmhg: given twice in [device sim], "
                                 "first at line 4: keep one")])


def test_a_key_given_twice_is_refused_in_every_section(tmp_path):
    r, conf = check(tmp_path, "tick_hz = 50\n"                  # 3
                              "comms_ticks = 3\n"               # 4
                              "[device sim]\n"                  # 5
                              "address = 127.0.0.1:1502\n"      # 6
                              "unit = 1\n"                      # 7
                              "address = 127.0.0.1:1503\n"      # 8
                              "[daemon]\n"                      # 9
                              "tick_hz = 100\n"                 # 10
                              "comms_ticks = 3\n"               # 11
                              "profiles = /elsewhere\n")        # 12
    assert_refused(r, conf, [
        (8, "address: given twice in [device sim], first at line 6"),
        (10, "tick_hz: given twice in [daemon], first at line 3"),
        (11, "comms_ticks: given twice in [daemon], first at line 4"),
        (12, "profiles: given twice in [daemon], first at line 2"),
    ])


def test_a_watchdog_the_tick_cannot_feed_is_refused(tmp_path):
    # tick_hz = 10 and watchdog_ms = 50: the firmware would trip between
    # two heartbeats, after every ack.
    r, conf = check(tmp_path, "tick_hz = 10\n"          # 3
                              "[device sim]\n"          # 4
                              "watchdog_ms = 50\n")     # 5
    assert_refused(r, conf, [(5, "watchdog_ms: 50 is under 5 ticks at tick_hz 10 "
                                 "(comms_ticks + 2): give 500 or more")])
    r, _ = check(tmp_path, "tick_hz = 10\n[device sim]\nwatchdog_ms = 500\n")
    assert_accepted(r)


def test_two_devices_at_one_tcp_address_and_unit_are_refused(tmp_path):
    r, conf = check(tmp_path, "[device left]\n"                 # 3
                              "address = 10.0.0.5:502\n"        # 4
                              "unit = 2\n"                      # 5
                              "[device right]\n"                # 6
                              "address = 10.0.0.5:502\n"        # 7
                              "unit = 2\n")                     # 8
    assert_refused(r, conf, [(7, "device right: 10.0.0.5:502 unit 2 is device "
                                 "left's (line 3)")])
    # other units behind one gateway are other controllers
    r, _ = check(tmp_path, "[device left]\naddress = 10.0.0.5:502\nunit = 2\n"
                           "[device right]\naddress = 10.0.0.5:502\nunit = 3\n")
    assert_accepted(r)


def test_two_devices_on_one_serial_port_are_refused_even_with_other_units(tmp_path):
    r, conf = check(tmp_path, "[device left]\n"                 # 3
                              "transport = rtu\n"               # 4
                              "address = /dev/ttyUSB0\n"        # 5
                              "unit = 1\n"                      # 6
                              "[device right]\n"                # 7
                              "transport = rtu\n"               # 8
                              "address = /dev/ttyUSB0\n"        # 9
                              "unit = 2\n")                     # 10
    assert_refused(r, conf, [(9, "device right: /dev/ttyUSB0 is device left's "
                                 "(line 3)")])


def test_baud_or_parity_on_a_tcp_device_is_refused(tmp_path):
    r, conf = check(tmp_path, "[device sim]\n"          # 3
                              "address = 127.0.0.1:1502\n"  # 4
                              "baud = 9600\n"           # 5
                              "parity = E\n")           # 6
    assert_refused(r, conf, [
        (5, "baud: device sim is tcp; baud and parity are for rtu"),
        (6, "parity: device sim is tcp"),
    ])


def test_an_address_of_the_other_transport_is_refused(tmp_path):
    r, conf = check(tmp_path, "[device serial]\n"               # 3
                              "transport = rtu\n"               # 4
                              "address = 127.0.0.1:1502\n"      # 5
                              "[device net]\n"                  # 6
                              "address = /dev/ttyUSB0\n")       # 7
    assert_refused(r, conf, [
        (5, "address: '127.0.0.1:1502' is not a serial device, but device "
            "serial is rtu"),
        (7, "address: '/dev/ttyUSB0' is a serial device, but device net is tcp"),
    ])


def test_the_shipped_example_passes_from_the_repository_root(tmp_path):
    profiles = glob.glob(os.path.join(REPO, "etc", "profiles", "*.json"))
    assert profiles, "no profiles in etc/profiles"
    # its journal is the default: under systemd, in StateDirectory=
    r = subprocess.run([FASCIAD_BIN, "-n", "-c", "etc/fasciad.conf.example"],
                       cwd=REPO, capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL,
                       env=dict(os.environ, STATE_DIRECTORY=str(tmp_path)))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert ("etc/fasciad.conf.example: configuration OK, 1 device, %d profiles"
            % len(profiles)) in r.stdout, r.stdout


def test_plaintext_off_loopback_is_refused_with_its_line(tmp_path):
    """Nothing listens off loopback in plaintext: the mistake of
    control = tcp://0.0.0.0:7410 is caught by -n, and the daemon does not
    start with it."""
    for bad in ("tcp://0.0.0.0:7410", "tcp://*:7410", "tcp://192.168.1.20:7410",
                "tcp://eth0:7410", "tcp://127.0.0.1.example.org:7410"):
        r, conf = check(tmp_path, "control = %s\n"          # 3
                                  "publish = tcp://127.0.0.1:7411\n"
                                  "[device sim]\n" % bad)
        assert_refused(r, conf, [(3, "control: '%s' would listen off loopback "
                                     "in plaintext" % bad)])
        r, conf = check(tmp_path, "control = tcp://127.0.0.1:7410\n"
                                  "publish = %s\n"          # 4
                                  "[device sim]\n" % bad)
        assert_refused(r, conf, [(4, "publish: '%s' would listen off loopback"
                                     % bad)])
    d = subprocess.run([FASCIAD_BIN, "-f", "-c", conf], capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert d.returncode == 1 and "off loopback" in d.stderr, d


def test_loopback_and_ipc_endpoints_are_accepted(tmp_path):
    for control, publish in (("tcp://127.0.0.1:7410", "tcp://127.0.0.2:7411"),
                             ("tcp://[::1]:7410", "tcp://localhost:7411"),
                             ("tcp://lo:7410", "ipc://%s/pub" % tmp_path),
                             ("ipc://%s/ctl" % tmp_path, "tcp://127.0.0.1:*")):
        r, _ = check(tmp_path, "control = %s\npublish = %s\n[device sim]\n"
                     % (control, publish))
        assert_accepted(r)
