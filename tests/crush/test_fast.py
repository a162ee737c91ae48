"""Fast mode gives exactly what the interpreter gives: output, result, gas, instruction count,
the instruction a trap happens at, and states that resume in either mode."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crush import state
from crush.casm import Program
from crush.fast import compile_code
from crush.vm import VM, Status
from tests.crush.support import ARENA, CORPUS, GAS, compile_source, run, run_source
from tests.crush.test_verify import _straight_programs
from tests.crush.test_vm import ARENA_BOMBS


def same(a: object, b: object) -> None:
    ra, rb = a, b
    assert ra.output == rb.output  # type: ignore[attr-defined]
    oa, ob = ra.outcome, rb.outcome  # type: ignore[attr-defined]
    assert (oa.status, oa.gas_used, oa.steps) == (ob.status, ob.gas_used, ob.steps)
    assert (oa.trap and (oa.trap.code, oa.trap.pc, oa.trap.line)) == \
        (ob.trap and (ob.trap.code, ob.trap.pc, ob.trap.line))
    assert (oa.error and (oa.error.etype, oa.error.args, oa.error.tb)) == \
        (ob.error and (ob.error.etype, ob.error.args, ob.error.tb))
    va, vb = ra.vm, rb.vm  # type: ignore[attr-defined]
    assert (va.arena.allocated, va.arena.recounts) == (vb.arena.allocated, vb.arena.recounts)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_fast_equals_interpreter(path: Path) -> None:
    program = compile_source(path.read_text(), path.name)
    interpreted = run(program)
    same(interpreted, run(program, fast=True))
    rnd = random.Random(path.name)
    total = interpreted.outcome.gas_used
    for limit in sorted({rnd.randrange(1, total + 1) for _ in range(2)}):
        same(run(program, gas=limit), run(program, gas=limit, fast=True))


def test_arena_recounts_and_traps_are_the_same_in_both_modes() -> None:
    source = """
keep = []
for i in range(300):
    s = ('x' * 5000) + str(i)
    if i % 7 == 0:
        keep.append(s)
    t = [s, s[:10], (s, i)]
print(len(keep), sum([len(k) for k in keep]))
"""
    for budget in (48_000, 120_000, 400_000, 1 << 20):
        a, b = run_source(source, arena=budget), run_source(source, arena=budget, fast=True)
        same(a, b)
    assert a.vm.arena.recounts > 0


@pytest.mark.parametrize("name", sorted(ARENA_BOMBS))
def test_arena_bombs_in_fast_mode(name: str) -> None:
    program = compile_source(ARENA_BOMBS[name])
    same(run(program, arena=16 << 20), run(program, arena=16 << 20, fast=True))


def _resume_across(program: Program, k: int, first_fast: bool) -> tuple[str, int, int]:
    out: list[str] = []
    vm = VM(program, gas=GAS, arena=ARENA, out=out.append, fast=first_fast)
    outcome = vm.run(max_steps=k)
    if outcome.status == Status.PAUSED:
        assert vm.steps == k  # fast mode pauses at exactly the instruction asked for
        vm = state.loads(state.dumps(vm), program, out=out.append, fast=not first_fast)
        outcome = vm.run()
    return "".join(out), outcome.gas_used, outcome.steps


def test_states_resume_across_modes() -> None:
    for path in CORPUS[::6]:
        program = compile_source(path.read_text(), path.name)
        reference = run(program)
        expected = (reference.output, reference.outcome.gas_used, reference.outcome.steps)
        rnd = random.Random(path.stem)
        for k in (rnd.randrange(reference.outcome.steps), rnd.randrange(reference.outcome.steps)):
            assert _resume_across(program, k, first_fast=True) == expected
            assert _resume_across(program, k, first_fast=False) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_straight_programs(), st.integers(1, 3000))
def test_random_verified_casm_runs_the_same_in_both_modes(program: Program, gas: int) -> None:
    from crush.verify import VerifyError, verify
    from crush.vm import prelude
    try:
        verify(program, prelude().names)
    except VerifyError:
        return
    results = []
    for fast in (False, True):
        out: list[str] = []
        vm = VM(program, gas=gas, arena=1 << 16, out=out.append, fast=fast)
        o = vm.run()
        results.append(("".join(out), o.status, o.gas_used, o.steps, o.trap and o.trap.pc,
                        o.error and o.error.etype.name, vm.arena.recounts))
    assert results[0] == results[1]


def test_generated_code_carries_no_program_text() -> None:
    hostile = "\"\\nimport os; os.system('x')\\n# \" + '''\\n''' + \"{L0}\""
    program = compile_source(f"def f(a):\n    return {hostile} * a\nprint(len(f(2)))\nmissing_{'x' * 20}\n")
    vm = VM(program, fast=True)
    outcome = vm.run()
    assert outcome.status == Status.ERROR
    for code in vm.unit.codes:
        source = compile_code(code, True).source
        assert "import" not in source and "os.system" not in source and "missing_" not in source
        assert all(c.isascii() for c in source)
