"""Capabilities: what is granted works, everything else is refused (a trap the program cannot
catch), escapes by `..` and symlinks are refused, and the VM-side capabilities (random, sleep,
yield) are deterministic and survive serialisation."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
import termios
import tty
from pathlib import Path

import pytest

from crush import state
from crush.caps import FsGrant, GrantError, ScopedHost, Terminal, parse_grant
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


# --- proc.list, tty.info, tty.key, control.status with a socket (the CoreCaps ps and top) -------------

PROC_LISTER = """
import exo
procs = exo.proc.list()
print([p['pid'] for p in procs])
for p in procs:
    if p['pid'] == WANTED:
        print(p['ppid'], p['uid'], p['name'], p['status'], p['cmdline'], p['rss'] > 0, p['cpu'] >= 0)
"""


def test_proc_list_is_what_proc_shows_when_the_fs_grants_cover_it() -> None:
    sleeper = subprocess.Popen(["sleep", "61.5"])
    try:
        host = ScopedHost.from_grants(["fs:/proc:ro", "proc.list"], proc="/proc")
        result = run(compile_source(PROC_LISTER.replace("WANTED", str(sleeper.pid))), host=host)
        assert result.outcome.status == Status.DONE, result.outcome
        listed, mine = result.output.splitlines()
        pids = [int(p) for p in listed.strip("[]").split(", ")]
        assert pids == sorted(pids) and os.getpid() in pids and sleeper.pid in pids
        assert mine in (f"{os.getpid()} {os.getuid()} sleep {s} ['sleep', '61.5'] True True"
                        for s in ("sleeping", "running"))
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("grants, proc", [
    (["fs:/proc:ro", "proc.list"], None),        # the host has no /proc to give
    (["fs:/proc:ro"], "/proc"),                  # not granted
    (["proc.list", "fs:/tmp:ro"], "/proc"),      # granted, but the fs grants do not cover /proc
])
def test_proc_list_is_refused_unless_granted_and_covered(grants: list[str], proc: str | None) -> None:
    program = compile_source(PROC_LISTER)
    vm = VM(program, ScopedHost.from_grants(grants, proc=proc))
    outcome = vm.run()
    assert outcome.trap is not None and outcome.trap.code == TrapCode.CAPABILITY_DENIED, outcome
    assert "proc.list" in outcome.trap.message and vm.steps == 0


def test_tty_info_and_tty_key_on_a_terminal_and_without_one() -> None:
    source = "import exo\ni = exo.tty.info()\nprint(i['stdin'], i['stdout'], i['rows'], i['columns'])\n" \
             "print(repr(exo.tty.key(5)), repr(exo.tty.key(0)))\n"
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        tty.setcbreak(slave)  # (as corecaps/crushcap.py sets it for a program declaring tty.key)
        os.write(master, b"q")
        result = run(compile_source(source), host=ScopedHost(caps={"tty.info", "tty.key"}, tty=Terminal(slave, slave)))
        assert result.output == "True True 33 101\n'q' ''\n"
    finally:
        os.close(master)
        os.close(slave)
    r, w = os.pipe()
    try:
        source = source.replace("key(5)", "key(0.01)")
        result = run(compile_source(source), host=ScopedHost(caps={"tty.info", "tty.key"}, tty=Terminal(r, w)))
        assert result.output == "False False None None\n'' ''\n"
    finally:
        os.close(r)
        os.close(w)


def test_tty_key_refuses_bad_waits_and_is_not_granted_without_a_terminal() -> None:
    host = ScopedHost(caps={"tty.key"}, tty=Terminal())
    result = run(compile_source("import exo\nfor s in (-1, float('nan'), 'x', 10**6):\n    try:\n"
                                "        exo.tty.key(s)\n    except ValueError as e:\n"
                                "        print('ValueError', e)\n    except TypeError as e:\n"
                                "        print('TypeError', e)\n"), host=host)
    assert result.output.splitlines() == [
        "ValueError tty.key() waits 0 to 86400 seconds, not -1",
        "ValueError tty.key() waits 0 to 86400 seconds, not nan",
        "TypeError tty.key() needs a number of seconds, not str",
        "ValueError tty.key() waits 0 to 86400 seconds, not 1000000"]
    for caps, terminal in (({"tty.key"}, None), (set(), Terminal())):
        vm = VM(compile_source("import exo\nexo.tty.key(0)\n"), ScopedHost(caps=caps, tty=terminal))
        outcome = vm.run()
        assert outcome.trap is not None and outcome.trap.code == TrapCode.CAPABILITY_DENIED and vm.steps == 0


def test_control_status_with_a_socket_under_a_granted_root(tmp_path: Path) -> None:
    asked: list[tuple[str | None, str]] = []

    def status_at(name: str | None, socket: str) -> object:
        asked.append((name, socket))
        if socket.endswith("down.sock"):
            raise ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        return [{"name": "web", "state": "ready"}]

    (tmp_path / "c.sock").write_text("")
    (tmp_path / "down.sock").write_text("")
    source = f"""import exo
print(exo.control.status(None, {str(tmp_path / 'c.sock')!r}))
try:
    exo.control.status('web', {str(tmp_path / 'down.sock')!r})
except OSError as e:
    print('OSError', e)
exo.control.status(None, '/run/elsewhere.sock')
"""
    host = ScopedHost.from_grants([f"fs:{tmp_path}:ro"], status=lambda name: [], status_at=status_at)
    host.caps.add("control.status")
    result = run(compile_source(source), host=host)
    assert result.output.splitlines() == [
        "[{'name': 'web', 'state': 'ready'}]",
        f"OSError [Errno {errno.ECONNREFUSED}] Connection refused: {str(tmp_path / 'down.sock')!r}"]
    assert result.outcome.trap is not None and result.outcome.trap.code == TrapCode.CAPABILITY_DENIED
    assert "outside every granted root" in result.outcome.trap.message
    assert asked == [(None, str(tmp_path / "c.sock")), ("web", str(tmp_path / "down.sock"))]
    no_other = ScopedHost(caps={"control.status"}, fs=[FsGrant(str(tmp_path))], status=lambda name: [])
    result = run(compile_source(source), host=no_other)
    assert result.outcome.trap is not None and "no other control socket is granted" in result.outcome.trap.message


@pytest.mark.parametrize("cap, body", [("proc.list", "CAP 1 0"), ("tty.key", "LOAD_CONST 1\n    CAP 1 0"),
                                       ("tty.info", "CAP 1 0")])
def test_the_new_capabilities_are_refused_by_the_verifier_when_undeclared_or_misused(cap: str, body: str) -> None:
    """CAP 1 names the second declared capability: with only `log` declared, it is not declared; with
    `cap` declared second, tty.key without its argument is the wrong arity."""
    text = f""".casm 1
.file "sneaky.py"
.cap "log"
{{decl}}
.const 1
.func "<module>" "<module>" params=0 defaults=0 ncells=0
    {body}
    RETURN
.end
"""
    with pytest.raises(VerifyError, match="capability 1 is not declared"):
        verify(assemble(text.replace("{decl}", "")), prelude().names)
    declared = assemble(text.replace("{decl}", f'.cap "{cap}"'))
    if cap == "tty.key":
        with pytest.raises(VerifyError, match=r"tty\.key takes 1"):
            verify(declared, prelude().names)
    else:
        verify(declared, prelude().names)
