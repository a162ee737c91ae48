"""Continuations of JavaScript, Rust and linked programs: paused at random instructions,
serialised, resumed in a fresh process, each gives exactly the uninterrupted run's output, gas,
steps and end (JavaScript's null, Rust's enum values and panics included)."""

from __future__ import annotations

import random
from pathlib import Path

from crush import state
from crush.casm import Program, encode
from crush.compiler import compile_cast
from crush.link import link
from crush.vm import VM, Status
from crush.walkers import walk_source
from tests.crush.support import ARENA, GAS, run
from tests.crush.test_state import resume_elsewhere

HERE = Path(__file__).resolve().parent
SOURCES = [*sorted((HERE / "corpus_js").glob("*.js")), *sorted((HERE / "corpus_rs").glob("*.rs"))]


def compiled(path: Path) -> Program:
    return compile_cast(walk_source(path.read_bytes(), path.name))


def test_js_rust_and_linked_programs_resume_in_a_fresh_process(tmp_path: Path) -> None:
    programs = [(p.name, compiled(p)) for p in SOURCES]
    linked = link([compiled(HERE / "polyglot" / n) for n in ("mathlib.rs", "text.js", "main.py")])
    programs.append(("linked", linked))
    jobs, expected = [], []
    for name, program in programs:
        casm_file = tmp_path / f"{name}.casm"
        casm_file.write_bytes(encode(program))
        full = run(program)
        rnd = random.Random(name)
        for k in sorted({rnd.randrange(1, full.outcome.steps) for _ in range(2)}):
            out: list[str] = []
            vm = VM(program, gas=GAS, arena=ARENA, out=out.append)
            assert vm.run(max_steps=k).status == Status.PAUSED
            text = state.dumps(vm)
            assert state.dumps(state.loads(text, program)) == text
            state_file = tmp_path / f"{name}.{k}.json"
            state_file.write_text(text)
            jobs.append({"casm": str(casm_file), "state": str(state_file)})
            expected.append(("".join(out), full))
    results = resume_elsewhere(jobs, tmp_path)
    assert len(results) == len(expected) >= 2 * 50
    for (prefix, full), got in zip(expected, results, strict=True):
        assert prefix + got["output"] == full.output
        assert (got["gas"], got["steps"], got["status"]) == (full.outcome.gas_used, full.outcome.steps,
                                                           full.outcome.status.value)
