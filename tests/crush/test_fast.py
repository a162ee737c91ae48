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


LOOP = """
def f(n):
    i = 0
    s = 0
    while i < n:
        s = s + i * 3
        i = i + 1
    return s
print(f(50))
"""


def _paused_in_f(program: Program, at_start: bool = False) -> dict[str, object]:
    """A state paused inside f's loop with f's frame at a block start (or at f's start)."""
    for k in range(1, 400):
        vm = VM(program, gas=GAS, arena=ARENA, out=lambda s: None)
        vm.run(max_steps=k)
        top = vm.frames[-1]
        if top.code.qualname == "f" and top.pc in top.code.starts and (top.pc == 0) == at_start and not top.stack \
                and (at_start or k > 60):
            return state.save(vm)
    raise AssertionError("no pause in f at a block start")


def test_crafted_state_with_an_unbound_parameter_runs_as_in_the_interpreter() -> None:
    program = compile_source(LOOP)
    doc = _paused_in_f(program, at_start=True)
    frames = doc["frames"]
    assert isinstance(frames, list)
    frames[-1][4][0] = ["u"]  # f's parameter n, which generated code takes as bound
    results = []
    for fast in (False, True):
        vm = state.restore(doc, program, out=lambda s: None, fast=fast)
        o = vm.run()
        assert o.error is not None
        results.append((o.status, o.gas_used, o.steps, o.error.etype.name, o.error.args))
    assert results[0] == results[1]
    assert results[0][3] == "UnboundLocalError"


@pytest.mark.parametrize("value", [["u"], "a string", ["i", hex(1 << 70)], None],
                         ids=["unbound", "str", "big-int", "none"])
def test_crafted_state_that_breaks_what_fast_mode_assumes_runs_as_in_the_interpreter(value: object) -> None:
    """Fast mode's generated code assumes what its analysis proved about f's locals (bound,
    ints); a state document can say otherwise. Resumed in either mode, it must do the same."""
    program = compile_source(LOOP)
    doc = _paused_in_f(program)
    frames = doc["frames"]
    assert isinstance(frames, list)
    frames[-1][4][2] = value  # f's `s`, which the analysis knows as a bound int inside the loop
    results = []
    for fast in (False, True):
        out: list[str] = []
        vm = state.restore(doc, program, out=out.append, fast=fast)
        o = vm.run()
        results.append(("".join(out), o.status, o.gas_used, o.steps, o.error and (o.error.etype.name, o.error.args)))
    assert results[0] == results[1]
    assert results[0][1] == (Status.DONE if value == ["i", hex(1 << 70)] else Status.ERROR)


def test_both_variants_of_generated_code_agree() -> None:
    """The variant testing only gas (no step limit in reach) and the one also testing steps
    (a run paused every few instructions) give the interpreter's figures."""
    program = compile_source(LOOP)
    reference = run(program)
    out: list[str] = []
    vm = VM(program, gas=GAS, arena=ARENA, out=out.append, fast=True)
    outcome = vm.run(max_steps=7)
    pauses = 0
    while outcome.status == Status.PAUSED:
        pauses += 1
        assert vm.steps == 7 * pauses
        outcome = vm.run(max_steps=7)
    assert ("".join(out), outcome.gas_used, outcome.steps) == \
        (reference.output, reference.outcome.gas_used, reference.outcome.steps)
    assert pauses > 100
    compiled = vm.unit.codes[1].fast
    assert compiled is not None and compiled.checked() is not compiled.fn
    assert "limit" not in compiled.source.split("try:")[1].split("except")[0]  # no step tests in the fast variant


def test_code_assuming_int_parameters_is_replaced_when_a_call_has_others() -> None:
    """f is compiled for its first call's int arguments; a later call with lists (whose `+`
    pays gas per item and arena) must not take the int path."""
    source = """
def f(a, b):
    t = a + b
    return t + b
print(f(1, 2), f(3, 4))
print(f([1, 2, 3], [4, 5, 6, 7, 8]))
print(f(5, 6), f("abcdefghijklmnop", "q"))
"""
    program = compile_source(source)
    same(run(program), (fast := run(program, fast=True)))
    compiled = fast.vm.unit.codes[1].fast
    assert compiled is not None and compiled.ints == frozenset()
    first = VM(program, gas=GAS, arena=ARENA, out=lambda s: None, fast=True)
    first.run(max_steps=40)
    compiled = first.unit.codes[1].fast
    assert compiled is not None and compiled.ints == frozenset({0, 1})


DIRECT_CALLS = """
def sq(x):
    return x * x
words = []
total = 0
for i in range(12):
    w = str(i) * (i % 4)
    words.append(w)
    words.append(len(w))
    try:
        n = int(w + "x")
    except ValueError as e:
        n = len(str(e))
    total = total + max([i, n, 3]) + sum(map(sq, range(i)))
    words.append(list(map(sq, [i, n])))
print(len(words), total, words[-1], min(words[1], 9))
"""


def test_builtins_and_methods_called_directly_stop_where_the_interpreter_stops() -> None:
    """Fast mode calls builtin functions (`str`, `int`, `max`) and list.append of a value the
    arena counts directly, not through the interpreter's handler; one that continues in
    prelude code (`sum(map(...))`, `list(map(...))`) goes on there. At every gas budget up to
    the whole run, and with arenas that recount and trap, both modes stop at the same
    instruction with the same gas, output and arena."""
    program = compile_source(DIRECT_CALLS)
    whole = run(program)
    assert whole.outcome.status == Status.DONE and whole.output
    same(whole, run(program, fast=True))
    for gas in range(1, whole.outcome.gas_used + 1, 11):
        same(run(program, gas=gas), run(program, gas=gas, fast=True))
    for budget in (2_000, 4_000, 8_000):
        same(run(program, arena=budget), run(program, arena=budget, fast=True))
