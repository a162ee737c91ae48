"""CoreCaps as CRUSH programs: the console shell (sh.py) runs `ls`, `cat`, `ps` and `top` as CASM
that the image builder compiled from corecaps/crush/NAME.py (qemu/build.py), on the CRUSH VM, with
capability opcodes only (fs.list, fs.stat, fs.read, stdin.read, log, proc.list, control.status,
clock, tty.info, tty.key).

What a program may reach is what the shell's world holds: its grants are the whole of that world
read-only (`/`, `ro`), which the Scoped HAL already cut down to the shell capsule's grants; no
fs.write. Paths resolve as they would for the shell: symbolic links are followed (the world's root
is the boundary, so a link cannot lead out of it), except the last component of an fs.stat (lstat,
as `ls` needs). proc.list reads the world's /proc (granted because the world's root covers it): a
capsule in its own PID namespace lists its own processes only. control.status asks exo_init's
control socket in the world (there only when the shell capsule has the `control` grant; a socket
given to top's --socket must be in the world too). tty.info and tty.key are the shell's terminal
(its stdin and stdout); a program that declares tty.key has the terminal in cbreak mode while it
runs (keys come one at a time, as the Python top had it). The runner gives the program `ARGV`,
`CWD` and `CONTROL_SOCKET` (globals), turns its exo.log lines into stderr lines, and its `status`
global into the exit status. A trap (out of gas, arena, a refused capability) is one line on stderr
and exit status 1.
"""

from __future__ import annotations

import os
import sys
import termios
import tty
from pathlib import Path
from typing import Any

from crush.caps import FsGrant, ScopedHost, Terminal, os_error, stdin_reader
from crush.casm import CasmError, Program, decode
from crush.cli import traceback_text
from crush.verify import VerifyError
from crush.vm import VM, Status, Unit, prelude
from crush.vm import load as load_unit
from exo_init.client.control import call
from exo_init.lib.errors import ApiError
from exo_init.lib.paths import CONTROL_SOCKET, DEFAULT_RUNTIME

PROGRAMS = Path("/usr/share/exosphere/crush")   # qemu/build.py's CRUSH_PROGRAMS_DIR
CRUSH_CORECAPS = ("ls", "cat", "ps", "top")
GAS = 10**10
ARENA = 256 << 20
FAILED = 1
CONTROL_TIMEOUT = 10.0
RUNNER_GLOBALS = ("ARGV", "CWD", "CONTROL_SOCKET")   # what run_crushcap binds before a program runs


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


def control_status(name: str | None, socket: str) -> Any:
    """The control API's status (all capsules, or `name`) from the socket at `socket`; OSError if it
    cannot be had (the server's own error included)."""
    request: dict[str, Any] = {"op": "status"} | ({"name": name} if name is not None else {})
    try:
        return call(Path(socket), request, timeout=CONTROL_TIMEOUT)
    except (ApiError, ValueError) as e:
        raise OSError(str(e)) from None


def world_host() -> WorldHost:
    def log(line: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    default = str(DEFAULT_RUNTIME / CONTROL_SOCKET)
    return WorldHost(caps={"fs.read", "fs.list", "fs.stat", "log", "stdin.read", "proc.list", "control.status",
                           "clock", "tty.info", "tty.key"},
                     fs=[FsGrant("/")], log=log, stdin=stdin_reader(), proc="/proc",
                     status=lambda name: control_status(name, default), status_at=control_status,
                     tty=Terminal(0, 1, sys.stdout.flush))


_LOADED: dict[str, tuple[Program, Unit | None]] = {}


def load(name: str) -> tuple[Program, Unit | None]:
    """CoreCap `name`'s program, read and decoded once per process, and the VM's verified and
    resolved form of it (None if the verifier refuses it: the VM then says why when it is run).
    Verifying is most of a short command's cost (top: 0.1 s of 0.11 s on the host), so the shell
    does it once, before it forks commands, not in each command."""
    if name not in _LOADED:
        program = decode((PROGRAMS / f"{name}.casm").read_bytes())
        try:
            unit: Unit | None = load_unit(program, "user", prelude().names)
        except VerifyError:
            unit = None
        _LOADED[name] = (program, unit)
    return _LOADED[name]


def warm() -> None:
    """Load the VM's prelude and the programs now (the shell does, before it forks commands)."""
    for name in CRUSH_CORECAPS:
        try:
            load(name)
        except (OSError, CasmError) as e:  # the command says so when it is run
            sys.stderr.write(f"sh: {name}: {PROGRAMS / name}.casm: {getattr(e, 'strerror', None) or e}\n")


def run_crushcap(name: str, argv: list[str]) -> int:
    """Run CoreCap `name` with `argv`; its exit status."""
    def out(text: str) -> None:
        sys.stdout.write(text)

    program, unit = load(name)
    vm = VM(program, world_host(), gas=GAS, arena=ARENA, out=out, unit=unit)
    vm.globals.update(zip(RUNNER_GLOBALS, (list(argv), os.getcwd(), str(DEFAULT_RUNTIME / CONTROL_SOCKET)),
                          strict=True))
    saved = termios.tcgetattr(0) if "tty.key" in program.caps and os.isatty(0) else None
    try:
        if saved is not None:
            tty.setcbreak(0)
        outcome = vm.run()
        while outcome.status is Status.PAUSED:  # (no step limit given: only the end comes back)
            outcome = vm.run()
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    sys.stdout.flush()
    if outcome.status is Status.DONE:
        code = vm.globals.get("status", 0)
        return code if type(code) is int else FAILED
    if outcome.status is Status.ERROR:
        sys.stderr.write(traceback_text(vm, outcome).splitlines()[-1] + "\n")
    else:
        sys.stderr.write(f"{name}: {outcome.trap}\n")
    return FAILED
