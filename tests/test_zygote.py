"""PID 1 as a zygote (exo_init/pid1/zygote.py) on the host: a real exo_init runs unconfined Python
capsules on its own interpreter in its fork, and each sees what a fresh interpreter would give it
(argv, sys.path, environment, signal dispositions, buffering, exit status, atexit and threads at
exit), while a program the fork cannot honour execs as before."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.exo import ExoInit

PROBE = """
import atexit, json, os, signal, sys, threading, time
report = {
    "zygote": "exo_init.pid1.supervisor" in sys.modules,
    "name": __name__, "argv": sys.argv, "path": sys.path[:2],
    "env": {k: os.environ.get(k) for k in ("EXO_CAPSULE", "FOO", "PYTHONPATH")},
    "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    "sigpipe": signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
    "sigchld": signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL,
    "stdout_line_buffered": sys.stdout.line_buffering, "stderr_line_buffered": sys.stderr.line_buffering,
    "comm": open("/proc/self/comm").read().strip(),
}
print("PROBE " + json.dumps(report))
atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread done", flush=True))).start()
if os.environ.get("FAIL"):
    raise RuntimeError("boom")
sys.exit(int(os.environ.get("CODE", "0")))
"""


def run(tmp_path: Path, capsule: dict[str, Any], state: str) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    e = ExoInit(tmp_path / "exo", {"capsules": {"p": {"restart": {"policy": "never"}, **capsule}}})
    try:
        st = e.wait_state("p", state, 30)
        e.wait_for(lambda: any("main process" in line for line in e.call("logs", name="p", lines=50)["lines"]),
                   10, "the exit in the log")
        lines = e.call("logs", name="p", lines=50)["lines"]
        reports = [json.loads(line.split("PROBE ", 1)[1]) for line in lines if "PROBE " in line]
        assert reports, "\n".join(lines) + e.log()
        return reports[0], lines, st
    finally:
        e.close()


def test_a_script_runs_in_pid1s_fork_as_in_a_fresh_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    r, lines, st = run(tmp_path, {"argv": [sys.executable, str(script), "a b"],
                                  "env": {"FOO": "bar", "CODE": "3"}}, "failed")
    assert r["zygote"] is True and r["name"] == "__main__" and r["argv"] == [str(script), "a b"]
    assert r["path"][0] == str(script.parent)
    assert r["env"] == {"EXO_CAPSULE": "p", "FOO": "bar", "PYTHONPATH": None}
    assert r["sigint"] and r["sigpipe"] and r["sigchld"]
    assert r["stdout_line_buffered"] is False and r["stderr_line_buffered"] is True  # (stdout is a pipe)
    assert r["comm"] == os.path.basename(sys.executable)[:15]
    text = [line.split(" ", 1)[-1] for line in lines]  # (after the timestamp)
    assert text.index("thread done") < text.index("atexit ran"), lines
    assert st["reason"] == "exited 3 (last output: 'atexit ran')", st


def test_a_module_and_code_with_an_uncaught_exception(tmp_path: Path) -> None:
    pkg = tmp_path / "lib"
    pkg.mkdir()
    (pkg / "zprobe.py").write_text(PROBE)
    r, _lines, st = run(tmp_path, {"argv": [sys.executable, "-m", "zprobe", "x"], "workdir": str(tmp_path),
                                   "env": {"PYTHONPATH": str(pkg)}}, "exited")
    assert r["zygote"] is True and r["argv"] == [str(pkg / "zprobe.py"), "x"]
    assert r["path"] == [str(tmp_path), str(pkg)] and st["last_exit"] == "exited 0"
    r, lines, st = run(tmp_path, {"argv": [sys.executable, "-I", "-c", PROBE], "env": {"FAIL": "1"}}, "failed")
    assert r["zygote"] is True and r["argv"] == ["-c"] and r["path"][0] != ""  # -I: no '' first
    assert any("RuntimeError: boom" in line for line in lines) and st["reason"].startswith("exited 1"), st


def test_what_a_fork_cannot_honour_execs(tmp_path: Path) -> None:
    r, _lines, _st = run(tmp_path, {"argv": [sys.executable, "-X", "dev", "-c", PROBE]}, "exited")
    assert r["zygote"] is False and r["argv"] == ["-c"]
    r, _lines, _st = run(tmp_path, {"argv": [sys.executable, "-c", PROBE], "env": {"PYTHONHASHSEED": "1"}}, "exited")
    assert r["zygote"] is False
