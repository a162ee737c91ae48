"""Linking: one program from modules written in Python, JavaScript and Rust.

tests/crush/polyglot holds a Rust library (integer functions with Rust's overflow panics), a
JavaScript library (string and array helpers with JavaScript's numbers) and a Python entry module
calling both. The expected output is computed here with CPython's own arithmetic (math.gcd, the
mean, 46340**2) and JavaScript's formatting rule for the mean (node's shortest round-trip digits,
which CPython's repr shares); the last call overflows i32 inside the Rust module, and the panic must
name the Rust file and line.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from crush.cli import Exit, traceback_text
from crush.compiler import compile_cast
from crush.link import LinkError, globals_of, link, split_name
from crush.verify import verify
from crush.vm import VM, Status, prelude
from crush.walkers import walk_source
from tests.crush.support import REPO, run

HERE = Path(__file__).resolve().parent / "polyglot"
MODULES = [HERE / "mathlib.rs", HERE / "text.js", HERE / "main.py"]


def module(path: Path):  # type: ignore[no-untyped-def]
    return compile_cast(walk_source(path.read_bytes(), path.name))


def module_of(source: str, name: str):  # type: ignore[no-untyped-def]
    return compile_cast(walk_source(source.encode(), name))


def expected_output() -> str:
    pairs = [(12, 18), (17, 5), (100, 75)]
    lines = ["===== polyglot ====="]
    lines += [f"{a} {b} {math.gcd(a, b)}" for a, b in pairs]
    lines.append(f"mean {sum(math.gcd(a, b) for a, b in pairs) / len(pairs)!r}")
    lines.append(str(46340 ** 2))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fast", [False, True], ids=["interpreter", "fast"])
def test_three_languages_run_as_one_program(fast: bool) -> None:
    program = link([module(p) for p in MODULES])
    verify(program, prelude().names)
    result = run(program, fast=fast)
    assert result.output == expected_output()
    error = result.outcome.error
    assert error is not None and error.etype.name == "Panic"
    assert error.args == ("attempt to multiply with overflow",)
    frames = [(split_name(name, program.file), line) for name, line in error.tb]
    assert (("checked_square", "mathlib.rs"), 6) in frames
    assert (("<module>", "main.py"), 7) in frames
    text = traceback_text(result.vm, result.outcome)
    assert 'File "mathlib.rs", line 6, in checked_square' in text


def test_exports_and_imports() -> None:
    imports = globals_of(module(HERE / "main.py"))[1]
    assert {"banner", "gcd", "mean", "checked_square"} <= imports
    assert globals_of(module(HERE / "mathlib.rs"))[0] == {"gcd", "checked_square"}
    assert globals_of(module(HERE / "text.js")) == ({"banner", "mean"}, set())


def test_a_missing_import_is_refused() -> None:
    with pytest.raises(LinkError, match=r"main\.py imports 'banner', 'mean', which no module defines"):
        link([module(HERE / "mathlib.rs"), module(HERE / "main.py")])
    with pytest.raises(LinkError, match=r"main\.py imports 'mean', which no module defines"):
        link([module(HERE / "mathlib.rs"), module(HERE / "main.py")], provided=("banner",))


def test_names_the_host_provides_need_no_module() -> None:
    """A runner's arguments (corecaps/crushcap.py RUNNER_GLOBALS): bound by the host before the run."""
    lib = module_of("def shout(text):\n    return text.upper() + SUFFIX\n", "lib.py")
    main = module_of("print(shout(ARGV[0]))\n", "main.py")
    program = link([lib, main], provided=("ARGV", "SUFFIX"))
    out: list[str] = []
    vm = VM(program, out=out.append)
    vm.globals.update({"ARGV": ["hi"], "SUFFIX": "!"})
    assert vm.run().status is Status.DONE and "".join(out) == "HI!\n"


def test_a_name_defined_twice_is_refused() -> None:
    a = module_of("function gcd(a, b) { return a; }\n", "other.js")
    with pytest.raises(LinkError, match=r"'gcd' is defined by both mathlib\.rs and other\.js"):
        link([module(HERE / "mathlib.rs"), a])


def test_a_run_time_error_in_a_js_module_names_its_file() -> None:
    lib = module_of("function first(xs) {\n  return xs.length.x.y;\n}\n", "lib.js")
    main = module_of("print('start')\nfirst([1])\n", "main.py")
    result = run(link([lib, main]))
    assert result.output == "start\n"
    error = result.outcome.error
    assert error is not None and error.etype.name == "TypeError"
    frames = [(*split_name(name, "?"), line) for name, line in error.tb]
    assert ("first", "lib.js", 2) in frames and ("<module>", "main.py", 2) in frames


def test_gas_is_shared_and_a_trap_names_the_module() -> None:
    lib = module_of("function spin() {\n  let i = 0;\n  while (true) { i++; }\n}\n", "spin.js")
    main = module_of("spin()\n", "main.py")
    result = run(link([lib, main]), gas=50_000)
    trap = result.outcome.trap
    assert trap is not None and trap.code.name == "OUT_OF_GAS"
    assert trap.file == "spin.js" and trap.line == 3


def crush(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python3 -m crush ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "crush", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_cli_links_and_runs(tmp_path: Path) -> None:
    out = tmp_path / "prog.casm"
    r = crush("link", *MODULES, "-o", out)
    assert r.returncode == 0, r.stderr
    r = crush("run", out)
    assert r.stdout == expected_output()
    assert r.returncode == Exit.EXCEPTION
    assert 'File "mathlib.rs", line 6, in checked_square' in r.stderr
    r = crush("link", MODULES[2], "-o", out)
    assert r.returncode == Exit.INPUT and "which no module defines" in r.stderr


def test_compiled_casm_modules_link_as_the_sources_do(tmp_path: Path) -> None:
    """A CASM module imports functions from another: each module compiled on its own (`crush
    compile`), the .casm files linked, the program runs as the sources linked do, each file's lines kept."""
    casm = [tmp_path / f"{source.stem}.casm" for source in MODULES]
    for source, compiled in zip(MODULES, casm, strict=True):
        r = crush("compile", source, "-o", compiled)
        assert r.returncode == 0, r.stderr
    out = tmp_path / "prog.casm"
    r = crush("link", *casm, "-o", out)
    assert r.returncode == 0, r.stderr
    r = crush("run", out)
    assert (r.stdout, r.returncode) == (expected_output(), Exit.EXCEPTION), r.stderr
    assert 'File "mathlib.rs", line 6, in checked_square' in r.stderr and 'File "main.py", line 7' in r.stderr
