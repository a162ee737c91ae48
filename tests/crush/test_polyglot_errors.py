"""Run-time errors of JavaScript and Rust programs name the original file and line: traps (gas,
arena, a refused capability) and uncaught exceptions/panics, in the interpreter and fast mode.
Capabilities work from both languages, under the same grants as Python's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crush.caps import ScopedHost
from crush.compiler import compile_cast
from crush.errors import TrapCode
from crush.walkers import WalkError, walk_source
from tests.crush.support import REPO, run

MODES = pytest.mark.parametrize("fast", [False, True], ids=["interpreter", "fast"])

GAS = {
    "js": "let n = 0;\nfunction spin() {\n  while (true) {\n    n = n + 1;\n  }\n}\nspin();\n",
    "rs": "fn spin() -> i64 {\n    let mut n: i64 = 0;\n    loop {\n        n = n % 7 + 1;\n    }\n}\n"
          "fn main() {\n    spin();\n}\n",
}
ARENA = {
    "js": "let s = 'x';\nconsole.log('start');\nwhile (true) {\n  s = s + s;\n}\n",
    "rs": "fn main() {\n    let mut v: Vec<i64> = Vec::new();\n    println!(\"start\");\n    loop {\n"
          "        v.push(1);\n    }\n}\n",
}
READ = {
    "js": "console.log('reading');\nconst text = exo.fs.read(PATH);\nconsole.log(text.length);\n",
    "rs": "fn main() {\n    println!(\"reading\");\n    let text = exo::fs::read(String::from(PATH));\n"
          "    println!(\"{}\", text.len());\n}\n",
}


def program(lang: str, source: str):  # type: ignore[no-untyped-def]
    return compile_cast(walk_source(source.encode(), f"prog.{lang}"))


@MODES
@pytest.mark.parametrize("lang", ["js", "rs"])
def test_out_of_gas_names_the_line(lang: str, fast: bool) -> None:
    result = run(program(lang, GAS[lang]), gas=200_000, fast=fast)
    trap = result.outcome.trap
    assert trap is not None and trap.code == TrapCode.OUT_OF_GAS
    assert trap.file == f"prog.{lang}" and trap.line in (3, 4)  # the loop's head or its body


@MODES
@pytest.mark.parametrize(("lang", "lines"), [("js", {4}), ("rs", {5})])
def test_arena_exceeded_names_the_line(lang: str, lines: set[int], fast: bool) -> None:
    result = run(program(lang, ARENA[lang]), arena=1 << 20, fast=fast)
    trap = result.outcome.trap
    assert result.output == "start\n"
    assert trap is not None and trap.code == TrapCode.ARENA_EXCEEDED, trap
    assert trap.file == f"prog.{lang}" and trap.line in lines


@pytest.mark.parametrize("lang", ["js", "rs"])
def test_capabilities_follow_the_grants(lang: str, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("top secret")
    ok = program(lang, READ[lang].replace("PATH", f'"{tmp_path / "data" / "a.txt"}"'))
    assert ok.caps == ("fs.read",)
    host = ScopedHost.from_grants([f"fs:{tmp_path / 'data'}:ro"])
    result = run(ok, host=host)
    assert result.output == "reading\n5\n" and result.outcome.trap is None
    bad = program(lang, READ[lang].replace("PATH", f'"{tmp_path / "secret.txt"}"'))
    result = run(bad, host=ScopedHost.from_grants([f"fs:{tmp_path / 'data'}:ro"]))
    trap = result.outcome.trap
    assert result.output == "reading\n"
    assert trap is not None and trap.code == TrapCode.CAPABILITY_DENIED
    assert (trap.file, trap.line) == (f"prog.{lang}", 2 if lang == "js" else 3)
    assert "top secret" not in str(trap)


@MODES
def test_an_uncaught_js_throw_names_the_throwing_line(fast: bool) -> None:
    source = ("function check(x) {\n  if (x > 1) {\n    throw new RangeError('big ' + x);\n  }\n}\n"
              "check(1);\ncheck(2);\n")
    result = run(program("js", source), fast=fast)
    error = result.outcome.error
    assert error is not None and error.etype.name == "RangeError" and error.args == ("big 2",)
    assert error.tb[0] == ["check", 3] and ["<module>", 7] in error.tb


CORPUS = sorted([*(Path(__file__).resolve().parent / "corpus_js").glob("*.js"),
                 *(Path(__file__).resolve().parent / "corpus_rs").glob("*.rs")])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(Path(__file__).resolve().parent / "corpus_rs" / "03_u8_wrapping.rs", [(280, 1, b"")])  # `3.99f4`: ValueError
@given(st.sampled_from(CORPUS), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 8),
                                                   st.binary(max_size=6)), min_size=1, max_size=4))
def test_mangled_sources_are_walked_or_refused_with_one_error(path: Path, edits: list[tuple[int, int, bytes]]) -> None:
    """A corpus program with bytes cut and inserted anywhere: a valid program, or one WalkError
    naming file:line:col; never another exception (and what is accepted compiles)."""
    data = path.read_bytes()
    for offset, cut, insert in edits:
        at = offset % (len(data) + 1)
        data = data[:at] + insert + data[at + cut:]
    try:
        doc = walk_source(data, path.name)
    except WalkError as e:
        assert re.match(rf"^{re.escape(path.name)}:\d+:\d+: \S", str(e)), str(e)
        assert "\n" not in str(e)
        return
    compile_cast(doc)


@pytest.mark.parametrize(("name", "source", "output"), [
    ("hello.js", "const who = 'crush';\nconsole.log(`hello ${who}`, 1 / 4);\n", "hello crush 0.25\n"),
    ("hello.rs", "fn main() {\n    let x: u8 = 255;\n    println!(\"hello {}\", x as i32 + 1);\n}\n", "hello 256\n"),
])
def test_crush_compile_picks_the_walker_by_extension(tmp_path: Path, name: str, source: str, output: str) -> None:
    src = tmp_path / name
    src.write_text(source)
    casm = tmp_path / "prog.casm"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "crush", "compile", str(src), "-o", str(casm)], env=env,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "crush", "run", str(casm)], env=env, capture_output=True, text=True,
                       timeout=300, check=False)
    assert (r.returncode, r.stdout) == (0, output)
    src.write_text(source.replace("1", "1 +", 1) if name.endswith(".rs") else "var x = 1;\n")
    r = subprocess.run([sys.executable, "-m", "crush", "compile", str(src), "-o", str(casm)], env=env,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 3 and r.stderr.startswith(f"crush: {name}:"), r.stderr
