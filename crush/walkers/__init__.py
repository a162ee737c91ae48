"""Walkers: source code in, a CAST document (crush/cast.py) out, or one `WalkError`.

A walker reads a language's source with tree-sitter and lowers it to CAST. Invariants every walker
keeps (they are what makes the walker the front door for hostile input):
- it returns a document that passes `crush.cast.check`, or raises exactly one `WalkError` whose text
  is one line, `file:line:col: message` (1-based line and column, the column counted in characters);
- it never produces a program whose meaning differs from the source language's: what it cannot
  lower exactly it refuses (`unsupported <construct>`), with the construct's position;
- it never raises anything else for any input (no RecursionError: trees are walked to a bounded
  depth; no unbounded allocation: sources are bounded in size before they are parsed).

`walk_source(data, filename)` picks the walker by the file's extension (`WALKERS`); the Python
walker is crush/walkers/python.py (`walk(source, filename)` for text, `walk_bytes` for raw bytes).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

# extension -> walker module (crush.walkers.NAME)
WALKERS: Mapping[str, str] = {".py": "python", ".js": "javascript", ".rs": "rust"}


def _one_line(text: str) -> str:
    """`text` with control characters escaped, so that a message is always exactly one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class WalkError(Exception):
    """A compile-time error in a source file: `file:line:col: message`, one line.

    `line` is 1-based; `col` is 1-based and counts characters (not bytes) from the start of the
    line, as editors and CPython's SyntaxError do. (CAST positions, `["@", LINE, COL, ...]`, keep
    tree-sitter's 0-based byte column instead; see crush/cast.py.)
    """

    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        self.file = file
        self.line = line
        self.col = col
        self.message = message
        self.tree = False  # raised because the parse tree has an ERROR or MISSING node
        super().__init__(f"{_one_line(file)}:{line}:{col}: {_one_line(message)}")


def walk_source(data: bytes, filename: str) -> dict[str, Any]:
    """Walk a source file's bytes with the walker its extension names."""
    dot = filename.rfind(".")
    language = WALKERS.get(filename[dot:].lower() if dot >= 0 else "")
    if language is None:
        known = ", ".join(sorted(WALKERS))
        raise WalkError(filename, 1, 1, f"no walker for this kind of file (known extensions: {known})")
    module = importlib.import_module(f"crush.walkers.{language}")  # imported on use: a walker imports this module
    result: dict[str, Any] = module.walk_bytes(data, filename)
    return result
