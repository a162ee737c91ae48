"""A cffi extension for a foreign architecture, built on this host from its sdist.

PyPI has manylinux wheels of pywayland for x86_64 only, bookworm has no python3-pywayland, and this
host cannot run an arm64 program (no binfmt_misc): neither pip nor a compiler can run for arm64
here. pywayland's native part is a cffi extension, which builds in two halves that need no arm64
program:

  C source   cffi generates it from the sdist's own build script (pywayland/ffi_build.py) with the
             host's Python: generating it is pure Python and the same for every architecture
  compile    Debian's cross compiler (gcc-<triplet>; qemu/setup-host installs the arm64 one)
             against a sysroot of the target's Debian -dev packages: libc6-dev, libpython3.11-dev
             (Python.h and the target's pyconfig.h) and those of the libraries the extension links
             (libwayland-dev), extracted by mmdebstrap's `extract` variant like the arm64 base, and
             removed once the extension is built. The headers and the libraries are those of the
             image's packages (the same suite), so the extension links what the image has.

The result, the sdist's Python files with the compiled extension and a dist-info, is cached by
content (the requirement, the suite, this module) in ~/.cache/exosphere/<name>-<version>-<machine>-<key>/,
and copied into the image's dist-packages as a wheel's files are.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from qemu.arch import Arch, platform
from qemu.foreign import PYTHON
from qemu.util import StepFailed, log, run, sha256_of, step

# The target's C library, and CPython's headers with the target's pyconfig.h.
SYSROOT_PACKAGES = ("libc6-dev", f"lib{PYTHON}-dev")
PYTHON_INCLUDE = f"usr/include/{PYTHON}"
# setuptools' flags for an extension, without debug information; a function the cffi declarations
# name but the target's headers do not declare is an error here, not an undefined symbol at import.
CFLAGS = ("-shared", "-fPIC", "-O2", "-g0", "-fno-strict-aliasing", "-Werror=implicit-function-declaration")

# Run by the host's Python in the unpacked sdist: the build script's FFI object writes the C source;
# the last line of output says the extension module's name and the arguments of its set_source().
EMIT_C = """\
import importlib.util, json, sys
script, name, out = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("cffi_build_script", script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ffi = getattr(module, name)
ffi.emit_c_code(out)
module_name, _source, _extension, kwds = ffi._assigned_source
print(json.dumps({"module": module_name, "kwds": kwds}))
"""


@dataclass(frozen=True)
class CffiSource:
    """A package whose native part is one cffi extension, built from its sdist."""

    requirement: str                # name==version (pip downloads the sdist)
    build_script: str               # the cffi build script, relative to the sdist's root
    builder: str                    # the script's FFI object (with set_source and cdef done)
    dev_packages: tuple[str, ...]   # the Debian -dev packages of the libraries it links


def compiler(arch: Arch) -> str:
    return f"{platform(arch).triplet}-gcc"


def extension_suffix(arch: Arch) -> str:
    """CPython's suffix for an extension module of `arch` (importlib's EXTENSION_SUFFIXES there)."""
    return f".cpython-{PYTHON.removeprefix('python').replace('.', '')}-{platform(arch).triplet}.so"


def elf_machine(path: Path) -> int:
    """e_machine of a 64-bit little-endian ELF file; StepFailed for anything else."""
    header = path.read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        raise StepFailed(f"{path}: not a 64-bit little-endian ELF file")
    return int.from_bytes(header[18:20], "little")


def package_dir(cache: Path, source: CffiSource, arch: Arch, suite: str) -> Path:
    """`source` built for `arch` (cache/<name>-<version>-<machine>-<key>/, once): its package
    directory and dist-info, to copy into dist-packages."""
    name, version = source.requirement.split("==", 1)
    plat = platform(arch)
    key = sha256_of(suite, source.requirement, source.build_script, source.builder, *source.dev_packages,
                    Path(__file__))
    out = cache / f"{name}-{version}-{plat.machine}-{key}"
    if (out / name / "__init__.py").exists():
        return out
    gcc = shutil.which(compiler(arch))
    if gcc is None:
        raise StepFailed(f"{compiler(arch)}: not found, needed to build {source.requirement} for {arch} "
                         f"(Debian's gcc-{plat.triplet}; qemu/setup-host installs it)")
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with step(f"{source.requirement} for {arch} from its sdist (cffi's C from the host, {Path(gcc).name})"):
        src = _sdist(cache, source.requirement, tmp)
        module, libraries = _emit_c(src, source, tmp / "extension.c")
        sysroot = tmp / "sysroot"
        run(["mmdebstrap", "--variant=extract", f"--architectures={arch}",
             f"--include={','.join((*SYSROOT_PACKAGES, *source.dev_packages))}",
             "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
             "--dpkgopt=path-exclude=/usr/share/locale/*", "--format=directory", suite, sysroot])
        extension = src / (module.replace(".", "/") + extension_suffix(arch))
        run([gcc, f"--sysroot={sysroot}", *CFLAGS, "-I", sysroot / PYTHON_INCLUDE, "-o", extension,
             tmp / "extension.c", *(f"-l{lib}" for lib in libraries)])
        if elf_machine(extension) != plat.elf_machine:
            raise StepFailed(f"{extension}: built for ELF machine {elf_machine(extension)}, not {arch}'s "
                             f"{plat.elf_machine}")
        package = tmp / "package"
        shutil.copytree(src / name, package / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        info = package / f"{name}-{version}.dist-info"
        info.mkdir()
        shutil.copy2(src / "PKG-INFO", info / "METADATA")
        (info / "INSTALLER").write_text("exosphere qemu/cross.py\n")
        log(f"{source.requirement}: {extension.relative_to(src)} ({extension.stat().st_size / 1e3:.0f} kB), "
            f"linked to {', '.join(libraries)}")
    if out.exists():
        shutil.rmtree(out)
    package.rename(out)
    shutil.rmtree(tmp)
    return out


def _sdist(cache: Path, requirement: str, work: Path) -> Path:
    """The requirement's sdist (downloaded once into cache/sdists/), unpacked under `work`."""
    name, version = requirement.split("==", 1)
    sdists = cache / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    archive = sdists / f"{name}-{version}.tar.gz"
    if not archive.exists():
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-d", sdists, requirement])
    if not archive.exists():
        found = sorted(p.name for p in sdists.iterdir())
        raise StepFailed(f"pip download {requirement} left no {archive.name} in {sdists} (found: {found or 'none'})")
    run(["tar", "-xzf", archive, "-C", work])
    root = work / f"{name}-{version}"
    if not (root / "PKG-INFO").exists():
        raise StepFailed(f"{archive}: no {name}-{version}/PKG-INFO inside (not an sdist?)")
    return root


def _emit_c(src: Path, source: CffiSource, dest: Path) -> tuple[str, list[str]]:
    """Write the extension's C source to `dest`; returns its module name and the libraries it links."""
    script = src / source.build_script
    out = run([sys.executable, "-c", EMIT_C, script, source.builder, dest], cwd=src, capture=True).stdout
    said = json.loads(out.strip().splitlines()[-1])
    kwds = said["kwds"]
    others = sorted(set(kwds) - {"libraries"})
    if others:  # (a build option this cross build would silently drop)
        raise StepFailed(f"{script}: set_source() asks for {', '.join(others)}, which qemu/cross.py does not pass on")
    return str(said["module"]), [str(lib) for lib in kwds.get("libraries", [])]
