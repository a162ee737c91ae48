"""Shared helpers for the CRUSH tests: source -> program, running a program, CPython's answer."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crush.casm import Program
from crush.compiler import compile_cast
from crush.text import str_value
from crush.vm import VM, Host, Outcome
from crush.walkers.python import walk

REPO = Path(__file__).resolve().parent.parent.parent
CORPUS = sorted((REPO / "tests" / "crush" / "corpus").glob("*.py"))
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


def cpython(source: str, timeout: float = 60) -> str:
    """What CPython prints for `source`: stdout, then the last line of an uncaught exception."""
    r = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode:
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        return r.stdout + last + "\n"
    return r.stdout
