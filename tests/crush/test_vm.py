"""The VM: Python's semantics against CPython's own answers, determinism, gas and the arena."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crush.errors import TrapCode
from crush.vm import MAX_FRAMES, VM, Status, load, prelude
from tests.crush.support import ARENA, CORPUS, GAS, compile_source, cpython, run, run_source

# The corpus against CPython, in both modes: tests/crush/test_differential.py.


SNIPPETS = {
    "arithmetic": """
print(7 // -2, 7 % -2, -7 // 2, 2 ** -1, 10 / 4, 3 * 1.5, 2 ** 100, -(2 ** 64) >> 3, ~5, 5 ^ 3, 6 & 3, 6 | 3)
print(divmod(-7, 2), divmod(7.5, 2), abs(-3), round(2.5), round(3.14159, 2), round(-1234, -2), 1 << 70)
print(True + True, 3 == 3.0, 0.1 + 0.2, 1e300 * 10, int("  -42 "), int("ff", 16), float("1.5e3"), hex(-255), bin(5))
""",
    "strings": """
s = "  Hello, World  "
print(s.strip(), s.lstrip(), s.rstrip("d "), s.lower(), s.upper(), s.split(), s.split(","), s.replace("l", "L", 2))
print("a,b,,c".split(","), "a b c".split(None, 1), "x".join("abc"), "abc".find("c"), "abc".index("b"), "aaa".count("a"))
print("%5.2f|%-4d|%s|%r|%x|%%|%c" % (3.14159, 7, [1, "a"], "q", 255, 65), "%(a)s-%(b)03d" % {"a": "x", "b": 5})
print(f"{3.5:>8.2f}|{'ab':^6}|{42:#x}|{1234567:,}|{0.25:.1%}|{'q'!r}|{-5:+d}|{7:08b}")
print("abc"[::-1], "abcdef"[1:5:2], "abc" * 3, "b" in "abc", "title case words".title(), "Straße".upper())
print("{0}-{1}-{0}".format("a", 1), "{x:>4}".format(x=3), repr("it's"), repr('say "hi"'), str(None))
""",
    "containers": """
a = [3, 1, 2]
a.append(5); a.insert(0, 9); a.extend((7, 8)); a.remove(1); print(a, a.pop(), a.pop(0), a.index(2), a.count(3))
a.sort(); print(a, sorted(a, reverse=True), a[::-1], a[1:], min(a), max(a), sum(a), len(a))
d = {"b": 2, "a": 1}
d["c"] = 3; d.update({"a": 10}, z=26); print(d, list(d), list(d.values()), list(d.items()), d.get("q", 0))
print(d.pop("b"), d.setdefault("e", 5), d, "a" in d, "b" in d, sorted(d.items(), key=lambda kv: kv[1]))
t = (1, [2, 3], "x")
print(t, t[1], t.index("x"), (1,) + (2,), tuple([1, 2]), list(range(10, 0, -3)), range(5)[2], list(range(3)) * 2)
print([x * x for x in range(6) if x % 2], {k: v for k, v in zip("abc", range(3))}, list(enumerate("ab", 1)))
print(list(map(str, [1, 2])), list(filter(None, [0, 1, "", "a"])), any([0, 0]), all([]), list(reversed([1, 2])))
nested = [[1, 2], [3, [4, 5]]]
nested[1][1].append(nested); print(nested, nested == nested, [1, [2]] < [1, [3]], (1, 2) <= (1, 2))
""",
    "functions": """
def f(a, b=2, *, c=3) -> int:
    return a + b + c
""".replace(", *, c=3", ", c=3") + """
def counter():
    n = 0
    def inc(k=1):
        nonlocal n
        n += k
        return n
    return inc
c = counter(); c(); c(5)
print(f(1), f(1, c=10), f(b=5, a=1), c(), sorted([3, 1, 2], key=lambda x: -x), max("a", "bc", key=len))
def fact(n): return 1 if n < 2 else n * fact(n - 1)
print(fact(30), (lambda x: x + 1)(1))
try:
    f()
except TypeError as e:
    print("TypeError:", e)
try:
    f(1, 2, 3, 4)
except TypeError as e:
    print("TypeError:", e)
try:
    f(1, d=4)
except TypeError as e:
    print("TypeError:", e)
""",
    "exceptions": """
def check(fn):
    try:
        fn()
    except Exception as e:
        print(repr(e))
for fn in [lambda: 1 / 0, lambda: [][1], lambda: {}["k"], lambda: int("x"), lambda: "a" + 1, lambda: undefined_name,
           lambda: [].pop(), lambda: (1, 2).index(3), lambda: "abc".index("z"), lambda: [1].foo(),
           lambda: {}.popitem(), lambda: 2 ** 0.5 / 0.0, lambda: max([]), lambda: chr(-1), lambda: range(0, 1, 0)]:
    check(fn)
try:
    try:
        raise KeyError("inner")
    finally:
        print("finally runs")
except LookupError as e:
    print("caught", e, isinstance(e, KeyError), isinstance(e, IndexError))
""",
}


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippets_print_what_cpython_prints(name: str) -> None:
    source = SNIPPETS[name]
    assert run_source(source).transcript == cpython(source)


UNCAUGHT = [
    "x = [1, 2]\nprint(x[5])\n",
    "d = {}\nd['missing']\n",
    "def f(n):\n    return f(n + 1)\nf(0)\n",
    "raise ValueError('bad', 2)\n",
    "assert 1 == 2, 'one is not two'\n",
    "print(int('4' * 5000))\n",
    "print(str(10 ** 5000))\n",
]


@pytest.mark.parametrize("source", UNCAUGHT)
def test_uncaught_exceptions_end_like_cpython(source: str) -> None:
    result = run_source(source)
    assert result.outcome.status == Status.ERROR
    expected = cpython(source)
    if "RecursionError" in expected:  # CPython adds " while calling a Python object" in some frames
        assert result.transcript.startswith("RecursionError: maximum recursion depth exceeded")
    else:
        assert result.transcript == expected


def test_recursion_is_bounded_and_catchable() -> None:
    result = run_source("def f(n):\n    return f(n + 1)\ntry:\n    f(0)\nexcept RecursionError:\n    print('deep')\n")
    assert result.output == "deep\n"
    assert len(result.vm.frames) == 0
    assert MAX_FRAMES == 1000


def test_the_traceback_names_the_source_lines() -> None:
    result = run_source("def g():\n    return 1 / 0\n\ndef f():\n    return g()\n\nf()\n")
    assert result.outcome.error is not None
    assert result.outcome.error.tb == [["g", 2], ["f", 5], ["<module>", 7]]


def test_runs_are_deterministic() -> None:
    program = compile_source(Path(CORPUS[0]).read_text())
    a, b = run(program), run(program)
    assert (a.output, a.outcome.gas_used, a.outcome.steps) == (b.output, b.outcome.gas_used, b.outcome.steps)


@pytest.mark.parametrize("fast", [False, True], ids=["interpreter", "fast"])
def test_a_unit_loaded_once_runs_again_as_a_fresh_load_does(fast: bool) -> None:
    """The console shell verifies a CoreCap once and runs it many times (corecaps/crushcap.py):
    a run must leave nothing in the unit that changes the next run."""
    program = compile_source(Path(CORPUS[0]).read_text())
    unit = load(program, "user", prelude().names)
    fresh = run(program, fast=fast)
    for _ in range(2):
        out: list[str] = []
        vm = VM(program, None, gas=GAS, arena=ARENA, out=out.append, fast=fast, unit=unit)
        outcome = vm.run()
        assert ("".join(out), outcome.gas_used, outcome.steps) == (fresh.output, fresh.outcome.gas_used,
                                                                    fresh.outcome.steps)


def test_a_unit_of_another_program_or_metering_is_refused() -> None:
    a, b = compile_source("print(1)\n"), compile_source("print(2)\n")
    with pytest.raises(ValueError, match="unit="):
        VM(a, unit=load(b, "user", prelude().names))
    with pytest.raises(ValueError, match="unit="):
        VM(a, unit=load(a, "user", prelude(False).names, False))


def test_a_runaway_loop_runs_out_of_gas_at_the_same_instruction_every_time() -> None:
    program = compile_source("x = 0\nwhile True:\n    pass\n", "spin.py")
    traps = []
    for _ in range(3):
        result = run(program, gas=100_003)
        assert result.outcome.status == Status.TRAP
        trap = result.outcome.trap
        assert trap is not None and trap.code == TrapCode.OUT_OF_GAS
        assert result.outcome.gas_used == 100_003
        traps.append((trap.pc, trap.line, result.outcome.steps))
    assert traps[0] == traps[1] == traps[2]
    assert traps[0][1] in (2, 3) and str(result.outcome.trap).startswith("spin.py:")


ARENA_BOMBS = {
    "string repetition": "x = 'x' * 10 ** 12",
    "big power": "x = 2 ** 10 ** 9",
    "list repetition": "x = [0] * 10 ** 10",
    "shift": "x = 1 << 10 ** 10",
    "padding": "x = 'ab'.center(10 ** 12)",
    "format width": "x = f'{1:>{10 ** 12}}'",
    "percent width": "x = '%*d' % (10 ** 12, 1)",
    "range to list": "x = list(range(10 ** 12))",
    "join": "x = ','.join(['abcdefghij'] * 10 ** 7)",
    "growth": "x = ['a' * 100]\nwhile True:\n    x = x + x",
    "string doubling": "x = 'abcdefghij'\nwhile True:\n    x = x + x",
}


@pytest.mark.parametrize("name", sorted(ARENA_BOMBS))
def test_huge_allocations_trap_before_they_happen(name: str) -> None:
    result = run_source(ARENA_BOMBS[name], arena=16 << 20)
    assert result.outcome.status == Status.TRAP, result.outcome
    trap = result.outcome.trap
    assert trap is not None and trap.code in (TrapCode.ARENA_EXCEEDED, TrapCode.OUT_OF_GAS), trap
    assert trap.line >= 1


def test_the_arena_frees_what_a_program_drops() -> None:
    source = "total = 0\nfor i in range(200):\n    s = 'x' * 100_000 + str(i)\n    total += len(s)\nprint(total)\n"
    result = run_source(source, arena=1 << 20)
    assert result.output == "20000490\n"
    assert result.vm.arena.recounts > 0
    assert result.vm.arena.allocated <= 1 << 20


def test_gas_is_charged_for_big_work() -> None:
    cheap = run_source("x = 3 * 3")
    big = run_source("x = (7 ** 5000) * (7 ** 5000)")
    assert big.outcome.gas_used > cheap.outcome.gas_used + 100


# ----------------------------------------------------------------------------------------------
# Property tests against CPython

_SMALL = st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
_OPS = ["+", "-", "*", "//", "%", "&", "|", "^", "<", "<=", "==", "!="]


def _int_expr(depth: int) -> st.SearchStrategy[str]:
    leaf = _SMALL.map(lambda n: f"({n})")
    if depth == 0:
        return leaf
    sub = _int_expr(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(_OPS), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(sub, st.integers(min_value=0, max_value=40)).map(lambda t: f"({t[0]} ** {t[1]})"),
        st.tuples(sub, st.integers(min_value=0, max_value=90)).map(lambda t: f"({t[0]} << {t[1]})"),
        st.tuples(sub, st.integers(min_value=0, max_value=90)).map(lambda t: f"({t[0]} >> {t[1]})"),
        sub.map(lambda s: f"(~{s})"),
        sub.map(lambda s: f"(-{s})"),
        sub.map(lambda s: f"abs({s})"),
        st.tuples(sub, sub).map(lambda t: f"divmod({t[0]}, {t[1]})"),
    )


def _python_answer(expr: str) -> str:
    try:
        return repr(eval(expr))
    except Exception as e:
        return repr(e)


def _crush_answers(exprs: list[str]) -> list[str]:
    lines = []
    for e in exprs:
        lines += ["try:", f"    print(repr({e}))", "except Exception as e:", "    print(repr(e))"]
    result = run_source("\n".join(lines) + "\n")
    return result.output.splitlines()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_int_expr(3), min_size=1, max_size=8))
def test_integer_semantics_match_cpython(exprs: list[str]) -> None:
    assert _crush_answers(exprs) == [_python_answer(e) for e in exprs]


_TEXT = st.text(alphabet=st.sampled_from(list("ab ,.-_xXé\t\n1")), max_size=12)
_STR_CALLS = [
    "{s}.split()", "{s}.split({t})", "{s}.strip()", "{s}.strip({t})", "{s}.replace({t}, {u})", "{s}.find({t})",
    "{s}.count({t})", "{s}.upper()", "{s}.lower()", "{s}.title()", "{s}.startswith({t})", "{s}.endswith({t})",
    "{s}.partition({t})", "{s}.rsplit({t}, 1)", "{s}.splitlines()", "{s}.zfill(8)", "{s}.center(9, '*')",
    "{s}[1:4]", "{s}[::-2]", "{s} + {t}", "{s} * 2", "{t} in {s}", "{s} < {t}", "len({s})", "{t}.join([{s}, {u}])",
    "(lambda v: f'{{v!r:>12}}')({s})", "'%-8s|' % {s}", "sorted({s})", "{s}.isdigit()", "{s}.isalpha()",
    "{s}.isspace()",
    "{s}.expandtabs(4)", "{s}.ljust(6, '.')", "{s}.removeprefix({t})", "list(reversed({s}))", "{s}.index({t})",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_STR_CALLS), _TEXT, _TEXT, _TEXT), min_size=1, max_size=8))
def test_string_semantics_match_cpython(calls: list[tuple[str, str, str, str]]) -> None:
    exprs = [tpl.format(s=repr(s), t=repr(t or "a"), u=repr(u)) for tpl, s, t, u in calls]
    source = "\n".join(f"try:\n    print(repr({e}))\nexcept Exception as e:\n    print('!', repr(e).split('(')[0])"
                       for e in exprs) + "\n"
    expected = []
    for e in exprs:
        try:
            expected.append(repr(eval(e)))
        except Exception as ex:
            expected.append(f"! {type(ex).__name__}")
    assert run_source(source).output.splitlines() == expected


def test_the_interpreters_opcode_literals_match_the_instruction_set() -> None:
    """vm.interpret dispatches on literal opcode numbers, each commented with its name."""
    import re

    from crush.casm import Op
    source = (Path(__file__).resolve().parents[2] / "crush" / "vm.py").read_text()
    checked = 0
    for m in re.finditer(r"op == (\d+)(?: or op == (\d+))?:  # ([A-Z_]+)(?:, ([A-Z_]+))?", source):
        assert Op(int(m.group(1))).name == m.group(3), m.group(0)
        if m.group(2):
            assert Op(int(m.group(2))).name == m.group(4), m.group(0)
        checked += 1
    assert checked >= 30
    for m in re.finditer(r"op < (\d+):  # -+ ", source):
        assert int(m.group(1)) in (17, 25, 30, 53, 63)
