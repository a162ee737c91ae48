"""Benchmark: the CRUSH VM against CPython, on the same programs in one run (prints figures).

For each program (Python sources below, and the whole tests/crush/corpus run one after another):
- the interpreter's instructions per second (target >= 3 million/s) and its time / CPython's;
- fast mode's time / CPython's (target within 3x), and that of its first run, which also
  loads (verifies) the program and generates and compiles its Python code;
- what gas metering costs: each mode with metering and with the benchmark-only switch
  VM(metering=False) (target <= 10 %);
then checkpoint times (a state whose arena holds about 1 MB: target <= 1 s; a small state:
target <= 50 ms; save and restore each), and walker + compiler source lines per second
(target >= 1,000; tests/bench/crush_walker.py has the walker's own figures).

Times are the best of a few runs, in CPU seconds of this process (time.process_time), so other
load on a shared machine counts less; every figure is also given as a ratio to a baseline
measured in the same run. As CPython's source is compiled once before its timed runs, each
program is loaded (verified: crush.vm.load) once per mode before them, and the timed runs reuse
that unit (VM(unit=)), with the Python code fast mode generated in the first. Usage:
python3 -m tests.bench.crush [RUNS]
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable

from crush import arena, state
from crush import fast as fast_mode
from crush.casm import Program
from crush.compiler import compile_cast
from crush.vm import VM, Status, Unit, load, prelude
from crush.walkers.python import walk
from tests.bench.crush_walker import best_of, generated
from tests.crush.cpython import corpus_programs

PROGRAMS = {
    "loop (module globals)": """
i = 0
s = 0
while i < 300000:
    s = s + i
    i = i + 1
print(s)
""",
    "loop (function locals)": """
def main():
    i = 0
    s = 0
    while i < 1000000:
        s = s + i
        i = i + 1
    return s
print(main())
""",
    "recursive calls (fib)": """
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
print(fib(22))
""",
    "sieve (lists)": """
def sieve(n):
    flags = [True] * (n + 1)
    flags[0] = flags[1] = False
    for i in range(2, n + 1):
        if flags[i]:
            for j in range(i * i, n + 1, i):
                flags[j] = False
    return [i for i in range(n + 1) if flags[i]]
print(len(sieve(200000)))
""",
    "strings and dicts": """
words = []
for i in range(20000):
    w = "w" + str(i % 97)
    words.append(w.upper() if i % 3 else w)
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
print(len(counts), sorted(counts.items())[:3])
""",
}

BIG_STATE = """
rows = []
for i in range(5000):
    rows.append(("row %05d" % i, i, [i, i * 2]))
index = {}
for name, n, pair in rows:
    index[name] = pair
print(len(rows))
"""


def crush_run(program: Program, fast: bool, metering: bool, unit: Unit | None = None) -> tuple[int, int]:
    vm = VM(program, gas=10 ** 12, arena=1 << 30, out=lambda s: None, fast=fast, metering=metering, unit=unit)
    outcome = vm.run()
    assert outcome.status == Status.DONE, outcome
    return outcome.steps, outcome.gas_used


def cpython_run(sources: list[str]) -> Callable[[], None]:
    codes = [compile(s, "bench", "exec") for s in sources]

    def work() -> None:
        for code in codes:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, {"__name__": "__main__"})
    return work


def row(name: str, sources: list[str], runs: int) -> dict[str, float]:
    programs = [compile_cast(walk(s, "bench.py")) for s in sources]
    steps = sum(crush_run(p, False, True)[0] for p in programs)
    t: dict[str, float] = {"cpython": best_of(runs, cpython_run(sources))}
    # fast mode's first run generates and compiles Python code (kept for the runs after it, as
    # CPython's own bytecode is compiled before its timed runs): measured apart
    fast_mode._compile.cache_clear()
    t["fast-first"] = best_of(1, runner(programs, True, True, reuse=False))
    for label, fast, metering in (("interp", False, True), ("interp-off", False, False), ("fast", True, True),
                                  ("fast-off", True, False)):
        t[label] = best_of(runs, runner(programs, fast, metering))
    metering_cost = {mode: 100 * (t[mode] / t[f"{mode}-off"] - 1) for mode in ("interp", "fast")}
    print(f"{name:28s} {steps / t['interp'] / 1e6:6.2f} M instr/s  interp {t['interp'] / t['cpython']:6.1f}x  "
          f"fast {t['fast'] / t['cpython']:5.1f}x (first run {t['fast-first'] / t['cpython']:5.1f}x) CPython   "
          f"metering: interp {metering_cost['interp']:+5.1f}%  fast {metering_cost['fast']:+5.1f}%")
    return t


def runner(programs: list[Program], fast: bool, metering: bool, reuse: bool = True) -> Callable[[], None]:
    """The programs run one after another: each with its unit loaded before (`reuse`), or
    loaded in the run."""
    units = [load(p, "user", prelude(metering).names, metering) if reuse else None for p in programs]

    def work() -> None:
        for p, unit in zip(programs, units, strict=True):
            crush_run(p, fast, metering, unit)
    return work


def checkpoint(name: str, source: str, steps: int, runs: int) -> None:
    """Save and restore times of a state paused `steps` instructions before the program ends."""
    program = compile_cast(walk(source, "state.py"))
    total = VM(program, gas=10 ** 12, arena=1 << 30, out=lambda s: None).run().steps
    vm = VM(program, gas=10 ** 12, arena=1 << 30, out=lambda s: None)
    vm.run(max_steps=max(0, total - steps))
    text = state.dumps(vm)
    live = arena.measure(vm._roots(()))[0]
    save = best_of(runs, lambda: state.dumps(vm))
    load = best_of(runs, lambda: state.loads(text, program))
    print(f"checkpoint, {name:22s} live arena {live / 1e6:5.2f} MB, document {len(text) / 1e6:5.2f} MB: "
          f"save {save * 1000:7.1f} ms, restore {load * 1000:7.1f} ms")


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 3
    print(f"CRUSH benchmark (best of {runs}, CPU seconds; ratios against CPython {sys.version.split()[0]} "
          "in the same run)")
    totals: dict[str, float] = {}
    for name, source in PROGRAMS.items():
        for k, v in row(name, [source], runs).items():
            totals[k] = totals.get(k, 0.0) + v
    corpus = [p.read_text() for p in corpus_programs()]
    row(f"corpus ({len(corpus)} programs)", corpus, max(1, runs - 1))
    checkpoint("a 1 MB arena", BIG_STATE, 5, runs)
    checkpoint("a small state", PROGRAMS["recursive calls (fib)"], 100_000, runs)
    source = generated(400)
    lines = source.count("\n")
    seconds = best_of(runs, lambda: compile_cast(walk(source, "generated.py")))
    print(f"walker + compiler: {lines / seconds:,.0f} source lines/s ({lines} lines; target 1,000)")


if __name__ == "__main__":
    main(sys.argv[1:])
