"""Fast mode (placeholder until the block compiler lands): runs the interpreter."""

from __future__ import annotations

from typing import Any


def run_fast(vm: Any, limit: int) -> None:
    vm.interpret(limit)
