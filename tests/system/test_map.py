"""daemon/fasciad.h is the daemon's map: every function it declares is
listed under the file that defines it, and a name's prefix says which file
that is.  The project's files refer to docs/, never to a design file that
is not in the repository."""
import os
import re
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DAEMON = os.path.join(ROOT, "daemon")

SECTION = re.compile(r"^/\* ---- (\w+\.c):")
# a declaration's name: an identifier followed by "(" at the start of a
# prototype (not a macro, not a call inside an inline function)
DECL = re.compile(r"^(?:[\w\s\*]+?[\s\*])(\w+)\(")
# a prefix that names a file: fd_link_ lives in link.c
PREFIXED = re.compile(r"^fd_([a-z]+)_")


def sections():
    """{file: [function names declared under it]} from fasciad.h."""
    out, current, depth = {}, None, 0
    with open(os.path.join(DAEMON, "fasciad.h")) as f:
        for line in f:
            m = SECTION.match(line)
            if m:
                current = m.group(1)
                out.setdefault(current, [])
                continue
            if depth == 0 and current and not line.startswith(("#", " ", "\t", "/*", " *")):
                d = DECL.match(line)
                if d and "static inline" not in line and "typedef" not in line:
                    out[current].append(d.group(1))
            depth += line.count("{") - line.count("}")
    return out


def defined_in(path, name):
    with open(path) as f:
        text = f.read()
    return re.search(r"^[\w][\w\s\*]*?\b%s\(" % re.escape(name), text, re.M) is not None


def test_every_declared_function_is_defined_in_its_section_file():
    secs = sections()
    assert len(secs) >= 10, secs
    missing = []
    for fname, names in secs.items():
        path = os.path.join(DAEMON, fname)
        assert os.path.isfile(path), "fasciad.h has a section for %s, which is not there" % fname
        for name in names:
            if not defined_in(path, name):
                missing.append("%s (listed under %s)" % (name, fname))
    assert not missing, "declared but not defined where the map says:\n" + "\n".join(missing)


def test_a_prefix_names_its_file():
    wrong = []
    for fname, names in sections().items():
        stem = fname[:-2]
        for name in names:
            m = PREFIXED.match(name)
            if m and m.group(1) != stem:
                wrong.append("%s under %s" % (name, fname))
    assert not wrong, "a prefix that names another file:\n" + "\n".join(wrong)


def test_every_daemon_file_has_a_section():
    secs = sections()
    files = {f for f in os.listdir(DAEMON) if f.endswith(".c")}
    # the safety core has headers of its own (safety.h, session.h: the
    # dose is the session's); the process itself is fasciad.c; the
    # journal's SQLite side (journal.h), the queries' parts (query.h) and
    # the configuration's [device NAME] sections (config.h) are behind
    # their module's own header, for that module's files only
    own = {"interlock.c", "state.c", "session.c", "dose.c", "fasciad.c",
           "jfile.c", "jwrite.c", "qargs.c", "qread.c", "confdev.c"}
    lost = sorted(files - set(secs) - own)
    assert not lost, "daemon files missing from the map in fasciad.h: %s" % lost


def test_no_file_refers_to_a_design_file_outside_the_repository():
    tracked = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True,
                             text=True, check=True).stdout.split()
    hits = []
    for rel in tracked:
        if rel == os.path.relpath(__file__, ROOT):
            continue
        try:
            with open(os.path.join(ROOT, rel), errors="replace") as f:
                if "DESIGN.md" in f.read():
                    hits.append(rel)
        except (IsADirectoryError, FileNotFoundError):
            pass
    assert not hits, "files that refer to DESIGN.md instead of docs/: %s" % hits
