"""Benchmark: CRUSH's third mode, CASM -> WebAssembly (crush/wasm.py, `VM(native=True)`), against the
interpreter, fast mode and CPython, on the CRUSH benchmark programs (tests/bench/crush.py's) and
the whole corpus (tests/crush/corpus, one program after another).

Each figure is the best of a few runs in CPU seconds of this process (time.process_time, as
tests/bench/crush.py measures), from loading the program (verifying it; in native mode also
compiling its native functions to Wasm, which is reported on its own too) to its end, with
metering on. Usage: python3 -m tests.bench.crush_native [RUNS]
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from crush.casm import Program
from crush.compiler import compile_cast
from crush.vm import VM, Status
from crush.walkers.python import walk
from crush.wasm import native_functions
from tests.bench.crush import PROGRAMS, cpython_run
from tests.bench.crush_walker import best_of
from tests.crush.cpython import corpus_programs

MODES = {"interpreter": (False, False), "fast": (True, False), "native": (False, True), "native+fast": (True, True)}


def runner(programs: list[Program], fast: bool, native: bool) -> Callable[[], None]:
    def work() -> None:
        for p in programs:
            vm = VM(p, gas=10 ** 12, arena=1 << 30, out=lambda s: None, fast=fast, native=native)
            outcome = vm.run()
            assert outcome.status == Status.DONE, outcome
    return work


def loader(programs: list[Program], native: bool) -> Callable[[], None]:
    def work() -> None:
        for p in programs:
            VM(p, gas=10 ** 12, arena=1 << 30, out=lambda s: None, native=native)
    return work


def natives(programs: list[Program]) -> int:
    count = 0
    for p in programs:
        count += len(native_functions(VM(p).unit.codes)[0])
    return count


def row(name: str, sources: list[str], runs: int) -> None:
    programs = [compile_cast(walk(s, "bench.py")) for s in sources]
    t = {"cpython": best_of(runs, cpython_run(sources))}
    for label, (fast, native) in MODES.items():
        t[label] = best_of(runs, runner(programs, fast, native))
    compile_s = max(0.0, best_of(runs, loader(programs, True)) - best_of(runs, loader(programs, False)))
    cells = "  ".join(f"{label} {t[label] * 1000:8.1f} ms ({t[label] / t['cpython']:5.2f}x)" for label in MODES)
    print(f"{name:26s} native fns {natives(programs):3d}  CPython {t['cpython'] * 1000:7.1f} ms  {cells}  "
          f"(of native: Wasm compile {compile_s * 1000:.1f} ms)")


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 3
    print(f"CRUSH modes (best of {runs}, CPU seconds; ratios against CPython {sys.version.split()[0]} in the same run)")
    for name, source in PROGRAMS.items():
        row(name, [source], runs)
    corpus = [p.read_text() for p in corpus_programs()]
    row(f"corpus ({len(corpus)} programs)", corpus, max(1, runs - 1))


if __name__ == "__main__":
    main(sys.argv[1:])
