"""qemu/cross.py's halves that run on any host: the C source cffi generates from a package's own
build script (here compiled for the host and imported, to show it is a working extension), the
refusal of a build option the cross build would drop, CPython's extension suffix, the ELF check, and
the error when the cross compiler is missing. The arm64 build itself is checked in the booted image
(tests/vm/test_arm64.py: pywayland's extension imported, the compositor and dashboard drawing)."""

from __future__ import annotations

import importlib.machinery
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from qemu import cross
from qemu.arch import Arch, host_arch, platform
from qemu.cross import CffiSource
from qemu.util import StepFailed

BUILD_SCRIPT = """\
from cffi import FFI
ffi_builder = FFI()
ffi_builder.set_source("demo._ext", "#include <math.h>", libraries=["m"]{extra})
ffi_builder.cdef("double cos(double);")
"""
DEMO = CffiSource("demo==1.0", "demo/build.py", "ffi_builder", ())


def sdist(root: Path, extra: str = "") -> Path:
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "__init__.py").write_text("")
    (root / "demo" / "build.py").write_text(BUILD_SCRIPT.format(extra=extra))
    return root


def test_the_emitted_c_is_the_extension_the_build_script_declares(tmp_path: Path) -> None:
    src = sdist(tmp_path / "demo-1.0")
    module, libraries = cross._emit_c(src, DEMO, tmp_path / "ext.c")
    assert (module, libraries) == ("demo._ext", ["m"])
    include = Path(sysconfig.get_paths()["include"])
    gcc = shutil.which("gcc")
    if gcc is None or not (include / "Python.h").exists():
        pytest.skip("no host gcc or Python.h to compile the emitted C with")
    arch = host_arch()
    assert arch is not None
    ext = src / ("demo/_ext" + cross.extension_suffix(arch))
    subprocess.run([gcc, *cross.CFLAGS, "-I", include, "-o", ext, tmp_path / "ext.c",
                    *(f"-l{lib}" for lib in libraries)], check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", "from demo._ext import lib; print(lib.cos(0.0))"], cwd=src,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.strip() == "1.0", out.stderr


def test_a_build_option_the_cross_build_would_drop_is_refused(tmp_path: Path) -> None:
    src = sdist(tmp_path / "demo-1.0", extra=', include_dirs=["/opt/x"]')
    with pytest.raises(StepFailed, match=r"build\.py: set_source\(\) asks for include_dirs"):
        cross._emit_c(src, DEMO, tmp_path / "ext.c")


def test_the_extension_suffix_is_cpythons_own() -> None:
    arch = host_arch()
    assert arch is not None
    assert cross.extension_suffix(arch) == importlib.machinery.EXTENSION_SUFFIXES[0]
    assert cross.extension_suffix(Arch.ARM64) == ".cpython-311-aarch64-linux-gnu.so"


def test_the_elf_machine_check(tmp_path: Path) -> None:
    arch = host_arch()
    assert arch is not None
    assert cross.elf_machine(Path(sys.executable).resolve()) == platform(arch).elf_machine
    assert {p.elf_machine for p in (platform(a) for a in Arch)} == {62, 183}
    script = tmp_path / "not-elf.so"
    script.write_text("#!/bin/sh\n" + "x" * 40)
    with pytest.raises(StepFailed, match="not a 64-bit little-endian ELF file"):
        cross.elf_machine(script)


def test_a_missing_cross_compiler_is_named_with_where_it_comes_from(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StepFailed, match=r"aarch64-linux-gnu-gcc: not found.*gcc-aarch64-linux-gnu; qemu/setup-host"):
        cross.package_dir(tmp_path / "cache", DEMO, Arch.ARM64, "bookworm")
