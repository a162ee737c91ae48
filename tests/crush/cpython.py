"""CPython as the reference for CRUSH's tests: what a corpus program or a generated source prints.

Expected outputs are never written down: a corpus program is run with `python3 prog.py` (a fresh
process, as a user would), a generated source with `exec` in this process (thousands of cheap runs).
"""

from __future__ import annotations

import contextlib
import functools
import io
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus_programs() -> list[Path]:
    return sorted(CORPUS.glob("*.py"))


@dataclass(frozen=True)
class Outcome:
    stdout: str
    error: str  # the uncaught exception as "Type: message", or "" for a clean exit


@functools.cache
def run_file(path: Path) -> Outcome:
    """`python3 path` in a fresh process (the corpus programs finish in well under a second)."""
    r = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=60, check=False, cwd=path.parent)
    error = ""
    if r.returncode != 0:
        lines = r.stderr.decode("utf-8", "replace").strip().splitlines()
        error = lines[-1] if lines else f"exit status {r.returncode}"
    return Outcome(r.stdout.decode("utf-8"), error)  # bytes decoded: no newline translation of a "\r"


def run_source(source: str, filename: str = "gen.py") -> Outcome:
    """`source` run by `exec` as a __main__ module, stdout captured."""
    out = io.StringIO()
    error = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # `(5)(1)` is valid and meant
        code = compile(source, filename, "exec")
    with contextlib.redirect_stdout(out):
        try:
            exec(code, {"__name__": "__main__"})
        except Exception as exc:  # the program's uncaught exception is part of its outcome
            error = f"{type(exc).__name__}: {exc}"
    return Outcome(out.getvalue(), error)
