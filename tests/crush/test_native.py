"""CASM -> WebAssembly (crush/wasm.py), CRUSH's third mode, differentially against the VM.

Every corpus program, run with `VM(native=True)`, prints and ends exactly as the interpreter (and
so CPython) does; generated programs of integer functions (loops, branches, calls, every integer
operator, values on both sides of 64 bits) print what the interpreter and CPython print; and the
edges are tried one by one: overflow, division by zero, negative shifts, recursion depth, the
arena, running out of gas in Wasm, globals rebound or not yet bound, bools, which functions are
native and why the others are not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crush.errors import TrapCode
from crush.vm import VM, Status
from crush.wasm import native_functions
from tests.crush import cpython
from tests.crush.support import ARENA, GAS, Run, compile_source

pytest.importorskip("wasmtime")


def run(source: str, native: bool, gas: int = GAS, arena: int = ARENA, fast: bool = False) -> Run:
    program = compile_source(source, "prog.py")
    out: list[str] = []
    vm = VM(program, gas=gas, arena=arena, out=out.append, native=native, fast=fast)
    return Run(vm, vm.run(), "".join(out))


def both(source: str, **kwargs: object) -> tuple[Run, Run]:
    """(the interpreter's run, the native mode's run): the same transcript and end, or fail."""
    slow, native = run(source, native=False, **kwargs), run(source, native=True, **kwargs)  # type: ignore[arg-type]
    assert native.transcript == slow.transcript, source
    assert native.outcome.status == slow.outcome.status, source
    assert (native.outcome.trap is None) == (slow.outcome.trap is None), (source, native.outcome.trap)
    return slow, native


def native_names(source: str) -> set[str]:
    vm = VM(compile_source(source, "prog.py"), native=True)
    shapes, _why = native_functions(vm.unit.codes)
    return {vm.unit.codes[k].name for k in shapes}


FIB = """
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
print(fib(20))
"""


# --- the corpus: the same as the interpreter, program by program ------------------------------------------


@pytest.mark.parametrize("fast", [False, True], ids=["interpreter", "fast"])
@pytest.mark.parametrize("path", cpython.corpus_programs(), ids=lambda p: p.stem)
def test_corpus_program_runs_the_same_with_native_functions(path: Path, fast: bool) -> None:
    source = path.read_text()
    slow = run(source, native=False, fast=fast)
    native = run(source, native=True, fast=fast)
    assert native.transcript == slow.transcript
    assert native.outcome.status == slow.outcome.status and native.outcome.trap is None


def test_some_corpus_programs_have_native_functions() -> None:
    found = {p.stem: native_names(p.read_text()) for p in cpython.corpus_programs()}
    with_native = {stem: names for stem, names in found.items() if names}
    assert len(with_native) >= 5, found
    assert "gcd" in with_native.get("07_gcd_lcm", set()), found


# --- which functions are native ---------------------------------------------------------------------------


def test_the_subset_integer_loops_calls() -> None:
    source = """
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
def collatz(n):
    steps = 0
    while n != 1:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
        steps = steps + 1
    return steps
def nested(a, b):
    return collatz(fib(a) + b) - (~a << 2) ^ (b >> 1) & -a | +b
def with_list(n):
    return len([n])
def with_bool(n):
    return n > 2
def with_default(n=3):
    return n
def maybe_unbound(n):
    if n:
        x = 1
    return x
def calls_outside(n):
    return with_list(n) + 1
def with_string(n):
    return str(n)
def with_try(n):
    try:
        return n // 0
    except ZeroDivisionError:
        return 0
def closure(n):
    def inner():
        return n
    return inner()
print(fib(10), collatz(27), nested(5, 6))
"""
    vm = VM(compile_source(source, "prog.py"), native=True)
    shapes, why = native_functions(vm.unit.codes)
    names = {vm.unit.codes[k].name: k for k in range(len(vm.unit.codes))}
    assert {vm.unit.codes[k].name for k in shapes} == {"fib", "collatz", "nested"}
    assert "is outside the integer/loop/function subset" in why[names["with_list"]]
    assert "takes a int, not a cond" in why[names["with_bool"]]
    assert "defaults" in why[names["with_default"]] and "cells" in why[names["closure"]]
    assert "may be read before it is assigned" in why[names["maybe_unbound"]]
    assert "calls 'with_list', which is not a native function" in why[names["calls_outside"]]
    assert "handlers" in why[names["with_try"]]
    out: list[str] = []
    vm.out = out.append
    assert vm.run().status is Status.DONE
    assert "".join(out) == cpython.run_source(source).stdout


# --- the edges: exactly the VM's answer, or the VM runs the call ------------------------------------------------


EDGES = {
    "overflow: big integers": """
def fact(n):
    r = 1
    while n > 1:
        r = r * n
        n = n - 1
    return r
print(fact(20), fact(21), fact(30))
def power(b, e):
    r = 1
    while e > 0:
        r = r * b
        e = e - 1
    return r
print(power(-2, 63), power(2, 63), power(-2, 64))
""",
    "big arguments": """
def twice(n):
    return n + n
print(twice(2 ** 62), twice(2 ** 64), twice(-(2 ** 63)), twice(9223372036854775807))
""",
    "floor division, modulo and shifts as Python's": """
def ops(a, b):
    return (a // b) * 1000000 + (a % b) * 1000 + ((a << 3) >> (b & 7))
for a in (-7, 7, -1, 0, 123456789):
    for b in (-3, 3, 1, -1, 64):
        print(a, b, ops(a, b))
def shifts(a, b):
    return (a >> b) + (a << 1)
print(shifts(-5, 100), shifts(5, 70), shifts(-(2 ** 62), 1))
""",
    "division by zero raises where CPython raises": """
def div(a, b):
    return a // b
def outer(a):
    return div(a, a - 3) + 1
print(outer(5))
try:
    print(outer(3))
except ZeroDivisionError as e:
    print("caught:", e)
print(outer(3))
""",
    "negative shift count: ValueError": """
def sh(a, b):
    return a << b
try:
    print(sh(1, -1))
except ValueError as e:
    print("ValueError", e)
""",
    "recursion deeper than the VM allows": """
def down(n):
    if n == 0:
        return 0
    return down(n - 1) + 1
print(down(500))
try:
    print(down(5000))
except RecursionError as e:
    print("RecursionError", e)
""",
    "a global rebound after the first call": """
def f(n):
    return n + 1
def g(n):
    return f(n) * 2
print(g(1))
def f(n):
    return n + 100
print(g(1))
""",
    "a callee defined after the first call": """
def g(n):
    return h(n) + 1
try:
    print(g(1))
except NameError as e:
    print("NameError", e)
def h(n):
    return n * 3
print(g(1))
""",
    "bools are not machine integers": """
def inc(n):
    return n + 1
print(inc(True), inc(False), inc(1))
""",
    "conditions on integers, NOT and TRUTH": """
def pick(a, b):
    if not a:
        return b
    if b:
        return a - b
    while a:
        a = a // 2
    return a
print(pick(0, 5), pick(7, 3), pick(8, 0))
""",
}


@pytest.mark.parametrize("name", list(EDGES))
def test_edges_give_the_interpreters_answer(name: str) -> None:
    source = EDGES[name]
    _slow, native = both(source)
    expected = cpython.run_source(source)
    assert native.transcript == expected.stdout + (expected.error + "\n" if expected.error else "")
    assert native.vm.native is not None and native.vm.native.calls > 0, "some calls ran in Wasm"


def test_overflow_falls_back_and_the_answer_is_the_big_integer() -> None:
    _slow, native = both(EDGES["overflow: big integers"])
    assert native.vm.native is not None and native.vm.native.fallbacks.get("overflow", 0) >= 2
    assert "265252859812191058636308480000000" in native.output


def test_rebinding_and_late_binding_fall_back_to_the_vm() -> None:
    """A name bound twice is not a native callee (statically); a callee not bound yet when the
    caller runs is found out at entry (the VM's globals), and the VM runs the call."""
    _slow, rebound = both(EDGES["a global rebound after the first call"])
    assert rebound.output == "4\n202\n"
    assert native_names(EDGES["a global rebound after the first call"]) == {"f"}, "g calls a rebound name"
    _slow, late = both(EDGES["a callee defined after the first call"])
    assert late.output == "NameError name 'h' is not defined\n4\n"
    assert late.vm.native is not None and late.vm.native.fallbacks == {"globals": 1}


def test_out_of_gas_inside_wasm_is_the_vms_trap() -> None:
    source = "def spin(n):\n    while n >= 0:\n        n = n + 1\n    return n\nprint(spin(0))\n"
    slow = run(source, native=False, gas=100_000)
    native = run(source, native=True, gas=100_000)
    assert slow.outcome.trap is not None and native.outcome.trap is not None
    assert native.outcome.trap.code is slow.outcome.trap.code is TrapCode.OUT_OF_GAS
    assert native.outcome.gas_used == 100_000, "all the gas used, as the interpreter does"


def test_fuel_stands_in_for_gas_deterministically() -> None:
    a, b = run(FIB, native=True), run(FIB, native=True)
    assert a.outcome.gas_used == b.outcome.gas_used > 0
    slow = run(FIB, native=False)
    assert a.output == slow.output == "6765\n"
    assert a.vm.steps < slow.vm.steps, "the calls ran in Wasm, not instruction by instruction"


def test_a_small_arena_makes_deep_native_calls_fall_back() -> None:
    source = "def down(n):\n    if n == 0:\n        return 0\n    return down(n - 1) + 1\nprint(down(200))\n"
    slow, native = both(source, arena=64 << 10)
    assert native.outcome.status == slow.outcome.status


def test_a_program_without_native_functions_runs_as_before() -> None:
    source = "xs = [1, 2, 3]\nprint(sum(xs), ' '.join(str(x) for x in xs))\n"
    _slow, native = both(source)
    assert native.vm.native is None


# --- generated integer programs: native, interpreter and CPython agree -----------------------------------------

_OPS = ["+", "-", "*", "//", "%", "&", "|", "^", "<<", ">>"]
_CMP = ["<", "<=", ">", ">=", "==", "!="]
_values = st.one_of(st.integers(-40, 40), st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 62, -(2 ** 62), 2 ** 63 - 1,
                                                           -(2 ** 63), 2 ** 64, 10 ** 20]))


def _expr(names: list[str]) -> st.SearchStrategy[str]:
    leaf = st.one_of(st.sampled_from(names), st.integers(-9, 9).map(lambda n: f"({n})"))

    def node(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(children, st.sampled_from(_OPS), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})" if t[1] not in ("<<", ">>") else f"({t[0]} {t[1]} ({t[2]} % 70))")
        unary = st.tuples(st.sampled_from(["-", "~", "+"]), children).map(lambda t: f"({t[0]}{t[1]})")
        return st.one_of(binary, unary)

    return st.recursive(leaf, node, max_leaves=6)


@st.composite
def integer_programs(draw: st.DrawFn) -> str:
    """Two or three integer functions (the later may call the earlier), each a loop or a
    branch over arithmetic, and calls of them with small and large arguments."""
    lines: list[str] = []
    funcs: list[str] = []
    for i in range(draw(st.integers(2, 3))):
        name = f"f{i}"
        params = ["a", "b"]
        body = [f"def {name}(a, b):", "    r = 0", "    k = 0"]
        cond = f"{draw(_expr(params))} {draw(st.sampled_from(_CMP))} {draw(_expr(params))}"
        step = draw(_expr(["a", "b", "r", "k"]))
        calls = draw(st.booleans())
        if funcs and calls:
            callee = draw(st.sampled_from(funcs))
            step = f"{callee}({step}, k) + r"
        if draw(st.booleans()):
            body += [f"    while k < {draw(st.integers(0, 12))}:", f"        if {cond}:", f"            r = {step}",
                     "        else:", f"            r = r - {draw(_expr(params))}", "        k = k + 1"]
        else:
            body += [f"    if {cond}:", f"        r = {step}", "    else:", f"        r = {draw(_expr(params))}"]
        body.append(f"    return r {draw(st.sampled_from(['+', '-', '^']))} {draw(_expr(params))}")
        lines += body
        funcs.append(name)
    for _ in range(draw(st.integers(1, 4))):
        f = draw(st.sampled_from(funcs))
        lines += ["try:", f"    print({f}({draw(_values)}, {draw(_values)}))",
                  "except ZeroDivisionError as e:", "    print('ZeroDivisionError', e)",
                  "except ValueError as e:", "    print('ValueError', e)"]
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(integer_programs())
def test_generated_integer_programs(source: str) -> None:
    slow, native = both(source, gas=50_000_000)
    if slow.outcome.trap is None:
        expected = cpython.run_source(source)
        assert native.transcript == expected.stdout + (expected.error + "\n" if expected.error else ""), source
