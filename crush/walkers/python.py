"""The Python walker: Python source -> a CAST document (crush/cast.py), or one WalkError.

`walk(source, filename)` parses with tree-sitter (tree-sitter-python) and lowers the tree to CAST in
one pass, then resolves names. The subset it accepts, how each construct maps to CAST and what it
refuses are documented in docs/crush.md ("Walkers"); the rules that keep it exact are:

- Exact or refused. CPython decides what is valid Python: the source is compiled (not run) before
  it is walked, and a syntax error is CPython's. tree-sitter accepts more than Python does (Python
  2 statements, `0777`, `ub""`, inconsistent dedents, empty blocks, `def f(a=1, b)`, ...) and
  reads a few valid constructs differently, so the walker also checks the tree it lowers against
  what CPython's tokenizer and symbol table see (indentation with tabs at 8 and at 1 column,
  logical lines, literal syntax, targets, argument order, global/nonlocal rules, ...): a
  structural disagreement on valid Python is refused as "unsupported syntax". Where CAST cannot
  express CPython's behaviour exactly (a builtin shadowed by a global that might be read before it
  is bound, an `except ... as e` name read after its handler, `is` on numbers, generator
  expressions that a consumer may stop early) the program is refused with its position rather
  than lowered approximately.
- Python's scoping, made explicit. Every name of a function that Python makes local (assigned
  anywhere in it, not declared global/nonlocal) is declared with `std.let NAME` at the top of the
  function body; reads of function locals and of enclosing functions' locals are `std.var`;
  globals are `std.gvar` (reads and writes; module-level code only has globals); a name bound
  nowhere in the program that names a builtin of cast.PY_BUILTINS is `std.builtin "py.NAME"`.
  Hidden temporaries are named `$N`, which no Python name can be.
- Positions. Every statement that can raise and every expression that can raise is wrapped in
  `["@", LINE, COL, ...]` (tree-sitter's 1-based line and 0-based byte column), except where the
  nearest enclosing wrapper already names the same position; a name read is wrapped only when it
  sits on another line than that wrapper (so a NameError names the right line).
- Bounded. Sources are bounded in bytes and in tokens before parsing (`MAX_SOURCE_BYTES`,
  `MAX_TOKENS`); the lowering recurses at most `MAX_NESTING` levels of source nesting, and the CAST
  it produces nests at most cast.MAX_DEPTH JSON arrays deep (checked without recursion, with the
  position of the place that is too deep), the bound cast.check and the compiler share.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import tree_sitter
import tree_sitter_python

from crush import cast
from crush.walkers import WalkError

__all__ = ["MAX_CAST_DEPTH", "MAX_NESTING", "MAX_SOURCE_BYTES", "MAX_TOKENS", "WalkError", "walk", "walk_bytes"]

MAX_SOURCE_BYTES = 32 * 1024 * 1024  # a source larger than this is refused before it is parsed
MAX_TOKENS = 500_000                 # an upper estimate of tree-sitter's tokens (see _estimate_tokens)
MAX_NESTING = 100                    # levels of nested statements and expressions in the source
MAX_CAST_DEPTH = cast.MAX_DEPTH       # JSON arrays nested in the document's body (cast.depth's measure)
MAX_INT_DIGITS = 4300                # CPython's limit for decimal integer literals (sys.int_info)

_LANGUAGE = tree_sitter.Language(tree_sitter_python.language())

Node = tree_sitter.Node
CastNode = list[Any]

# --- the tables ----------------------------------------------------------------------------------

_BINARY = {"+": "py.add", "-": "py.sub", "*": "py.mul", "/": "py.truediv", "//": "py.floordiv", "%": "py.mod",
           "**": "py.pow", "<<": "py.lshift", ">>": "py.rshift", "&": "py.bitand", "|": "py.bitor",
           "^": "py.bitxor"}
# `a OP= b`: Python's in-place forms; only list += and *= and dict |= differ from the binary form
_AUGMENTED = {**{f"{op}=": node for op, node in _BINARY.items()}, "+=": "py.iadd", "*=": "py.imul", "|=": "py.ior"}
_COMPARE = {"<": "py.lt", "<=": "py.le", ">": "py.gt", ">=": "py.ge", "==": "py.eq", "!=": "py.ne",
            "in": "py.in", "not in": "py.notin", "is": "py.is", "is not": "py.isnot"}
_UNARY = {"-": "py.neg", "+": "py.pos", "~": "py.invert"}
# nodes whose value is always a bool (no py.truth needed around them as a condition)
_BOOLEAN = frozenset(("py.lt", "py.le", "py.gt", "py.ge", "py.eq", "py.ne", "py.in", "py.notin", "py.is",
                      "py.isnot", "py.not", "py.truth", "std.bool"))

_EXCEPTIONS = cast.PY_BUILTINS[cast.PY_BUILTINS.index("BaseException"):]
_SUPPORTED_BUILTINS = frozenset(cast.PY_BUILTINS)
# CPython's builtins, with those the `site` module adds (so that `python3 -S` walks the same way)
_ALL_BUILTINS = frozenset({name for name in dir(builtins) if not name.startswith("_")}
                          | {"copyright", "credits", "exit", "quit", "help", "license"})
# names CPython predefines in a module that the walker turns into constants when they are not bound
_PREDEFINED: dict[str, CastNode] = {"__name__": ["std.str", "__main__"], "__debug__": ["std.bool", True]}
_ANNOTATION_NAMES = frozenset(("int", "float", "str", "bool", "list", "dict", "tuple", "object", "range",
                               *_EXCEPTIONS))

# exo.NAME(...) -> std.cap: the capability, its argument count (min, max)
_CAPABILITY_ARITY: dict[str, tuple[int, int]] = {
    "fs.read": (1, 1), "fs.list": (1, 1), "fs.write": (2, 2), "fs.stat": (1, 1), "log": (1, 1), "clock": (0, 0),
    "sleep": (1, 1), "yield": (0, 0), "random": (0, 0), "control.status": (0, 2), "stdin.read": (0, 0),
    "proc.list": (0, 0), "tty.info": (0, 0), "tty.key": (1, 1)}
assert set(_CAPABILITY_ARITY) == set(cast.CAPABILITIES), "every capability of crush/cast.py has an arity here"

# the constructs refused by the kind of tree-sitter node they are (statements and expressions)
_UNSUPPORTED = {
    "class_definition": "class definition", "decorated_definition": "decorator", "with_statement": "with statement",
    "match_statement": "match statement", "import_from_statement": "from-import", "future_import_statement":
    "from __future__ import", "type_alias_statement": "type alias statement", "await": "await", "yield": "yield",
    "named_expression": "assignment expression (:=)", "set": "set display", "set_comprehension":
    "set comprehension", "generator_expression": "generator expression", "list_splat": "* unpacking",
    "dictionary_splat": "** unpacking", "parenthesized_list_splat": "* unpacking", "ellipsis": "Ellipsis",
    "attribute": "attribute access", "list_splat_pattern": "starred assignment", "slice": "slice here",
}
_PYTHON2 = {"print_statement": "Missing parentheses in call to 'print'",
            "exec_statement": "Missing parentheses in call to 'exec'"}

_INT = re.compile(r"(?:[1-9](?:_?[0-9])*|0+(?:_?0)*|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0[xX](?:_?[0-9a-fA-F])+)")
_DIGITS = r"[0-9](?:_?[0-9])*"
_FLOAT = re.compile(rf"(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}\.?)(?:[eE][+-]?{_DIGITS})?")
_STRING_PREFIXES = frozenset(("", "r", "u", "f", "fr", "rf", "b", "br", "rb"))
_ESCAPE = r"\\(?:N\{[^}\n]*\}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|.?)"
_LITERAL = re.compile(_ESCAPE, re.S)                       # a plain string's escapes
_FLITERAL = re.compile(_ESCAPE + r"|\{\{|\}\}|[{}]", re.S)  # an f-string's literal text
_FRAW = re.compile(r"\{\{|\}\}|[{}]")                      # a raw f-string's literal text
_SIMPLE_ESCAPES = {"\n": "", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t", "v": "\v"}
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
# byte -> its class for _estimate_tokens: b"a" a word byte, b" " white space, b"." punctuation
_CLASSES = bytes(ord("a") if (chr(b).isalnum() or b == ord("_") or b >= 0x80) else ord(" ") if chr(b).isspace()
                 else ord(".") for b in range(256))


# --- entry points ----------------------------------------------------------------------------------

def walk(source: str, filename: str) -> dict[str, Any]:
    """The CAST document of Python `source` (named `filename` in positions and errors).

    Raises WalkError, and nothing else, for a source outside the subset or not valid Python. Whether
    it is valid Python is CPython's call: the source is compiled (not run) first, and a syntax error
    is reported in CPython's words at CPython's position, before any unsupported construct, as
    CPython reports syntax errors before it runs anything. The walker's own checks are a second
    line of defence, against tree-sitter reading valid Python differently from CPython."""
    data = _encode(source, filename)
    text = data.decode("utf-8")  # what both parsers read: BOM dropped, newlines normalised
    verdict = _cpython_verdict(text, filename)
    if verdict is not None and verdict is not _TOO_DEEP:
        raise verdict
    try:
        doc = _Walker(data, filename).document()
    except WalkError as e:
        if verdict is None and not e.message.startswith(_SUBSET_LIMITS):
            # CPython accepted the source: a syntax complaint means the walker misread valid Python
            cause = ("tree-sitter-python does not read as CPython does (known cases: a line inside brackets "
                     "indented less than its block, a line made of a backslash, an f-string format spec "
                     "starting with '=')") if e.tree else \
                f"the walker's own check refuses with '{e.message}' (a walker bug)"
            raise WalkError(e.file, e.line, e.col, f"unsupported syntax: valid Python that {cause}") from None
        raise
    if verdict is _TOO_DEEP:
        raise WalkError(filename, 1, 1, "nesting too deep (CPython's parser refuses it)")
    return doc


# what the walker may say about valid Python: the subset's and the walker's own limits
_SUBSET_LIMITS = ("unsupported", "nesting too deep", "integer literal too large", "exo.")
_TOO_DEEP = WalkError("", 1, 1, "")  # CPython's parser gave up on the nesting (RecursionError, MemoryError)


def _cpython_verdict(text: str, filename: str) -> WalkError | None:
    """CPython's compiler on `text` (parser, symbol table and code generation; nothing runs): None
    if it is valid Python, its SyntaxError as a WalkError, or _TOO_DEEP if it gave up (it raises
    MemoryError or RecursionError on 100,000-deep input, which the walker then refuses itself).
    Compiling to bytecode is faster than building an AST: no Python objects per node."""
    try:
        compile(text, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        return WalkError(filename, e.lineno or 1, max(e.offset or 1, 1), e.msg or "invalid syntax")
    except (RecursionError, MemoryError):
        return _TOO_DEEP
    except ValueError as e:  # what compile() refuses before parsing (the walker refused NUL bytes already)
        return WalkError(filename, 1, 1, str(e))
    return None


def walk_bytes(data: bytes, filename: str) -> dict[str, Any]:
    """`walk` for a file's bytes: UTF-8 (a BOM is allowed; a coding declaration must name UTF-8)."""
    if len(data) > MAX_SOURCE_BYTES:
        raise WalkError(filename, 1, 1, f"source too large ({len(data)} bytes; the limit is {MAX_SOURCE_BYTES})")
    for number, first_lines in enumerate(data.split(b"\n", 2)[:2], start=1):
        m = _CODING.match(first_lines)
        if m and m.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8", b"utf-8-sig"):
            raise WalkError(filename, number, m.start(1) + 1,
                            f"unsupported source encoding {m.group(1).decode('ascii', 'replace')!r} (only UTF-8)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(data, e.start)
        raise WalkError(filename, line, col, f"invalid UTF-8 (byte 0x{data[e.start]:02x})") from None
    return walk(text, filename)


def _encode(source: str, filename: str) -> bytes:
    """The UTF-8 bytes tree-sitter parses: BOM dropped, newlines normalised as CPython reads them."""
    if len(source) > MAX_SOURCE_BYTES:
        raise WalkError(filename, 1, 1, f"source too large ({len(source)} characters; the limit is "
                                        f"{MAX_SOURCE_BYTES} bytes)")
    if source.startswith("\ufeff"):
        source = source[1:]
    if "\r" in source:
        source = source.replace("\r\n", "\n").replace("\r", "\n")
    try:
        data = source.encode("utf-8")
    except UnicodeEncodeError as e:
        before = source[:e.start].encode("utf-8", "surrogatepass")
        line, col = _line_col(before, len(before))
        raise WalkError(filename, line, col, "invalid character (a lone surrogate)") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise WalkError(filename, 1, 1, f"source too large ({len(data)} bytes; the limit is {MAX_SOURCE_BYTES})")
    nul = data.find(b"\0")
    if nul >= 0:
        line, col = _line_col(data, nul)
        raise WalkError(filename, line, col, "source code cannot contain null bytes")
    tokens = _estimate_tokens(data)
    if tokens > MAX_TOKENS:
        raise WalkError(filename, 1, 1, f"source too large (about {tokens} tokens; the limit is {MAX_TOKENS})")
    return data


def _estimate_tokens(data: bytes) -> int:
    """An upper bound on the tokens tree-sitter will make of `data` (each punctuation byte, each run of
    word characters), computed in C-speed passes: it bounds the parse tree's size before parsing."""
    classes = data.translate(_CLASSES)
    return classes.count(b".") + classes.count(b" a") + classes.count(b".a") + classes.startswith(b"a")


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and 1-based character column of byte `offset` in `data`."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", "replace")) + 1


# --- scopes and names ----------------------------------------------------------------------------------

@dataclass(eq=False)
class _Scope:
    """A Python scope: the module, a function or lambda, or a comprehension."""

    kind: str                      # "module", "function", "comprehension"
    parent: _Scope | None
    locals: dict[str, None] = field(default_factory=dict)   # bound here, in order: the std.let list
    params: set[str] = field(default_factory=set)
    globals: dict[str, Node] = field(default_factory=dict)
    nonlocals: dict[str, Node] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)       # name -> "used" | "assigned", so far
    handler_names: set[str] = field(default_factory=set)     # bound by `except ... as NAME`
    temps: int = 0

    def binds(self, name: str) -> bool:
        return name in self.locals or name in self.params


@dataclass(eq=False, slots=True)
class _Use:
    """An occurrence of a name, resolved when every scope is complete."""

    node: CastNode      # patched in place: ["std.var", NAME] becomes std.gvar, std.builtin, ...
    name: str
    scope: _Scope       # where it occurs
    at: Node
    top: int            # index of the top-level statement it is in
    deferred: bool      # inside a def or lambda body (runs later, not when its statement runs)
    handlers: tuple[tuple[_Scope, int], ...]  # enclosing `except ... as NAME` handlers of this name
    def_depth: int
    kind: str           # "read", "write" (already resolved), "raise", "exctype", "annotation"
    direct: bool = False  # a write that is a top-level statement's own target (`NAME = ...`, `def NAME`)
    consumer: bool = False  # a callee given a generator expression: must be the builtin


@dataclass(eq=False, slots=True)
class _Active:
    """An `except ... as NAME` clause being lowered: NAME is bound in its body until a nested clause
    binding the same NAME ends (Python unbinds NAME then)."""

    scope: _Scope
    name: str
    def_depth: int
    unbound: bool = False


@dataclass(eq=False, slots=True)
class _Loop:
    broke: str | None   # the hidden flag a `break` sets when the loop has an `else` clause


# --- the walker -----------------------------------------------------------------------------------------

class _Walker:
    """One walk of one source: lowering in source order, then name resolution, then the depth check."""

    def __init__(self, data: bytes, filename: str) -> None:
        self.src = data
        self.file = filename
        self.pos: tuple[int, int] | None = None     # the nearest enclosing position wrapper
        self.depth = 0
        self.module = _Scope("module", None)
        self.scope = self.module
        self.loops: list[_Loop] = []
        self.in_block = False                        # inside a compound statement's body
        self.in_function = False
        self.callee_use: _Use | None = None
        self.def_depth = 0
        self.top = 0
        self.direct_target: Node | None = None       # the top-level statement whose own targets are direct
        self.active: list[_Active] = []              # `except ... as NAME` clauses being lowered
        self.uses: list[_Use] = []
        self.nonlocal_checks: list[tuple[_Scope, str, Node]] = []
        self.stmt_kinds: dict[str, Callable[[Node], CastNode | None]] = {
            "expression_statement": self.s_expression, "if_statement": self.s_if, "while_statement": self.s_while,
            "for_statement": self.s_for, "try_statement": self.s_try, "function_definition": self.s_def,
            "return_statement": self.s_return, "pass_statement": self.s_pass, "break_statement": self.s_break,
            "continue_statement": self.s_continue, "raise_statement": self.s_raise,
            "assert_statement": self.s_assert, "delete_statement": self.s_del, "global_statement": self.s_global,
            "nonlocal_statement": self.s_nonlocal, "import_statement": self.s_import,
        }
        self.expr_kinds: dict[str, Callable[[Node], CastNode]] = {
            "identifier": self.e_identifier, "integer": self.e_integer, "float": self.e_float,
            "string": self.e_string, "concatenated_string": self.e_string, "true": self.e_true,
            "false": self.e_false, "none": self.e_none, "list": self.e_list, "tuple": self.e_tuple,
            "expression_list": self.e_tuple, "dictionary": self.e_dict, "parenthesized_expression": self.e_paren,
            "binary_operator": self.e_binary, "unary_operator": self.e_unary, "not_operator": self.e_not,
            "boolean_operator": self.e_boolean, "comparison_operator": self.e_compare,
            "conditional_expression": self.e_conditional, "call": self.e_call, "subscript": self.e_subscript,
            "lambda": self.e_lambda, "list_comprehension": self.e_comprehension,
            "dictionary_comprehension": self.e_comprehension,
        }

    # --- errors and positions ---

    def error(self, node: Node | int, message: str) -> WalkError:
        """A WalkError at `node` (or at a byte offset)."""
        offset = node if isinstance(node, int) else node.start_byte
        line, col = _line_col(self.src, offset)
        return WalkError(self.file, line, col, message)

    def structural(self, node: Node | int, message: str) -> WalkError:
        """An error in the structure tree-sitter built (indentation, logical lines, blocks): when
        CPython accepts the source, tree-sitter read it differently, and walk() says so instead."""
        error = self.error(node, message)
        error.tree = True
        return error

    def unsupported(self, node: Node, what: str) -> WalkError:
        return self.error(node, f"unsupported {what}")

    def text(self, node: Node) -> str:
        return self.src[node.start_byte:node.end_byte].decode("utf-8")

    @staticmethod
    def at(node: Node) -> tuple[int, int]:
        point = node.start_point
        return point.row + 1, point.column

    def wrap(self, node: Node, build: Callable[[Node], CastNode]) -> CastNode:
        """build(node) under a position wrapper (unless the enclosing wrapper has the same position)."""
        pos = self.at(node)
        if pos == self.pos:
            return build(node)
        saved, self.pos = self.pos, pos
        try:
            inner = build(node)
        finally:
            self.pos = saved
        if inner[0] in _LITERALS:
            return inner  # a folded `-1`, a plain string: nothing under it can raise
        return ["@", pos[0], pos[1], inner]

    def nest(self, node: Node) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(node, f"nesting too deep (the limit is {MAX_NESTING} levels)")

    # --- the document ---

    def document(self) -> dict[str, Any]:
        parser = tree_sitter.Parser(_LANGUAGE)
        tree = parser.parse(self.src)
        root = tree.root_node
        if root.has_error:
            raise self.syntax_error(root)
        body: list[CastNode] = []
        statements = self.statements(root)
        if statements:
            self.check_indentation(root, statements, None)
        for index, statement in enumerate(statements):
            self.top = index
            self.direct_target = statement
            lowered = self.statement(statement)
            if lowered is not None:
                body.append(lowered)
        self.resolve()
        doc_body = ["std.seq", *body]
        self.check_depth(doc_body)
        return {"cast": cast.CAST_VERSION, "lang": "python", "file": self.file, "body": doc_body}

    def syntax_error(self, root: Node) -> WalkError:
        """The first ERROR or MISSING node of a tree that has one, found without recursion. CPython
        accepted the source (it is compiled first), so this is a place tree-sitter misread."""
        error = self.tree_error(root)
        error.tree = True
        return error

    def tree_error(self, root: Node) -> WalkError:
        node = root
        while True:
            if node.is_missing:
                kind = node.type
                if kind in ("identifier", "block") or kind.startswith("_") or not kind.strip():
                    return self.error(node, "invalid syntax")
                return self.error(node, f"invalid syntax (expected {kind!r})")
            if node.is_error:
                return self.error(node, "invalid syntax")
            for child in node.children:
                if child.has_error or child.is_missing or child.is_error:
                    node = child
                    break
            else:
                return self.error(node, "invalid syntax")

    def check_depth(self, body: CastNode) -> None:
        """Refuse CAST nested deeper than cast.MAX_DEPTH (every JSON array a level, as cast.depth
        counts), naming the innermost position on the way."""
        stack: list[tuple[Any, int, tuple[int, int] | None]] = [(body, 1, None)]
        while stack:
            node, depth, pos = stack.pop()
            if depth > MAX_CAST_DEPTH:
                line, col = pos if pos is not None else (1, 0)
                start = 0
                for _ in range(line - 1):
                    start = self.src.index(b"\n", start) + 1
                raise self.error(start + col, f"nesting too deep (the limit is {MAX_CAST_DEPTH} levels of CAST)")
            if node and node[0] == "@" and isinstance(node[1], int):
                pos = (node[1], node[2])
            stack.extend((item, depth + 1, pos) for item in node if isinstance(item, list))

    # --- statements ---

    def statements(self, parent: Node) -> list[Node]:
        return [c for c in parent.named_children if c.type not in ("comment", "line_continuation")]

    def block(self, block: Node | None, header: Node) -> CastNode:
        """The statements of a block as one statement (std.pass, the statement, or a std.seq)."""
        if block is None or block.is_missing:
            raise self.structural(header, "expected an indented block")
        statements = self.statements(block)
        if not statements:
            raise self.structural(block.end_byte if block.end_byte > header.start_byte else header,
                             f"expected an indented block after {self.describe(header)} on line "
                             f"{header.start_point.row + 1}")
        self.check_indentation(block, statements, header)
        self.nest(block)  # a block is a level of nesting of its own (a statement in it is another)
        try:
            lowered: list[CastNode] = []
            for statement in statements:
                item = self.statement(statement)
                if item is not None:
                    lowered.append(item)
        finally:
            self.depth -= 1
        if not lowered:
            return ["std.pass"]
        return lowered[0] if len(lowered) == 1 else ["std.seq", *lowered]

    @staticmethod
    def describe(header: Node) -> str:
        kind = header.type.removesuffix("_statement").removesuffix("_clause").removesuffix("_definition")
        return "function definition" if kind == "function" else f"'{kind}' statement"

    def statement(self, node: Node) -> CastNode | None:
        kind = node.type
        handler = self.stmt_kinds.get(kind)
        if handler is None:
            if kind in _UNSUPPORTED:
                raise self.unsupported(node, _UNSUPPORTED[kind])
            if kind in _PYTHON2:
                raise self.error(node, f"invalid syntax ({_PYTHON2[kind]})")
            raise self.error(node, "invalid syntax")
        if node.start_point.row != node.end_point.row:
            self.check_logical_line(node)
        self.nest(node)
        try:
            return handler(node)
        finally:
            self.depth -= 1

    def check_logical_line(self, node: Node) -> None:
        """A statement (a compound statement's header) continues on the next line only inside
        brackets or after a backslash: tree-sitter also accepts `x =<newline>y = 1`."""
        cursor = node.walk()
        depth = 0
        previous: Node | None = None
        while True:
            current = cursor.node
            assert current is not None
            if current.type == "block":
                return  # a header ends at its block; the block's statements are checked one by one
            descend = current.type not in ("string", "concatenated_string") and cursor.goto_first_child()
            if not descend:
                if current.type != "comment":  # a comment ends its line, wherever it is
                    if previous is not None and depth == 0 and previous.type != "line_continuation" \
                            and current.start_point.row != previous.end_point.row:
                        raise self.structural(current, "invalid syntax")
                    if current.type in _OPENING:
                        depth += 1
                    elif current.type in _CLOSING:
                        depth -= 1
                    previous = current
                while not cursor.goto_next_sibling():
                    if not cursor.goto_parent() or cursor.node == node:
                        return

    # indentation: CPython compares indentation with tabs to multiples of 8 and with tabs as 1 column,
    # and refuses what the two disagree on (TabError); tree-sitter counts a tab as 8 and accepts some
    # dedents CPython refuses. Every statement that starts its line is checked here.

    def indentation(self, node: Node) -> tuple[int, int] | None:
        """(columns with tabs to 8, columns with tabs as 1) of `node`'s line, or None when `node`
        does not start its line."""
        col = node.start_point.column
        start = node.start_byte - col
        prefix = self.src[start:node.start_byte]
        if prefix.strip(b" \t\f"):
            return None
        wide = narrow = 0
        for ch in prefix:
            if ch == 0x09:
                wide = (wide // 8 + 1) * 8
                narrow += 1
            elif ch == 0x0C:
                wide = narrow = 0
            else:
                wide += 1
                narrow += 1
        return wide, narrow

    def check_indentation(self, block: Node, statements: list[Node], header: Node | None) -> None:
        outer = (0, 0) if header is None else self.indentation(header)
        if header is not None and outer is None:
            raise self.structural(header, "invalid syntax (a compound statement must start its line)")
        first_line = statements[0].start_point.row
        inline = header is not None and first_line == header.start_point.row
        level: tuple[int, int] | None = None
        previous: Node | None = None
        for st in statements:
            ind = self.indentation(st)
            if inline:
                if st.start_point.row != first_line:
                    raise self.structural(st, "unexpected indent")
                if st.type in _COMPOUND:
                    raise self.structural(st, "invalid syntax (a compound statement must start its line)")
            elif ind is None:
                if st.type in _COMPOUND or previous is None or previous.end_point.row != st.start_point.row:
                    raise self.structural(st, "invalid syntax (a compound statement must start its line)")
            elif level is None:
                level = ind
                if header is None and ind != (0, 0):
                    raise self.structural(st, "unexpected indent")
                assert outer is not None
                if header is not None and not (ind[0] > outer[0] and ind[1] > outer[1]):
                    if ind[0] > outer[0] or ind[1] > outer[1]:
                        raise self.structural(st, "inconsistent use of tabs and spaces in indentation")
                    raise self.structural(st, f"expected an indented block after {self.describe(header)} on line "
                                         f"{header.start_point.row + 1}")
            elif ind != level:
                if ind[0] == level[0] or ind[1] == level[1]:
                    raise self.structural(st, "inconsistent use of tabs and spaces in indentation")
                if ind[0] > level[0]:
                    raise self.structural(st, "unexpected indent")
                raise self.structural(st, "unindent does not match any outer indentation level")
            previous = st

    def check_clause(self, clause: Node, statement: Node) -> None:
        """`elif`/`else`/`except`/`finally` start their line at their statement's indentation."""
        if clause.start_point.row != clause.end_point.row:
            self.check_logical_line(clause)
        ind = self.indentation(clause)
        if ind is None:
            raise self.structural(clause, "invalid syntax")
        if ind != self.indentation(statement):
            raise self.structural(clause, "unindent does not match any outer indentation level")

    def s_pass(self, node: Node) -> CastNode | None:
        return None

    def s_expression(self, node: Node) -> CastNode | None:
        children = self.statements(node)
        if not children:
            raise self.structural(node, "invalid syntax")
        if len(children) > 1:  # `a, b` as a statement: tree-sitter has no expression_list here
            self.check_commas(node)
            return self.wrap(node, lambda _: ["std.expr", ["std.tuple", *(self.expr(c) for c in children)]])
        child = children[0]
        kind = child.type
        if kind == "assignment":
            return self.wrap(node, lambda _: self.assignment(child))
        if kind == "augmented_assignment":
            return self.wrap(node, lambda _: self.augmented(child))
        if kind == "ellipsis":
            return None  # `...` as a statement (a placeholder body) does nothing
        if kind in ("string", "integer", "float", "true", "false", "none") and not self.is_fstring(child):
            self.expr(child)  # checked (a docstring's escapes, a literal's syntax), then dropped: no effect
            return None
        return self.wrap(node, lambda _: ["std.expr", self.expr(child)])

    def s_import(self, node: Node) -> CastNode | None:
        names = node.children_by_field_name("name")
        if self.scope is not self.module or self.in_block or len(names) != 1 or names[0].type != "dotted_name" \
                or self.text(names[0]) != "exo":
            raise self.unsupported(node, "import (only `import exo`, at the top level of the module)")
        return None

    def s_global(self, node: Node) -> CastNode | None:
        scope = self.scope
        if scope is self.module:
            raise self.unsupported(node, "global statement at module level")
        for name_node in self.statements(node):
            name = self.identifier(name_node)
            # CPython names the statement, not the name, in these errors
            if name in scope.params:
                raise self.error(node, f"name '{name}' is parameter and global")
            if name in scope.nonlocals:
                raise self.error(node, f"name '{name}' is nonlocal and global")
            if name in scope.used:
                verb = "assigned to before" if scope.used[name] == "assigned" else "used prior to"
                raise self.error(node, f"name '{name}' is {verb} global declaration")
            if name in scope.handler_names:
                raise self.unsupported(name_node, f"global declaration of '{name}', bound by an except clause")
            scope.globals.setdefault(name, name_node)
        return None

    def s_nonlocal(self, node: Node) -> CastNode | None:
        scope = self.scope
        if scope is self.module:
            raise self.error(node, "nonlocal declaration not allowed at module level")
        for name_node in self.statements(node):
            name = self.identifier(name_node)
            if name in scope.params:
                raise self.error(node, f"name '{name}' is parameter and nonlocal")
            if name in scope.globals:
                raise self.error(node, f"name '{name}' is nonlocal and global")
            if name in scope.used:
                verb = "assigned to before" if scope.used[name] == "assigned" else "used prior to"
                raise self.error(node, f"name '{name}' is {verb} nonlocal declaration")
            if name in scope.handler_names:
                raise self.unsupported(name_node, f"nonlocal declaration of '{name}', bound by an except clause")
            scope.nonlocals.setdefault(name, name_node)
            self.nonlocal_checks.append((scope, name, node))
        return None

    def s_return(self, node: Node) -> CastNode | None:
        if not self.in_function:
            raise self.error(node, "'return' outside function")
        values = self.statements(node)
        if not values:
            return ["std.return"]
        return self.wrap(node, lambda _: ["std.return", self.expr(values[0])])

    def s_break(self, node: Node) -> CastNode | None:
        if not self.loops:
            raise self.error(node, "'break' outside loop")
        flag = self.loops[-1].broke
        if flag is None:
            return ["std.break"]
        return ["std.seq", ["std.set", self.temp_ref(flag), ["std.bool", True]], ["std.break"]]

    def s_continue(self, node: Node) -> CastNode | None:
        if not self.loops:
            raise self.error(node, "'continue' not properly in loop")
        return ["std.continue"]

    def s_raise(self, node: Node) -> CastNode | None:
        if node.child_by_field_name("cause") is not None:
            raise self.unsupported(node.child_by_field_name("cause") or node, "raise ... from")
        values = [c for c in self.statements(node)]
        if not values:
            return ["std.raise"]
        if len(values) > 1 or values[0].type == "expression_list" or any(c.type == "," for c in node.children):
            raise self.error(node, "invalid syntax")  # Python 2's `raise E, message`
        value = values[0]

        def build(_: Node) -> CastNode:
            exc = self.expr(value)
            if value.type == "identifier":
                # `raise ValueError` raises ValueError(): decided when the name is resolved
                self.uses[-1].kind = "raise"
            return ["std.raise", exc]
        return self.wrap(node, build)

    def s_assert(self, node: Node) -> CastNode | None:
        parts = self.statements(node)
        if not 1 <= len(parts) <= 2:
            raise self.error(node, "invalid syntax")

        def build(_: Node) -> CastNode:
            test = self.condition(parts[0])
            args = [self.expr(parts[1])] if len(parts) == 2 else []
            failure = ["std.raise", ["py.call", ["std.builtin", "py.AssertionError"], args, []]]
            return ["std.if", self.negate(test), failure]
        return self.wrap(node, build)

    def s_del(self, node: Node) -> CastNode | None:
        targets = self.statements(node)
        if len(targets) == 1 and targets[0].type in ("expression_list", "tuple", "list"):
            targets = self.statements(targets[0])

        def one(target: Node) -> CastNode:
            while target.type == "parenthesized_expression":
                target = self.single(target)
            if target.type in ("tuple", "list", "expression_list"):
                self.nest(target)
                try:
                    return self.seq([one(t) for t in self.statements(target)])
                finally:
                    self.depth -= 1
            if target.type == "identifier":
                raise self.unsupported(target, "del of a name (only del x[key])")
            if target.type != "subscript":
                raise self.error(target, f"cannot delete {self.what(target)}")
            obj, key = self.subscript_parts(target)
            if not isinstance(key, list) and key.type == "slice":
                raise self.unsupported(target, "del of a slice")
            return self.wrap(target, lambda _: ["py.delitem", self.expr(obj), self.key(target, key)])
        return self.wrap(node, lambda _: self.seq([one(t) for t in targets]))

    @staticmethod
    def seq(items: list[CastNode]) -> CastNode:
        return items[0] if len(items) == 1 else ["std.seq", *items]

    def s_if(self, node: Node) -> CastNode | None:
        def build(_: Node) -> CastNode:
            cond = self.condition(self.field(node, "condition"))
            then = self.compound_body(self.field(node, "consequence"), node)
            result: CastNode = ["std.if", cond, then]
            tail = result
            for clause in node.children_by_field_name("alternative"):
                self.check_clause(clause, node)
                if clause.type == "elif_clause":
                    test = self.condition(self.field(clause, "condition"))
                    branch: CastNode = ["std.if", test, self.compound_body(self.field(clause, "consequence"),
                                                                           clause)]
                    tail.append(branch)
                    tail = branch
                else:
                    tail.append(self.compound_body(self.field(clause, "body"), clause))
            return result
        return self.wrap(node, build)

    def compound_body(self, block: Node | None, header: Node) -> CastNode:
        saved = self.in_block
        self.in_block = True
        try:
            return self.block(block, header)
        finally:
            self.in_block = saved

    def s_while(self, node: Node) -> CastNode | None:
        def build(_: Node) -> CastNode:
            cond = self.condition(self.field(node, "condition"))
            return self.loop(node, lambda body: ["std.while", cond, body])
        return self.wrap(node, build)

    def s_for(self, node: Node) -> CastNode | None:
        if node.children and node.children[0].type == "async":
            raise self.unsupported(node, "async for")

        def build(_: Node) -> CastNode:
            iterable = self.field(node, "right")
            source = self.wrap(iterable, lambda n: ["py.iter", self.expr(n)])
            target = self.target(self.field(node, "left"))
            return self.loop(node, lambda body: ["std.for", target, source, body])
        return self.wrap(node, build)

    def loop(self, node: Node, make: Callable[[CastNode], CastNode]) -> CastNode:
        """A while/for loop: its body, and its `else` clause run when the loop did not `break`."""
        alternative = node.child_by_field_name("alternative")
        flag = self.new_temp() if alternative is not None else None
        self.loops.append(_Loop(flag))
        try:
            body = self.compound_body(self.field(node, "body"), node)
        finally:
            self.loops.pop()
        looped = make(body)
        if alternative is None or flag is None:
            return looped
        self.check_clause(alternative, node)
        otherwise = self.compound_body(self.field(alternative, "body"), alternative)
        return ["std.seq", ["std.set", self.temp_ref(flag), ["std.bool", False]], looped,
                ["std.if", ["py.not", self.temp_ref(flag)], otherwise]]

    def s_try(self, node: Node) -> CastNode | None:
        return self.wrap(node, lambda _: self.try_statement(node))

    def try_statement(self, node: Node) -> CastNode:
        body = self.compound_body(self.field(node, "body"), node)
        handlers: list[list[Any]] = []
        otherwise: Node | None = None
        final: CastNode | None = None
        clauses = [c for c in self.statements(node) if c.type in ("except_clause", "except_group_clause",
                                                                    "else_clause", "finally_clause")]
        excepts = [c for c in clauses if c.type in ("except_clause", "except_group_clause")]
        for clause in clauses:
            self.check_clause(clause, node)
            if clause.type == "except_group_clause" or any(c.type == "*" for c in clause.children):
                raise self.unsupported(clause, "except*")
            if clause.type == "else_clause":
                otherwise = clause
            elif clause.type == "finally_clause":
                final = self.compound_body(self.clause_block(clause), clause)
        for index, clause in enumerate(excepts):
            if self.except_value(clause) is None and index != len(excepts) - 1:
                raise self.error(clause, "default 'except:' must be last")
        handlers = self.handlers(excepts)
        if not handlers and final is None:
            raise self.error(node, "invalid syntax (expected 'except' or 'finally' block)")
        if otherwise is None:
            return ["std.try", body, handlers, final] if final is not None else ["std.try", body, handlers]
        flag = self.new_temp()
        else_body = self.compound_body(self.field(otherwise, "body"), otherwise)
        guarded: CastNode = ["std.try", ["std.seq", body, ["std.set", self.temp_ref(flag), ["std.bool", True]]],
                             handlers]
        result: CastNode = ["std.seq", ["std.set", self.temp_ref(flag), ["std.bool", False]], guarded,
                            ["std.if", self.temp_ref(flag), else_body]]
        return result if final is None else ["std.try", result, [], final]

    def clause_block(self, clause: Node) -> Node | None:
        blocks = [c for c in clause.named_children if c.type == "block"]
        return blocks[0] if blocks else None

    @staticmethod
    def except_value(clause: Node) -> Node | None:
        value = clause.child_by_field_name("value")
        if value is not None:
            return value
        named = [c for c in clause.named_children if c.type not in ("block", "comment", "line_continuation")]
        return named[0] if named else None

    def handlers(self, clauses: list[Node]) -> list[list[Any]]:
        """The handlers of a try statement. A handler binds the exception to a hidden name and, for
        `as NAME`, assigns it to NAME (an ordinary variable of the scope). From the first clause with a
        tuple of types on, the clauses become one handler that tests isinstance in order (a clause
        that does not match must let the next clause of the same statement try, not re-raise past it)."""
        out: list[list[Any]] = []
        chain: list[tuple[CastNode | None, CastNode]] = []   # (test or None for any, body) of folded clauses
        chain_temp: str | None = None
        for clause in clauses:
            value = self.except_value(clause)
            types: list[Node] = []
            name_node: Node | None = None
            several = False
            if value is not None:
                expr = value
                if value.type == "as_pattern":
                    expr = value.named_children[0]
                    alias = value.child_by_field_name("alias")
                    named = alias.named_children if alias is not None else []
                    if len(named) != 1 or named[0].type != "identifier":
                        raise self.error(value, "invalid syntax (except ... as needs a name)")
                    name_node = named[0]
                while expr.type == "parenthesized_expression":
                    expr = self.single(expr)
                types = self.statements(expr) if expr.type == "tuple" else [expr]
                several = len(types) > 1
                for t in types:
                    if t.type != "identifier":
                        raise self.unsupported(t, "exception type (only builtin exception names)")
            if chain_temp is None and not several:
                temp = self.new_temp() if name_node is not None else None
                out.append([self.exception_name(types[0]) if types else None, temp,
                            self.handler_body(clause, name_node, temp)])
                continue
            if chain_temp is None:
                chain_temp = self.new_temp()
            test: CastNode | None = None
            if types:
                classes = [self.exception_class(t) for t in types]
                test = ["py.call", ["std.builtin", "py.isinstance"],
                        [["std.var", chain_temp], classes[0] if len(classes) == 1 else ["std.tuple", *classes]], []]
            chain.append((test, self.handler_body(clause, name_node, chain_temp)))
        if chain_temp is not None:
            folded: CastNode = ["std.raise"]
            for test, body in reversed(chain):
                folded = body if test is None else ["std.if", test, body, folded]
            out.append([None, chain_temp, folded])
        return out

    def handler_body(self, clause: Node, name_node: Node | None, temp: str | None) -> CastNode:
        scope = self.scope
        if name_node is None:
            return self.compound_body(self.clause_block(clause), clause)
        name = self.identifier(name_node)
        if name in scope.globals or name in scope.nonlocals:
            raise self.unsupported(name_node, f"except ... as '{name}' with '{name}' declared global or nonlocal")
        scope.handler_names.add(name)
        assert temp is not None
        # the handler's hidden name is read with std.var: it finds the binding however the compiler
        # scopes a handler's name (a local of the function, or a global of the module body)
        bind = ["std.set", self.bind(name_node, name, handler=True), ["std.var", temp]]
        self.active.append(_Active(scope, name, self.def_depth))
        try:
            body = self.compound_body(self.clause_block(clause), clause)
        finally:
            self.active.pop()
        for outer in self.active:
            if outer.scope is scope and outer.name == name:
                outer.unbound = True  # this clause's end unbinds the name for the enclosing clause too
        return ["std.seq", bind, *(body[1:] if body[0] == "std.seq" else [body])]

    def exception_name(self, node: Node) -> str:
        """A handler's type: the builtin exception's name (checked to be one when names resolve)."""
        name = self.identifier(node)
        self.record(["std.builtin", "py." + name], name, node, "exctype")
        return name

    def exception_class(self, node: Node) -> CastNode:
        name = self.identifier(node)
        ref: CastNode = ["std.builtin", "py." + name]
        self.record(ref, name, node, "exctype")
        return ref

    def s_def(self, node: Node) -> CastNode | None:
        if node.children and node.children[0].type == "async":
            raise self.unsupported(node, "async function")
        if node.child_by_field_name("type_parameters") is not None:
            raise self.unsupported(node, "type parameters")
        name_node = self.field(node, "name")

        def build(_: Node) -> CastNode:
            name = self.identifier(name_node)
            returns = node.child_by_field_name("return_type")
            if returns is not None:
                self.annotation(returns)
            params = self.parameters(self.field(node, "parameters"))
            fn = self.function(name, params, self.field(node, "body"), node)
            return ["std.set", self.bind(name_node, name), fn]
        return self.wrap(node, build)

    # --- functions ---

    def parameters(self, node: Node) -> list[tuple[Node, str, CastNode | None]]:
        """(node, name, default) of each parameter; defaults lowered in the enclosing scope."""
        out: list[tuple[Node, str, CastNode | None]] = []
        seen: set[str] = set()
        for param in self.statements(node):
            kind = param.type
            if kind in ("list_splat_pattern", "dictionary_splat_pattern"):
                raise self.unsupported(param, "*args and **kwargs parameters")
            if kind == "keyword_separator":
                raise self.unsupported(param, "keyword-only parameters")
            if kind == "positional_separator":
                raise self.unsupported(param, "positional-only parameters")
            default: CastNode | None = None
            if kind == "identifier":
                name_node = param
            elif kind in ("default_parameter", "typed_default_parameter", "typed_parameter"):
                name_node = param.child_by_field_name("name") or (param.named_children or [param])[0]
                if name_node.type in ("list_splat_pattern", "dictionary_splat_pattern"):
                    raise self.unsupported(param, "*args and **kwargs parameters")
                if name_node.type != "identifier":
                    raise self.error(name_node, "invalid syntax")
                annotation = param.child_by_field_name("type")
                if annotation is not None:
                    self.annotation(annotation)
                value = param.child_by_field_name("value")
                if value is not None:
                    default = self.expr(value)
            else:
                raise self.error(param, "invalid syntax")
            name = self.identifier(name_node)
            if name == "exo":
                raise self.unsupported(name_node, "rebinding of 'exo'")
            if name in seen:
                raise self.error(name_node, f"duplicate argument '{name}' in function definition")
            if default is None and out and out[-1][2] is not None:
                raise self.error(param, "non-default argument follows default argument")
            seen.add(name)
            out.append((name_node, name, default))
        return out

    def function(self, name: str | None, params: list[tuple[Node, str, CastNode | None]], body: Node,
                 header: Node) -> CastNode:
        """A std.fn in a new scope: the body (a def's block, a lambda's expression) lowered, then the
        function's locals declared at its top."""
        scope = _Scope("function", self.scope, params={p for _, p, _ in params})
        saved = (self.scope, self.loops, self.in_function, self.active)
        self.scope, self.loops, self.in_function, self.active = scope, [], True, []
        self.def_depth += 1
        try:
            lowered = self.block(body, header) if header.type == "function_definition" else \
                ["std.return", self.expr(body)]
        finally:
            self.scope, self.loops, self.in_function, self.active = saved
            self.def_depth -= 1
        return ["std.fn", name, [[p, d] for _, p, d in params], self.with_lets(scope, lowered)]

    @staticmethod
    def with_lets(scope: _Scope, body: CastNode) -> CastNode:
        lets = [["std.let", n] for n in scope.locals if n not in scope.params]
        if not lets:
            return body
        return ["std.seq", *lets, *(body[1:] if body[0] == "std.seq" else [body])]

    def e_lambda(self, node: Node) -> CastNode:
        params_node = node.child_by_field_name("parameters")
        params = self.parameters(params_node) if params_node is not None else []
        return self.function(None, params, self.field(node, "body"), node)

    # --- assignment ---

    def assignment(self, node: Node) -> CastNode:
        """`a = b = value`, `x: T = value`, `x: T` (a declaration)."""
        targets: list[Node] = []
        current = node
        while True:
            annotation = current.child_by_field_name("type")
            if annotation is not None:
                if targets or current.child_by_field_name("left") is None:
                    raise self.error(current, "invalid syntax")
                left = self.field(current, "left")
                if left.type != "identifier":
                    raise self.unsupported(left, "annotated assignment to a non-name")
                self.annotation(annotation)
            targets.append(self.field(current, "left"))
            right = current.child_by_field_name("right")
            if right is None:
                if annotation is None:
                    raise self.error(current, "invalid syntax")
                # `x: int` binds nothing: it makes x local in a function, and is a no-op at module level
                name = self.identifier(targets[0])
                if self.scope is not self.module:
                    self.bind(targets[0], name)
                return ["std.pass"]
            if right.type != "assignment":
                break
            if right.child_by_field_name("type") is not None:
                raise self.error(right, "invalid syntax")
            current = right
        if right.type in ("augmented_assignment",):
            raise self.error(right, "invalid syntax")
        value = self.expr(right)
        if len(targets) == 1:
            return ["std.set", self.target(targets[0]), value]
        temp = self.new_temp()
        return ["std.seq", ["std.set", self.temp_ref(temp), value],
                *(["std.set", self.target(t), self.temp_ref(temp)] for t in targets)]

    def augmented(self, node: Node) -> CastNode:
        left = self.field(node, "left")
        operator = self.text(self.field(node, "operator"))
        op = _AUGMENTED.get(operator)
        if op is None:
            raise self.unsupported(node.child_by_field_name("operator") or node, f"operator {operator}")
        right = self.field(node, "right")
        while left.type == "parenthesized_expression":
            left = self.single(left)
        if left.type == "identifier":
            target = self.target(left)
            return ["std.set", target, self.wrap(node, lambda _: [op, self.expr(left), self.expr(right)])]
        if left.type == "attribute":
            raise self.unsupported(left, "attribute assignment")
        if left.type != "subscript":
            raise self.error(left, f"'{self.what(left)}' is an illegal expression for augmented assignment")
        obj, key = self.subscript_parts(left)
        if not isinstance(key, list) and key.type == "slice":
            raise self.unsupported(left, "slice assignment")
        value = self.expr(right)
        obj_e, key_e = self.expr(obj), self.key(left, key)
        if self.plain(obj_e) and self.plain(key_e) and not self.calls(value):
            # nothing between the reads can rebind the names: `a[i] = a[i] OP value` is exact
            read = self.wrap(left, lambda _: ["py.index", obj_e, key_e])
            return ["std.set", ["py.index", obj_e, key_e], self.wrap(node, lambda _: [op, read, value])]
        tobj, tkey = self.new_temp(), self.new_temp()
        read = self.wrap(left, lambda _: ["py.index", self.temp_ref(tobj), self.temp_ref(tkey)])
        return ["std.seq", ["std.set", self.temp_ref(tobj), obj_e], ["std.set", self.temp_ref(tkey), key_e],
                ["std.set", ["py.index", self.temp_ref(tobj), self.temp_ref(tkey)],
                 self.wrap(node, lambda _: [op, read, value])]]

    @staticmethod
    def plain(node: CastNode) -> bool:
        """A name read or a literal: evaluating it twice gives the same value when nothing runs between."""
        while node[0] == "@":
            node = node[3]
        return node[0] in ("std.var", "std.int", "std.str", "std.float", "std.bool", "std.none")

    @staticmethod
    def calls(node: Any) -> bool:
        """Whether a lowered expression can run code that rebinds names (a call, a method, a capability)."""
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                if item and item[0] in ("py.call", "py.method", "std.cap"):
                    return True
                if item and item[0] == "std.fn":
                    stack.append(item[2])  # making a function evaluates its defaults, not its body
                else:
                    stack.extend(item)
        return False

    def target(self, node: Node) -> CastNode:
        """An assignment target: a name, x[k], or a (nested) tuple/list of targets."""
        self.nest(node)
        try:
            return self.target_at(node)
        finally:
            self.depth -= 1

    def target_at(self, node: Node) -> CastNode:
        kind = node.type
        if kind == "identifier":
            return self.bind(node, self.identifier(node))
        if kind in ("pattern_list", "tuple_pattern", "list_pattern", "tuple", "list", "expression_list"):
            return ["std.unpack", *(self.target(t) for t in self.statements(node))]
        if kind == "parenthesized_expression":
            return self.target(self.single(node))
        if kind == "subscript":
            obj, key = self.subscript_parts(node)
            if not isinstance(key, list) and key.type == "slice":
                raise self.unsupported(node, "slice assignment")
            return ["py.index", self.expr(obj), self.key(node, key)]
        if kind == "attribute":
            raise self.unsupported(node, "attribute assignment")
        if kind in ("list_splat_pattern", "list_splat"):
            raise self.unsupported(node, "starred assignment")
        raise self.error(node, f"cannot assign to {self.what(node)}")

    @staticmethod
    def what(node: Node) -> str:
        return {"call": "function call", "integer": "literal", "float": "literal", "string": "literal",
                "concatenated_string": "literal", "true": "True", "false": "False", "none": "None",
                "binary_operator": "expression", "comparison_operator": "comparison", "lambda": "lambda",
                "boolean_operator": "expression", "unary_operator": "expression", "not_operator": "expression",
                "conditional_expression": "conditional expression", "dictionary": "dict literal",
                "set": "set display", "list_comprehension": "list comprehension",
                "dictionary_comprehension": "dict comprehension", "tuple_pattern": "tuple", "pattern_list": "tuple",
                "list_pattern": "list"}.get(node.type, node.type.replace("_", " "))

    def bind(self, node: Node, name: str, handler: bool = False) -> CastNode:
        """The target node for assigning `name` in the current scope (and record the binding)."""
        scope = self.scope
        if name == "exo":
            raise self.unsupported(node, "rebinding of 'exo'")
        if name == "__debug__":
            raise self.error(node, "cannot assign to __debug__")
        scope.used.setdefault(name, "assigned")
        if scope is self.module or name in scope.globals:
            ref: CastNode = ["std.gvar", name]
            self.record(ref, name, node, "write")
            return ref
        if name not in scope.nonlocals and name not in scope.params:
            scope.locals.setdefault(name, None)
        ref = ["std.var", name]
        self.record(ref, name, node, "write", handler=handler)
        return ref

    def new_temp(self) -> str:
        scope = self.scope
        name = f"${scope.temps}"
        scope.temps += 1
        if scope is not self.module:
            scope.locals[name] = None
        return name

    def temp_ref(self, name: str) -> CastNode:
        return ["std.gvar", name] if self.scope is self.module else ["std.var", name]

    def record(self, node: CastNode, name: str, at: Node, kind: str, *, handler: bool = False) -> None:
        handlers = tuple((a.scope, a.def_depth) for a in self.active if a.name == name and not a.unbound)
        direct = (kind == "write" and not handler and self.scope is self.module and self.def_depth == 0
                  and self.direct_target is not None and self.is_direct(at))
        self.uses.append(_Use(node, name, self.scope, at, self.top, self.def_depth > 0, handlers, self.def_depth,
                              kind, direct))

    def is_direct(self, at: Node) -> bool:
        """`at` is a name the top-level statement binds unconditionally: `NAME = ...` (also in a
        chain or a tuple target) or `def NAME`."""
        statement = self.direct_target
        assert statement is not None
        node = at.parent
        while node is not None and node.type in ("pattern_list", "tuple_pattern", "list_pattern", "tuple", "list",
                                                 "expression_list", "parenthesized_expression"):
            node = node.parent
        if node is None:
            return False
        if node.type == "function_definition":
            return node == statement and node.child_by_field_name("name") == at
        if node.type != "assignment":
            return False
        while node is not None and node.type == "assignment":
            node = node.parent
        return node == statement

    # --- expressions ---

    def expr(self, node: Node) -> CastNode:
        kind = node.type
        handler = self.expr_kinds.get(kind)
        if handler is None:
            if kind in _UNSUPPORTED:
                raise self.unsupported(node, _UNSUPPORTED[kind])
            if kind in ("keyword_argument", "pattern_list", "tuple_pattern", "list_pattern", "assignment",
                        "augmented_assignment"):
                raise self.error(node, "invalid syntax")
            raise self.unsupported(node, kind.replace("_", " "))
        self.nest(node)
        try:
            if kind in _RAISING:
                return self.wrap(node, handler)
            return handler(node)
        finally:
            self.depth -= 1

    def condition(self, node: Node) -> CastNode:
        """An expression used as a condition: a bool (py.truth unless it is one already)."""
        value = self.expr(node)
        return value if self.is_bool(value) else ["py.truth", value]

    def is_bool(self, node: CastNode) -> bool:
        while node[0] == "@":
            node = node[3]
        if node[0] in ("py.and", "py.or"):
            return self.is_bool(node[1]) and self.is_bool(node[2])
        return node[0] in _BOOLEAN

    def negate(self, test: CastNode) -> CastNode:
        inner = test
        while inner[0] == "@":
            inner = inner[3]
        if inner[0] == "py.truth":
            return ["py.not", inner[1]]
        return ["py.not", test]

    @staticmethod
    def field(node: Node, name: str) -> Node:
        child = node.child_by_field_name(name)
        if child is None:
            raise AssertionError(f"tree-sitter gave a {node.type} without {name}")  # has_error covers this
        return child

    def single(self, node: Node) -> Node:
        inner = self.statements(node)
        if len(inner) != 1:
            raise self.error(node, "invalid syntax")
        return inner[0]

    def identifier(self, node: Node) -> str:
        if node.type != "identifier":
            raise self.error(node, "invalid syntax (a name is expected)")
        name = self.text(node)
        if not name.isascii():
            name = unicodedata.normalize("NFKC", name)
        if not name.isidentifier() or keyword.iskeyword(name):
            raise self.error(node, "invalid syntax")
        return name

    def e_identifier(self, node: Node) -> CastNode:
        name = self.identifier(node)
        if name == "exo":
            raise self.unsupported(node, "use of 'exo' (only calls such as exo.fs.read(path))")
        self.scope.used.setdefault(name, "used")
        ref: CastNode = ["std.var", name]
        self.record(ref, name, node, "read")
        line = node.start_point.row + 1
        if self.pos is not None and self.pos[0] != line:
            return ["@", line, node.start_point.column, ref]
        return ref

    def e_true(self, node: Node) -> CastNode:
        return ["std.bool", True]

    def e_false(self, node: Node) -> CastNode:
        return ["std.bool", False]

    def e_none(self, node: Node) -> CastNode:
        return ["std.none"]

    def e_integer(self, node: Node) -> CastNode:
        text = self.text(node)
        if text[-1:] in "jJ":
            raise self.unsupported(node, "complex number")
        if not _INT.fullmatch(text):
            if text[:1] == "0" and text[1:2].isdigit():
                raise self.error(node, "leading zeros in decimal integer literals are not permitted; "
                                       "use an 0o prefix for octal integers")
            raise self.error(node, "invalid integer literal")
        digits = text.replace("_", "")
        if digits[1:2] in ("x", "X", "o", "O", "b", "B"):
            value = int(digits, 0)
            try:
                return ["std.int", str(value)]
            except ValueError:
                raise self.error(node, f"integer literal too large (more than {MAX_INT_DIGITS} digits)") from None
        digits = digits.lstrip("0") or "0"
        if len(digits) > MAX_INT_DIGITS:
            raise self.error(node, f"integer literal too large (more than {MAX_INT_DIGITS} digits)")
        return ["std.int", digits]

    def e_float(self, node: Node) -> CastNode:
        text = self.text(node)
        if text[-1:] in "jJ":
            raise self.unsupported(node, "complex number")
        if not _FLOAT.fullmatch(text):
            raise self.error(node, "invalid float literal")
        return self.float_node(float(text.replace("_", "")))

    @staticmethod
    def float_node(value: float) -> CastNode:
        if math.isnan(value):
            return ["std.float", "nan"]
        if value in (float("inf"), float("-inf")):
            return ["std.float", "inf" if value > 0 else "-inf"]
        return ["std.float", value]

    def e_list(self, node: Node) -> CastNode:
        self.check_commas(node)
        return ["std.list", *(self.expr(c) for c in self.statements(node))]

    def check_commas(self, node: Node) -> None:
        """Items separated by single commas, a trailing comma allowed (tree-sitter accepts `{,}`)."""
        expect_item = True
        for child in node.children:
            kind = child.type
            if kind == ",":
                if expect_item:
                    raise self.error(child, "invalid syntax")
                expect_item = True
            elif child.is_named and kind not in ("comment", "line_continuation"):
                expect_item = False

    def e_tuple(self, node: Node) -> CastNode:
        return ["std.tuple", *(self.expr(c) for c in self.statements(node))]

    def e_paren(self, node: Node) -> CastNode:
        return self.expr(self.single(node))

    def e_dict(self, node: Node) -> CastNode:
        self.check_commas(node)
        pairs: list[CastNode] = []
        for item in self.statements(node):
            if item.type != "pair":
                if item.type == "dictionary_splat":
                    raise self.unsupported(item, "** unpacking")
                raise self.error(item, "invalid syntax")
            pairs.append([self.expr(self.field(item, "key")), self.expr(self.field(item, "value"))])
        return ["std.dict", *pairs]

    def e_binary(self, node: Node) -> CastNode:
        operator = self.text(self.field(node, "operator"))
        op = _BINARY.get(operator)
        if op is None:
            raise self.unsupported(self.field(node, "operator"), f"operator {operator}")
        return [op, self.expr(self.field(node, "left")), self.expr(self.field(node, "right"))]

    def e_unary(self, node: Node) -> CastNode:
        operator = self.text(self.field(node, "operator"))
        argument = self.field(node, "argument")
        value = self.expr(argument)
        if operator in ("-", "+") and value[0] in ("std.int", "std.float"):
            # a signed number literal: folded, as CPython's compiler does
            if operator == "+":
                return value
            if value[0] == "std.int":
                return ["std.int", value[1][1:] if value[1].startswith("-") else
                        ("0" if value[1] == "0" else "-" + value[1])]
            number = value[1]
            if isinstance(number, str):
                return ["std.float", {"inf": "-inf", "-inf": "inf", "nan": "nan"}[number]]
            return ["std.float", -number]
        return [_UNARY[operator], value]

    def operand(self, node: Node) -> Node:
        """An operand of `not`, `and`, `or` or of a conditional expression's first two parts: Python's
        grammar takes no bare lambda or conditional expression there (tree-sitter's does)."""
        if node.type in ("lambda", "conditional_expression"):
            raise self.error(node, "invalid syntax")
        return node

    def e_not(self, node: Node) -> CastNode:
        return ["py.not", self.expr(self.operand(self.field(node, "argument")))]

    def e_boolean(self, node: Node) -> CastNode:
        operator = self.text(self.field(node, "operator"))
        return ["py.and" if operator == "and" else "py.or", self.expr(self.operand(self.field(node, "left"))),
                self.expr(self.operand(self.field(node, "right")))]

    def e_conditional(self, node: Node) -> CastNode:
        parts = self.statements(node)
        if len(parts) != 3:
            raise self.error(node, "invalid syntax")
        then, test, otherwise = self.operand(parts[0]), self.operand(parts[1]), parts[2]
        return ["std.cond", self.condition(test), self.expr(then), self.expr(otherwise)]

    def e_compare(self, node: Node) -> CastNode:
        operands = self.statements(node)
        operators = [" ".join(self.text(op).split()) for op in node.children_by_field_name("operators")]
        if len(operators) != len(operands) - 1 or not operators:
            raise self.error(node, "invalid syntax")
        ops: list[str] = []
        for index, operator in enumerate(operators):
            op = _COMPARE.get(operator)
            if op is None:
                raise self.error(node.children_by_field_name("operators")[index], "invalid syntax")
            if op in ("py.is", "py.isnot") and not (operands[index].type in ("none", "true", "false")
                                                     or operands[index + 1].type in ("none", "true", "false")):
                raise self.unsupported(operands[index], "'is' comparison (only with None, True or False)")
            ops.append(op)
        if len(ops) > MAX_CAST_DEPTH:
            raise self.error(node, f"nesting too deep (the limit is {MAX_CAST_DEPTH} levels of CAST)")
        # a chain `a < b < c` evaluates b once and stops at the first false comparison: a middle
        # operand that is a name or a literal is read twice (nothing runs between the reads); any
        # other is passed through a function's parameters, which evaluates it exactly once
        values = [self.expr(operands[0])]
        simple = [True]
        for operand in operands[1:]:
            values.append(self.expr(operand))
            simple.append(operand.type in _SIMPLE)
        last = len(ops) - 1

        def left_of(i: int) -> CastNode:
            if i == 0:
                return values[0]
            return self.expr(operands[i]) if simple[i] else ["std.var", "$r"]

        acc: CastNode = [ops[last], left_of(last), values[last + 1]]
        for i in range(last - 1, -1, -1):
            right = values[i + 1]
            if simple[i + 1]:
                acc = ["py.and", [ops[i], left_of(i), right], acc]
            else:
                body = ["py.and", [ops[i], ["std.var", "$l"], ["std.var", "$r"]], acc]
                acc = ["py.call", ["std.fn", None, [["$l", None], ["$r", None]], ["std.return", body]],
                       [left_of(i), right], []]
        return acc

    def e_call(self, node: Node) -> CastNode:
        function = self.field(node, "function")
        arguments = self.field(node, "arguments")
        if function.type == "attribute":
            chain = self.attribute_chain(function)
            if chain is not None and chain[0] == "exo":
                return self.capability(function, chain[1:], arguments)
            obj = self.field(function, "object")
            method = self.identifier(self.field(function, "attribute"))
            receiver = self.expr(obj)
            args, kwargs = self.arguments(arguments, (function, method, obj))
            return ["py.method", receiver, method, args, kwargs]
        callee = self.expr(function)
        if function.type == "identifier":
            self.callee_use = self.uses[-1]
        args, kwargs = self.arguments(arguments, (function, None, None))
        return ["py.call", callee, args, kwargs]

    def attribute_chain(self, node: Node) -> list[str] | None:
        names: list[str] = []
        while node.type == "attribute":
            names.append(self.text(self.field(node, "attribute")))
            node = self.field(node, "object")
        if node.type != "identifier":
            return None
        names.append(self.text(node))
        return names[::-1]

    def capability(self, function: Node, path: list[str], arguments: Node) -> CastNode:
        spelled = ".".join(path)
        name = "yield" if spelled == "yield_" else spelled  # `yield` is a keyword: exo.yield_()
        if name not in _CAPABILITY_ARITY or spelled == "yield":
            raise self.unsupported(function, f"capability exo.{spelled}")
        args, kwargs = self.arguments(arguments, (function, None, None))
        if kwargs:
            raise self.unsupported(arguments, f"keyword arguments to exo.{spelled}")
        low, high = _CAPABILITY_ARITY[name]
        if not low <= len(args) <= high:
            count = str(low) if low == high else f"{low} to {high}"
            raise self.error(arguments, f"exo.{spelled}() takes {count} argument{'s' if high != 1 else ''} "
                                        f"({len(args)} given)")
        return ["std.cap", name, *args]

    def arguments(self, node: Node, callee: tuple[Node, str | None, Node | None]
                  ) -> tuple[list[CastNode], list[list[Any]]]:
        if node.type == "generator_expression":
            return [self.generator_argument(node, callee, only=True)], []
        self.check_commas(node)
        args: list[CastNode] = []
        kwargs: list[list[Any]] = []
        names: set[str] = set()
        generator: Node | None = None
        for arg in self.statements(node):
            kind = arg.type
            if kind == "keyword_argument":
                name_node = self.field(arg, "name")
                if name_node.type != "identifier":
                    raise self.error(name_node, "invalid syntax (a keyword argument needs a name)")
                name = self.identifier(name_node)
                if name in names:
                    raise self.error(arg, f"keyword argument repeated: {name}")
                names.add(name)
                kwargs.append([name, self.expr(self.field(arg, "value"))])
            elif kind in ("list_splat", "dictionary_splat", "parenthesized_list_splat"):
                raise self.unsupported(arg, "* and ** arguments")
            else:
                if kwargs:
                    raise self.error(arg, "positional argument follows keyword argument")
                if kind == "generator_expression":
                    raise self.error(arg, "Generator expression must be parenthesized")
                if kind == "parenthesized_expression" and self.single(arg).type == "generator_expression":
                    generator = self.single(arg)
                    args.append(self.generator_argument(generator, callee, only=False))
                else:
                    args.append(self.expr(arg))
        if generator is not None and (len(args) > 1 or any(self.calls(v) for _, v in kwargs)):
            # the generator would be created first and consumed after the other arguments ran
            raise self.unsupported(generator, "generator expression with other arguments that run code")
        return args, kwargs

    def generator_argument(self, node: Node, callee: tuple[Node, str | None, Node | None], only: bool) -> CastNode:
        """A generator expression passed to a consumer that takes all of it before doing anything else
        (list, tuple, sorted, "sep".join) is the same as the list comprehension; elsewhere the
        consumer could stop early or fail half-way, so it is refused."""
        function, method, receiver = callee
        consumer: str | None = None
        if method is None and function.type == "identifier" and self.text(function) in ("list", "tuple", "sorted"):
            consumer = self.text(function)
            assert self.callee_use is not None
            self.callee_use.consumer = True  # checked to be the builtin when names resolve
        elif method == "join" and receiver is not None and receiver.type == "string" \
                and not self.is_fstring(receiver):
            consumer = "str.join"
        if consumer is None:
            raise self.unsupported(node, "generator expression here (use a list comprehension)")
        return self.comprehension(node, "list")

    def e_subscript(self, node: Node) -> CastNode:
        obj, key = self.subscript_parts(node)
        value = self.expr(obj)
        if not isinstance(key, list) and key.type == "slice":
            return ["py.slice", value, *self.slice_parts(key)]
        return ["py.index", value, self.key(node, key)]

    def subscript_parts(self, node: Node) -> tuple[Node, Node | list[Node]]:
        obj = self.field(node, "value")
        keys = node.children_by_field_name("subscript")
        if not keys:
            raise self.error(node, "invalid syntax")
        if len(keys) > 1:
            for k in keys:
                if k.type == "slice":
                    raise self.unsupported(k, "slice in a tuple subscript")
            return obj, keys
        return obj, keys[0]

    def key(self, node: Node, key: Node | list[Node]) -> CastNode:
        if isinstance(key, list):
            return ["std.tuple", *(self.expr(k) for k in key)]
        if key.type == "slice":
            raise self.unsupported(key, "slice here")
        return self.expr(key)

    def slice_parts(self, node: Node) -> list[CastNode | None]:
        parts: list[CastNode | None] = [None, None, None]
        index = 0
        for child in node.children:
            if child.type == ":":
                index += 1
                if index > 2:
                    raise self.error(child, "invalid syntax")
            elif child.type not in ("comment", "line_continuation"):
                if parts[index] is not None:
                    raise self.error(child, "invalid syntax")
                parts[index] = self.expr(child)
        while parts and parts[-1] is None:
            parts.pop()
        return parts

    # --- comprehensions ---

    def e_comprehension(self, node: Node) -> CastNode:
        return self.comprehension(node, "list" if node.type == "list_comprehension" else "dict")

    def comprehension(self, node: Node, kind: str) -> CastNode:
        """[E for T in A if C ...] -> (fn $0: $1 = []; for T in $0: if C: ... $1.append(E); return $1)(iter(A)):
        the first iterable is evaluated (and iter() applied) in the enclosing scope, as Python does."""
        body_node = self.field(node, "body")
        clauses = [c for c in self.statements(node) if c.type in ("for_in_clause", "if_clause")]
        if not clauses or clauses[0].type != "for_in_clause":
            raise self.error(node, "invalid syntax")
        for clause in clauses:
            if clause.type == "for_in_clause" and clause.children and clause.children[0].type == "async":
                raise self.unsupported(clause, "async comprehension")
            # `for T in A` and `if C` take a disjunction: no bare tuple, lambda or conditional expression
            parts = clause.children_by_field_name("right") if clause.type == "for_in_clause" else \
                self.statements(clause)
            if len(parts) != 1 or any(c.type == "," for c in clause.children):
                raise self.error(clause, "invalid syntax")
            if parts[0].type in ("lambda", "conditional_expression", "expression_list"):
                raise self.error(parts[0], "invalid syntax")
        first = clauses[0]
        first_iterable = self.field(first, "right")
        if first_iterable.type == "expression_list" or len(first.children_by_field_name("right")) > 1:
            raise self.error(first_iterable, "invalid syntax")
        source = self.wrap(first_iterable, lambda n: ["py.iter", self.expr(n)])
        scope = _Scope("comprehension", self.scope, params={"$0"})
        scope.temps = 2
        scope.locals["$1"] = None
        saved = self.scope
        self.scope = scope  # (an enclosing handler's name stays usable: the comprehension runs now)
        try:
            result = "$1"
            if kind == "list":
                element = self.expr(body_node)
                innermost: CastNode = ["std.expr", ["py.method", ["std.var", result], "append", [element], []]]
            else:
                key_e = self.expr(self.field(body_node, "key"))
                value_e = self.expr(self.field(body_node, "value"))
                if self.calls(key_e) and self.calls(value_e):
                    # Python evaluates the key first; std.set's value-then-target order must not matter
                    tkey = self.new_temp()
                    innermost = ["std.seq", ["std.set", ["std.var", tkey], key_e],
                                 ["std.set", ["py.index", ["std.var", result], ["std.var", tkey]], value_e]]
                else:
                    innermost = ["std.set", ["py.index", ["std.var", result], key_e], value_e]
            loops: list[tuple[str, Any, Any]] = []
            for index, clause in enumerate(clauses):
                if clause.type == "if_clause":
                    loops.append(("if", self.condition(self.single(clause)), None))
                    continue
                iterable = source if index == 0 else None
                if index:
                    right = self.field(clause, "right")
                    if right.type == "expression_list":
                        raise self.error(right, "invalid syntax")
                    iterable = self.wrap(right, lambda n: ["py.iter", self.expr(n)])
                target = self.target(self.field(clause, "left"))
                loops.append(("for", target, iterable if index else ["std.var", "$0"]))
        finally:
            self.scope = saved
        # element and conditions were lowered before the loops' targets: the element's names resolve
        # when every binding of the comprehension is known, so the order does not matter
        statement = innermost
        for what, a, b in reversed(loops):
            statement = ["std.if", a, statement] if what == "if" else ["std.for", a, b, statement]
        init: CastNode = ["std.let", result, ["std.list"] if kind == "list" else ["std.dict"]]
        lets = [["std.let", n] for n in scope.locals if n != result]
        fn = ["std.fn", None, [["$0", None]], ["std.seq", init, *lets, statement, ["std.return", ["std.var", result]]]]
        return ["py.call", fn, [source], []]

    # --- strings ---

    @staticmethod
    def is_fstring(node: Node) -> bool:
        strings = node.named_children if node.type == "concatenated_string" else [node]
        for string in strings:
            opening = string.children[0].text if string.type == "string" and string.children else None
            if opening is not None and b"f" in opening.lower():
                return True
        return False

    def e_string(self, node: Node) -> CastNode:
        pieces: list[Any] = []
        strings = self.statements(node) if node.type == "concatenated_string" else [node]
        for string in strings:
            if string.type != "string":
                raise self.error(string, "invalid syntax")
            self.string_pieces(string, pieces)
        value = self.joined(pieces)
        return ["std.str", value] if isinstance(value, str) else value

    def string_pieces(self, node: Node, out: list[Any]) -> None:
        """Append the literal text and formatted fields of one string literal."""
        children = node.children
        start, end = children[0], children[-1]
        if start.type != "string_start" or end.type != "string_end":
            raise self.error(node, "invalid syntax")
        opening = self.text(start)
        quote = opening.lstrip("rRuUfFbB")
        prefix = opening[:len(opening) - len(quote)].lower()
        if quote not in ("'", '"', "'''", '"""') or prefix not in _STRING_PREFIXES:
            if quote == "`":
                raise self.error(node, "invalid syntax (backquotes)")
            raise self.error(node, f"invalid string prefix {opening[:len(opening) - len(quote)]!r}")
        if "b" in prefix:
            raise self.unsupported(node, "bytes literal")
        if len(quote) == 1 and start.start_point.row != end.start_point.row:
            for m in re.finditer(rb"(\\*)\n", self.src[start.end_byte:end.start_byte]):
                if len(m.group(1)) % 2 == 0:  # a newline that no backslash continues
                    raise self.error(start, f"unterminated string literal (detected at line "
                                            f"{start.start_point.row + 1})")
        raw = "r" in prefix
        if "f" not in prefix:
            out.append(self.decode(self.src[start.end_byte:end.start_byte], start.end_byte, raw, False))
            return
        position = start.end_byte
        for child in children[1:-1]:
            if child.type != "interpolation":
                continue
            out.append(self.decode(self.src[position:child.start_byte], position, raw, True))
            self.interpolation(child, out, raw, quote)
            position = child.end_byte
        out.append(self.decode(self.src[position:end.start_byte], position, raw, True))

    def interpolation(self, node: Node, out: list[Any], raw: bool, quote: str, nested: bool = False) -> None:
        """Append an f-string field: `{expr=!conv:spec}` -> [the `expr=` text,] ["py.format", E, conv, spec];
        a spec with fields of its own (`{x:>{width}}`) becomes a py.fstring evaluated after E."""
        expression = self.field(node, "expression")
        conversion = node.child_by_field_name("type_conversion")
        spec = node.child_by_field_name("format_specifier")
        debug = any(c.type == "=" for c in node.children)
        # Python 3.11's f-string fields (PEP 701 lifted these in 3.12): no backslash and no comment in
        # the expression, not the string's own quote anywhere in the field
        stop = next((c for c in node.children[1:] if c.type in ("format_specifier", "}")), node.children[-1])
        field = self.src[node.start_byte + 1:stop.start_byte]
        if quote.encode() in self.src[node.start_byte:node.end_byte]:
            raise self.error(node, "f-string: expecting '}'")
        if b"\\" in field:
            raise self.error(node, "f-string expression part cannot include a backslash")
        if b"#" in field and any(leaf.type == "comment" for leaf in _leaves(node)):
            raise self.error(node, "f-string expression part cannot include '#'")
        if expression.type in ("lambda", "named_expression"):
            # CPython ends the expression at the ':' (`{v:=10}` is v with the spec "=10"); tree-sitter
            # reads on: a disagreement, unless CPython refuses the source anyway
            raise self.structural(expression, "f-string: invalid syntax (parenthesize it)")
        conv = ""
        if conversion is not None:
            conv = self.text(conversion)[1:]
            if conv == "a":
                raise self.unsupported(conversion, "!a conversion")
            if conv not in ("r", "s"):
                raise self.error(conversion, "invalid conversion character")
        if debug:
            # f"{x=}": the text from `{` to the conversion, the spec or `}` (the expression, `=` and
            # their spaces), then the value's repr unless a conversion or a format spec says otherwise
            end = (conversion or spec or node.children[-1]).start_byte
            out.append(self.src[node.start_byte + 1:end].decode("utf-8"))
            if conversion is None and spec is None:
                conv = "r"
        value = self.expr(expression)
        spec_value: str | CastNode = ""
        if spec is not None:
            pieces: list[Any] = []
            position = spec.start_byte + 1  # after the ':'
            for child in spec.named_children:
                if child.type != "format_expression":
                    continue
                if nested:
                    raise self.error(child, "f-string: expressions nested too deeply")
                pieces.append(self.decode(self.src[position:child.start_byte], position, raw, True))
                self.interpolation(child, pieces, raw, quote, nested=True)
                position = child.end_byte
            pieces.append(self.decode(self.src[position:spec.end_byte], position, raw, True))
            spec_value = self.joined(pieces)
        out.append(["py.format", value, conv, spec_value])

    @staticmethod
    def joined(pieces: list[Any]) -> str | CastNode:
        """Literal pieces and fields as one str if there are no fields, else a py.fstring."""
        parts: list[Any] = []
        for piece in pieces:
            if isinstance(piece, str) and parts and isinstance(parts[-1], str):
                parts[-1] += piece
            elif piece != "":
                parts.append(piece)
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
        return ["py.fstring", parts]

    def decode(self, data: bytes, offset: int, raw: bool, fstring: bool) -> str:
        """The value of a literal's text at byte `offset`: escapes (unless raw), `{{ }}` in f-strings."""
        text = data.decode("utf-8")
        pattern = (_FRAW if raw else _FLITERAL) if fstring else (None if raw else _LITERAL)
        if pattern is None or ("\\" not in text and (not fstring or ("{" not in text and "}" not in text))):
            return text

        def replace(m: re.Match[str]) -> str:
            piece = m.group()
            if piece in ("{{", "}}"):
                return piece[0]
            if piece in ("{", "}"):
                raise self.error(offset + len(text[:m.start()].encode("utf-8")), "f-string: single '}' is not allowed")
            escape = piece[1:]
            simple = _SIMPLE_ESCAPES.get(escape)
            if simple is not None:
                return simple
            head = escape[:1]
            if head and head in "01234567":
                return chr(int(escape, 8))
            problem = "truncated \\{}{} escape".format(head, {"x": "XX", "u": "XXXX", "U": "XXXXXXXX"}.get(head, ""))
            if head in ("x", "u", "U") and len(escape) > 1:
                code = int(escape[1:], 16)
                if code <= 0x10FFFF:
                    return chr(code)
                problem = "illegal Unicode character"
            elif head == "N":
                problem = "malformed \\N character escape"
                if len(escape) > 1:
                    try:
                        char = unicodedata.lookup(escape[2:-1])
                    except KeyError:
                        char = ""
                    if len(char) == 1:
                        return char
                    problem = "unknown Unicode character name"
            elif head not in ("x", "u", "U"):
                return piece  # an unknown escape keeps its backslash (CPython warns)
            raise self.error(offset + len(text[:m.start()].encode("utf-8")), f"invalid string escape: {problem}")

        return pattern.sub(replace, text)

    # --- annotations ---

    def annotation(self, node: Node) -> None:
        """Annotations are accepted and dropped when evaluating them cannot fail or run code: builtin
        type names, None, strings, subscripts and `|` of those."""
        stack = [node]
        while stack:
            n = stack.pop()
            kind = n.type
            if kind in ("type", "generic_type", "type_parameter", "union_type"):
                stack.extend(self.statements(n))
            elif kind == "identifier":
                name = self.identifier(n)
                if name not in _ANNOTATION_NAMES:
                    raise self.unsupported(n, f"annotation '{name}' (only builtin types)")
                self.record(["std.builtin", "py." + name], name, n, "annotation")
            elif kind in ("none", "string", "ellipsis"):
                if kind == "string" and self.is_fstring(n):
                    raise self.unsupported(n, "f-string annotation")
            elif kind == "subscript":
                stack.append(self.field(n, "value"))
                stack.extend(n.children_by_field_name("subscript"))
            elif kind == "binary_operator" and self.text(self.field(n, "operator")) == "|":
                stack.extend((self.field(n, "left"), self.field(n, "right")))
            elif kind in ("tuple", "list", "parenthesized_expression"):
                stack.extend(self.statements(n))
            else:
                raise self.unsupported(n, "annotation (only builtin types)")

    # --- name resolution ---

    def resolve(self) -> None:
        """Patch every name occurrence now that every scope is known, and apply the rules that need
        the whole program: nonlocal bindings exist, exception types are builtins, a builtin shadowed by
        a global is never read before it is bound, `except ... as NAME` names stay in their handlers."""
        for scope, name, at in self.nonlocal_checks:
            if not self.nonlocal_target(scope, name):
                raise self.error(at, f"no binding for nonlocal '{name}' found")
        global_uses: dict[str, list[_Use]] = {}
        handler_checks: list[tuple[_Use, _Scope]] = []
        for use in self.uses:
            if use.kind == "write":
                binding: _Scope | None = None if use.node[0] == "std.gvar" else use.scope
            else:
                binding = self.lookup(use.scope, use.name)
            if binding is None:
                global_uses.setdefault(use.name, []).append(use)
                continue
            if use.kind in ("exctype", "annotation") or use.consumer:
                what = {"exctype": "exception type", "annotation": "annotation"}.get(use.kind, "generator consumer")
                raise self.unsupported(use.at, f"{what} '{use.name}' (a local name shadows the builtin)")
            if use.name in binding.handler_names:
                handler_checks.append((use, binding))
        for name, uses in global_uses.items():
            bound = any(u.kind == "write" for u in uses)
            if bound and (name in _ALL_BUILTINS or name in _PREDEFINED):
                self.check_shadowed_builtin(name, uses)
            if name in self.module.handler_names:
                handler_checks.extend((u, self.module) for u in uses)
            for use in uses:
                if use.kind != "write":
                    self.resolve_global(use, bound)
        for use, scope in handler_checks:
            if use.kind == "write" and self.is_handler_binding(use):
                continue
            if not any(s is scope and d == use.def_depth for s, d in use.handlers):
                raise self.unsupported(use.at, f"use of '{use.name}' outside the except clause that binds it "
                                               "(Python unbinds it when the clause ends)")

    @staticmethod
    def is_handler_binding(use: _Use) -> bool:
        parent = use.at.parent
        return parent is not None and parent.type == "as_pattern_target"

    def lookup(self, scope: _Scope, name: str) -> _Scope | None:
        """The function scope whose local `name` is, or None for a global (or builtin)."""
        s: _Scope | None = scope
        while s is not None and s.kind != "module":
            if name in s.globals:
                return None
            if s.binds(name):
                return s
            s = s.parent
        return None

    def nonlocal_target(self, scope: _Scope, name: str) -> bool:
        s = scope.parent
        while s is not None and s.kind != "module":
            if name in s.globals:
                return False
            if s.binds(name):
                return True
            s = s.parent
        return False

    def resolve_global(self, use: _Use, bound: bool) -> None:
        name, node = use.name, use.node
        if use.kind == "exctype":
            if bound or name not in _EXCEPTIONS:
                raise self.unsupported(use.at, f"exception type '{name}' (only the builtin exception types)")
            return
        if use.kind == "annotation":
            if bound:
                raise self.unsupported(use.at, f"annotation '{name}' (the name is rebound)")
            return
        if use.consumer and (bound or name not in _SUPPORTED_BUILTINS):
            raise self.unsupported(use.at, f"generator expression given to '{name}' (not the builtin)")
        if bound:
            node[0] = "std.gvar"
            return
        if name in _SUPPORTED_BUILTINS:
            node[0], node[1] = "std.builtin", "py." + name
            if use.kind == "raise" and name in _EXCEPTIONS:
                node[:] = ["py.call", ["std.builtin", "py." + name], [], []]
            return
        if name in _PREDEFINED:
            node[:] = list(_PREDEFINED[name])
            return
        if name in _ALL_BUILTINS or (name.startswith("__") and name.endswith("__")):
            raise self.unsupported(use.at, f"builtin '{name}'")
        node[0] = "std.gvar"  # bound nowhere: a NameError when it runs, as in CPython

    def check_shadowed_builtin(self, name: str, uses: list[_Use]) -> None:
        """A global named like a builtin is exact only if no read can happen before it is bound: the
        first top-level statement that mentions it must bind it directly and not read it first."""
        first = min(u.top for u in uses)
        at_first = [u for u in uses if u.top == first]
        direct = any(u.kind == "write" and u.direct for u in at_first)
        early = [u for u in at_first if (u.kind == "write" and not u.direct) or (u.kind != "write" and not u.deferred)]
        if not direct or early:
            where = min(uses, key=lambda u: u.at.start_byte)
            raise self.unsupported(where.at, f"global '{name}' that shadows the builtin and may be read before "
                                             "it is bound (rename it)")


_COMPOUND = frozenset(("if_statement", "for_statement", "while_statement", "try_statement", "with_statement",
                       "function_definition", "class_definition", "decorated_definition", "match_statement"))
# expressions that can raise: they get a position wrapper (identifiers decide for themselves)
_RAISING = frozenset(("binary_operator", "unary_operator", "comparison_operator", "call", "subscript", "string",
                      "concatenated_string", "dictionary", "list_comprehension", "dictionary_comprehension"))
_SIMPLE = frozenset(("identifier", "integer", "float", "true", "false", "none"))
_LITERALS = frozenset(("std.int", "std.float", "std.str", "std.bool", "std.none", "std.builtin"))


_OPENING = frozenset(("(", "[", "{"))
_CLOSING = {")": "(", "]": "[", "}": "{"}


def _leaves(root: Node) -> Iterator[Node]:
    """The tokens under `root` in source order, without recursion."""
    cursor = root.walk()
    while True:
        if not cursor.goto_first_child():
            node = cursor.node
            assert node is not None
            yield node
            while not cursor.goto_next_sibling():
                if not cursor.goto_parent():
                    return
