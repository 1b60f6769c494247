"""test_layering.py: the tree's layering, checked from its #include lines.

STYLE.md's shape, as assertions a change can break:
  (a) core/ is pure: it includes nothing outside core/ (not io/, numa/,
      bench/) and no system header that means syscalls, threads or clock
      reads (<sys/*>, <liburing.h>, <pthread.h>, <unistd.h>, ...);
  (b) no include cycles among the modules of io/ (nor of core/, numa/,
      bench/): a module is a .c and its .h taken together, and module A
      depends on B when A.c or A.h includes B.h;
  (c) io/ knows no commands: no io/ file names a member of core/proto.h's
      enum proto_cmd (PROTO_GET, PROTO_SET, ...), except files on
      COMMAND_ALLOW below, each with its reason.

Every `#include "..."` in core/, io/, numa/ and bench/ is resolved the way
the compiler does: next to the including file first, then in the folders
CMake puts on the include path (core/, io/, numa/, bench/). Comments and
string literals are ignored when looking for command names.

Stdlib only. Run by hand: python3 tests/test_layering.py [repo root]
"""

import os
import re
import sys
import unittest

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
FOLDERS = ("core", "io", "numa", "bench")

# System headers core/ may not include: syscalls, threads, sockets, rings,
# NUMA, signals, clocks. core/ gets memory and time handed in.
FORBIDDEN_IN_CORE = re.compile(
    r"^(sys/.*|liburing\.h|liburing/.*|pthread\.h|unistd\.h|fcntl\.h|poll\.h|signal\.h|threads\.h"
    r"|time\.h|numa\.h|numaif\.h|sched\.h|netinet/.*|arpa/.*|netdb\.h|linux/.*|dirent\.h)$"
)

# io/ files allowed to name a command, and why. Keep it empty: io/ moves
# bytes, core/exec.c executes requests (issue 10).
COMMAND_ALLOW = {}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def sources(folder):
    """The .c and .h files of a top-level folder, recursively, sorted."""
    out = []
    base = os.path.join(ROOT, folder)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith((".c", ".h")):
                out.append(os.path.join(dirpath, name))
    return out


def rel(path):
    return os.path.relpath(path, ROOT)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def strip_comments_and_strings(text):
    """C text with comments and string/char literals blanked (lines kept)."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def includes(path):
    """(kind, name) for every #include in a file: kind '"' or '<'."""
    return INCLUDE.findall(read(path))


def resolve(path, name):
    """The repository file a quoted include names, or None (not ours)."""
    candidates = [os.path.join(os.path.dirname(path), name)]
    candidates += [os.path.join(ROOT, folder, name) for folder in FOLDERS]
    for c in candidates:
        if os.path.isfile(c):
            return os.path.normpath(c)
    return None


def module_of(path):
    """io/conn.c and io/conn.h are the module io/conn."""
    return os.path.splitext(rel(path))[0]


def proto_commands():
    """The members of enum proto_cmd in core/proto.h."""
    text = strip_comments_and_strings(read(os.path.join(ROOT, "core", "proto.h")))
    m = re.search(r"enum\s+proto_cmd\s*\{(.*?)\}", text, re.S)
    assert m, "core/proto.h has no enum proto_cmd"
    names = re.findall(r"\b(PROTO_[A-Z0-9_]+)\b", m.group(1))
    return [n for n in names if not n.startswith("PROTO_FAMILY_")]


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def one_cycle(graph, component):
    """One concrete loop through a component, for the failure message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    v = start
    while True:
        nxt = sorted(w for w in graph[v] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path + [start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            return path + [nxt[0]]
        v = fresh[0]
        seen.add(v)
        path.append(v)


class LayeringTest(unittest.TestCase):
    def test_layering_core_includes_only_core(self):
        bad = []
        files = sources("core")
        self.assertTrue(files, "no sources under core/")
        for path in files:
            for kind, name in includes(path):
                if kind == "<":
                    if FORBIDDEN_IN_CORE.match(name):
                        bad.append(f"{rel(path)}: #include <{name}> (core/ makes no syscalls)")
                    continue
                target = resolve(path, name)
                if target is None:
                    bad.append(f'{rel(path)}: #include "{name}" names no file of the tree')
                elif not rel(target).startswith("core" + os.sep):
                    bad.append(f'{rel(path)}: #include "{name}" is {rel(target)}, outside core/')
        self.assertEqual(bad, [], "core/ must be pure:\n  " + "\n  ".join(bad))

    def check_no_cycles(self, folder):
        graph = {}
        for path in sources(folder):
            mod = module_of(path)
            graph.setdefault(mod, set())
            for kind, name in includes(path):
                if kind != '"':
                    continue
                target = resolve(path, name)
                if target is None or not target.endswith(".h"):
                    continue
                dep = module_of(target)
                if dep != mod and rel(target).startswith(folder + os.sep):
                    graph[mod].add(dep)
        found = cycles(graph)
        message = "\n  ".join(
            f"{' '.join(c)}: e.g. {' -> '.join(one_cycle(graph, c))}" for c in found
        )
        self.assertEqual(found, [], f"include cycles among the modules of {folder}/:\n  {message}")

    def test_layering_io_has_no_include_cycles(self):
        self.assertTrue(sources("io"), "no sources under io/")
        self.check_no_cycles("io")

    def test_layering_core_numa_bench_have_no_include_cycles(self):
        for folder in ("core", "numa", "bench"):
            with self.subTest(folder=folder):
                self.check_no_cycles(folder)

    def test_layering_io_knows_no_commands(self):
        commands = proto_commands()
        # the enum must really have been read: the commands every version has
        for name in ("PROTO_GET", "PROTO_SET", "PROTO_DELETE", "PROTO_STATS", "PROTO_MG"):
            self.assertIn(name, commands)
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, commands)) + r")\b")
        bad = []
        for path in sources("io"):
            if rel(path) in COMMAND_ALLOW:
                continue
            text = strip_comments_and_strings(read(path))
            for lineno, line in enumerate(text.splitlines(), 1):
                for m in pattern.finditer(line):
                    bad.append(f"{rel(path)}:{lineno}: {m.group(1)}")
        self.assertEqual(bad, [], f"io/ names {len(bad)} commands (io/ must know none):\n  " + "\n  ".join(bad))

    def test_layering_checker_sees_a_cycle_and_a_command(self):
        # the checker itself can fail: a two-module loop is a cycle, a
        # three-module chain is not
        self.assertEqual(cycles({"a": {"b"}, "b": {"a"}}), [["a", "b"]])
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": set()}), [])
        self.assertEqual(one_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c"]), ["a", "b", "c", "a"])
        stripped = strip_comments_and_strings('x = PROTO_GET; /* PROTO_SET */ s = "PROTO_ADD";')
        self.assertIn("PROTO_GET", stripped)
        self.assertNotIn("PROTO_SET", stripped)
        self.assertNotIn("PROTO_ADD", stripped)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
