"""Traps and guest exceptions: the two ways a CRUSH run goes wrong.

A *trap* (wasmtime's word) ends the run: the program cannot catch it. It carries a `TrapCode`
and a message, and, once the VM has placed it, the function, instruction index and source line
where it happened. Running out of gas, exceeding the arena, a refused capability and a program
the verifier refused are traps.

A *guest exception* is a value of the program (crush.values.ExcValue) raised by the program or
by the VM's own checks (ZeroDivisionError, IndexError, ...). It unwinds the guest's frames to a
handler; only when none catches it does the run end, with the guest's traceback.

Inside the VM both travel as Python exceptions (`TrapError`, `GuestError`); neither ever leaves
the VM's public API: a run returns an outcome instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TrapCode(enum.StrEnum):
    OUT_OF_GAS = "out of gas"
    ARENA_EXCEEDED = "arena exceeded"
    CAPABILITY_DENIED = "capability denied"
    VERIFY_FAILED = "verifier refused the program"
    STATE_REFUSED = "state refused"


@dataclass(frozen=True)
class Trap:
    code: TrapCode
    message: str
    file: str = ""
    line: int = 0
    func: str = ""
    pc: int = -1

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: " if self.file else ""
        return f"{where}{self.code.value}: {self.message}"


class TrapError(Exception):
    """A trap travelling through the VM (not catchable by guest code)."""

    def __init__(self, code: TrapCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class GuestError(Exception):
    """A guest exception travelling through the VM; `exc` is the guest's exception value."""

    def __init__(self, exc: Any) -> None:
        super().__init__(exc)
        self.exc = exc
