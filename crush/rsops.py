"""Rust's operations (placeholder, filled below)."""

from __future__ import annotations

from crush.values import Builtin


def table() -> dict[str, Builtin]:
    return {}
