"""Benchmark: CRUSH's walkers per language, and the VM against each language's own runtime.

Prints, for Python, JavaScript and Rust:
1. walker throughput: source lines per second of `walk_source` over the language's corpus
   (tests/crush/corpus, corpus_js, corpus_rs), and walker + compiler together;
2. the corpus run by the VM (interpreter and fast mode, CPU time of this process, walking and
   compiling excluded) against the native runtime running the same files (CPython, node, the
   rustc-built binaries: wall time of each process, which includes its start-up: for these small
   programs start-up dominates, so this ratio flatters the VM);
3. a compute kernel per language (recursive fib and a counting loop) where start-up is measured
   separately (the same runtime on an empty program) and subtracted: the honest ratio of the
   VM to node, to the rustc binary and to CPython.

Every figure is a ratio against a baseline measured in the same run. Usage:
python3 -m tests.bench.crush_polyglot [RUNS]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from crush.casm import Program
from crush.compiler import compile_cast
from crush.vm import VM
from crush.walkers import walk_source

HERE = Path(__file__).resolve().parent.parent / "crush"
CORPORA = {"python": sorted((HERE / "corpus").glob("*.py")), "javascript": sorted((HERE / "corpus_js").glob("*.js")),
           "rust": sorted((HERE / "corpus_rs").glob("*.rs"))}
KERNELS = {
    "python": ("k.py", """
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def count(n):
    s = 0
    i = 0
    while i < n:
        s = s + i % 7
        i = i + 1
    return s
print(fib(20), count(200000))
""", ""),
    "javascript": ("k.js", """
function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
function count(n) { let s = 0; let i = 0; while (i < n) { s = s + i % 7; i = i + 1; } return s; }
console.log(fib(20), count(200000));
""", ""),
    "rust": ("k.rs", """
fn fib(n: i64) -> i64 { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }
fn count(n: i64) -> i64 { let mut s: i64 = 0; let mut i: i64 = 0; while i < n { s = s + i % 7; i = i + 1; } s }
fn main() { println!("{} {}", fib(20), count(200000)); }
""", "fn main() {}\n"),
}


def best_of(runs: int, fn: Callable[[], object], clock: Callable[[], float] = time.process_time) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def native_command(lang: str, path: Path, build: Path) -> list[str] | None:
    if lang == "python":
        return [sys.executable, str(path)]
    if lang == "javascript":
        node = shutil.which("node") or shutil.which("nodejs")
        return [node, str(path)] if node else None
    rustc = shutil.which("rustc")
    if rustc is None:
        return None
    binary = build / path.stem
    if not binary.exists():
        subprocess.run([rustc, "-C", "overflow-checks=on", "-C", "opt-level=1", "-A", "warnings", "-o", str(binary),
                        str(path)], check=True, capture_output=True, timeout=300)
    return [str(binary)]


def run_native(commands: list[list[str]]) -> None:
    for cmd in commands:
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)


def run_vm(programs: list[Program], fast: bool) -> None:
    for p in programs:
        VM(p, None, gas=10 ** 10, arena=1 << 28, out=lambda _text: None, fast=fast).run()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"CRUSH polyglot benchmark (best of {runs}; CPU seconds in-process, wall seconds for native processes)")
    print("\n1. walkers (source lines per second)")
    rates: dict[str, float] = {}
    for lang, files in CORPORA.items():
        sources = [(f.read_bytes(), f.name) for f in files]
        lines = sum(data.count(b"\n") for data, _ in sources)
        walk_t = best_of(runs, lambda s=sources: [walk_source(d, n) for d, n in s])  # type: ignore[misc]
        both_t = best_of(runs, lambda s=sources: [compile_cast(walk_source(d, n)) for d, n in s])  # type: ignore[misc]
        rates[lang] = lines / walk_t
        print(f"  {lang:<10} {len(files):3} files {lines:5} lines: walker {lines / walk_t:9.0f} lines/s, "
              f"walker+compiler {lines / both_t:9.0f} lines/s")
    base = rates["python"]
    print("  relative to the Python walker: " + ", ".join(f"{k} {v / base:.2f}x" for k, v in rates.items()))

    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp)
        print("\n2. the corpus: VM run time / native process time (native includes its start-up)")
        for lang, files in CORPORA.items():
            programs = [compile_cast(walk_source(f.read_bytes(), f.name)) for f in files]
            commands = [native_command(lang, f, build) for f in files]
            if any(c is None for c in commands):
                print(f"  {lang:<10} native runtime not installed: skipped")
                continue
            native = best_of(runs, lambda c=commands: run_native(c), time.perf_counter)  # type: ignore[misc]
            slow = best_of(runs, lambda p=programs: run_vm(p, False))  # type: ignore[misc]
            fast = best_of(runs, lambda p=programs: run_vm(p, True))  # type: ignore[misc]
            print(f"  {lang:<10} native {native:7.3f}s  VM {slow:7.3f}s ({slow / native:6.2f}x)  "
                  f"fast {fast:7.3f}s ({fast / native:6.2f}x)")

        print("\n3. compute kernel (fib(20) + a 200,000-step loop): VM / native with start-up subtracted")
        for lang, (name, source, empty_source) in KERNELS.items():
            path = build / name
            path.write_text(source)
            empty = build / f"empty_{name}"
            empty.write_text(empty_source)
            cmd, cmd0 = native_command(lang, path, build), native_command(lang, empty, build)
            program = compile_cast(walk_source(source.encode(), name))
            slow = best_of(runs, lambda p=program: run_vm([p], False))  # type: ignore[misc]
            fast = best_of(runs, lambda p=program: run_vm([p], True))  # type: ignore[misc]
            if cmd is None or cmd0 is None:
                print(f"  {lang:<10} VM {slow:.3f}s, fast {fast:.3f}s; native runtime not installed")
                continue
            total = best_of(runs, lambda c=cmd: run_native([c]), time.perf_counter)  # type: ignore[misc]
            startup = best_of(runs, lambda c=cmd0: run_native([c]), time.perf_counter)  # type: ignore[misc]
            native = max(total - startup, 1e-4)
            print(f"  {lang:<10} native {native * 1000:8.1f} ms (+{startup * 1000:.0f} ms start-up)  "
                  f"VM {slow * 1000:8.1f} ms ({slow / native:7.1f}x)  "
                  f"fast {fast * 1000:8.1f} ms ({fast / native:7.1f}x)")


if __name__ == "__main__":
    main()
