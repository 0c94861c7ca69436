"""make install as a packager and an operator use it (docs/install.md):
fasciad in sbin, the clients in bin, the configuration, the profiles and
the clients directory in SYSCONFDIR/fascia (/etc/fascia for PREFIX=/usr),
the journal's directory, the unit naming the installed paths, the example
in DOCDIR.  The installed fasciad finds the installed profiles without
being told where; the installed configuration passes `fasciad -n` once its
certificates exist; a second install keeps the administrator's files.

Every install here shares one B= in a temporary directory (a new PREFIX
rebuilds config.o alone), so build/ is left alone, and gives LOCALSTATEDIR
inside it: /var/lib/fascia is not a test's to make."""
import glob
import os
import subprocess

import pytest

from conftest import REPO

PROFILES = sorted(os.path.basename(p)
                  for p in glob.glob(os.path.join(REPO, "etc", "profiles", "*.json")))
# The pages of the package's programs (fascia-web's is not its).
MAN = ["fascia-sim.1", "fascia-top.1", "fasciactl.1", "fasciad.conf.5", "fasciad.8"]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return str(tmp_path_factory.mktemp("install-build"))


def make_install(build, **variables):
    """make install B=build VAR=value ...; fails the test with make's output
    if it fails."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SAN")}
    args = ["make", "-C", REPO, "-j2", "B=" + build, "SAN="]
    args += ["%s=%s" % kv for kv in sorted(variables.items())] + ["install"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600,
                       env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "%s\n%s\n%s" % (" ".join(args), r.stdout[-3000:],
                                             r.stderr[-3000:])
    return r.stdout


def fasciad(binary, *args, cwd):
    """The daemon's -n; its default journal in cwd, as systemd's
    StateDirectory= would put it (/var/lib/fascia is not there)."""
    env = dict(os.environ, STATE_DIRECTORY=str(cwd))
    return subprocess.run([binary] + list(args), cwd=cwd, capture_output=True,
                          text=True, timeout=10, stdin=subprocess.DEVNULL, env=env)


def files_under(root):
    """Every file and directory below root, as /-rooted paths."""
    out = set()
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add("/" + os.path.relpath(os.path.join(d, name), root))
    return out


def test_the_installed_daemon_finds_the_installed_profiles_without_c(build, tmp_path):
    prefix = str(tmp_path / "prefix")
    elsewhere = tmp_path / "elsewhere"   # not the repository: no etc/profiles
    elsewhere.mkdir()
    make_install(build, PREFIX=prefix, LOCALSTATEDIR=str(tmp_path / "var"))

    profiles = os.path.join(prefix, "etc", "fascia", "profiles")
    assert sorted(os.listdir(profiles)) == PROFILES, os.listdir(profiles)
    daemon = os.path.join(prefix, "sbin", "fasciad")

    # the built-in default is where make install put the profiles
    r = fasciad(daemon, "-n", cwd=str(elsewhere))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "built-in: configuration OK, 1 device, %d profiles" % len(PROFILES) \
        in r.stdout, r.stdout

    # and the installed example names them
    example = os.path.join(prefix, "share", "doc", "fascia", "examples",
                           "fasciad.conf.example")
    with open(example) as f:
        text = f.read()
    assert "\nprofiles = %s\n" % profiles in text, text
    r = fasciad(daemon, "-n", "-c", example, cwd=str(elsewhere))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "configuration OK, 1 device, %d profiles" % len(PROFILES) in r.stdout, r


def test_destdir_stages_the_package_layout_for_prefix_usr(build, tmp_path):
    """A package's staging: everything under DESTDIR, /etc and /var for
    PREFIX=/usr, every path inside naming the installed places.  The same
    B= built for another PREFIX before: the built-in default must follow
    the new one, not keep the old."""
    make_install(build, PREFIX=str(tmp_path / "first"), LOCALSTATEDIR=str(tmp_path / "var"))
    dest = str(tmp_path / "dest")
    make_install(build, PREFIX="/usr", DESTDIR=dest, SYSTEMDUNITDIR="/lib/systemd/system")

    want = {"/usr/sbin/fasciad", "/usr/bin/fasciactl", "/usr/bin/fascia-top",
            "/usr/bin/fascia-sim", "/etc/fascia/fasciad.conf", "/etc/fascia/clients",
            "/var/lib/fascia", "/lib/systemd/system/fasciad.service",
            "/usr/share/doc/fascia/install.md",
            "/usr/share/doc/fascia/examples/fasciad.conf.example"}
    want |= {"/etc/fascia/profiles/" + p for p in PROFILES}
    want |= {"/usr/share/man/man%s/%s" % (m[-1], m) for m in MAN}
    have = files_under(dest)
    assert want <= have, sorted(want - have)
    assert not any(p.startswith("/usr/etc") or p.startswith("/usr/var") for p in have), \
        sorted(have)
    # The private directories: the journal's, the clients' certificates.
    for d in ("/var/lib/fascia", "/etc/fascia/clients"):
        assert os.stat(dest + d).st_mode & 0o777 == 0o750, d

    with open(dest + "/usr/share/doc/fascia/examples/fasciad.conf.example") as f:
        assert "\nprofiles = /etc/fascia/profiles\n" in f.read()
    with open(dest + "/lib/systemd/system/fasciad.service") as f:
        unit = f.read()
    assert "\nExecStart=/usr/sbin/fasciad -f -c /etc/fascia/fasciad.conf\n" in unit, unit
    # Not installed at /usr: the staged daemon looks in /etc/fascia, and says so.
    if not os.path.isdir("/etc/fascia/profiles"):
        r = fasciad(dest + "/usr/sbin/fasciad", "-n", cwd=str(tmp_path))
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "/etc/fascia/profiles" in r.stderr, r.stderr
        assert str(tmp_path / "first") not in r.stderr, r.stderr


def test_the_installed_configuration_passes_once_its_certificates_exist(build, tmp_path):
    """The installed fasciad.conf and unit name PREFIX's paths; -n names
    what is missing, the server's certificate, then a client's, and passes
    once both are there."""
    prefix = tmp_path / "prefix"
    make_install(build, PREFIX=str(prefix), LOCALSTATEDIR=str(tmp_path / "var"))
    etc = prefix / "etc" / "fascia"
    conf = str(etc / "fasciad.conf")
    with open(conf) as f:
        text = f.read()
    for line in ("profiles = %s/profiles" % etc, "curve = yes",
                 "server_cert = %s/server.key_secret" % etc, "clients = %s/clients" % etc):
        assert "\n%s\n" % line in text, (line, text)
    with open(prefix / "lib" / "systemd" / "system" / "fasciad.service") as f:
        unit = f.read()
    assert "\nExecStart=%s/sbin/fasciad -f -c %s\n" % (prefix, conf) in unit, unit
    assert "/etc/fascia" not in unit.replace(str(etc), ""), unit

    daemon, ctl = str(prefix / "sbin" / "fasciad"), str(prefix / "bin" / "fasciactl")
    r = fasciad(daemon, "-n", "-c", conf, cwd=str(tmp_path))
    assert r.returncode == 1 and "server.key_secret" in r.stderr, (r.returncode, r.stderr)

    subprocess.run([ctl, "keygen", "server", "-d", str(etc)], check=True,
                   capture_output=True, timeout=10)
    r = fasciad(daemon, "-n", "-c", conf, cwd=str(tmp_path))
    assert r.returncode == 1 and "clients" in r.stderr, (r.returncode, r.stderr)

    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run([ctl, "keygen", "alice", "--role", "operator", "-d", str(keys)],
                   check=True, capture_output=True, timeout=10)
    os.rename(keys / "alice.key", etc / "clients" / "alice.key")
    r = fasciad(daemon, "-n", "-c", conf, cwd=str(tmp_path))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "configuration OK, 1 device, %d profiles" % len(PROFILES) in r.stdout, r.stdout


def test_a_second_install_keeps_the_administrators_configuration_and_profiles(build, tmp_path):
    prefix = tmp_path / "prefix"
    make_install(build, PREFIX=str(prefix), LOCALSTATEDIR=str(tmp_path / "var"))
    conf = prefix / "etc" / "fascia" / "fasciad.conf"
    profile = prefix / "etc" / "fascia" / "profiles" / PROFILES[0]
    conf.write_text(conf.read_text() + "\n# the technician's change\n")
    profile.write_text('{"name": "edited"}\n')

    out = make_install(build, PREFIX=str(prefix), LOCALSTATEDIR=str(tmp_path / "var"))
    assert conf.read_text().endswith("# the technician's change\n")
    assert profile.read_text() == '{"name": "edited"}\n'
    assert "kept %s" % conf in out and "kept %s" % profile in out, out
