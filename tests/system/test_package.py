"""make deb (debian/, docs/install.md): the package builds from the tree
with dpkg-buildpackage, lintian finds no error and no warning in it, its
files are the installed layout with the configuration and the profiles as
conffiles, its maintainer scripts do what docs/install.md says, and its
programs, unpacked with dpkg -x, check and run the unpacked configuration
once certificates exist.

The package is built once for the module, without its own unit tests
(DEB_BUILD_OPTIONS=nocheck: make check runs them anyway) and two jobs.
Nothing is installed on this machine: dpkg -x unpacks into a temporary
directory, and the configuration's paths are rewritten to it."""
import glob
import os
import re
import signal
import subprocess
import time

import pytest

import fascia
from conftest import REPO, wait_until

BUILD_TIMEOUT_S = 300
PROFILES = sorted(os.path.basename(p)
                  for p in glob.glob(os.path.join(REPO, "etc", "profiles", "*.json")))
# The pages of the package's programs (fascia-web's is not its).
MAN = ["fascia-sim.1", "fascia-top.1", "fasciactl.1", "fasciad.conf.5", "fasciad.8"]

# The fascia package's files (docs/install.md, "What the package installs").
LAYOUT = {
    "/usr/sbin/fasciad", "/usr/bin/fasciactl", "/usr/bin/fascia-top", "/usr/bin/fascia-sim",
    "/etc/fascia/fasciad.conf", "/etc/fascia/clients/", "/etc/fascia/profiles/",
    "/var/lib/fascia/", "/lib/systemd/system/fasciad.service",
    "/usr/share/doc/fascia/install.md.gz", "/usr/share/doc/fascia/copyright",
    "/usr/share/doc/fascia/changelog.gz", "/usr/share/doc/fascia/examples/",
    "/usr/share/doc/fascia/examples/fasciad.conf.example",
} | {"/etc/fascia/profiles/" + p for p in PROFILES} \
  | {"/usr/share/man/man%s/%s.gz" % (m[-1], m) for m in MAN}
CONFFILES = {"/etc/fascia/fasciad.conf"} | {"/etc/fascia/profiles/" + p for p in PROFILES}
PYTHON_MODULES = sorted(os.path.basename(p) for p in
                        glob.glob(os.path.join(REPO, "clients", "python", "fascia", "*.py")))


def run(*args, **kw):
    kw.setdefault("timeout", 60)
    return subprocess.run(list(args), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """make deb B=...: {"fascia": path, "python3-fascia": path, "changes": path}."""
    build = tmp_path_factory.mktemp("deb-build")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SAN")}
    env["DEB_BUILD_OPTIONS"] = "nocheck parallel=2"
    started = time.monotonic()
    r = run("make", "-C", REPO, "B=%s" % build, "deb", env=env, timeout=BUILD_TIMEOUT_S)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    out = build / "deb"
    found = {"changes": glob.glob(str(out / "fascia_*.changes"))}
    for pkg in ("fascia", "python3-fascia"):
        found[pkg] = glob.glob(str(out / ("%s_*.deb" % pkg)))
    assert all(len(v) == 1 for v in found.values()), (found, os.listdir(out))
    print("make deb took %.0f s" % took)
    return {k: v[0] for k, v in found.items()}


def contents(deb):
    """dpkg -c: {path: (mode string, owner)}, directories ending in /."""
    r = run("dpkg", "-c", deb)
    assert r.returncode == 0, r.stderr
    files = {}
    for line in r.stdout.splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        path = path.split(" -> ")[0][1:]   # ./usr/... -> /usr/...
        if path != "/":
            files[path] = (mode, owner)
    return files


def control_file(deb, name):
    r = run("dpkg-deb", "-I", deb, name)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_lintian_reports_no_error_and_no_warning(debs):
    r = run("lintian", "--pedantic", "--display-info", "--fail-on", "error,warning",
            debs["changes"], debs["fascia"], debs["python3-fascia"], timeout=300)
    tags = [line for line in r.stdout.splitlines() if re.match(r"[EWIPXO]: ", line)]
    bad = [t for t in tags if t[0] in "EW"]
    assert r.returncode == 0 and not bad, "\n".join(tags) + r.stderr
    # What may remain is information, and docs/install.md lists it.
    with open(os.path.join(REPO, "docs", "install.md")) as f:
        doc = f.read()
    for tag in tags:
        name = tag.split()[2]
        assert name in doc, "docs/install.md does not mention lintian's %s" % tag


def test_the_package_holds_the_installed_layout(debs):
    files = contents(debs["fascia"])
    # ... and every directory above a listed path.
    expected = set(LAYOUT)
    for path in LAYOUT:
        d = os.path.dirname(path.rstrip("/"))
        while d != "/":
            expected.add(d + "/")
            d = os.path.dirname(d)
    assert set(files) == expected, ("missing: %s; unexpected: %s"
                                    % (sorted(expected - set(files)),
                                       sorted(set(files) - expected)))
    for path in ("/usr/sbin/fasciad", "/usr/bin/fasciactl"):
        assert files[path] == ("-rwxr-xr-x", "root/root"), (path, files[path])
    # The python module is a package of its own.
    py = contents(debs["python3-fascia"])
    site = "/usr/lib/python3/dist-packages/fascia/"
    assert sorted(p[len(site):] for p in py if p.startswith(site) and p != site) \
        == PYTHON_MODULES, sorted(py)


def test_the_configuration_and_the_profiles_are_its_conffiles(debs):
    conffiles = set(control_file(debs["fascia"], "conffiles").split())
    assert conffiles == CONFFILES, conffiles


def test_the_maintainer_scripts_make_the_user_the_certificate_and_enable_the_unit(debs):
    postinst = control_file(debs["fascia"], "postinst")
    for words in ("adduser --system --group", "fasciactl keygen server -d /etc/fascia",
                  'chown fascia:fascia "$secret"', 'chmod 0600 "$secret"',
                  "statoverride root fascia 0750 /etc/fascia/clients",
                  "deb-systemd-helper enable 'fasciad.service'",
                  "deb-systemd-invoke start 'fasciad.service'"):
        assert words in postinst, (words, postinst)
    # An upgrade does not restart the daemon (it would vent every garment).
    assert "restart" not in postinst.replace("--no-restart", ""), postinst
    prerm = control_file(debs["fascia"], "prerm")
    assert '"$1" = remove' in prerm and "deb-systemd-invoke stop 'fasciad.service'" in prerm, prerm
    postrm = control_file(debs["fascia"], "postrm")
    assert "rm -f /etc/fascia/server.key /etc/fascia/server.key_secret" in postrm, postrm
    assert "/var/lib/fascia/journal" not in postrm and "rm -r" not in postrm, postrm
    control = control_file(debs["fascia"], "control")
    assert re.search(r"^Depends:.*\badduser\b", control, re.M), control


@pytest.fixture
def unpacked(debs, tmp_path):
    """The fascia package unpacked under tmp_path/root, its configuration
    rewritten to name that root's /etc/fascia."""
    root = tmp_path / "root"
    for deb in (debs["fascia"], debs["python3-fascia"]):
        r = run("dpkg", "-x", deb, str(root))
        assert r.returncode == 0, r.stderr
    conf = root / "etc" / "fascia" / "fasciad.conf"
    conf.write_text(conf.read_text().replace("/etc/fascia", str(root / "etc" / "fascia")))
    return root


def unpacked_env(root):
    return dict(os.environ, STATE_DIRECTORY=str(root / "var" / "lib" / "fascia"))


def test_the_unpacked_fasciad_checks_the_unpacked_configuration(unpacked, tmp_path):
    root = unpacked
    etc = root / "etc" / "fascia"
    fasciad, ctl = str(root / "usr" / "sbin" / "fasciad"), str(root / "usr" / "bin" / "fasciactl")
    check = [fasciad, "-n", "-c", str(etc / "fasciad.conf")]

    r = run(*check, env=unpacked_env(root))
    assert r.returncode == 1 and "server.key_secret" in r.stderr, (r.returncode, r.stderr)
    # What the postinst does, here.
    r = run(ctl, "keygen", "server", "-d", str(etc))
    assert r.returncode == 0, r.stderr
    assert os.stat(etc / "server.key_secret").st_mode & 0o777 == 0o600
    r = run(*check, env=unpacked_env(root))
    assert r.returncode == 1 and "clients" in r.stderr, (r.returncode, r.stderr)
    # docs/install.md, "Certificates": one per operator, the public half here.
    r = run(ctl, "keygen", "alice", "--role", "operator", "-d", str(tmp_path))
    assert r.returncode == 0, r.stderr
    os.rename(tmp_path / "alice.key", etc / "clients" / "alice.key")
    r = run(*check, env=unpacked_env(root))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout.strip() == "%s: configuration OK, 1 device, %d profiles" % (
        etc / "fasciad.conf", len(PROFILES)), r.stdout


def test_the_unpacked_programs_run_a_session_with_certificates(unpacked, tmp_path):
    """The package's fascia-sim, fasciad and fasciactl together, and its
    Python module: the installed configuration with its garment moved to
    the simulator on a free port, CURVE as installed."""
    root = unpacked
    etc = root / "etc" / "fascia"
    usr = root / "usr"
    run(str(usr / "bin" / "fasciactl"), "keygen", "server", "-d", str(etc))
    run(str(usr / "bin" / "fasciactl"), "keygen", "alice", "--role", "operator",
        "-d", str(tmp_path))
    os.rename(tmp_path / "alice.key", etc / "clients" / "alice.key")

    sim = subprocess.Popen([str(usr / "bin" / "fascia-sim"), "-p", "0", "-c", "tcp://127.0.0.1:*"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
    daemon = None
    try:
        ready = fascia.ready_fields(fascia.read_ready(sim, 5))
        port = int(ready["modbus"].split(",")[0].rsplit(":", 1)[1])
        conf = etc / "fasciad.conf"
        text = conf.read_text()
        text = text.replace("transport = rtu\naddress = /dev/ttyUSB0",
                            "transport = tcp\naddress = 127.0.0.1:%d" % port)
        text = re.sub(r"tcp://127.0.0.1:741[01]", "tcp://127.0.0.1:*", text)
        conf.write_text(text)
        daemon = subprocess.Popen([str(usr / "sbin" / "fasciad"), "-f", "-c", str(conf)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL, env=unpacked_env(root))
        endpoints = fascia.ready_fields(fascia.read_ready(daemon, 10))
        env = dict(os.environ, FASCIA_CONTROL=endpoints["control"],
                   FASCIA_CERT=str(tmp_path / "alice.key_secret"),
                   FASCIA_SERVER_KEY=str(etc / "server.key"))
        ctl = str(usr / "bin" / "fasciactl")
        wait_until(lambda: run(ctl, "status", "garment", env=env).stdout.startswith("garment: idle"),
                   10, interval=0.2, what="the garment idle")
        r = run(ctl, "start", "garment", "gentle-wave", env=env)
        assert r.returncode == 0 and "running" in r.stdout, r.stdout + r.stderr
        # The packaged module, not the tree's.
        code = ("import fascia, sys; assert fascia.__file__.startswith(sys.argv[1]), fascia.__file__; "
                "c = fascia.Client(); print(c.stop('garment')['state'])")
        site = str(usr / "lib" / "python3" / "dist-packages")
        r = run("/usr/bin/python3", "-c", code, site,
                env=dict(env, PYTHONPATH=site, PYTHONDONTWRITEBYTECODE="1"))
        assert r.returncode == 0 and r.stdout.strip() in ("releasing", "idle"), r.stdout + r.stderr
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    finally:
        for p in (daemon, sim):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
