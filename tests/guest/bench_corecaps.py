"""In the guest: typed command -> first output of a CoreCap, as the console shell runs it (a forked
child of a shell that has loaded what it loads at start), for the CRUSH CoreCaps and for the
Python tools they replaced (their source given as files: the child imports them, as the old shell
did with importlib). Prints one JSON line: {name: {"crush": {p50, p90, mean}, "python": {...}}}.

Usage: python3 bench_corecaps.py RUNS OLD_DIR   (OLD_DIR holds ls.py, cat.py, ps.py and top.py of the
Python tools; ps and top are loaded in this process first, with what they import, as the shell that
ran them did at its start: only their run is in the child)
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from corecaps import crushcap
from corecaps.tool import run

COMMANDS = {"ls": ["/usr"], "cat": ["/etc/os-release"], "ps": [], "top": ["-n", "1"]}
PRELOADED = ("ps", "top")   # the shell that ran these Python tools imported them once, at its start


def first_output_ms(child: Callable[[], int]) -> float:
    """fork -> the first byte on the child's stdout, in ms (the child's output is drained)."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.close(r)
        os.close(w)
        sys.stdout = os.fdopen(1, "w", closefd=False)
        code = 1
        try:
            code = child()
        finally:
            sys.stdout.flush()
            os._exit(code & 0xFF)
    os.close(w)
    select.select([r], [], [], 60)
    elapsed = (time.perf_counter() - t0) * 1000
    while os.read(r, 65536):
        pass
    os.close(r)
    os.waitpid(pid, 0)
    return elapsed


def load_old(old_dir: str, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"old_{name}", os.path.join(old_dir, f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_tool(old_dir: str, name: str, args: list[str]) -> Callable[[], int]:
    if name in PRELOADED:
        module = load_old(old_dir, name)
        return lambda: run(name, module.main, args)
    return lambda: run(name, load_old(old_dir, name).main, args)


def crush_tool(name: str, args: list[str]) -> Callable[[], int]:
    return lambda: run(name, lambda a: crushcap.run_crushcap(name, a), args)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 1), "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
            "mean": round(statistics.fmean(ordered), 1)}


def main() -> None:
    runs, old_dir = int(sys.argv[1]), sys.argv[2]
    crushcap.warm()  # what the shell does at start (sh.main)
    result = {}
    for name, args in COMMANDS.items():
        crush = [first_output_ms(crush_tool(name, args)) for _ in range(runs)]
        python = [first_output_ms(python_tool(old_dir, name, args)) for _ in range(runs)]
        result[name] = {"crush": summary(crush), "python": summary(python),
                        "ratio_p50": round(statistics.median(crush) / statistics.median(python), 2)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
