"""What the JavaScript and Rust walkers share: bounded parsing with tree-sitter, positions, errors.

`parse(data, language, filename)` refuses a source that is too large, not UTF-8, or that
tree-sitter cannot parse (its first ERROR or MISSING node, found without recursion, is reported
as `file:line:col: syntax error`); `Base` holds the file name and the source and gives each
walker `fail(node, message)` (one WalkError with the node's 1-based line and character column),
`at(node, cast)` (the `["@", LINE, COL, NODE]` wrapper) and `enter(node)` (the nesting bound:
the walkers recurse over the tree, at most MAX_NESTING levels deep, so hostile nesting gets one
error instead of a RecursionError).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tree_sitter

from crush import cast
from crush.walkers import WalkError

MAX_SOURCE_BYTES = 8 * 1024 * 1024
MAX_NESTING = 60  # levels of nested source constructs (each may cost a few CAST levels)

Node = tree_sitter.Node
CastNode = list[Any]


def without_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def parse(data: bytes, language: tree_sitter.Language, filename: str) -> Node:
    if len(data) > MAX_SOURCE_BYTES:
        raise WalkError(filename, 1, 1, f"source too large ({len(data)} bytes; the limit is {MAX_SOURCE_BYTES})")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise WalkError(filename, line, col, f"invalid UTF-8 (byte 0x{data[e.start]:02x})") from None
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise WalkError(filename, line, 1, "source contains a NUL byte")
    tree = tree_sitter.Parser(language).parse(data)
    root = tree.root_node
    if root.has_error:
        bad = _first_error(root)
        base = Base(data, filename)
        raise base.fail(bad, "syntax error" if bad.type == "ERROR" else f"syntax error: missing {bad.type}")
    return root


def _first_error(root: Node) -> Node:
    cursor = root.walk()
    while True:
        node = cursor.node
        assert node is not None
        if node.type == "ERROR" or node.is_missing:
            return node
        if node.has_error and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return root
        # siblings without errors are skipped by the has_error test on the next round


class Base:
    """A walker's file, source and nesting depth."""

    def __init__(self, data: bytes, filename: str) -> None:
        self.data = data
        self.file = filename
        self.depth = 0

    def fail(self, node: Node, message: str) -> WalkError:
        row, byte_col = node.start_point
        start = self.data.rfind(b"\n", 0, node.start_byte) + 1
        col = len(self.data[start:start + byte_col].decode("utf-8", "replace")) + 1
        return WalkError(self.file, row + 1, col, message)

    def text(self, node: Node) -> str:
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def field(self, node: Node, name: str) -> Node:
        """The child in field NAME, which the subset requires (its absence is refused)."""
        child = node.child_by_field_name(name)
        if child is None:
            raise self.fail(node, f"unsupported {node.type} without {name}")
        return child

    @staticmethod
    def at(node: Node, body: CastNode) -> CastNode:
        return ["@", node.start_point[0] + 1, node.start_point[1], body]

    @contextmanager
    def enter(self, node: Node) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(node, f"nesting too deep (the limit is {MAX_NESTING} levels)")
        try:
            yield
        finally:
            self.depth -= 1

    def finish(self, lang: str, body: CastNode) -> dict[str, Any]:
        doc = {"cast": cast.CAST_VERSION, "lang": lang, "file": self.file, "body": body}
        try:
            cast.check(doc)  # bounds the depth first (cast.MAX_DEPTH); the shape is the walker's own invariant
        except cast.CastError as e:
            if "nested deeper" in str(e):
                raise WalkError(self.file, 1, 1, f"nesting too deep (the CAST nests more than {cast.MAX_DEPTH} "
                                                 "levels)") from None
            raise
        return doc


def named(node: Node) -> list[Node]:
    """The named children of `node`, comments left out."""
    return [c for c in node.named_children if c.type not in ("comment", "line_comment", "block_comment")]
