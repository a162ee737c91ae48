"""Shared helpers for the CRUSH tests: source -> program, running a program, CPython's answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crush.casm import Program
from crush.compiler import compile_cast
from crush.text import str_value
from crush.vm import VM, Host, Outcome
from crush.walkers import walk_source
from crush.walkers.python import walk
from tests.crush import cpython as reference

REPO = Path(__file__).resolve().parent.parent.parent
CORPUS = reference.corpus_programs()
GAS = 2_000_000_000
ARENA = 256 << 20


def compile_source(source: str, name: str = "prog.py") -> Program:
    return compile_cast(walk(source, name))


@dataclass
class Run:
    vm: VM
    outcome: Outcome
    output: str

    @property
    def transcript(self) -> str:
        """What CPython would print: the output, then for an uncaught exception its last line."""
        if self.outcome.error is None:
            return self.output
        e = self.outcome.error
        text = str_value(self.vm, e)
        return self.output + (f"{e.etype.name}: {text}" if text else e.etype.name) + "\n"


def run(program: Program, *, gas: int = GAS, arena: int = ARENA, host: Host | None = None, fast: bool = False,
        max_steps: int | None = None, seed: int = 0) -> Run:
    out: list[str] = []
    vm = VM(program, host, gas=gas, arena=arena, out=out.append, fast=fast, seed=seed)
    outcome = vm.run(max_steps)
    return Run(vm, outcome, "".join(out))


def run_source(source: str, **kwargs: Any) -> Run:
    return run(compile_source(source), **kwargs)


def cpython(source: str) -> str:
    """What CPython prints for `source` (tests/crush/cpython.py): stdout, then an uncaught
    exception's last line, as `Run.transcript` writes them."""
    outcome = reference.run_source(source)
    return outcome.stdout + (outcome.error + "\n" if outcome.error else "")


def check_corpus_program(path: Path, expected: str, ok: bool, fast: bool) -> Run:
    """A source in any language (the walker by extension) prints `expected` in CRUSH, and fails
    with an uncaught exception exactly when the reference runtime failed (`ok` False)."""
    result = run(compile_cast(walk_source(path.read_bytes(), path.name)), fast=fast)
    assert result.outcome.trap is None, result.outcome.trap
    assert result.output == expected
    assert (result.outcome.error is None) == ok, result.transcript
    return result


def assert_modes_use_the_same_gas(path: Path) -> None:
    program = compile_cast(walk_source(path.read_bytes(), path.name))
    slow, fast = run(program), run(program, fast=True)
    assert (fast.output, fast.outcome.gas_used) == (slow.output, slow.outcome.gas_used)
