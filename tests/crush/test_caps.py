"""Capabilities: what is granted works, everything else is refused (a trap the program cannot
catch), escapes by `..` and symlinks are refused, and the VM-side capabilities (random, sleep,
yield) are deterministic and survive serialisation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crush import state
from crush.caps import GrantError, ScopedHost, parse_grant
from crush.casm import assemble
from crush.errors import TrapCode
from crush.verify import VerifyError, verify
from crush.vm import VM, Status, prelude
from tests.crush.support import compile_source, run


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/data (granted) with a file, a subdirectory and planted links; tmp/secret (not granted)."""
    data, secret = tmp_path / "data", tmp_path / "secret"
    (data / "sub").mkdir(parents=True)
    secret.mkdir()
    (data / "a.txt").write_text("hello\n")
    (data / "sub" / "b.txt").write_text("inner")
    (secret / "key.txt").write_text("top secret")
    (data / "link.txt").symlink_to(secret / "key.txt")
    (data / "sub" / "up").symlink_to(secret)
    (data / "inside.txt").symlink_to(data / "a.txt")
    os.mkfifo(data / "fifo")
    return tmp_path


def fs_run(source: str, grants: list[str], **kwargs: object) -> tuple[str, object, VM]:
    host = ScopedHost.from_grants(grants)
    result = run(compile_source(source), host=host, **kwargs)  # type: ignore[arg-type]
    return result.output, result.outcome, result.vm


def test_granted_reads_lists_and_stats_work(tree: Path) -> None:
    d = tree / "data"
    out, outcome, _ = fs_run(f"""
import exo
print(repr(exo.fs.read({str(d / 'a.txt')!r})), exo.fs.read({str(d / 'sub' / 'b.txt')!r}))
print(exo.fs.list({str(d)!r}), exo.fs.list({str(d) + '/sub/'!r}))
s = exo.fs.stat({str(d / 'a.txt')!r})
print(s["size"], s["kind"], exo.fs.stat({str(d / 'link.txt')!r})["kind"], exo.fs.stat({str(d)!r})["kind"])
print(exo.fs.read({str(d) + '/./sub//b.txt'!r}))
""", [f"fs:{d}:ro"])
    assert outcome.status == Status.DONE, outcome  # type: ignore[attr-defined]
    assert out == ("'hello\\n' inner\n['a.txt', 'fifo', 'inside.txt', 'link.txt', 'sub'] ['b.txt', 'up']\n"
                   "6 file symlink dir\ninner\n")


def test_missing_files_are_catchable_guest_errors(tree: Path) -> None:
    d = tree / "data"
    out, outcome, _ = fs_run(f"""
import exo
try:
    exo.fs.read({str(d / 'nope.txt')!r})
except FileNotFoundError as e:
    print("missing:", e)
try:
    exo.fs.read({str(d / 'sub')!r})
except OSError as e:
    print("dir:", e)
try:
    exo.fs.read({str(d / 'fifo')!r})
except OSError as e:
    print("fifo:", e)
""", [f"fs:{d}:ro"])
    assert outcome.status == Status.DONE  # type: ignore[attr-defined]
    assert out == (f"missing: [Errno 2] No such file or directory: {str(d / 'nope.txt')!r}\n"
                   f"dir: [Errno 21] Is a directory: {str(d / 'sub')!r}\n"
                   f"fifo: fs.read: {str(d / 'fifo')!r} is not a regular file\n")


REFUSED = {
    "outside every root": "{secret}/key.txt",
    "dot-dot": "{data}/../secret/key.txt",
    "dot-dot that stays inside": "{data}/sub/../a.txt",
    "final symlink": "{data}/link.txt",
    "symlink to a file inside": "{data}/inside.txt",
    "symlink on the way": "{data}/sub/up/key.txt",
    "relative path": "data/a.txt",
    "the root's parent": "{root}",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_escapes_are_refused_with_a_trap(tree: Path, name: str) -> None:
    path = REFUSED[name].format(data=tree / "data", secret=tree / "secret", root=tree)
    out, outcome, _ = fs_run(f"""
import exo
try:
    print(exo.fs.read({path!r}))
except Exception as e:
    print("caught", e)
""", [f"fs:{tree / 'data'}:ro"])
    assert outcome.status == Status.TRAP, (name, outcome)  # type: ignore[attr-defined]
    trap = outcome.trap  # type: ignore[attr-defined]
    assert trap.code == TrapCode.CAPABILITY_DENIED and trap.line == 4
    assert out == "" and "top secret" not in str(trap)


def test_writes_need_a_read_write_grant(tree: Path) -> None:
    d = tree / "data"
    source = f"import exo\nprint(exo.fs.write({str(d / 'new.txt')!r}, 'café'))\n"
    _, outcome, _ = fs_run(source, [f"fs:{d}:ro", "fs:/tmp:ro"])
    assert outcome.status == Status.TRAP  # type: ignore[attr-defined]
    assert outcome.trap.code == TrapCode.CAPABILITY_DENIED  # type: ignore[attr-defined]
    assert not (d / "new.txt").exists()
    out, outcome, _ = fs_run(source, [f"fs:{d}:rw"])
    assert out == "5\n" and (d / "new.txt").read_text() == "café"
    _, outcome, _ = fs_run(f"import exo\nexo.fs.write({str(d / 'link.txt')!r}, 'x')\n", [f"fs:{d}:rw"])
    assert outcome.trap.code == TrapCode.CAPABILITY_DENIED  # type: ignore[attr-defined]
    assert (tree / "secret" / "key.txt").read_text() == "top secret"


def test_a_declared_capability_must_be_granted_before_anything_runs(tree: Path) -> None:
    program = compile_source("print('started')\nimport exo\nexo.fs.read('/etc/hostname')\n")
    assert program.caps == ("fs.read",)
    out: list[str] = []
    vm = VM(program, ScopedHost.from_grants(["log"]), out=out.append)
    outcome = vm.run()
    assert outcome.status == Status.TRAP and outcome.trap is not None
    assert outcome.trap.code == TrapCode.CAPABILITY_DENIED and "fs.read" in outcome.trap.message
    assert out == [] and vm.steps == 0


def test_an_undeclared_capability_is_refused_by_the_verifier() -> None:
    program = assemble("""
.casm 1
.file "sneaky.py"
.func "<module>" "<module>" params=0 defaults=0 ncells=0
    LOAD_CONST "/etc/passwd"
    CAP 0 1
    RETURN
.end
""")
    with pytest.raises(VerifyError, match="capability 0 is not declared") as info:
        verify(program, prelude().names)
    assert info.value.pc == 1
    vm = VM(program, ScopedHost.from_grants(["fs:/:ro"]))
    assert vm.run().trap.code == TrapCode.VERIFY_FAILED and vm.steps == 0  # type: ignore[union-attr]


def test_large_files_are_refused_before_they_are_read(tree: Path) -> None:
    big = tree / "data" / "big.txt"
    big.write_text("x" * (2 << 20))
    _, outcome, _ = fs_run(f"import exo\ns = exo.fs.read({str(big)!r})\n", [f"fs:{tree / 'data'}:ro"],
                            arena=1 << 20)
    assert outcome.trap.code == TrapCode.ARENA_EXCEEDED  # type: ignore[attr-defined]
    small = fs_run(f"import exo\ns = exo.fs.read({str(tree / 'data' / 'a.txt')!r})\n", [f"fs:{tree / 'data'}:ro"])
    _, medium, _ = fs_run(f"import exo\ns = exo.fs.read({str(big)!r})\n", [f"fs:{tree / 'data'}:ro"])
    assert medium.gas_used > small[1].gas_used + 60_000  # type: ignore[attr-defined]


def test_log_clock_and_control_status() -> None:
    lines: list[str] = []
    host = ScopedHost.from_grants(["log", "clock", "control.status"], log=lines.append, clock=lambda: 1234.5,
                                  status=lambda name: {"name": name, "state": "running", "pids": [1, 2]})
    result = run(compile_source("import exo\nexo.log('one')\nprint(exo.clock(), exo.control.status('ui'))\n"),
                 host=host)
    assert lines == ["one"]
    assert result.output == "1234.5 {'name': 'ui', 'state': 'running', 'pids': [1, 2]}\n"
    absent = ScopedHost.from_grants(["control.status"])
    assert not absent.granted("control.status")


SLEEPER = """
import exo
print("before", exo.random())
exo.sleep(2.5)
print("after", exo.random())
exo.yield_()
print("done", exo.random())
"""


def test_random_sleep_and_yield_survive_serialisation() -> None:
    program = compile_source(SLEEPER)
    host = ScopedHost.from_grants(["random", "sleep", "yield"], clock=lambda: 100.0)
    reference: list[str] = []
    vm = VM(program, host, out=reference.append, seed=7)
    outcome = vm.run()
    assert outcome.status == Status.SUSPENDED and outcome.wake == 102.5
    saved = state.dumps(vm)
    assert '"pending":["sleep",102.5]' in saved
    vm2 = state.loads(saved, program, host, out=reference.append)
    assert vm2.outcome().status == Status.SUSPENDED and vm2.outcome().wake == 102.5
    vm2.resume_pending()
    at_yield = vm2.run()
    assert at_yield.status == Status.SUSPENDED and at_yield.wake is None
    vm2 = state.loads(state.dumps(vm2), program, host, out=reference.append)
    vm2.resume_pending()
    final = vm2.run()
    assert final.status == Status.DONE
    again: list[str] = []
    v = VM(program, host, out=again.append, seed=7)
    while v.run().status == Status.SUSPENDED:
        v.resume_pending()
    assert again == reference and len(reference) == 3
    other: list[str] = []
    w = VM(program, host, out=other.append, seed=8)
    w.run()
    assert other[0] != reference[0]


@pytest.mark.parametrize(("grant", "message"), [
    ("fs:relative:ro", "absolute"),
    ("fs:/tmp:rx", "fs:ROOT:ro"),
    ("fs:/no/such/dir:ro", "not a directory"),
    ("net", "unknown capability"),
    ("fs.read", "unknown capability"),
])
def test_bad_grants_are_refused(grant: str, message: str) -> None:
    with pytest.raises(GrantError, match=message):
        parse_grant(grant)
