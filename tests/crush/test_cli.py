"""The crush command: compile, run, disasm, check, resume; one line naming file:line for what
stops a run, and a distinct exit status for each way it stops. Checkpoints are resumed by a
fresh `python3 -m crush` process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from crush.cli import Exit, main
from tests.crush.support import CORPUS, REPO, cpython


def crush(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python3 -m crush ARGS` in a fresh process (from anywhere: the checkout is on its path)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "crush", *args], capture_output=True, text=True, cwd=cwd or REPO,
                          env=env, timeout=300, check=False)


def test_compile_check_disasm_run(tmp_path: Path) -> None:
    src = tmp_path / "hello.py"
    src.write_text("def greet(name):\n    return f'hello {name}!'\nprint(greet('crush'))\n")
    casm = tmp_path / "hello.casm"
    assert main(["compile", str(src), "-o", str(casm)]) == Exit.OK
    assert casm.read_bytes()[:4] == b"CASM"
    assert main(["check", str(casm)]) == Exit.OK
    text = tmp_path / "hello.txt"
    r = crush("disasm", str(casm))
    assert r.returncode == 0 and r.stdout.startswith(".casm 1")
    text.write_text(r.stdout)
    for program in (casm, text, src):
        r = crush("run", str(program), "--stats")
        assert (r.returncode, r.stdout) == (0, "hello crush!\n")
        assert "done:" in r.stderr and "gas" in r.stderr


def test_a_cast_document_compiles(tmp_path: Path) -> None:
    doc = {"cast": 1, "lang": "python", "file": "doc.py",
           "body": ["std.seq", ["@", 1, 0, ["std.expr", ["py.call", ["std.builtin", "py.print"],
                                                         [["py.mul", ["std.int", "6"], ["std.int", "7"]]], []]]]]}
    path = tmp_path / "prog.cast.json"
    path.write_text(json.dumps(doc))
    r = crush("run", str(path))
    assert (r.returncode, r.stdout) == (0, "42\n")


STOPS = [
    ("exception", "x = {}\nprint(x['k'])\n", [], Exit.EXCEPTION, "KeyError: 'k'"),
    ("out of gas", "n = 0\nwhile True:\n    n += 1\n", ["--gas", "5000"], Exit.OUT_OF_GAS, "prog.py:3: out of gas"),
    ("arena", "s = 'ab' * 10\nwhile True:\n    s = s + s\n", ["--arena", "1M"], Exit.ARENA_EXCEEDED,
     "prog.py:3: arena exceeded"),
    ("not granted", "import exo\nexo.log('x')\n", [], Exit.CAPABILITY_DENIED, "prog.py: capability denied"),
    ("outside the grant", "import exo\nexo.fs.read('/etc/passwd')\n", ["--grant", "fs:/tmp:ro"],
     Exit.CAPABILITY_DENIED, "prog.py:2: capability denied"),
    ("syntax", "def f(:\n", [], Exit.INPUT, "prog.py:1:"),
    ("unsupported", "class A:\n    pass\n", [], Exit.INPUT, "prog.py:1:1: unsupported"),
]


@pytest.mark.parametrize(("name", "source", "flags", "code", "message"), STOPS, ids=[s[0] for s in STOPS])
def test_each_way_a_run_stops_has_its_exit_status(tmp_path: Path, name: str, source: str,  # noqa: PLR0917
                                                   flags: list[str], code: Exit, message: str) -> None:
    (tmp_path / "prog.py").write_text(source)
    r = crush("run", "prog.py", *flags, cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    if code != Exit.EXCEPTION:
        assert len(r.stderr.strip().splitlines()) == 1


def test_an_uncaught_exception_prints_the_guest_traceback(tmp_path: Path) -> None:
    source = "def inner(x):\n    return 10 // x\n\ndef outer():\n    return inner(0)\n\nprint(outer())\n"
    (tmp_path / "prog.py").write_text(source)
    r = crush("run", "prog.py", cwd=tmp_path)
    assert r.returncode == Exit.EXCEPTION
    assert r.stderr.splitlines() == ["Traceback (most recent call last):", '  File "prog.py", line 7, in <module>',
                                     '  File "prog.py", line 5, in outer', '  File "prog.py", line 2, in inner',
                                     "ZeroDivisionError: integer division or modulo by zero"]
    assert cpython(source).splitlines()[-1] == r.stderr.splitlines()[-1]


def test_a_refused_program_and_a_damaged_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.casm"
    bad.write_text('.casm 1\n.file "bad.py"\n.func "<module>" "<module>" params=0 defaults=0 ncells=0\n'
                   ' LOAD_CONST 1\n POP\n POP\n LOAD_CONST None\n RETURN\n.end\n')
    assert crush("check", str(bad)).returncode == Exit.REFUSED
    r = crush("run", str(bad))
    assert r.returncode == Exit.REFUSED and "instruction 2: stack underflow" in r.stderr
    junk = tmp_path / "junk.casm"
    junk.write_bytes(b"CASM\x01" + bytes(100))
    r = crush("run", str(junk))
    assert r.returncode == Exit.INPUT and "checksum" in r.stderr


@pytest.mark.parametrize("path", CORPUS[::9], ids=[p.stem for p in CORPUS[::9]])
def test_checkpoints_resume_in_a_fresh_process(tmp_path: Path, path: Path) -> None:
    full = crush("run", str(path), "--stats")
    assert full.returncode == 0
    steps = int(full.stderr.split("done: ")[1].split(" instructions")[0])
    gas = full.stderr.split("instructions, ")[1].split(" gas")[0]
    k = random.Random(path.stem).randrange(steps)
    state = tmp_path / "state.json"
    first = crush("run", str(path), "--checkpoint-at", str(k), "--state-out", str(state))
    assert first.returncode == Exit.CHECKPOINT, first.stderr
    second = crush("resume", str(state), "--stats", "--fast")
    assert second.returncode == 0, second.stderr
    assert first.stdout + second.stdout == full.stdout
    assert f"done: {steps} instructions, {gas} gas" in second.stderr


def test_a_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "loop.py"
    src.write_text("t = 0\nfor i in range(1000):\n    t += i\nprint(t)\n")
    state = tmp_path / "s.json"
    assert crush("run", str(src), "--checkpoint-at", "500", "--state-out", str(state)).returncode == Exit.CHECKPOINT
    doc = json.loads(state.read_text())
    doc["state"]["frames"][0][2] = 10_000
    state.write_text(json.dumps(doc))
    r = crush("resume", str(state))
    assert r.returncode == Exit.STATE_REFUSED and "not a reachable instruction" in r.stderr
    state.write_text("{" * 50_000)
    assert crush("resume", str(state)).returncode == Exit.STATE_REFUSED


def test_usage_errors() -> None:
    assert crush("run").returncode == Exit.USAGE
    assert main(["run", "x.py", "--checkpoint-at", "5"]) == Exit.USAGE
    assert main(["run", str(CORPUS[0]), "--grant", "net"]) == Exit.USAGE


def test_run_native_runs_the_integer_subset_in_webassembly(tmp_path: Path) -> None:
    """`--native` (crush/wasm.py): the same output; the loop's function is one native call, so the
    VM counts a handful of instructions where the interpreter counts hundreds of thousands."""
    src = tmp_path / "loop.py"
    src.write_text("def count(n):\n    i = 0\n    s = 0\n    while i < n:\n        s = s + i * i % 7\n"
                   "        i = i + 1\n    return s\n\nprint(count(20000))\n")
    runs = {mode: crush("run", str(src), "--stats", *flags) for mode, flags in
            (("interpreter", ()), ("native", ("--native",)), ("native+fast", ("--native", "--fast")))}
    steps = {}
    for mode, r in runs.items():
        assert (r.returncode, r.stdout) == (0, cpython(src.read_text())), (mode, r.stderr)
        steps[mode] = int(r.stderr.split(": ")[2].split()[0])
    assert steps["native"] == steps["native+fast"] < 20 and steps["interpreter"] > 100_000, steps
