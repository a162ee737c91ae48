"""The Python walker (crush/walkers/python.py): its CAST, its refusals, its errors, its limits.

- structure: small programs lower to the CAST the contract describes (scoping, builtins, positions);
- semantics: the walker's CAST, read by the reference evaluator (cast_eval.py), prints what CPython
  prints, for every corpus program and for generated programs (hypothesis);
- refusals: each construct outside the subset is one WalkError naming its exact position;
- syntax: what tree-sitter accepts but CPython refuses is refused too;
- hostile input: huge, deep, binary or malformed sources give one WalkError or a valid document,
  never another exception.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crush import cast
from crush.walkers import WalkError, walk_source
from crush.walkers.python import MAX_CAST_DEPTH, MAX_NESTING, MAX_SOURCE_BYTES, MAX_TOKENS, walk, walk_bytes
from tests.crush import cast_eval, cpython, strategies
from tests.crush.snippets import SNIPPETS

ERROR_LINE = re.compile(r"^[^\n]*:\d+:\d+: [^\n]+$")


def body(source: str) -> list[Any]:
    doc = walk(source, "t.py")
    cast.check(doc)
    result: list[Any] = doc["body"]
    return result


def error(source: str, filename: str = "t.py") -> str:
    with pytest.raises(WalkError) as info:
        walk(source, filename)
    text = str(info.value)
    assert ERROR_LINE.match(text), text
    return text


def strip_positions(node: Any) -> Any:
    if isinstance(node, list):
        if node and node[0] == "@":
            return strip_positions(node[3])
        return [strip_positions(n) for n in node]
    return node


def nodes(tree: Any) -> list[list[Any]]:
    """Every node of a CAST tree, found by the operand shapes of cast.NODES (not every list is a node:
    an f-string's parts, a call's keyword arguments, a function's parameters are operands)."""
    out: list[list[Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        if node[0] == "@":
            stack.append(node[3])
            continue
        shapes = cast.NODES[node[0]].operands
        for i, arg in enumerate(node[1:]):
            shape = shapes[min(i, len(shapes) - 1)].lstrip("*").rstrip("?")
            if arg is None or isinstance(arg, str | bool | int | float):
                continue
            if shape in ("E", "S", "T", "node", "spec"):
                stack.append(arg)
            elif shape in ("[E]", "[S]", "parts"):
                stack.extend(a for a in arg if isinstance(a, list))
            elif shape == "pair":
                stack.extend(arg)
            elif shape in ("params", "kwargs"):
                stack.extend(v for _, v in arg if v is not None)
            elif shape == "handlers":
                stack.extend(h[2] for h in arg)
    return out


# --- structure ------------------------------------------------------------------------------------

def test_document_envelope_and_positions() -> None:
    doc = walk("x = 41\nprint(x + 1)\n", "prog.py")
    cast.check(doc)
    assert doc == {"cast": cast.CAST_VERSION, "lang": "python", "file": "prog.py", "body": [
        "std.seq",
        ["@", 1, 0, ["std.set", ["std.gvar", "x"], ["std.int", "41"]]],
        ["@", 2, 0, ["std.expr", ["py.call", ["std.builtin", "py.print"],
                                  [["@", 2, 6, ["py.add", ["std.gvar", "x"], ["std.int", "1"]]]], []]]],
    ]}
    assert json.loads(json.dumps(doc)) == doc  # plain JSON: the stable ABI


def test_function_locals_are_declared_at_the_top() -> None:
    source = ("def f(a, b=2):\n"
              "    if a:\n"
              "        total = a\n"
              "    for i in range(b):\n"
              "        total = i\n"
              "    return total\n")
    fn = strip_positions(body(source))[1][2]
    assert fn[:3] == ["std.fn", "f", [["a", None], ["b", ["std.int", "2"]]]]
    assert fn[3][:3] == ["std.seq", ["std.let", "total"], ["std.let", "i"]]
    assert ["std.var", "total"] in nodes(fn) and ["std.gvar", "total"] not in nodes(fn)


def test_names_resolve_to_locals_closures_globals_and_builtins() -> None:
    source = ("counter = 0\n"
              "def outer(len):\n"
              "    n = len\n"
              "    def inner():\n"
              "        global counter\n"
              "        counter += n\n"
              "        return max(n, counter)\n"
              "    return inner\n"
              "print(len('abc'), outer(2)())\n")
    tree = strip_positions(body(source))
    inner = next(n for n in nodes(tree) if n[0] == "std.fn" and n[1] == "inner")
    assert ["std.gvar", "counter"] in nodes(inner)
    assert ["std.var", "n"] in nodes(inner)           # a closure over outer's local
    assert ["std.builtin", "py.max"] in nodes(inner)
    outer = next(n for n in nodes(tree) if n[0] == "std.fn" and n[1] == "outer")
    assert ["std.var", "len"] in nodes(outer)          # a parameter shadows the builtin inside outer only
    assert ["std.builtin", "py.len"] in nodes(tree[-1])


def test_a_global_that_shadows_a_builtin_is_a_variable_when_bound_first() -> None:
    tree = strip_positions(body("sum = 0\nfor v in [1, 2]:\n    sum += v\nprint(sum)\n"))
    assert ["std.gvar", "sum"] in nodes(tree) and ["std.builtin", "py.sum"] not in nodes(tree)


def test_conditions_are_bools() -> None:
    tree = strip_positions(body("x = 3\nif x:\n    pass\nwhile x < 0:\n    pass\ny = 1 if not x else 2\n"))
    assert tree[2][1] == ["py.truth", ["std.gvar", "x"]]
    assert tree[3][1] == ["py.lt", ["std.gvar", "x"], ["std.int", "0"]]      # already a bool
    assert tree[4][2][1] == ["py.not", ["std.gvar", "x"]]


def test_positions_wrap_what_can_raise_and_nothing_twice() -> None:
    b = body("x = 1\ny = [x,\n     x // 0]\n")
    assert b[2] == ["@", 2, 0, ["std.set", ["std.gvar", "y"],
                                ["std.list", ["std.gvar", "x"], ["@", 3, 5, ["py.floordiv", ["std.gvar", "x"],
                                                                             ["std.int", "0"]]]]]]
    b = body("print(\n  x)\n")
    assert b[1][3][1][2] == [["@", 2, 2, ["std.gvar", "x"]]]  # a name on another line names its line
    for node in nodes(b):  # no wrapper directly inside a wrapper of the same position
        if node[0] == "@" and node[3][0] == "@":
            assert node[1:3] != node[3][1:3]


def test_literals() -> None:
    source = ("print(0x_ff, 0o17, 0b101, 1_000, 00, -5, 1.5e3, 1e400, -0.0, 'a' \"b\" '''c''',"
              " r'\\n', '\\x41\\101\\u0042\\N{BULLET}\\\nz', True, None)\n")
    values = strip_positions(body(source))[1][1][2]
    assert values == [["std.int", "255"], ["std.int", "15"], ["std.int", "5"], ["std.int", "1000"], ["std.int", "0"],
                      ["std.int", "-5"], ["std.float", 1500.0], ["std.float", "inf"], ["std.float", -0.0],
                      ["std.str", "abc"], ["std.str", "\\n"], ["std.str", "AAB\u2022z"], ["std.bool", True],
                      ["std.none"]]


def test_fstrings() -> None:
    value = strip_positions(body("w = 3\nprint(f'{w=} {w!r:>{w}.{w}} {{x}}')\n"))[2][1][2][0]
    assert value == ["py.fstring", [
        "w=", ["py.format", ["std.gvar", "w"], "r", ""], " ",
        ["py.format", ["std.gvar", "w"], "r",
         ["py.fstring", [">", ["py.format", ["std.gvar", "w"], "", ""], ".",
                         ["py.format", ["std.gvar", "w"], "", ""]]]],
        " {x}"]]


def test_capabilities() -> None:
    tree = strip_positions(body("import exo\nexo.log(exo.fs.read('/data/a'))\nexo.yield_()\nexo.control.status()\n"))
    assert tree[1] == ["std.expr", ["std.cap", "log", ["std.cap", "fs.read", ["std.str", "/data/a"]]]]
    assert tree[2] == ["std.expr", ["std.cap", "yield"]]
    assert tree[3] == ["std.expr", ["std.cap", "control.status"]]


def test_every_node_the_walker_emits_is_in_the_catalogue() -> None:
    seen: set[str] = set()
    for path in cpython.corpus_programs():
        seen |= {n[0] for n in nodes(walk(path.read_text(), path.name)["body"])}
    assert seen <= set(cast.NODES)
    # the corpus exercises most of the catalogue (std.block and std.cap are other walkers' and exo's)
    assert len(set(cast.NODES) - seen - {"std.block", "std.cap"}) <= 4, sorted(set(cast.NODES) - seen)


# --- semantics: the walker's CAST, read by the reference evaluator, against CPython ------------------

@pytest.mark.parametrize("path", cpython.corpus_programs(), ids=lambda p: p.stem)
def test_corpus_program_means_what_cpython_runs(path: Path) -> None:
    expected = cpython.run_file(path)
    doc = walk(path.read_text(), path.name)
    cast.check(doc)
    out, err = cast_eval.run(doc)
    assert (out, err) == (expected.stdout, expected.error)


@pytest.mark.parametrize("name", SNIPPETS)
def test_snippet_means_what_cpython_runs(name: str) -> None:
    source = SNIPPETS[name]
    expected = cpython.run_source(source)
    assert cast_eval.run(walk(source, "t.py")) == (expected.stdout, expected.error)


def check_generated(source: str) -> None:
    expected = cpython.run_source(source)
    doc = walk(source, "gen.py")
    cast.check(doc)
    assert cast_eval.run(doc) == (expected.stdout, expected.error), source


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.int_programs())
def test_generated_integer_expressions(source: str) -> None:
    check_generated(source)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.str_programs())
def test_generated_string_expressions(source: str) -> None:
    check_generated(source)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategies.programs())
def test_generated_programs(source: str) -> None:
    check_generated(source)


# --- refusals: one error, its exact position ---------------------------------------------------------

UNSUPPORTED = [
    ("class A:\n    pass\n", "t.py:1:1: unsupported class definition"),
    ("import os\n", "t.py:1:1: unsupported import (only `import exo`, at the top level of the module)"),
    ("x = 1\nfrom math import pi\n", "t.py:2:1: unsupported from-import"),
    ("with open('f') as f:\n    pass\n", "t.py:1:1: unsupported with statement"),
    ("def f():\n    yield 1\n", "t.py:2:5: unsupported yield"),
    ("async def f():\n    pass\n", "t.py:1:1: unsupported async function"),
    ("def f():\n    return g()\n@f\ndef g():\n    pass\n", "t.py:3:1: unsupported decorator"),
    ("x = [1]\nif (n := len(x)) > 0:\n    pass\n", "t.py:2:5: unsupported assignment expression (:=)"),
    ("print(*[1, 2])\n", "t.py:1:7: unsupported * and ** arguments"),
    ("def f(**kw):\n    pass\n", "t.py:1:7: unsupported *args and **kwargs parameters"),
    ("x = {1, 2}\n", "t.py:1:5: unsupported set display"),
    ("x = {c for c in 'ab'}\n", "t.py:1:5: unsupported set comprehension"),
    ("x = sum(v for v in [1])\n", "t.py:1:8: unsupported generator expression here (use a list comprehension)"),
    ("match 1:\n    case 1:\n        pass\n", "t.py:1:1: unsupported match statement"),
    ("x = 'abc'\ny = x.upper\n", "t.py:2:5: unsupported attribute access"),
    ("x = [1]\nx.y = 2\n", "t.py:2:1: unsupported attribute assignment"),
    ("a = [1]\nb = [1]\nprint(a is b)\n", "t.py:3:7: unsupported 'is' comparison (only with None, True or False)"),
    ("def f():\n    pass\nglobal x\n", "t.py:3:1: unsupported global statement at module level"),
    ("x = b'bytes'\n", "t.py:1:5: unsupported bytes literal"),
    ("x = 2j\n", "t.py:1:5: unsupported complex number"),
    ("x = [1, 2]\nfirst, *rest = x\n", "t.py:2:8: unsupported starred assignment"),
    ("x = [1, 2]\nx[0:1] = [3]\n", "t.py:2:1: unsupported slice assignment"),
    ("x = 1\ndel x\n", "t.py:2:5: unsupported del of a name (only del x[key])"),
    ("def f(a, *, b):\n    pass\n", "t.py:1:10: unsupported keyword-only parameters"),
    ("print(open('f'))\n", "t.py:1:7: unsupported builtin 'open'"),
    ("print(type(1))\n", "t.py:1:7: unsupported builtin 'type'"),
    ("print(f'{1!a}')\n", "t.py:1:11: unsupported !a conversion"),
    ("try:\n    pass\nexcept ValueError as e:\n    pass\nprint(e)\n",
     "t.py:5:7: unsupported use of 'e' outside the except clause that binds it "
     "(Python unbinds it when the clause ends)"),
    ("print(len([1]))\nlen = 3\n",
     "t.py:1:7: unsupported global 'len' that shadows the builtin and may be read before it is bound (rename it)"),
    ("x = exo\n", "t.py:1:5: unsupported use of 'exo' (only calls such as exo.fs.read(path))"),
    ("exo.net.open('x')\n", "t.py:1:1: unsupported capability exo.net.open"),
    ("raise ValueError('a') from None\n", "t.py:1:28: unsupported raise ... from"),
    ("x = [1] @ [2]\n", "t.py:1:9: unsupported operator @"),
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", "t.py:3:1: unsupported except*"),
    ("x = ...\n", "t.py:1:5: unsupported Ellipsis"),
    ("class_ = 1\nLOOKUP = {1: 2}\nprint(LOOKUP[1:2, 3])\n", "t.py:3:14: unsupported slice in a tuple subscript"),
    ("def f(x: MyType) -> None:\n    pass\n", "t.py:1:10: unsupported annotation 'MyType' (only builtin types)"),
    ("x = 'caf\u00e9'; y = [v for v in x]; z = x.nope\n", "t.py:1:37: unsupported attribute access"),
]


@pytest.mark.parametrize(("source", "message"), UNSUPPORTED,
                         ids=[m.split("unsupported ")[1][:40] for _, m in UNSUPPORTED])
def test_unsupported_construct_is_one_error_at_its_position(source: str, message: str) -> None:
    compile(source, "t.py", "exec")  # valid Python, only outside the subset
    assert error(source) == message


SYNTAX = [
    ('x = (1 +\n', "t.py:1:5: '(' was never closed"),
    ('f(1\n', "t.py:1:2: '(' was never closed"),
    ('x = [1, (2,\n', "t.py:1:9: '(' was never closed"),
    ('x = (1]\n', "t.py:1:7: closing parenthesis ']' does not match opening parenthesis '('"),
    ('x = (1,\n2]\n', "t.py:2:2: closing parenthesis ']' does not match opening parenthesis '(' on line 1"),
    ('x = )\n', "t.py:1:5: unmatched ')'"),
    ("x = 'abc\n", 't.py:1:5: unterminated string literal (detected at line 1)'),
    ('x = 1\ny = """abc\n\n', 't.py:2:5: unterminated triple-quoted string literal (detected at line 3)'),
    ('if x:\npass\n', "t.py:2:1: expected an indented block after 'if' statement on line 1"),
    ('if x:\n        a = 1\n    b = 2\n', 't.py:3:10: unindent does not match any outer indentation level'),
    ('  x = 1\n', 't.py:1:2: unexpected indent'),
    ('if x:\n\ta = 1\n        b = 2\n', 't.py:3:1: inconsistent use of tabs and spaces in indentation'),
    ('if x: a = 1\n    b = 2\n', 't.py:2:4: unexpected indent'),
    ('x = 0777\n',
     't.py:1:5: leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal integers'),
    ('x = 1__0\n', 't.py:1:6: invalid decimal literal'),
    ("x = ub'a'\n", 't.py:1:7: invalid syntax'),
    ("x = '\\x4'\n",
     "t.py:1:10: (unicode error) 'unicodeescape' codec can't decode bytes in position 0-2: truncated \\xXX escape"),
    ("x = '\\N{NO SUCH NAME}'\n",
     "t.py:1:23: (unicode error) 'unicodeescape' codec can't decode bytes in position 0-15: "
     "unknown Unicode character name"),
    ("x = f'}'\n", "t.py:1:9: f-string: single '}' is not allowed"),
    ("print 'hello'\n", "t.py:1:1: Missing parentheses in call to 'print'. Did you mean print(...)?"),
    ('def f(a=1, b):\n    pass\n', 't.py:1:12: non-default argument follows default argument'),
    ('def f(a, a):\n    pass\n', "t.py:1:10: duplicate argument 'a' in function definition"),
    ('f(a=1, a=2)\n', 't.py:1:8: keyword argument repeated: a'),
    ('f(a=1, 2)\n', 't.py:1:9: positional argument follows keyword argument'),
    ('return 1\n', "t.py:1:1: 'return' outside function"),
    ('break\n', "t.py:1:1: 'break' outside loop"),
    ('def f():\n    continue\n', "t.py:2:5: 'continue' not properly in loop"),
    ('def f():\n    nonlocal x\n', "t.py:2:5: no binding for nonlocal 'x' found"),
    ('nonlocal x\n', 't.py:1:1: nonlocal declaration not allowed at module level'),
    ('def f():\n    x = 1\n    global x\n', "t.py:3:5: name 'x' is assigned to before global declaration"),
    ('def f(x):\n    global x\n', "t.py:2:5: name 'x' is parameter and global"),
    ('try:\n    pass\nexcept:\n    pass\nexcept ValueError:\n    pass\n', "t.py:3:1: default 'except:' must be last"),
    ('x = 1; if x: pass\n', 't.py:1:8: invalid syntax'),
    ('(a, b) += 1\n', "t.py:1:1: 'tuple' is an illegal expression for augmented assignment"),
    ('f() = 1\n', "t.py:1:1: cannot assign to function call here. Maybe you meant '==' instead of '='?"),
    ('x = 1 if y\n', "t.py:1:5: expected 'else' after 'if' expression"),
    ('a <> b\n', 't.py:1:3: invalid syntax'),
    ('x = [1, 2\n', "t.py:1:5: '[' was never closed"),
    ('x = 1\ny = \n', 't.py:2:5: invalid syntax'),
    ('x = 1 +\\\n', 't.py:1:9: unexpected EOF while parsing'),
    ("x = 'a\nb'\n", 't.py:1:5: unterminated string literal (detected at line 1)'),
    ("x = f'{1\n}'\n", 't.py:1:5: unterminated string literal (detected at line 1)'),
    ('x = f\'{"\\n"}\'\n', 't.py:1:14: f-string expression part cannot include a backslash'),
    ("x = f'{1 # no}'\n", "t.py:1:16: f-string expression part cannot include '#'"),
    ('x = f"{d["k"]}"\n', "t.py:1:11: f-string: unmatched '['"),
    ("x = f'{lambda: 1}'\n", 't.py:1:8: f-string: invalid syntax'),
    ('x = [v for v in 1, 2]\n', 't.py:1:18: invalid syntax'),
    ('x = [v for v in y if lambda: v]\n', 't.py:1:22: invalid syntax'),
    ('x = 1 and lambda: 2\n', 't.py:1:11: invalid syntax'),
    ('x = not lambda: 2\n', 't.py:1:9: invalid syntax'),
    ('x = 1 if lambda: 2 else 3\n', 't.py:1:10: invalid syntax'),
    ('x = {,}\n', 't.py:1:6: invalid syntax'),
    ("raise ValueError, 'message'\n", 't.py:1:17: invalid syntax'),
    ('x = 1\nprint(x)\\\n', 't.py:2:10: unexpected EOF while parsing'),
    ('def f():\n    return\n  x = 1\n', 't.py:3:8: unindent does not match any outer indentation level'),
]


def cpython_error(source: str) -> str:
    """CPython's SyntaxError for `source` (a full compile: the parser, the symbol table, the compiler)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            compile(source, "t.py", "exec")
        except SyntaxError as e:
            return f"t.py:{e.lineno}:{e.offset}: {e.msg}"
    return "accepted"


@pytest.mark.parametrize(("source", "message"), SYNTAX, ids=[s.splitlines()[0][:30] for s, _ in SYNTAX])
def test_invalid_python_is_one_error_in_cpythons_words(source: str, message: str) -> None:
    """The message is CPython's own (asked here), at CPython's position; the one written next to each
    source says what it is, and must agree."""
    assert error(source) == cpython_error(source) == message


def test_columns_count_characters_and_start_at_one() -> None:
    assert error("s = 'héllo'; t = {1}\n") == "t.py:1:18: unsupported set display"
    assert error("x = 1\n\U0001f600 = 2\n").startswith("t.py:2:1: ")


def test_error_is_one_line_whatever_the_file_name() -> None:
    text = error("class A:\n    pass\n", filename="evil\nname\x1b[31m.py")
    assert "\n" not in text and "\x1b" not in text


def test_walk_source_picks_the_walker_by_extension() -> None:
    assert walk_source(b"print(1)\n", "a.py")["lang"] == "python"
    assert walk_source(b"fn main() {}", "a.rs")["lang"] == "rust"
    with pytest.raises(WalkError, match=r"^a\.go:1:1: no walker for this kind of file"):
        walk_source(b"package main", "a.go")


# --- hostile input ------------------------------------------------------------------------------------

def accepted_or_refused(source: str | bytes) -> dict[str, Any] | WalkError:
    """walk() gives a valid document or one WalkError: anything else fails the test."""
    try:
        doc = walk_bytes(source, "h.py") if isinstance(source, bytes) else walk(source, "h.py")
    except WalkError as e:
        assert ERROR_LINE.match(str(e)), str(e)
        return e
    cast.check(doc)
    return doc


DEEP = 100_000

HOSTILE = {
    "deep parentheses": "x = " + "(" * DEEP + "1" + ")" * DEEP + "\n",
    "deep lists": "x = " + "[" * DEEP + "]" * DEEP + "\n",
    "deep dicts": "x = " + "{1: " * DEEP + "1" + "}" * DEEP + "\n",
    "deep calls": "x = " + "f(" * DEEP + ")" * DEEP + "\n",
    "deep unary": "x = " + "-" * DEEP + "1\n",
    "deep not": "x = " + "not " * DEEP + "1\n",
    "deep subscripts": "x = a" + "[0]" * DEEP + "\n",
    "deep lambdas": "f = " + "lambda: " * DEEP + "1\n",
    "deep f-strings": "x = " + "f'{" * 50 + "1" + "}'" * 50 + "\n",
    "unclosed brackets": "x = " + "[" * DEEP + "\n",
    "long sum": "x = " + " + ".join(["1"] * DEEP) + "\n",
    "long comparison chain": "x = " + " < ".join(["1"] * DEEP) + "\n",
    "long and chain": "x = " + " and ".join(["1"] * 20_000) + "\n",
    "deep blocks": "".join("    " * i + "if x:\n" for i in range(300)) + "    " * 300 + "pass\n",
    "long elif chain": "x = 1\nif x == 0:\n    pass\n" + "".join(f"elif x == {i}:\n    pass\n" for i in range(1, 3000)),
    "deep functions": "".join("    " * i + f"def f{i}():\n" for i in range(300)) + "    " * 300 + "pass\n",
    "NUL byte": "x = 1\ny = '\0'\n",
    "lone surrogate": "x = '\ud800'\n",
    "huge integer literal": "x = " + "9" * 5000 + "\n",
    "huge hex literal": "x = 0x" + "f" * 100_000 + "\n",
    "many statements": "x = 1\n" * 50_000,
    "too many tokens": "x = [" + "1," * (MAX_TOKENS // 2 + 10) + "]\n",
    "control characters": "x = 1\x0b\x0c\x1b = 2\n",
    "only a BOM": "\ufeff",
    "CR line endings": "x = 1\ry = 2\rprint(x + y)\r",
    "deep comprehension nesting": "x = " + "[" * 40 + "i for i in range(1)" + "]" * 40 + "\n",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_source_is_one_error_or_a_document(name: str) -> None:
    limit = sys.getrecursionlimit()
    accepted_or_refused(HOSTILE[name])
    assert sys.getrecursionlimit() == limit


def test_nesting_limits_name_the_place() -> None:
    deep = "x = " + "(" * (MAX_NESTING + 5) + "1" + ")" * (MAX_NESTING + 5) + "\n"
    assert error(deep) == f"t.py:1:{4 + MAX_NESTING}: nesting too deep (the limit is {MAX_NESTING} levels)"
    shallow = "x = " + "(" * (MAX_NESTING - 5) + "1" + ")" * (MAX_NESTING - 5) + "\n"
    body(shallow)
    elifs = "x = 1\nif x == 0:\n    pass\n" + "".join(f"elif x == {i}:\n    pass\n" for i in range(1, MAX_CAST_DEPTH))
    assert re.match(r"t\.py:\d+:\d+: nesting too deep \(the limit is \d+ levels of CAST\)", error(elifs))
    body("x = 1\nif x == 0:\n    pass\n" + "".join(f"elif x == {i}:\n    pass\n" for i in range(1, 50)))


def test_a_ten_megabyte_string_literal_is_a_document() -> None:
    doc = accepted_or_refused("s = '" + "x" * 10_000_000 + "'\nprint(len(s))\n")
    assert isinstance(doc, dict)
    assert doc["body"][1][3][2] == ["std.str", "x" * 10_000_000]


def test_size_limits() -> None:
    e = accepted_or_refused(b"#" * (MAX_SOURCE_BYTES + 1))
    assert isinstance(e, WalkError) and "source too large" in str(e)
    e = accepted_or_refused(HOSTILE["too many tokens"])
    assert isinstance(e, WalkError) and "tokens" in str(e)


def test_bytes_that_are_not_utf8_are_refused_at_their_position() -> None:
    e = accepted_or_refused(b"x = 1\ny = '\xff'\n")
    assert str(e) == "h.py:2:6: invalid UTF-8 (byte 0xff)"
    e = accepted_or_refused(b"# -*- coding: latin-1 -*-\nx = 1\n")
    assert str(e) == "h.py:1:15: unsupported source encoding 'latin-1' (only UTF-8)"
    assert isinstance(accepted_or_refused(b"\xef\xbb\xbfprint(1)\n"), dict)  # a BOM is fine
    assert isinstance(accepted_or_refused(b"# coding: utf-8\nprint(1)\n"), dict)


def test_nul_and_surrogates_name_their_position() -> None:
    assert str(accepted_or_refused(HOSTILE["NUL byte"])) == "h.py:2:6: source code cannot contain null bytes"
    assert str(accepted_or_refused(HOSTILE["lone surrogate"])) == "h.py:1:6: invalid character (a lone surrogate)"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    accepted_or_refused(data)


# a refusal of a program CPython accepts must say why the subset does not take it
LEGITIMATE_REFUSALS = ("unsupported", "nesting too deep", "source too large", "integer literal too large",
                       "invalid UTF-8", "source code cannot contain null bytes", "invalid character")


def agrees_with_cpython(data: bytes) -> None:
    """The walker and CPython agree on `data`: what CPython refuses is refused, what it accepts is
    walked or refused as outside the subset (never as invalid Python)."""
    result = accepted_or_refused(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # `x[1, 2]` on a list: valid, if odd
        try:
            compile(data, "h.py", "exec")
        except (SyntaxError, ValueError) as e:  # ValueError: NUL bytes
            assert isinstance(result, WalkError), f"walked a program CPython refuses ({e})"
            return
    if isinstance(result, WalkError):
        assert result.message.startswith(LEGITIMATE_REFUSALS) and "a walker bug" not in result.message, \
            f"refused a valid program: {result}"


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(cpython.corpus_programs()), st.randoms(use_true_random=False))
def test_mutated_corpus_programs(path: Path, rnd: random.Random) -> None:
    """Corpus programs with bytes deleted, duplicated, replaced or inserted: the walker and CPython
    agree (this is how most of the walker's syntax checks were found)."""
    data = bytearray(path.read_bytes())
    for _ in range(rnd.randint(1, 6)):
        i = rnd.randrange(len(data))
        action = rnd.randrange(4)
        if action == 0:
            del data[i:i + rnd.randint(1, 20)]
        elif action == 1:
            data[i:i] = data[i:i + rnd.randint(1, 40)]
        elif action == 2:
            data[i] = rnd.choice(b"()[]{}:;,.=+-*/'\"\\\n\t #@!&|^~<>0aZ_\xc3\xa9\x00\xff")
        else:
            data[i:i] = rnd.choice([b" ", b"\n", b"    ", b"\t", b"if x:\n", b"else:", b"(", b"lambda:", b"not ", b"*",
                                    b"=", b"f'", b"{", b"}", b"\\\n", b"# c\n", b" # c"])
    agrees_with_cpython(bytes(data))


_INDENTS = ["", " ", "  ", "    ", "\t", "\t ", " \t", "        ", "\t\t", "    \t", "\f", "\f    "]
_LINES = ["if x:", "while x:", "for i in y:", "def f():", "try:", "else:", "except ValueError:", "finally:",
          "elif x:", "pass", "x = 1", "y = (1,\n   2)", "z = 1 + \\\n 2", "# comment", "", "s = '''a\n  b'''"]


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_INDENTS), st.sampled_from(_LINES)), min_size=1, max_size=8))
def test_indentation_agrees_with_cpython(lines: list[tuple[str, str]]) -> None:
    """Blocks indented with spaces, tabs, form feeds, comments and continuations in between: tabs
    count to the next multiple of 8 for CPython and as 8 columns for tree-sitter."""
    agrees_with_cpython(("x = 1\ny = [1]\n" + "".join(i + line + "\n" for i, line in lines)).encode())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategies.programs())
def test_generated_programs_walk_to_valid_cast(source: str) -> None:
    cast.check(walk(source, "gen.py"))


def test_the_document_is_the_same_in_every_process() -> None:
    """The CAST of a source does not depend on hash seeds or anything else of the process (the
    program hash of the CASM built from it must not either)."""
    script = ("import hashlib, json, sys\n"
              "from crush.walkers.python import walk\n"
              "from tests.crush.cpython import corpus_programs\n"
              "docs = [walk(p.read_text(), p.name) for p in corpus_programs()]\n"
              "print(hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest())\n")
    repo = Path(__file__).resolve().parent.parent.parent
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=repo,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "random")}
    assert len(digests) == 1
