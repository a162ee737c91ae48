"""The JavaScript walker against node: the corpus prints the same, ends the same way.

For every program in tests/crush/corpus_js, node's output (`node prog.js`, run at test time) is the
expected stdout; CRUSH walks, compiles and runs it in both execution modes, which must print exactly
that, fail exactly when node fails (an uncaught throw), and use the same gas as each other. Then the
walker's refusals (one error naming file:line:col), run-time errors naming the .js file and line,
and hostile sources.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from crush.compiler import compile_cast
from crush.walkers import WalkError, walk_source
from tests.crush.support import assert_modes_use_the_same_gas, check_corpus_program, run

CORPUS = sorted((Path(__file__).resolve().parent / "corpus_js").glob("*.js"))
NODE = shutil.which("node") or shutil.which("nodejs")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (qemu/setup-host installs nodejs)")


def node(path: Path) -> tuple[str, bool]:
    assert NODE is not None
    r = subprocess.run([NODE, str(path)], capture_output=True, timeout=60, check=False, cwd=path.parent)
    return r.stdout.decode("utf-8"), r.returncode == 0


def walk(source: str, name: str = "prog.js") -> dict:  # type: ignore[type-arg]
    return walk_source(source.encode(), name)


def test_the_corpus_has_25_programs() -> None:
    assert len(CORPUS) >= 25


@needs_node
@pytest.mark.parametrize("fast", [False, True], ids=["interpreter", "fast"])
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_program_prints_what_node_prints(path: Path, fast: bool) -> None:
    check_corpus_program(path, *node(path), fast)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_both_modes_use_the_same_gas(path: Path) -> None:
    assert_modes_use_the_same_gas(path)


@pytest.mark.parametrize(("source", "where", "what"), [
    ("let a = 1;\nclass A {}\n", "2:1", "unsupported class"),
    ("let x = 1;\nif (x == 1) {}\n", "2:5", "unsupported loose equality =="),
    ("var x = 1;\n", "1:1", "unsupported var"),
    ("let o = {a: 1};\nlet {a} = o;\n", "2:5", "unsupported binding (destructuring)"),
    ("function f() { return this; }\n", "1:23", "unsupported this"),
    ("let f = (...xs) => xs;\n", "1:10", "unsupported parameter (rest parameter)"),
    ("let r = /ab+/;\n", "1:9", "unsupported regular expression"),
    ("let i = 0;\nlet j = i++;\n", "2:9", "unsupported assignment used as a value"),
    ("  for (let i = 0; i < 3; i++) { setTimeout(() => i); }\n", "1:3", "unsupported closure in a for loop"),
    ("let __crush_map = 1;\n", "1:5", "reserved"),
    ("const k = 1;\n{\n  let k = 2;\n  k = 3;\n}\nk += 1;\n", "6:1", "unsupported assignment to the constant 'k'"),
    ("for (;;) {\n  switch (1) { case 1: continue; }\n}\n", "2:24", "unsupported continue inside switch"),
    ("let s = 'é';\nlet t = é + ;\n", "2:11", "syntax error"),
    ("let x = 2;\nconsole.log(Math.log(x));\n", "2:13", "unsupported Math.log() (the subset has Math.E, Math.PI, "),
    ("let r = Math.LN2;\n", "1:9", "unsupported Math.LN2"),
    ("let m = Map;\n", "1:9", "unsupported Map here"),
    ("let f = parseInt;\n", "1:9", "unsupported parseInt here (the subset has parseInt(...))"),
    ("setTimeout(() => 1, 10);\n", "1:1", "unsupported setTimeout here"),
    ("console.error('x');\n", "1:1", "unsupported console.error()"),
    ("let s = 'ab';\nconsole.log(s.replace('a', 'b'));\n", "2:15", "unsupported method replace"),
    ("console.log((255).toString(16));\n", "1:19", "unsupported toString with a radix"),
    ("exo.fs.remove('/x');\n", "1:1", "unsupported capability exo.fs.remove()"),
    ("let a = [1, 2];\na.length = 1;\n", "2:1", "unsupported assignment to length"),
    ("let a = new Array(3);\n", "1:9", "unsupported Array(n) without .fill(value)"),
    ("let b = new Array(3).fill(0);\nlet c = Array(4).map((x) => 1);\n", "2:9", "unsupported Array(n) without"),
    ("let d = new Array(3).fill(0, 1);\n", "1:9", "unsupported Array(n) without .fill(value)"),
    ("let o = {a: 1};\nconsole.log(JSON.stringify(o, null, 2));\n", "2:13", "unsupported JSON.stringify with a"),
])
def test_unsupported_constructs_get_one_error_with_line_and_column(source: str, where: str, what: str) -> None:
    with pytest.raises(WalkError) as e:
        walk(source, "bad.js")
    assert str(e.value).startswith(f"bad.js:{where}: "), str(e.value)
    assert what in str(e.value)
    assert "\n" not in str(e.value)


def test_names_the_program_binds_shadow_the_builtins() -> None:
    """Only a binding construct's own name is bound (`let x = NaN` binds x: NaN stays the number)."""
    source = ("const Math = {log: (x) => x + 1};\nlet x = NaN;\nfunction Map(Set) { return Set; }\n"
              "console.log(Math.log(1), x, Map(3));\n")
    result = run(compile_cast(walk(source)))
    assert (result.output, result.outcome.error) == ("2 NaN 3\n", None)


@pytest.mark.parametrize("value", ["'ab'", "[1, 2]", "1.5", "true", "({})", "(() => 1)"])
def test_the_refused_methods_are_missing_from_every_value(value: str) -> None:
    """The walker refuses `x.NAME()` for the methods no value of the subset has (javascript.py
    _OTHER_METHODS): each of them, called anyway (CAST written by hand), is a TypeError in the VM."""
    from crush.walkers.javascript import _OTHER_METHODS

    target = walk(f"let v = {value};\n")["body"]
    for name in sorted(_OTHER_METHODS):
        call = ["std.expr", ["std.op", "js.method", ["std.var", "v"], ["std.str", name]]]
        doc = {"cast": 1, "lang": "javascript", "file": "m.js", "body": ["std.seq", target, call]}
        result = run(compile_cast(doc))
        assert result.outcome.error is not None and result.outcome.error.etype.name == "TypeError", (name, value)


def test_run_time_errors_name_the_js_file_and_line() -> None:
    source = "function f(x) {\n  return x.y.z;\n}\nconsole.log('a');\nf({});\n"
    result = run(compile_cast(walk(source, "err.js")))
    assert result.output == "a\n"
    assert result.outcome.error is not None
    assert result.outcome.error.etype.name == "TypeError"
    assert ["f", 2] in result.outcome.error.tb and ["<module>", 5] in result.outcome.error.tb


def test_gas_runs_out_in_an_endless_js_loop() -> None:
    result = run(compile_cast(walk("let i = 0;\nwhile (true) { i++; }\n", "loop.js")), gas=100_000)
    assert result.outcome.trap is not None and result.outcome.trap.code.name == "OUT_OF_GAS"


@pytest.mark.parametrize(("data", "message"), [
    (b"let x = " + b"[" * 100_000 + b"]" * 100_000 + b";", "nesting too deep"),
    (b"let x = " + b"(" * 100_000 + b"1" + b")" * 100_000 + b";", "nesting too deep"),
    (b"let x = '\xff';", "invalid UTF-8"),
    (b"let x = 1;\0", "NUL"),
    (b"x" * (9 << 20), "source too large"),
    (b"let x = " + b"`${" * 5000 + b"1" + b"}`" * 5000 + b";", "nesting too deep"),
    (b"let f = " + b"() => " * 50_000 + b"1;", "nesting too deep"),
    (b"if (" + b"!" * 100_000 + b"x) {}", "nesting too deep"),
    (b"let z = " + b"a && " * 50_000 + b"b;", "nesting too deep"),
    (b"(" * 50_000 + b"x" + b")" * 50_000 + b" = 1;", "nesting too deep"),
], ids=["brackets", "parentheses", "utf8", "nul", "huge", "templates", "arrows", "negations", "conjunctions",
        "target"])
def test_hostile_sources_get_one_error(data: bytes, message: str) -> None:
    with pytest.raises(WalkError) as e:
        walk_source(data, "hostile.js")
    assert message in str(e.value)


def test_the_walker_picks_by_extension() -> None:
    assert walk_source(b"console.log(1 + 1);", "a.js")["lang"] == "javascript"
    assert walk_source(b"print(1 + 1)", "a.py")["lang"] == "python"
    with pytest.raises(WalkError, match="no walker"):
        walk_source(b"", "a.ts")
