"""The compiler: CAST in, verified CASM out; errors name file:line:col; control flow through
try/finally matches CPython's order; scopes, closures, the line table and declared capabilities."""

from __future__ import annotations

from typing import Any

import pytest

from crush import cast
from crush.casm import Op, disassemble
from crush.compiler import CompileError, compile_cast
from crush.verify import verify
from crush.vm import prelude
from tests.crush.support import compile_source, cpython, run, run_source


def doc(*body: Any) -> dict[str, Any]:
    return {"cast": cast.CAST_VERSION, "lang": "python", "file": "hand.py", "body": ["std.seq", *body]}


def at(line: int, col: int, node: Any) -> list[Any]:
    return ["@", line, col, node]


def call(name: str, *args: Any) -> list[Any]:
    return ["py.call", ["std.builtin", f"py.{name}"], list(args), []]


@pytest.mark.parametrize(("body", "where", "message"), [
    ([at(3, 4, ["std.return", ["std.int", "1"]])], "hand.py:3:4", "'return' outside function"),
    ([at(2, 0, ["std.break"])], "hand.py:2:0", "'break' outside loop"),
    ([at(5, 6, ["std.expr", ["std.builtin", "py.open"]])], "hand.py:5:6", "unknown builtin 'py.open'"),
    ([at(1, 0, ["std.expr", ["std.int", "9" * 4301]])], "hand.py:1:0", "more than 4300 digits"),
    ([at(7, 2, ["std.expr", ["std.fn", "f", [["a", None], ["a", None]], ["std.pass"]]])], "hand.py:7:2",
     "duplicate parameter"),
    ([at(4, 0, ["std.expr", ["std.fn", "f", [["a", ["std.int", "1"]], ["b", None]], ["std.pass"]]])],
     "hand.py:4:0", "without a default follows"),
    ([at(9, 1, ["std.try", ["std.pass"], [[None, None, ["std.pass"]], ["ValueError", None, ["std.pass"]]], None])],
     "hand.py:9:1", "default 'except:' must be last"),
    ([at(2, 3, ["std.try", ["std.pass"], [["Nonsense", None, ["std.pass"]]], None])], "hand.py:2:3",
     "unknown exception type"),
    ([at(6, 0, ["std.expr", ["std.cap", "fs.read"]])], "hand.py:6:0", "fs.read takes 1..1 arguments"),
    ([at(1, 1, ["std.expr", ["py.format", ["std.int", "1"], "a", ""]])], "hand.py:1:1", "unsupported conversion"),
])
def test_compile_errors_name_file_line_and_column(body: list[Any], where: str, message: str) -> None:
    with pytest.raises(CompileError) as info:
        compile_cast(doc(*body))
    assert str(info.value).startswith(where + ": ")
    assert message in str(info.value)


def test_malformed_and_deep_documents_are_one_cast_error() -> None:
    with pytest.raises(cast.CastError, match="unknown node"):
        compile_cast(doc(["std.nope"]))
    deep: list[Any] = ["std.int", "1"]
    for _ in range(100_000):
        deep = ["py.neg", deep]
    with pytest.raises(cast.CastError, match="nested deeper"):
        compile_cast(doc(["std.expr", deep]))
    near: list[Any] = ["std.int", "1"]
    for _ in range(cast.MAX_DEPTH - 10):
        near = ["py.neg", near]
    assert run(compile_cast(doc(["std.expr", call("print", near)]))).output == "1\n"


def test_compilation_is_deterministic_and_verified() -> None:
    source = "def f(x, y=2):\n    return [x, y]\nprint(f(1), f(y=3, x=0))\n"
    a, b = compile_source(source), compile_source(source)
    assert a.hash == b.hash and disassemble(a) == disassemble(b)
    verify(a, prelude().names)


def test_the_line_table_maps_instructions_to_source_lines() -> None:
    program = compile_source("x = 1\n\ny = [x,\n     x / 0]\n")
    lines = {line for _, line in program.funcs[0].lines}
    assert {1, 3, 4} <= lines
    result = run(program)
    assert result.outcome.error is not None and result.outcome.error.tb == [["<module>", 4]]


def test_declared_capabilities_are_the_ones_used_in_order() -> None:
    program = compile_source("import exo\nexo.log('a')\nif False:\n    exo.fs.read('/x')\nexo.log('b')\n")
    assert program.caps == ("log", "fs.read")
    assert [ins.args for ins in program.funcs[0].code if ins.op == Op.CAP] == [(0, 1), (1, 1), (0, 1)]


def test_closures_share_cells_and_see_later_assignments() -> None:
    source = """
def outer():
    fs = []
    for i in range(3):
        def f(k=i):
            return k * 10 + n
        fs.append(f)
    n = 5
    def g():
        nonlocal n
        n += 1
        return n
    return fs, g
fs, g = outer()
print([f() for f in fs], g(), [f() for f in fs])
def counter():
    count = 0
    def inc():
        nonlocal count
        count += 1
        return count
    return inc
a, b = counter(), counter()
print(a(), a(), b(), a())
"""
    assert run_source(source).output == cpython(source)
    program = compile_source(source)
    assert any(fn.ncells for fn in program.funcs) and any(fn.nfree for fn in program.funcs)


FINALLY = """
log = []
def f(mode):
    for i in range(3):
        try:
            try:
                if mode == "return" and i == 1:
                    return ("returned", i)
                if mode == "break" and i == 1:
                    break
                if mode == "continue" and i == 0:
                    continue
                if mode == "raise" and i == 2:
                    raise ValueError(i)
                log.append(("body", i))
            finally:
                log.append(("inner finally", i))
        except ValueError as e:
            log.append(("caught", e))
        finally:
            log.append(("outer finally", i))
    return "end"
for mode in ["plain", "return", "break", "continue", "raise"]:
    log.clear()
    print(mode, f(mode), log)
def g():
    try:
        return "try"
    finally:
        print("finally before the return completes")
print(g())
def reraise():
    try:
        try:
            1 / 0
        except ZeroDivisionError:
            raise
    except ArithmeticError as e:
        return repr(e)
print(reraise())
"""


def test_try_finally_break_continue_return_match_cpython() -> None:
    assert run_source(FINALLY).output == cpython(FINALLY)


def test_an_except_name_is_unbound_after_its_handler() -> None:
    handler = [["KeyError", "e", ["std.set", ["std.gvar", "err"], ["std.gvar", "e"]]]]
    program = compile_cast(doc(
        ["std.try", ["std.raise", call("KeyError", ["std.str", "k"])], handler, None],
        ["std.expr", call("print", call("repr", ["std.gvar", "err"]))],
        at(9, 0, ["std.expr", call("print", ["std.gvar", "e"])]),
    ))
    result = run(program)
    assert result.output == "KeyError('k')\n"
    assert result.transcript.endswith("NameError: name 'e' is not defined\n")
    assert result.outcome.error is not None and result.outcome.error.tb == [["<module>", 9]]


def test_no_handler_covers_its_own_finally_copy() -> None:
    source = """
def f():
    for i in range(2):
        try:
            break
        finally:
            print("finally", i)
            try:
                raise ValueError("in finally")
            except ValueError:
                print("handled in finally")
    return "out"
print(f())
"""
    assert run_source(source).output == cpython(source)


def test_typed_operations_and_plain_calls() -> None:
    """std.op names a typed operation of a language (a VM builtin of that name); std.call calls
    with positional arguments; a name outside the families, or one the VM lacks, is refused."""
    add = ["std.op", "js.add", ["std.str", "n="], ["std.float", 1.0]]
    assert run(compile_cast(doc(["std.expr", call("print", add)]))).output == "n=1\n"
    overflow = ["std.op", "rs.add.u8", ["std.int", "200"], ["std.int", "100"]]
    result = run(compile_cast(doc(["std.expr", overflow])))
    assert result.outcome.error is not None and result.outcome.error.args == ("attempt to add with overflow",)
    fn = ["std.fn", "f", [["x", None]], ["std.return", ["py.mul", ["std.var", "x"], ["std.int", "2"]]]]
    assert run(compile_cast(doc(["std.expr", call("print", ["std.call", fn, [["std.int", "21"]]])]))).output == "42\n"
    with pytest.raises(cast.CastError, match="not a typed operation"):
        compile_cast(doc(["std.expr", ["std.op", "py.add", ["std.int", "1"], ["std.int", "2"]]]))
    program = compile_cast(doc(["std.expr", ["std.op", "js.nope"]]))
    trap = run(program).outcome.trap  # the verifier refuses an unknown builtin before anything runs
    assert trap is not None and trap.code.name == "VERIFY_FAILED" and "js.nope" in trap.message
