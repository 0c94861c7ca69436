"""make install as a packager and an operator use it: the installed fasciad
finds the installed profiles without being told where, and the installed
example configuration names them.  Each install builds into its own B= in a
temporary directory, so build/ is left alone."""
import glob
import os
import subprocess

from conftest import REPO

PROFILES = sorted(os.path.basename(p)
                  for p in glob.glob(os.path.join(REPO, "etc", "profiles", "*.json")))


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


def test_the_installed_daemon_finds_the_installed_profiles_without_c(tmp_path):
    prefix = str(tmp_path / "prefix")
    build = str(tmp_path / "build")
    elsewhere = tmp_path / "elsewhere"   # not the repository: no etc/profiles
    elsewhere.mkdir()
    make_install(build, PREFIX=prefix)

    profiles = os.path.join(prefix, "share", "fascia", "profiles")
    assert sorted(os.listdir(profiles)) == PROFILES, os.listdir(profiles)
    daemon = os.path.join(prefix, "bin", "fasciad")

    # the built-in default is where make install put the profiles
    r = fasciad(daemon, "-n", cwd=str(elsewhere))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "built-in: configuration OK, 1 device, %d profiles" % len(PROFILES) \
        in r.stdout, r.stdout

    # and the installed example names them
    example = os.path.join(prefix, "etc", "fascia", "fasciad.conf.example")
    with open(example) as f:
        text = f.read()
    assert "\nprofiles = %s\n" % profiles in text, text
    r = fasciad(daemon, "-n", "-c", example, cwd=str(elsewhere))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "configuration OK, 1 device, %d profiles" % len(PROFILES) in r.stdout, r


def test_destdir_stages_the_layout_of_prefix_and_a_new_prefix_rebuilds(tmp_path):
    """A package's staging: everything under DESTDIR, every path inside
    naming PREFIX.  The same B= built for another PREFIX before: the
    built-in default must follow the new one, not keep the old."""
    build = str(tmp_path / "build")
    make_install(build, PREFIX=str(tmp_path / "first"))
    dest = str(tmp_path / "dest")
    make_install(build, PREFIX="/usr", DESTDIR=dest)

    usr = os.path.join(dest, "usr")
    assert sorted(os.listdir(os.path.join(usr, "share", "fascia", "profiles"))) == PROFILES
    example = os.path.join(usr, "etc", "fascia", "fasciad.conf.example")
    with open(example) as f:
        assert "\nprofiles = /usr/share/fascia/profiles\n" in f.read()
    # Not installed at /usr: the staged daemon looks there, and says so.
    if not os.path.isdir("/usr/share/fascia/profiles"):
        r = fasciad(os.path.join(usr, "bin", "fasciad"), "-n", cwd=str(tmp_path))
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "/usr/share/fascia/profiles" in r.stderr, r.stderr
        assert str(tmp_path / "first") not in r.stderr, r.stderr
