"""CoreCaps as CRUSH programs (corecaps/crush/ls.py, cat.py, run by corecaps/crushcap.py) on the host:
compiled as the image builder compiles them, run with the shell's way of running them (a forked
child, argv, the working directory, stdin), and compared with what the Python tools they replace
printed: the same lines, the same error messages, the same exit statuses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exo import REPO
from tests.test_printable import EVIL, clean

pytest.importorskip("tree_sitter")


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text("bee\n")
    (tmp_path / "d" / "a.txt").write_text("ay\n")
    (tmp_path / "d" / ".hidden").write_text("")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "link").symlink_to("a.txt")
    (tmp_path / "d" / "bad\x1bname").write_text("")
    os.utime(tmp_path / "d" / "a.txt", (0, 86400 * 365 + 3600 * 5 + 60 * 7))
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    yield tmp_path


def crushcap(programs: Path, cwd: Path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    code = ("import sys\nfrom pathlib import Path\nimport corecaps.crushcap as c\nfrom corecaps.tool import run\n"
            f"c.PROGRAMS = Path({str(programs)!r})\nc.warm()\n"
            "sys.exit(run(sys.argv[1], lambda a: c.run_crushcap(sys.argv[1], a), sys.argv[2:]))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(REPO), "TZ": "UTC"})
    return proc.returncode, proc.stdout, proc.stderr


def test_ls_lists_like_the_python_tool(programs: Path, tree: Path) -> None:
    code, out, err = crushcap(programs, tree / "d", "ls")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["a.txt", "b.txt", "bad?name", "link", "sub/"]
    code, out, _ = crushcap(programs, tree, "ls", "-a1", "d/sub", "d/./b.txt", "d/../d/sub")
    assert code == 0 and out.splitlines() == ["d/sub:", "d/./b.txt", "", "d/../d/sub:"]
    code, out, _ = crushcap(programs, tree, "ls", "-a", "d")
    assert ".hidden" in out.split()


def test_ls_long_format(programs: Path, tree: Path) -> None:
    code, out, _ = crushcap(programs, tree, "ls", "-l", "d")
    assert code == 0
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in out.splitlines()}
    uid, gid = os.getuid(), os.getgid()
    assert lines["a.txt"] == f"-rw-r--r--   1 {uid:>5} {gid:>5}         3 1971-01-01 05:07 a.txt"
    assert lines["link"].startswith("lrwxrwxrwx") and lines["link"].endswith("link -> a.txt")
    assert lines["sub"].startswith("drwxr-xr-x   2")


def test_ls_errors_are_one_line_each_and_the_status_says_so(programs: Path, tree: Path) -> None:
    code, out, err = crushcap(programs, tree, "ls", "d/a.txt", "nope", "d/b.txt")
    assert code == 1 and out.splitlines() == ["d/a.txt", "d/b.txt"]
    assert err == "ls: nope: No such file or directory\n"
    code, out, err = crushcap(programs, tree, "ls", "-x")
    assert code == 2 and out == ""
    assert err == "usage: ls [-h] [-a] [-l] [-1] [paths ...]\nls: error: unrecognized arguments: -x\n"


def test_cat_copies_files_and_stdin_and_reports_errors(programs: Path, tree: Path) -> None:
    code, out, err = crushcap(programs, tree / "d", "cat", "a.txt", "-", "link", stdin="from stdin\n")
    assert (code, out, err) == (0, "ay\nfrom stdin\nay\n", "")
    code, out, err = crushcap(programs, tree, "cat", stdin="x" * 200_000)
    assert code == 0 and out == "x" * 200_000
    code, out, err = crushcap(programs, tree, "cat", "d", "nope", "d/b.txt")
    assert code == 1 and out == "bee\n"
    assert err == "cat: d: Is a directory\ncat: nope: No such file or directory\n"


def test_cat_of_a_binary_file_is_one_clear_error(programs: Path, tree: Path) -> None:
    """(A difference from the Python tool: CRUSH strings are text, so binary files are refused.)"""
    code, _, err = crushcap(programs, tree, "cat", "bin")
    assert code == 1 and err == f"cat: bin: fs.read: {str(tree / 'bin')!r} is not valid UTF-8\n"


def test_ls_prints_no_escape_sequences(programs: Path, tmp_path: Path) -> None:
    (tmp_path / f"file{EVIL}").write_text("x")
    os.symlink(f"target{EVIL}", tmp_path / "link")
    for args in ([str(tmp_path)], ["-l", str(tmp_path)]):
        code, out, _ = crushcap(programs, tmp_path, "ls", *args)
        assert code == 0 and clean(out) and "file" in out, out



def test_a_link_that_cannot_be_resolved_is_the_shells_error(programs: Path, tree: Path) -> None:
    """A path through a link that does not resolve (a loop here; in the image, /proc/1/root, which
    the shell's user may not read): the Python tool printed the system's error, and so does the
    CRUSH one (its own path resolution must not turn it into a capability refusal)."""
    (tree / "loop").symlink_to("loop")
    code, _, err = crushcap(programs, tree, "ls", "loop/x")
    assert (code, err) == (1, "ls: loop/x: Too many levels of symbolic links\n")
    code, _, err = crushcap(programs, tree, "cat", "loop/x")
    assert (code, err) == (1, "cat: loop/x: Too many levels of symbolic links\n")
