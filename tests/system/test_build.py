"""The build itself: a machine without a library's -dev package is told
which Debian packages are missing before any compiler runs, and each
program links only the libraries it uses.

Independent of the rigs in conftest.py: it runs make and readelf only.
    FASCIA_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_build.py
FASCIA_MAKEFILE (default: the repository's Makefile) runs the same tests
against another Makefile, e.g. `git show HEAD~1:Makefile > /tmp/Makefile.old`.
"""
import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("FASCIA_BUILD", os.path.join(REPO, "build"))
MAKEFILE = os.environ.get("FASCIA_MAKEFILE", os.path.join(REPO, "Makefile"))

# The Debian 12 package of every pkg-config module `make all` needs.
ALL_DEV_PACKAGES = ["libmodbus-dev", "libevent-dev", "libzmq3-dev",
                    "libjansson-dev", "libinih-dev", "libcmocka-dev",
                    "libncurses-dev"]

# The start of the one message (`make deps`'s own recipe says "missing
# Debian packages" too).
MESSAGE = "fascia: missing Debian packages:"
# A line that runs a compiler: make prints each recipe line it runs.
COMPILER_LINE = re.compile(r"^\s*(cc|gcc|clang|c\+\+|g\+\+)(-[0-9.]+)?\s|"
                           r" -c -o |^\s*\S*-linux-gnu-gcc")


def make_env(**extra):
    """The environment for a make of our own: none of the calling make's
    flags (make system runs us from a make, perhaps with -j or -n), no
    pkg-config search path of the caller's."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
              "MAKE_TERMOUT", "MAKE_TERMERR", "PKG_CONFIG_PATH",
              "PKG_CONFIG_LIBDIR", "PKG_CONFIG", "CC", "LDFLAGS"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_make(args, env, timeout=300):
    p = subprocess.run(["make", "--no-print-directory", "-f", MAKEFILE]
                       + list(args), cwd=REPO, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def object_files(top):
    return [os.path.join(d, f) for d, _, files in os.walk(top)
            for f in files if f.endswith(".o")]


def assert_stopped_before_compiling(rc, out, build_dir, packages):
    """make failed with one message naming packages and `make deps`,
    and compiled nothing."""
    assert rc != 0, "make succeeded without the packages:\n" + out
    lines = [ln for ln in out.splitlines() if MESSAGE in ln]
    assert len(lines) == 1, \
        "not one message naming the missing packages:\n" + out
    named = lines[0].split(MESSAGE, 1)[1].split()
    for pkg in packages:
        assert pkg in named, "%s not named in: %s" % (pkg, lines[0])
    assert "make deps" in lines[0], lines[0]
    compiled = [ln for ln in out.splitlines() if COMPILER_LINE.search(ln)]
    assert not compiled, "a compiler ran:\n" + "\n".join(compiled)
    assert not object_files(build_dir), object_files(build_dir)


@pytest.mark.parametrize("args", [[], ["all"], ["-j4", "-k", "all"],
                                  ["unit"]],
                         ids=["make", "all", "-j4 -k all", "unit"])
def test_missing_libraries_are_named_as_packages_before_any_compiler(
        tmp_path, args):
    """PKG_CONFIG_LIBDIR=/nonexistent: pkg-config finds no module, as on a
    machine with none of the -dev packages."""
    b = tmp_path / "b"
    rc, out = run_make(["B=%s" % b] + args,
                       make_env(PKG_CONFIG_LIBDIR="/nonexistent"))
    assert_stopped_before_compiling(rc, out, b, ALL_DEV_PACKAGES)


def test_without_pkg_config_the_build_asks_for_it_and_deps_still_runs(
        tmp_path):
    """A PATH with every program of the caller's but pkg-config: the build
    names the package pkg-config; deps, clean and format are not blocked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = os.path.join(d, name)
            if ("pkg-config" in name or "pkgconf" in name
                    or (bin_dir / name).exists()
                    or not os.access(target, os.X_OK)):
                continue
            os.symlink(target, bin_dir / name)
    env = make_env(PATH=str(bin_dir))
    assert shutil.which("pkg-config", path=env["PATH"]) is None
    b = tmp_path / "b"
    rc, out = run_make(["B=%s" % b, "all"], env)
    assert_stopped_before_compiling(rc, out, b, ["pkg-config"])
    for args in (["-n", "deps"], ["B=%s" % b, "clean"], ["-n", "format"]):
        rc, out = run_make(args, env)
        assert rc == 0 and MESSAGE not in out, \
            "make %s: blocked by the check:\n%s" % (" ".join(args), out)


def daemon_calls(prefix):
    d = os.path.join(REPO, "daemon")
    for name in os.listdir(d):
        if name.endswith((".c", ".h")):
            with open(os.path.join(d, name), errors="replace") as f:
                if prefix in f.read():
                    return True
    return False


# What each program links (readelf -d NEEDED), as soname prefixes: what it
# must need, and what it must not.  libevent- is the full libevent;
# "libevent" alone matches every libevent library (_pthreads, _core ...).
LINKS = {
    "fasciactl": (["libzmq.", "libjansson."],
                  ["libmodbus", "libevent", "libinih", "libncurses",
                   "libtinfo", "libcmocka"]),
    "fascia-top": (["libzmq.", "libjansson.", "libncursesw."],
                   ["libmodbus", "libevent", "libinih", "libcmocka"]),
    "fascia-sim": (["libevent-", "libzmq.", "libjansson."],
                   ["libinih", "libmodbus", "libevent_pthreads",
                    "libncurses", "libtinfo", "libcmocka"]),
    "fasciad": (["libmodbus.", "libevent-", "libzmq.", "libjansson.",
                 "libinih."],
                ["libncurses", "libtinfo", "libcmocka"]
                + ([] if daemon_calls("evthread_") else
                   ["libevent_pthreads"])),
    "libfascia.so": (["libzmq.", "libjansson."],
                     ["libmodbus", "libevent", "libinih", "libncurses",
                      "libcmocka"]),
}


def needed(path):
    out = subprocess.run(["readelf", "-d", path], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


@pytest.fixture(scope="module")
def linked_as_listed(tmp_path_factory):
    """The programs linked with -Wl,--no-as-needed: every library on the
    link line is NEEDED, so this is what the Makefile lists (Debian's gcc
    links --as-needed by default, which would hide a program linked
    against everything).  Returns (build dir, make's output)."""
    b = tmp_path_factory.mktemp("linked") / "b"
    jobs = str(min(os.cpu_count() or 2, 8))
    rc, out = run_make(["-k", "-j" + jobs, "B=%s" % b,
                        "LDFLAGS=-Wl,--no-as-needed"]
                       + [str(b / p) for p in LINKS], make_env(),
                       timeout=600)
    return b, out


@pytest.mark.parametrize("program", sorted(LINKS))
def test_each_program_links_only_what_it_uses(program, linked_as_listed):
    must, must_not = LINKS[program]
    b, make_out = linked_as_listed
    checked = 0
    for where in (BUILD, str(b)):
        path = os.path.join(where, program)
        if where == BUILD and not os.path.exists(path):
            continue    # this build has not built it: the link below does
        assert os.path.exists(path), \
            "%s not built; make said:\n%s" % (path, make_out[-4000:])
        libs = needed(path)
        for prefix in must:
            assert any(lib.startswith(prefix) for lib in libs), \
                "%s does not need %s*: %s" % (path, prefix, libs)
        extra = [lib for lib in libs
                 if any(lib.startswith(p) for p in must_not)]
        assert not extra, "%s needs %s, which it does not use" % (path,
                                                                  extra)
        checked += 1
    assert checked
