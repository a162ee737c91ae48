"""The console shell (corecaps/sh.py) and the CoreCaps' options on the host, as README promises them:
`ls -l/-a/-1`, `ps -f`, `top` (one screen, from a real exo_init's control socket; on a terminal, q
quits), the builtins `cd`, `pwd`, `history`, the syntax `<`, `>`, `>>`, `|`, `;`, `$?`, and exit status 127 for an
unknown command. The real shell runs in its own process (`sh -c LINE`, or lines on its stdin as a
person types them), with `ls`, `cat`, `ps` and `top` compiled as the image builder compiles them."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exo import REPO, ExoInit

pytest.importorskip("tree_sitter")

SHELL = ("import sys\nfrom pathlib import Path\nimport corecaps.crushcap as c\n"
         "c.PROGRAMS = Path(sys.argv[1])\nfrom corecaps.sh import main\nsys.exit(main(sys.argv[2:]))")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text("bee\n")
    (tmp_path / "d" / "a.txt").write_text("ay\n")
    (tmp_path / "d" / ".hidden").write_text("")
    (tmp_path / "d" / "sub").mkdir()
    return tmp_path


def shell(programs: Path, cwd: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TZ": "UTC", "HOME": str(cwd)}
    env.pop("EXO_CAPSULE", None)
    return subprocess.run([sys.executable, "-c", SHELL, str(programs), *argv], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False, env=env)


def line(programs: Path, cwd: Path, text: str) -> tuple[int, str, str]:
    """`sh -c TEXT`: its exit status, stdout, stderr."""
    done = shell(programs, cwd, "-c", text)
    return done.returncode, done.stdout, done.stderr


# --- ls --------------------------------------------------------------------------------------------


def test_ls_options_through_the_shell(programs: Path, tree: Path) -> None:
    assert line(programs, tree, "ls d") == (0, "a.txt\nb.txt\nsub/\n", "")
    assert line(programs, tree, "ls -1 d") == (0, "a.txt\nb.txt\nsub/\n", ""), "one name a line"
    code, out, _ = line(programs, tree, "ls -a d")
    assert code == 0 and out.splitlines() == [".hidden", "a.txt", "b.txt", "sub/"], "-a: the dot files too"
    code, out, _ = line(programs, tree, "ls -l d")
    rows = out.splitlines()
    assert code == 0 and [r.split()[-1] for r in rows] == ["a.txt", "b.txt", "sub"]
    assert re.fullmatch(r"-rw-r--r-- +1 +\d+ +\d+ +3 \d{4}-\d\d-\d\d \d\d:\d\d a\.txt", rows[0]), rows[0]
    assert rows[2].startswith("drwx"), rows[2]
    code, out, _ = line(programs, tree, "ls -la1 d")
    assert code == 0 and [r.split()[-1] for r in out.splitlines()] == [".hidden", "a.txt", "b.txt", "sub"]
    code, out, err = line(programs, tree, "ls -t d")
    assert (code, out) == (2, "") and err.endswith("ls: error: unrecognized arguments: -t\n"), err


# --- ps and top ------------------------------------------------------------------------------------


def test_ps_lists_processes_and_f_gives_whole_command_lines(programs: Path, tree: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "123.25"])
    try:
        code, out, err = line(programs, tree, "ps")
        assert (code, err) == (0, "")
        header, *rows = out.splitlines()
        assert header.split() == ["PID", "PPID", "UID", "STAT", "RSS", "TIME", "COMMAND"]
        mine = [r for r in rows if r.split()[0] == str(sleeper.pid)]
        assert len(mine) == 1 and mine[0].split()[-1] == "sleep", mine
        code, out, _ = line(programs, tree, "ps -f")
        mine = [r for r in out.splitlines()[1:] if r.split()[0] == str(sleeper.pid)]
        assert code == 0 and len(mine) == 1 and mine[0].endswith("  sleep 123.25"), mine
        code, out, err = line(programs, tree, "ps -e")
        assert (code, out) == (2, ""), "a usage error is status 2, as for ls"
        assert err == "usage: ps [-h] [-f]\nps: error: unrecognized arguments: -e\n"
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.fixture
def exo(tmp_path: Path) -> Iterator[ExoInit]:
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "web": {"argv": ["/bin/sleep", "100"]},
        "broken": {"argv": ["/bin/sh", "-c", "exit 3"], "restart": {"policy": "never"}},
    }}, cgroups=False)
    e.wait_state("web", "ready")
    e.wait_state("broken", "failed")
    yield e
    e.close()


def test_top_n_1_prints_one_screen_of_every_capsule_and_ends(programs: Path, tree: Path, exo: ExoInit) -> None:
    sock = exo.runtime / "control.sock"
    code, out, err = line(programs, tree, f"top -n 1 -d 30 --socket {sock}")
    assert (code, err) == (0, ""), err
    head, table = out.split("\n", 1)
    assert re.fullmatch(r"top - \d\d:\d\d:\d\d  capsules: 2, 1 ready, failed: broken", head), head
    rows = [r.split()[:2] for r in table.splitlines()]
    assert rows[0] == ["CAPSULE", "STATE"] and sorted(rows[1:]) == [["broken", "failed"], ["web", "ready"]]
    assert out.count("top - ") == 1, "one screen, then it ends (-d 30 would not end within the 60 s bound)"
    code, out, _ = line(programs, tree, f"top -n 2 -d 0.1 --socket {sock}")
    assert code == 0 and out.count("top - ") == 2
    code, out, err = line(programs, tree, f"top -n 1 --socket {tree / 'nope.sock'}")
    assert (code, out) == (1, "") and err.startswith(f"top: cannot reach exo_init at {tree / 'nope.sock'}: "), err


# --- builtins and syntax -----------------------------------------------------------------------------


def test_cd_pwd_and_history_as_typed(programs: Path, tree: Path) -> None:
    typed = ["cd d/sub", "pwd", "cd ..", "pwd", "cd nope", "echo $?", "cd", "pwd", "", "history", "exit 4"]
    done = shell(programs, tree, stdin="\n".join(typed) + "\n")
    assert done.returncode == 4, done
    prompts = re.findall(r"sh:(/\S*)[#$] ", done.stdout)
    lines = [ln for ln in re.sub(r"sh:/\S*[#$] ", "\n", done.stdout).splitlines() if ln]  # (no newline after a prompt)
    assert lines[0] == "Exosphere sh: type help for the commands, exit to leave."
    history = [f"{i:>5}  {t}" for i, t in enumerate([t for t in typed if t][:-1], 1)]
    assert lines[1:] == [str(tree / "d" / "sub"), str(tree / "d"), "1", str(tree), *history], lines
    assert done.stderr == "sh: cd: nope: No such file or directory\n"
    assert prompts[:3] == [str(tree), str(tree / "d" / "sub"), str(tree / "d" / "sub")], "the prompt shows the cwd"


def test_redirections_lists_and_pipes(programs: Path, tree: Path) -> None:
    assert line(programs, tree, "echo one > f; echo two >> f; echo three >> f; cat < f") == (0, "one\ntwo\nthree\n", "")
    assert (tree / "f").read_text() == "one\ntwo\nthree\n"
    assert line(programs, tree, "echo new > f; cat f") == (0, "new\n", ""), "> truncates"
    assert line(programs, tree, "cat < d/a.txt > g; cat g d/b.txt | cat") == (0, "ay\nbee\n", "")
    assert line(programs, tree, "ls d | cat > listing; cat listing") == (0, "a.txt\nb.txt\nsub/\n", "")
    code, out, err = line(programs, tree, "cat < missing; echo $?")
    assert (code, out, err) == (0, "1\n", "sh: missing: No such file or directory\n")
    code, _, err = line(programs, tree, "echo x >")
    assert (code, err) == (2, "sh: syntax error: missing file name after >\n")


def test_status_and_unknown_commands(programs: Path, tree: Path) -> None:
    assert line(programs, tree, "false; echo $?; true; echo $?") == (0, "1\n0\n", "")
    assert line(programs, tree, "ls nope; echo $?")[1] == "1\n"
    code, out, err = line(programs, tree, "no-such-command-here; echo $?")
    assert (code, out, err) == (0, "127\n", "sh: no-such-command-here: command not found\n")
    code, out, err = line(programs, tree, "no-such-command-here")
    assert (code, out, err) == (127, "", "sh: no-such-command-here: command not found\n")
    assert line(programs, tree, "echo a ; no-such-command-here ; echo $? b")[:2] == (0, "a\n127 b\n")


def test_top_on_a_terminal_clears_the_screen_and_q_quits(programs: Path, tree: Path, exo: ExoInit) -> None:
    """Interactive top, as at the console: cbreak mode while it runs (q without Enter), restored after."""
    master, slave = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TZ": "UTC", "HOME": str(tree)}
    proc = subprocess.Popen([sys.executable, "-c", SHELL, str(programs), "-c",
                             f"top -d 30 --socket {exo.runtime / 'control.sock'}"], cwd=tree, env=env,
                            stdin=slave, stdout=slave, stderr=slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"CAPSULE" not in seen:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no screen within 60 s: {seen!r}"
            seen += os.read(master, 65536)
        assert seen.startswith(b"\x1b[H\x1b[2Jtop - "), seen
        os.write(master, b"q")
        assert proc.wait(timeout=30) == 0, "q (no Enter) ends top at once, not after -d 30"
        assert termios.tcgetattr(slave)[3] & termios.ICANON, "the terminal's line mode is back"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
