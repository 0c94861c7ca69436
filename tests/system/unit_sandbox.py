"""fasciad.service's grants and filters, read from the unit file, applied
to a process without systemd (this machine has no systemd as PID 1; CI
neither).  What systemd would do at exec, done here so the tests can run
fasciad the way the unit runs it:

  User=, Group=         setpriv --reuid/--regid (a throwaway uid: the tests
                        use nobody, not the package's fascia user)
  AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges=
                        setpriv --ambient-caps/--inh-caps/--bounding-set
                        and --no-new-privs
  SystemCallFilter=, SystemCallErrorNumber=, SystemCallArchitectures=native
                        a seccomp filter (python3-seccomp) of the syscalls
                        the unit's sets expand to (systemd-analyze
                        syscall-filter) and those systemd always allows,
                        every other failing with the unit's errno
  RestrictAddressFamilies=, MemoryDenyWriteExecute=, RestrictNamespaces=
                        a second seccomp filter, as systemd builds them:
                        socket() of another family fails EAFNOSUPPORT,
                        mmap(W|X) and mprotect(X) EPERM, clone() with a
                        namespace flag and unshare()/setns() EPERM, clone3()
                        ENOSYS (so that glibc falls back to clone)
  UMask=, Limit*=       umask and setrlimit, each limit at most the hard
                        limit the test may set (without CAP_SYS_RESOURCE a
                        limit cannot be raised: the capabilities above make
                        LimitRTPRIO and LimitMEMLOCK moot anyway)

Not emulated: the mount namespace (ProtectSystem=, ProtectHome=,
PrivateTmp=, ReadWritePaths=, the directories), the cgroup's device
filter, ProtectKernel*=, ProcSubset=, LockPersonality=; docs/install.md
says what could not be tried here.

Run as a program, it is the last step of the launcher: load the filters
described by its JSON argument, then exec the rest of its arguments.
"""
import errno
import functools
import json
import os
import resource
import socket
import subprocess
import sys

# What systemd allows in every allow-list filter (systemd.exec(5):
# execve, exit, exit_group, getrlimit, rt_sigreturn, sigreturn, and the
# calls that query time and sleep), as its seccomp-util.c adds @default.
IMPLICIT = ("@default", "execve", "exit", "exit_group", "getrlimit",
            "rt_sigreturn", "sigreturn")

AF_MAX = 46  # linux/socket.h
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
                  0x20000000, 0x40000000, 0x00000080)  # NEWNS .. NEWCGROUP, NEWTIME
RLIMITS = {"LimitRTPRIO": resource.RLIMIT_RTPRIO,
           "LimitMEMLOCK": resource.RLIMIT_MEMLOCK,
           "LimitCORE": resource.RLIMIT_CORE}


def unit_settings(path):
    """{key: [value, ...]} of a unit file, every section's keys together, in
    the order given (a key may come more than once)."""
    settings = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@functools.lru_cache(maxsize=None)
def syscall_group(name):
    """The syscalls of one @group, nested groups expanded."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                         capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        calls |= syscall_group(word) if word.startswith("@") else {word}
    return frozenset(calls)


def expand(words):
    calls = set()
    for w in words:
        w = w.split(":", 1)[0]  # name:errno
        calls |= syscall_group(w) if w.startswith("@") else {w}
    return calls


def allowed_syscalls(settings):
    """The syscalls the unit's SystemCallFilter= lines allow, merged as
    systemd merges them: the first line is an allow list, a later plain
    line adds, a later ~ line removes."""
    lines = settings.get("SystemCallFilter", [])
    assert lines and not lines[0].startswith("~"), \
        "the unit's first SystemCallFilter= is an allow list"
    allowed = expand(IMPLICIT)
    for line in lines:
        if line.startswith("~"):
            allowed -= expand(line[1:].split())
        else:
            allowed |= expand(line.split())
    return allowed


def address_families(settings):
    fams = set()
    for line in settings.get("RestrictAddressFamilies", []):
        assert not line.startswith("~"), "an allow list of families"
        fams |= {int(getattr(socket, name)) for name in line.split()}
    return fams


def capabilities(settings):
    """The capabilities of AmbientCapabilities=, as setpriv names them."""
    caps = []
    for line in settings.get("AmbientCapabilities", []):
        caps += [c.lower().replace("cap_", "", 1) for c in line.split()]
    return caps


def limit_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def launcher(unit_path, uid, gid, groups=(), filters=True):
    """The argv prefix that runs a program as the unit would run it; the
    program's argv follows it.  filters=False: the user and the
    capabilities only (setpriv), to see what the program would call."""
    s = unit_settings(unit_path)
    caps = capabilities(s)
    bounding = []
    for line in s.get("CapabilityBoundingSet", []):
        bounding += [c.lower().replace("cap_", "", 1) for c in line.split()]
    spec = {
        "allow": sorted(allowed_syscalls(s)),
        "errno": s.get("SystemCallErrorNumber", ["EPERM"])[-1],
        "families": sorted(address_families(s)),
        "mdwe": s.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes",
        "namespaces": s.get("RestrictNamespaces", ["no"])[-1] == "yes",
        "umask": s.get("UMask", ["0022"])[-1],
        "limits": {k: s[k][-1] for k in RLIMITS if k in s},
    }
    argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid]
    argv += ["--groups=" + ",".join(str(g) for g in groups)] if groups else ["--clear-groups"]
    argv += ["--inh-caps=" + ",".join(["-all"] + ["+" + c for c in caps]),
             "--bounding-set=" + ",".join(["-all"] + ["+" + c for c in bounding])]
    if caps:
        argv.append("--ambient-caps=" + ",".join("+" + c for c in caps))
    if s.get("NoNewPrivileges", ["no"])[-1] == "yes":
        argv.append("--no-new-privs")
    if not filters:
        return argv
    return argv + [sys.executable, os.path.abspath(__file__), json.dumps(spec), "--"]


def _load(spec):
    import seccomp  # python3-seccomp; only the launched process needs it

    # The second filter first: the first refuses seccomp() itself.
    extra = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    nofam = seccomp.ERRNO(errno.EAFNOSUPPORT)
    for fam in range(AF_MAX):
        if fam not in spec["families"]:
            extra.add_rule(nofam, "socket", seccomp.Arg(0, seccomp.EQ, fam))
    extra.add_rule(nofam, "socket", seccomp.Arg(0, seccomp.GE, AF_MAX))
    if spec["mdwe"]:
        eperm = seccomp.ERRNO(errno.EPERM)
        wx = PROT_WRITE | PROT_EXEC
        extra.add_rule(eperm, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
        for call in ("mprotect", "pkey_mprotect"):
            extra.add_rule(eperm, call, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        extra.add_rule(eperm, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
    if spec["namespaces"]:
        eperm = seccomp.ERRNO(errno.EPERM)
        for flag in CLONE_NS_FLAGS:
            extra.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        extra.add_rule(eperm, "unshare")
        extra.add_rule(eperm, "setns")
        extra.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    extra.load()

    main = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, spec["errno"])))
    for call in spec["allow"]:
        try:
            main.add_rule(seccomp.ALLOW, call)
        except (RuntimeError, ValueError):
            pass  # not a syscall of this architecture (arm_fadvise64_64 ...)
    main.load()


def _main(argv):
    spec = json.loads(argv[1])
    assert argv[2] == "--"
    os.umask(int(spec["umask"], 8))
    for key, text in spec["limits"].items():
        which = RLIMITS[key]
        want = limit_bytes(text) if key == "LimitMEMLOCK" else int(text)
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(which, (want, want))
    _load(spec)
    os.execv(argv[3], argv[3:])


if __name__ == "__main__":
    _main(sys.argv)
