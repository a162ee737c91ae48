"""CRUSH against CPython: the corpus and generated programs print the same thing under both.

For every program in tests/crush/corpus, CPython's output (`python3 prog.py`, a fresh process) is the
expected transcript; CRUSH compiles the walker's CAST to CASM and runs it in both execution modes
(the interpreter and fast mode), which must print the same, end the same way (an uncaught
exception's last line as CPython prints it) and use the same gas. So must the snippets of
tests/crush/snippets.py (one point of semantics each: error messages, scoping corners, ...).
Hypothesis then generates integer and string expressions and small whole programs inside the subset
(tests/crush/strategies.py) and compares CRUSH with CPython's `exec` of the same source.

The VM's known differences from CPython are listed in VM_DIFFERENCES and marked xfail(strict): the
mark flips (and the test fails, as a reminder to drop it) when the VM is fixed.

A failure here is a walker bug when the reference evaluator (tests/crush/cast_eval.py, exercised by
test_walker.py) agrees with CPython on the same CAST, and a VM bug otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.crush import cpython, strategies
from tests.crush.snippets import SNIPPETS
from tests.crush.support import compile_source, run

MODES = pytest.mark.parametrize("fast", [False, True], ids=["interpreter", "fast"])


def expected_transcript(outcome: cpython.Outcome) -> str:
    return outcome.stdout + (outcome.error + "\n" if outcome.error else "")


@MODES
@pytest.mark.parametrize("path", cpython.corpus_programs(), ids=lambda p: p.stem)
def test_corpus_program_prints_what_cpython_prints(path: Path, fast: bool) -> None:
    expected = expected_transcript(cpython.run_file(path))
    result = run(compile_source(path.read_text(), path.name), fast=fast)
    assert result.outcome.trap is None, result.outcome.trap
    assert result.transcript == expected


@pytest.mark.parametrize("path", cpython.corpus_programs(), ids=lambda p: p.stem)
def test_both_modes_use_the_same_gas(path: Path) -> None:
    program = compile_source(path.read_text(), path.name)
    slow, fast = run(program), run(program, fast=True)
    assert (fast.output, fast.outcome.gas_used, fast.outcome.status) == \
        (slow.output, slow.outcome.gas_used, slow.outcome.status)


# Where the VM (not the walker: the reference evaluator runs the same CAST as CPython does) differs.
VM_DIFFERENCES = {
    "methods of ints and floats":
        "VM: (5).bit_length(), (255).bit_count(), (1.5).is_integer() and (0.75).as_integer_ratio() raise "
        "AttributeError (\"'int' object has no attribute 'bit_length'\", ...); CPython returns 3, 8, False, (3, 4)",
    "str.format_map":
        "VM: 'hello {name}'.format_map({'name': 'you'}) raises AttributeError(\"'str' object has no attribute "
        "'format_map'\"); CPython returns 'hello you'",
    "zip(strict=True)":
        "VM: zip([1, 2], [3], strict=True) raises TypeError('zip() takes no keyword arguments'); CPython raises "
        "ValueError('zip() argument 2 is shorter than argument 1')",
    "negative base to a fractional power":
        "VM: (-8) ** (1 / 3) raises ValueError('CRUSH has no complex numbers ...'); CPython returns a complex",
}


@MODES
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=VM_DIFFERENCES[name]))
    if name in VM_DIFFERENCES else name for name in SNIPPETS])
def test_snippet_prints_what_cpython_prints(name: str, fast: bool) -> None:
    check(SNIPPETS[name], fast)


def check(source: str, fast: bool = False) -> None:
    expected = expected_transcript(cpython.run_source(source))
    result = run(compile_source(source, "gen.py"), fast=fast)
    assert result.outcome.trap is None, (source, result.outcome.trap)
    assert result.transcript == expected, source


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.int_programs())
def test_integer_expressions(source: str) -> None:
    check(source)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.str_programs())
def test_string_expressions(source: str) -> None:
    check(source)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategies.programs())
def test_whole_programs(source: str) -> None:
    check(source, fast=True)
