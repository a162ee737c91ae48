"""The Rust walker against rustc: the corpus prints the same, panics where the binary panics.

Every program in tests/crush/corpus_rs is compiled by `rustc -C overflow-checks=on` (a debug
build's arithmetic: overflow panics) at test time, into a cache outside the repository keyed by
the SHA-256 of the source and of `rustc --version` (compiling takes a second per program); its
stdout is the expected output and its failing (exit status 101, a panic) must match CRUSH's
uncaught Panic. CRUSH runs each program in both execution modes. Then the walker's refusals
(file:line:col), run-time panics naming the .rs file and line, and hostile sources.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from crush.compiler import compile_cast
from crush.walkers import WalkError, walk_source
from tests.crush.support import assert_modes_use_the_same_gas, check_corpus_program, run

CORPUS = sorted((Path(__file__).resolve().parent / "corpus_rs").glob("*.rs"))
RUSTC = shutil.which("rustc")
needs_rustc = pytest.mark.skipif(RUSTC is None, reason="rustc is not installed (qemu/setup-host installs rustc)")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "exosphere" / "crush-rustc"


def rustc_binary(path: Path) -> Path:
    """The program built by rustc (cached by content and compiler version)."""
    assert RUSTC is not None
    version = subprocess.run([RUSTC, "--version"], capture_output=True, text=True, check=True, timeout=60).stdout
    key = hashlib.sha256(version.encode() + b"\0" + path.read_bytes()).hexdigest()[:32]
    binary = CACHE / f"{path.stem}-{key}"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        r = subprocess.run([RUSTC, "-C", "overflow-checks=on", "-C", "opt-level=1", "-A", "warnings", "-o", str(tmp),
                            str(path)], capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stderr
        tmp.replace(binary)
    return binary


def rust(path: Path) -> tuple[str, bool, str]:
    """The binary's stdout, whether it ended well, and its panic message ("" if none)."""
    r = subprocess.run([str(rustc_binary(path))], capture_output=True, timeout=60, check=False,
                       env={**os.environ, "RUST_BACKTRACE": "0"})
    assert r.returncode in (0, 101), r.stderr  # 101: a panic
    return r.stdout.decode("utf-8"), r.returncode == 0, panic_message(r.stderr.decode("utf-8"))


def panic_message(stderr: str) -> str:
    """The message of `thread 'main' panicked at 'MESSAGE', FILE:L:C` (rustc before 1.73, as
    Debian's 1.63) or of `... panicked at FILE:L:C:` followed by the MESSAGE line (later ones)."""
    old = re.search(r"panicked at '(.*)', \S+:\d+:\d+$", stderr, re.M)
    new = re.search(r"panicked at \S+:\d+:\d+:\n(.*)$", stderr, re.M)
    return old.group(1) if old else new.group(1) if new else ""


def walk(source: str, name: str = "prog.rs") -> dict:  # type: ignore[type-arg]
    return walk_source(source.encode(), name)


def test_the_corpus_has_25_programs() -> None:
    assert len(CORPUS) >= 25


@needs_rustc
@pytest.mark.parametrize("fast", [False, True], ids=["interpreter", "fast"])
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_program_prints_what_the_rustc_binary_prints(path: Path, fast: bool) -> None:
    expected, ok, message = rust(path)
    result = check_corpus_program(path, expected, ok, fast)
    if not ok:
        assert result.outcome.error is not None and result.outcome.error.etype.name == "Panic"
        assert message and result.outcome.error.args == (message,)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_both_modes_use_the_same_gas(path: Path) -> None:
    assert_modes_use_the_same_gas(path)


@pytest.mark.parametrize(("source", "where", "what"), [
    ("fn main() {\n    let f = |x: i32| x + 1;\n}\n", "2:13", "unsupported closure"),
    ("fn main() {\n    let t = (1, 2);\n}\n", "2:13", "unsupported tuple"),
    ("fn main() {\n    let c = 'a';\n}\n", "2:13", "unsupported char"),
    ("trait T {}\nfn main() {}\n", "1:1", "unsupported item (trait)"),
    ("#[derive(Clone, Copy)]\nstruct P { x: i64 }\nfn main() {}\n", "1:1", "unsupported Copy struct"),
    ("fn f(x: &mut i64) {}\nfn main() {}\n", "1:9", "unsupported &mut"),
    ("fn main() {\n    let x: i8 = 200;\n}\n", "2:17", "literal out of range for i8"),
    ("fn main() {\n    let x: i64 = 1;\n    let y: i32 = x;\n}\n", "3:18", "mismatched types"),
    ("fn main(x: i64) {}\n", "1:1", "fn main with parameters"),
    ("fn main() {\n    let x = 1 +;\n}\n", "2:16", "syntax error"),
])
def test_unsupported_constructs_get_one_error_with_line_and_column(source: str, where: str, what: str) -> None:
    with pytest.raises(WalkError) as e:
        walk(source, "bad.rs")
    assert str(e.value).startswith(f"bad.rs:{where}: "), str(e.value)
    assert what in str(e.value)


def test_a_panic_names_the_rs_file_and_line() -> None:
    source = "fn add(a: u8, b: u8) -> u8 {\n    a + b\n}\nfn main() {\n    println!(\"{}\", add(200, 100));\n}\n"
    result = run(compile_cast(walk(source, "ovf.rs")))
    error = result.outcome.error
    assert error is not None and error.etype.name == "Panic"
    assert error.args == ("attempt to add with overflow",)
    assert ["add", 2] in error.tb and ["main", 5] in error.tb


@pytest.mark.parametrize("typ", ["i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "i128", "u128"])
def test_each_integer_type_panics_exactly_past_its_bounds(typ: str) -> None:
    bits = int(typ[1:])
    hi = (1 << (bits - 1)) - 1 if typ[0] == "i" else (1 << bits) - 1
    ok = f"fn main() {{\n    let x: {typ} = {hi - 1};\n    let y: {typ} = x + 1;\n    println!(\"{{}}\", y);\n}}\n"
    assert run(compile_cast(walk(ok))).output == f"{hi}\n"
    bad = ok.replace("x + 1", "x + 2")
    result = run(compile_cast(walk(bad)))
    assert result.outcome.error is not None and result.outcome.error.args == ("attempt to add with overflow",)


@pytest.mark.parametrize(("data", "message"), [
    (b"fn main() { let x: i64 = " + b"(" * 100_000 + b"1" + b")" * 100_000 + b"; }", "nesting too deep"),
    (b"fn main() { " + b"{ " * 100_000 + b"}" * 100_000 + b" }", "nesting too deep"),
    (b"fn main() { let x = \"\xff\"; }", "invalid UTF-8"),
    (b"fn main() {}\0", "NUL"),
    (b"/" * (9 << 20), "source too large"),
    (b"fn main() { println!(\"{}\", " + b"vec![" * 10_000 + b"1" + b"]" * 10_000 + b"); }", "nesting too deep"),
    (b"fn main() { let v: " + b"Vec<" * 50_000 + b"i64" + b">" * 50_000 + b" = Vec::new(); }", "nesting too deep"),
    (b"fn main() { let x: i64 = " + b"-" * 100_000 + b"1; }", "nesting too deep"),
    (b"fn main() { for i in " + b"(" * 50_000 + b"0..1" + b")" * 50_000 + b" {} }", "nesting too deep"),
    (b"fn main() { let x: i64 = if true { 1 } " + b"else if true { 1 } " * 20_000 + b"else { 2 }; }",
     "nesting too deep"),
    (b"fn main() { match 1 { " + b"1 | " * 50_000 + b"2 => {} _ => {} } }", "nesting too deep"),
], ids=["parentheses", "blocks", "utf8", "nul", "huge", "macros", "types", "negations", "ranges", "else-ifs",
        "or-patterns"])
def test_hostile_sources_get_one_error(data: bytes, message: str) -> None:
    with pytest.raises(WalkError) as e:
        walk_source(data, "hostile.rs")
    assert message in str(e.value)
