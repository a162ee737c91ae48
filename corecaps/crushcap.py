"""CoreCaps as CRUSH programs: the console shell (sh.py) runs `ls` and `cat` as CASM that the image
builder compiled from corecaps/crush/NAME.py (qemu/build.py), on the CRUSH VM, with capability
opcodes only (fs.list, fs.stat, fs.read, stdin.read, log).

What a program may reach is what the shell's world holds: its grants are the whole of that world
read-only (`/`, `ro`), which the Scoped HAL already cut down to the shell capsule's grants; no
fs.write, no control. Paths resolve as they would for the shell: symbolic links are followed
(the world's root is the boundary, so a link cannot lead out of it), except the last component of
an fs.stat (lstat, as `ls` needs). The runner gives the program `ARGV` and `CWD` (globals), turns
its exo.log lines into stderr lines, and its `status` global into the exit status. A trap (out of
gas, arena, a refused capability) is one line on stderr and exit status 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from crush.caps import FsGrant, ScopedHost, os_error, stdin_reader
from crush.casm import CasmError, Program, decode
from crush.cli import traceback_text
from crush.vm import VM, Status, prelude

PROGRAMS = Path("/usr/share/exosphere/crush")   # qemu/build.py's CRUSH_PROGRAMS_DIR
CRUSH_CORECAPS = ("ls", "cat")
GAS = 10**10
ARENA = 256 << 20
FAILED = 1


class WorldHost(ScopedHost):
    """The shell's world as the grant: paths resolved as the shell resolves them."""

    def _check(self, cap: str, path: Any) -> tuple[FsGrant, list[str]]:
        if type(path) is str and path.startswith("/") and "\0" not in path:
            try:
                if cap == "fs.stat":
                    head, tail = os.path.split(path.rstrip("/") or "/")
                    path = os.path.join(os.path.realpath(head, strict=True), tail) if tail else "/"
                else:
                    path = os.path.realpath(path, strict=True)
            except OSError as e:  # missing, or a link it may not read (/proc/1/root): the shell's error
                raise os_error(e, path) from None
        return super()._check(cap, path)


def world_host() -> WorldHost:
    def log(line: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return WorldHost(caps={"fs.read", "fs.list", "fs.stat", "log", "stdin.read"}, fs=[FsGrant("/")], log=log,
                     stdin=stdin_reader())


_LOADED: dict[str, Program] = {}


def load(name: str) -> Program:
    """CoreCap `name`'s program (read and decoded once per process)."""
    if name not in _LOADED:
        _LOADED[name] = decode((PROGRAMS / f"{name}.casm").read_bytes())
    return _LOADED[name]


def warm() -> None:
    """Load the VM's prelude and the programs now (the shell does, before it forks commands)."""
    prelude()
    for name in CRUSH_CORECAPS:
        try:
            load(name)
        except (OSError, CasmError) as e:  # the command says so when it is run
            sys.stderr.write(f"sh: {name}: {PROGRAMS / name}.casm: {getattr(e, 'strerror', None) or e}\n")


def run_crushcap(name: str, argv: list[str]) -> int:
    """Run CoreCap `name` with `argv`; its exit status."""
    def out(text: str) -> None:
        sys.stdout.write(text)

    program = load(name)
    vm = VM(program, world_host(), gas=GAS, arena=ARENA, out=out)
    vm.globals["ARGV"] = list(argv)
    vm.globals["CWD"] = os.getcwd()
    outcome = vm.run()
    while outcome.status is Status.PAUSED:  # (no step limit given: only the end comes back)
        outcome = vm.run()
    sys.stdout.flush()
    if outcome.status is Status.DONE:
        code = vm.globals.get("status", 0)
        return code if type(code) is int else FAILED
    if outcome.status is Status.ERROR:
        sys.stderr.write(traceback_text(vm, outcome).splitlines()[-1] + "\n")
    else:
        sys.stderr.write(f"{name}: {outcome.trap}\n")
    return FAILED
