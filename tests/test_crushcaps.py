"""CoreCaps as CRUSH programs (corecaps/crush/ls.py, cat.py, ps.py, top.py, run by corecaps/crushcap.py)
on the host: compiled as the image builder compiles them, run with the shell's way of running them (a
forked child, argv, the working directory, stdin), and compared with what the Python tools they
replace printed: the same lines, the same error messages, the same exit statuses. ps is compared
with psutil's reading of the same processes (what the Python ps printed), top's screen with
exoctl's status_table of the same rows, their usage errors with argparse's for the same options."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from crush.caps import FsGrant, ScopedHost, Terminal
from crush.casm import decode
from crush.cli import traceback_text
from crush.vm import VM, Status
from exo_init.client.exoctl import status_table
from exo_init.lib.text import printable
from exo_init.lib.units import fmt_bytes
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
    assert out.splitlines() == ["a.txt", "b.txt", printable("bad\x1bname"), "link", "sub/"]  # (exo_init's: "badame")
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


# --- ps --------------------------------------------------------------------------------------------


def psutil_row(pid: int, full: bool) -> str:
    """The line the Python ps printed for `pid` (its code, kept here as the oracle)."""
    info = psutil.Process(pid).as_dict(["pid", "ppid", "uids", "status", "memory_info", "cpu_times", "name",
                                        "cmdline"])
    cpu = sum(info["cpu_times"][:2]) if info["cpu_times"] else 0.0
    cmd = " ".join(info["cmdline"] or []) if full else info["name"]
    uid = info["uids"].real if info["uids"] else "?"
    return (f"{info['pid']:>6} {info['ppid']:>6} {uid:>6} {(info['status'] or '?')[:4]:<4} "
            f"{fmt_bytes(info['memory_info'].rss):>7} {cpu:>7.2f}  {printable(cmd or info['name'])}")


def test_ps_prints_what_psutil_reads(programs: Path, tmp_path: Path) -> None:
    """A long program name (the kernel's comm is cut to 15 characters; the name comes from the command
    line, as psutil has it) and a command line with escape sequences, with and without -f."""
    long_name = tmp_path / "a-rather-long-program-name"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", long_name)
    sleepers = [subprocess.Popen([str(long_name), "62.5"]), subprocess.Popen([f"x{EVIL}", "63"], executable="sleep")]
    try:
        for full in (False, True):
            code, out, err = crushcap(programs, tmp_path, "ps", *(["-f"] if full else []))
            assert (code, err) == (0, "")
            header, *rows = out.splitlines()
            assert header == f"{'PID':>6} {'PPID':>6} {'UID':>6} {'STAT':<4} {'RSS':>7} {'TIME':>7}  COMMAND"
            pids = [int(r.split()[0]) for r in rows]
            assert pids == sorted(pids) and clean(out)
            for s in sleepers:
                mine = [r for r in rows if r.split()[0] == str(s.pid)]
                assert mine == [psutil_row(s.pid, full)], (mine, psutil_row(s.pid, full))
        assert "a-rather-long-program-name" in out and "xred?over?bidi?evil 63" in out
    finally:
        for s in sleepers:
            s.kill()
            s.wait()


def test_ps_options_as_argparse_read_them(programs: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="ps")
    parser.add_argument("-f", action="store_true", help="full command lines")
    code, out, err = crushcap(programs, tmp_path, "ps", "-h")
    assert (code, out, err) == (0, parser.format_help(), "")
    code, out, err = crushcap(programs, tmp_path, "ps", "-f", "-e", "x")
    assert (code, out) == (2, "")
    assert err == parser.format_usage() + "ps: error: unrecognized arguments: -e x\n"


def test_ps_in_its_own_pid_namespace_sees_only_its_own_processes(programs: Path, tmp_path: Path) -> None:
    """As a capsule with its own PID namespace and /proc sees them (the host's processes are not there)."""
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-pf", "--mount-proc", "true"], capture_output=True, timeout=30,
                           check=False) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"no PID namespace here (unshare: {probe.stderr.decode().strip() if probe else 'missing'})")
    code = ("import sys\nfrom pathlib import Path\nimport corecaps.crushcap as c\nfrom corecaps.tool import run\n"
            f"c.PROGRAMS = Path({str(programs)!r})\nsys.exit(run('ps', lambda a: c.run_crushcap('ps', a), ['-f']))")
    proc = subprocess.run([unshare or "unshare", "-pf", "--mount-proc", sys.executable, "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (proc.returncode, proc.stderr) == (0, ""), proc
    rows = [r.split() for r in proc.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[6]) for r in rows] == [("1", "0", sys.executable)], proc.stdout


# --- top -------------------------------------------------------------------------------------------

ROWS: list[dict[str, Any]] = [
    {"name": "web", "state": "ready", "uptime": 7322.5, "restarts": 2, "cpu_percent": 12.25,
     "cgroup": {"memory_current": 5 << 20, "memory_max": "max", "pids_current": 3, "pids_max": 64},
     "status_text": f"serving {EVIL}"},
    {"name": "db", "state": "ready", "uptime": 59.9, "cpu_percent": 12.25,
     "cgroup": {"memory_current": 1536, "memory_max": str(256 << 20), "pids_current": 1, "pids_max": "max"},
     "metrics": {"fuel": {"value": 1234567, "limit": 10**9, "unit": "count"},
                 "memory": {"value": 65536, "limit": 16 << 20, "unit": "bytes"},
                 "checkpoint_age": {"value": 3.25, "unit": "seconds"}}},
    {"name": "broken", "state": "failed", "uptime": None, "restarts": 5, "error": "exit status 3",
     "reason": "ignored", "degraded": "no network"},
    {"name": "odd", "state": "starting", "uptime": 3599, "cpu_percent": 0.5,
     "metrics": {"Bad-Name": {"value": 1}}},
    {"name": "odd2", "state": "stopped", "metrics": {"x": {"value": True}}, "reason": "stopped\nby\x1b[2Jhand"},
    {"name": "odd3", "state": "stopped", "metrics": {"x": {"value": 1, "unit": "parsecs"}}},
    {"name": "odd4", "state": "stopped", "metrics": {"x": {"value": 1, "extra": 2}}},
    {"name": "odd5", "state": "stopped", "metrics": {"x": {"value": float("inf")}}, "cpu_percent": 0.0},
    {"name": "e9", "state": "ready", "metrics": {"big": {"value": 2.5e19, "limit": 3e12}}, "cpu_percent": 99.5},
]


def top_screen(programs: Path, rows: list[dict[str, Any]], argv: list[str], clock: float) -> tuple[str, list[str]]:
    """top run by the VM as crushcap runs it, with `rows` as exo_init's answer and `clock` as the time."""
    out: list[str] = []
    logged: list[str] = []
    r, w = os.pipe()
    try:
        host = ScopedHost(caps={"control.status", "clock", "tty.info", "tty.key", "log"}, fs=[FsGrant("/")],
                          clock=lambda: clock,
                          status=lambda name: rows, status_at=lambda name, socket: rows, tty=Terminal(r, w),
                          log=logged.append)
        vm = VM(decode((programs / "top.casm").read_bytes()), host, out=out.append)
        vm.globals.update({"ARGV": argv, "CWD": "/", "CONTROL_SOCKET": "/run/exosphere/control.sock"})
        outcome = vm.run()
        assert outcome.status is Status.DONE, traceback_text(vm, outcome)
    finally:
        os.close(r)
        os.close(w)
    return "".join(out), logged


def expected_screen(rows: list[dict[str, Any]], clock_text: str) -> str:
    """What the Python top printed for `rows` (its frame(), kept here as the oracle)."""
    rows = sorted(rows, key=lambda r: (-float(r.get("cpu_percent") or 0), r["name"]))
    ready = sum(1 for r in rows if r["state"] == "ready")
    failed = [r["name"] for r in rows if r["state"] == "failed"]
    head = (f"top - {clock_text}  capsules: {len(rows)}, {ready} ready"
            + (f", failed: {', '.join(failed)}" if failed else ""))
    return head + "\n" + status_table(rows) + "\n"


def test_top_screen_is_exoctls_status_table(programs: Path) -> None:
    screen, logged = top_screen(programs, ROWS, ["-n", "1"], 86400 * 20000 + 5 * 3600 + 7 * 60 + 9.75)
    assert logged == [] and screen == expected_screen(ROWS, "05:07:09"), screen
    assert "BUDGETS" in screen and "fuel 1.23M/1G, memory 64K/16M, checkpoint_age 3.25s" in screen and clean(screen)
    plain = [r for r in ROWS if "metrics" not in r]
    screen, _ = top_screen(programs, plain, ["-n", "2", "-d", "0"], 0.0)
    assert screen == expected_screen(plain, "00:00:00") + "\n" + expected_screen(plain, "00:00:00")
    assert "BUDGETS" not in screen


def test_top_text_is_made_printable_as_exoctl_makes_it(programs: Path) -> None:
    """Random text of escape-sequence pieces in every text cell: the CRUSH printable is exo_init's."""
    pieces = ["\x1b", "[", "]", "P", "X", "^", "_", "\\", "\x07", "\x9b", "0", "?", ";", " ", "/", "@", "m", "~",
              "a", "\t", "\n", "\x7f", "\u202e", "\x00", "é"]
    rng = random.Random(16)
    rows = [{"name": "".join(rng.choices(pieces, k=rng.randint(0, 12))), "state": "ready",
             "status_text": "".join(rng.choices(pieces, k=rng.randint(0, 40)))} for _ in range(150)]
    screen, _ = top_screen(programs, rows, ["-n", "1"], 0.0)
    assert screen == expected_screen(rows, "00:00:00")


def top_parser() -> argparse.ArgumentParser:
    """The Python top's options (its parser, kept here as the oracle)."""
    p = argparse.ArgumentParser(prog="top", exit_on_error=False)
    p.add_argument("-n", type=int, default=0, help="stop after this many screens (0: until q)")
    p.add_argument("-d", type=float, default=1.0, help="seconds between screens")
    p.add_argument("--socket", type=Path, default=Path("/run/exosphere/control.sock"))
    return p


@pytest.mark.parametrize("argv", [["-n"], ["-n", "x"], ["-d", "y"], ["-x"], ["--socket"], ["-n", "2", "extra"],
                                  ["-d", "-q"], ["-z", "-n", "nope"], ["--so"]])
def test_top_usage_errors_are_argparses(programs: Path, tmp_path: Path, argv: list[str]) -> None:
    try:
        top_parser().parse_args(argv)
        expected = "parsed"
    except argparse.ArgumentError as e:
        expected = f"top: {e}\n"
    except SystemExit:
        expected = "usage"
    code, out, err = crushcap(programs, tmp_path, "top", *argv)
    assert (code, out) == (2, "")
    if expected == "usage":
        unknown = [a for a in argv if a in ("-x", "extra", "-z")]
        expected = top_parser().format_usage() + f"top: error: unrecognized arguments: {' '.join(unknown)}\n"
    assert err == expected


def test_top_options_parse_as_argparse_parses_them(programs: Path, tmp_path: Path) -> None:
    code, out, err = crushcap(programs, tmp_path, "top", "-h")
    assert (code, out, err) == (0, top_parser().format_help(), "")
    for argv in (["-n1", "-d0"], ["-n", " 1 ", "-d", "1e-9"], ["--socket=/nope.sock", "-n", "1"],
                 ["--sock", "/nope.sock"], ["-n", "-1", "--socket", "nope.sock"]):
        args = top_parser().parse_args(argv)
        code, out, err = crushcap(programs, tmp_path, "top", *argv)
        if str(args.socket).endswith("nope.sock"):
            assert (code, out) == (1, "") and err == f"top: cannot reach exo_init at {args.socket}: " \
                "No such file or directory\n", err
        else:
            assert code in (0, 1) and err.startswith("top: cannot reach exo_init at /run/exosphere/control.sock")
