"""Benchmark: the Python walker's speed in source lines per second, and walker + compiler's.

Two inputs: a large generated program (N functions of realistic code: loops, branches, comprehensions,
f-strings, try/except) walked as one file, and every corpus program walked file by file (the per-file
cost included). The baseline, measured in the same run on the same sources, is CPython's own
compile() (parse + bytecode), so the ratio says how far the tree-sitter walker is from the C parser
(walk() itself calls compile() once to let CPython decide what is valid Python).
Times are the best of a few runs in CPU seconds of this process. The issue's target is walker +
compiler >= 1,000 source lines/s.

Usage: python3 -m tests.bench.crush_walker [FUNCTIONS]   (default 2000, about 30,000 lines)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crush.compiler import compile_cast
from crush.walkers.python import walk

CORPUS = sorted((Path(__file__).resolve().parent.parent / "crush" / "corpus").glob("*.py"))

TEMPLATE = '''
def f{i}(items, limit={i}):
    """Function {i}: a bit of everything the subset has."""
    total = 0
    for k, v in enumerate(items):
        if v % 3 == 0 and k < limit:
            total += v * {i}
        elif v < 0:
            total -= abs(v)
        else:
            total = total + (v if v > 1 else -v)
    squares = [x * x for x in items if x > {m}]
    table = {{str(x): x for x in squares}}
    try:
        return total // len(squares) + table.get("{i}", 0)
    except ZeroDivisionError as exc:
        return f"{{exc}}: {{total:>8}} {{items[1:-1]!r}}"
'''


def generated(functions: int) -> str:
    body = "".join(TEMPLATE.format(i=i, m=i % 7) for i in range(functions))
    calls = "".join(f"print(f{i}([{i}, -3, 9, 4, 12]))\n" for i in range(0, functions, max(1, functions // 50)))
    return body + calls


def best_of(runs: int, work: Callable[[], Any]) -> float:
    """The least CPU time (this process's, so other load on a shared machine counts less) of `runs`."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def report(name: str, sources: list[tuple[str, str]], runs: int) -> None:
    lines = sum(len(text.splitlines()) for text, _ in sources)
    walk_s = best_of(runs, lambda: [walk(text, file) for text, file in sources])
    both_s = best_of(runs, lambda: [compile_cast(walk(text, file)) for text, file in sources])
    cpython_s = best_of(runs, lambda: [compile(text, file, "exec") for text, file in sources])
    print(f"{name}: {lines} lines in {len(sources)} file(s)")
    print(f"  walk()                  {lines / walk_s:10,.0f} lines/s  ({walk_s * 1000:8.1f} ms)")
    print(f"  walk() + compile_cast() {lines / both_s:10,.0f} lines/s  ({both_s * 1000:8.1f} ms)  "
          f"target 1,000: x{lines / both_s / 1000:.1f}")
    print(f"  CPython compile()       {lines / cpython_s:10,.0f} lines/s  ({cpython_s * 1000:8.1f} ms)  "
          f"walk() is {walk_s / cpython_s:.1f}x CPython's time")


def main() -> None:
    functions = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    report("generated program", [(generated(functions), "generated.py")], runs=3)
    report("corpus", [(p.read_text(), p.name) for p in CORPUS], runs=5)


if __name__ == "__main__":
    main()
